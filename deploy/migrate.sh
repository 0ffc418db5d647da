#!/bin/sh
# One-shot start-up job of the `migrate` compose service (runs before app1/app2):
# the schema, the General room, and, when DJANGO_SUPERUSER_USERNAME is set, the first
# admin. Safe to run on every `docker compose up`: each step is idempotent.
set -eu

python manage.py migrate --noinput
python manage.py seed_general_room

if [ -n "${DJANGO_SUPERUSER_USERNAME:-}" ]; then
    if [ -z "${DJANGO_SUPERUSER_PASSWORD:-}" ]; then
        echo "DJANGO_SUPERUSER_USERNAME is set but DJANGO_SUPERUSER_PASSWORD is not:" \
             "refusing to create an admin without a password." >&2
        exit 1
    fi
    # createsuperuser has no "if missing" flag: it fails with "That username is already
    # taken." on a second run. That one failure is expected; any other is not.
    if out=$(python manage.py createsuperuser --noinput 2>&1); then
        printf '%s\n' "$out"
    elif printf '%s' "$out" | grep -q "already taken"; then
        echo "Admin '${DJANGO_SUPERUSER_USERNAME}' already exists; left unchanged (its password too)."
    else
        printf '%s\n' "$out" >&2
        exit 1
    fi
fi
