# syntax=docker/dockerfile:1
#
# The chat server: Daphne via `python manage.py serve` on port 8000.
#   docker build -t chat .
# docker-compose.yml runs it as two processes behind nginx, with PostgreSQL and Redis.
#
# Pinned to a patch release of the Debian 12 slim image; bump both stages together
# (or pin by digest: python:3.11.14-slim-bookworm@sha256:...).
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# --------------------------------------------------------------------------- build
# Wheels of the project and of every dependency, at exactly the versions of
# requirements/base.lock (the runtime lock: not the [test] extra; requirements/update makes
# it), each checked against the lock's sha256: nothing is resolved at build time, so two
# builds on two days install the same files. All dependencies publish manylinux wheels
# (psycopg[binary], cffi, cryptography, autobahn, twisted...), so no compiler is needed;
# building here keeps pip's build environment (setuptools) out of the final image.
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY requirements/base.lock ./requirements/base.lock
# Dependencies first, in a layer of their own: it is rebuilt only when the lock changes.
# --only-binary: published wheels only, never an sdist built with unlocked build tools.
# The lock also pins the build backend (setuptools, from requirements/build.in): its wheel
# replaces the base image's setuptools here, in the build stage only, to build the project.
RUN pip wheel --require-hashes --only-binary=:all: --wheel-dir /wheels -r requirements/base.lock \
 && pip install --no-deps /wheels/setuptools-*.whl
COPY pyproject.toml README.md ./
COPY chatproject ./chatproject
COPY accounts ./accounts
COPY rooms ./rooms
COPY messaging ./messaging
# The project itself: its own wheel only, with the locked setuptools, resolving nothing.
RUN pip wheel --no-deps --no-build-isolation --wheel-dir /wheels .

# ------------------------------------------------------------------------- runtime
FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system --gid 10001 chat \
 && useradd --system --uid 10001 --gid chat --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin chat

# `pip install` of the project's wheel, offline: its dependencies come only from the locked
# wheels of the build stage (one version of each). The wheels are bind-mounted, so they never
# become a layer; setuptools' wheel is among them but nothing at run time requires it.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels /wheels/chatproject-*.whl

# The code also lives in /app, beside manage.py, templates/ and static/: settings derive
# BASE_DIR (templates, static, STATIC_ROOT) from the location of chatproject/settings.py,
# and `python manage.py` puts /app first on sys.path, so this copy is the one that runs.
# The code is owned by root and read-only for the server's user.
WORKDIR /app
COPY manage.py ./
COPY chatproject ./chatproject
COPY accounts ./accounts
COPY rooms ./rooms
COPY messaging ./messaging
COPY templates ./templates
COPY static ./static
COPY deploy/migrate.sh ./deploy/migrate.sh

# collectstatic with the production storage (whitenoise's CompressedManifestStaticFilesStorage),
# so /app/staticfiles holds the manifest that ENV=production needs at run time. Production
# settings refuse the default SECRET_KEY, so this one command gets a throwaway key of its
# own: it is an environment variable of this RUN only, not of the image.
RUN ENV=production DEBUG=false \
    SECRET_KEY=collectstatic-at-build-time-only-never-used-at-runtime \
    python manage.py collectstatic --noinput \
 && python -m compileall -q chatproject accounts rooms messaging \
 && mkdir -p /data/media \
 && chown chat:chat /data/media

# ENV=production: without a real SECRET_KEY (>= 32 characters) the server refuses to start.
ENV ENV=production \
    HOST=0.0.0.0 \
    PORT=8000 \
    MEDIA_ROOT=/data/media
# Uploads go to /data/media: mount a volume there (docker-compose.yml does; no VOLUME line,
# so one-shot containers such as `migrate` do not each leave an anonymous volume behind).

USER 10001:10001
EXPOSE 8000

# Liveness on /healthz with the standard library (there is no curl in the slim image).
# Host: the first entry of ALLOWED_HOSTS, so Django does not answer 400 to 127.0.0.1 when
# ALLOWED_HOSTS names only the public host. Any error or non-2xx status exits 1.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; h = next((x.strip().lstrip('.') for x in os.environ.get('ALLOWED_HOSTS', 'localhost').split(',') if x.strip() not in ('', '*')), 'localhost'); u.urlopen(u.Request('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), headers={'Host': h}), timeout=4)"]

# Daphne with the project's limits and the SIGTERM drain (sockets closed with 1012 within
# SHUTDOWN_TIMEOUT). Behind a load balancer add --proxy-headers (docker-compose.yml does).
CMD ["python", "manage.py", "serve"]
