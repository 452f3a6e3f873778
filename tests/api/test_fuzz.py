"""The OpenAPI schema fuzzed against the live service (schemathesis, bounded examples): no 5xx, errors as problem documents.

Driven through hypothesis directly: schemathesis' pytest plugin does not load
with this pytest version.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

EXAMPLES = 15


def test_no_server_errors_and_problem_documents(service):
    schema = schemathesis.openapi.from_url(f"{service.url}/openapi.json")
    headers = {"x-api-key": service.keys["acme-admin"]}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 6

    for operation in operations:

        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(case=operation.as_strategy())
        def call(case):
            response = case.call_and_validate(headers=headers, checks=[not_a_server_error])
            if response.status_code >= 400:
                content_type = response.headers.get("content-type") or response.headers.get("Content-Type")
                assert str(content_type).startswith("application/problem+json") or "problem+json" in str(content_type), response.text

        call()
