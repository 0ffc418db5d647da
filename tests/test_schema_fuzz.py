"""Schemathesis against the project's own OpenAPI schema, on a real server (`chat_server`).

Every operation gets a few generated requests, authenticated as alice with a Bearer token;
none may answer 5xx, and every documented answer must match the schema (content type,
body). Where they disagree the schema annotations are fixed, not the check.
"""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

EXAMPLES_PER_OPERATION = 10
# `status_code_conformance` is left out: the schema documents each operation's success
# answers, not the shared error answers (400/401/403/404/429 with `{code, message}`).
CHECKS = [not_a_server_error, content_type_conformance, response_schema_conformance]


def test_every_operation_answers_by_its_schema(chat_server, alice_token, general):
    # Schemathesis' own pytest loader (`from_fixture`) does not run on pytest 9, so each
    # operation gets a Hypothesis property of its own here; every failure is reported.
    api = schemathesis.openapi.from_url(f"{chat_server.url}/api/schema/")
    headers = {"Authorization": f"Bearer {alice_token}"}
    failures: dict[str, str] = {}
    operations = calls = 0
    for result in api.get_all_operations():
        operation = result.ok()
        operations += 1

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def answers_by_its_schema(case) -> None:
            nonlocal calls
            calls += 1
            response = case.call(base_url=chat_server.url, headers=headers, timeout=10)
            case.validate_response(response, checks=CHECKS)

        try:
            answers_by_its_schema()
        except (Exception, BaseExceptionGroup) as exc:
            failures[operation.label] = f"{type(exc).__name__}: {exc}"
    assert operations > 20
    print(f"FIGURE rest_fuzz operations={operations} requests={calls} failures={len(failures)}")
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())
