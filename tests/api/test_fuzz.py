"""The OpenAPI schema fuzzed against the live service (schemathesis, bounded examples): no 5xx, every answer as documented.

Driven through hypothesis directly: schemathesis' pytest plugin does not load
with this pytest version.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

EXAMPLES = 15


def test_no_server_errors_and_every_answer_matches_the_schema(service):
    schema = schemathesis.openapi.from_url(f"{service.url}/openapi.json")
    headers = {"x-api-key": service.keys["acme-admin"]}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 6

    for operation in operations:

        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(case=operation.as_strategy())
        def call(case):
            case.call_and_validate(headers=headers, checks=CHECKS)

        call()
