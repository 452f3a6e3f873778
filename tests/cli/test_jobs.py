"""``ferry jobs`` on the session's Prefect server, with nothing serving the jobs: definitions, option spellings, show.

Runs (and a ``ferry serve`` executing them) are tested in tests/deployments/test_jobs.py.
"""

from __future__ import annotations

import uuid

from ferry_cli import ferry, ferry_json


def job_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def test_show_prints_every_parameter_of_the_job_filters_included():
    name = job_name("show-all")
    ferry_json(
        "jobs",
        "create",
        "--name",
        name,
        "--description",
        "Customers for the CRM",
        "--workspace",
        "acme",
        "--resource",
        "contacts",
        "--fields",
        "email,first_name",
        "--filter",
        "lifecycle_stage:eq:customer",
        "--filter",
        "address.country:in:DE|AT",
        "--filter",
        "phone.mobile:not_null",
        "--segment",
        "30_day_engaged",
        "--lists",
        "vip,newsletter",
        "--format",
        "jsonl",
        "--gzip",
        "--filename",
        "{resource}-{date}.{format}",
        "--dest",
        "sftp/partner",
        "--cron",
        "0 2 * * *",
        "--timezone",
        "Europe/Berlin",
        "--incremental",
        "--overwrite",
        "--option",
        "date_format=L",
        "--option",
        'labels={"email": "E-Mail"}',
    )

    shown = ferry("jobs", "show", name)

    assert shown.exit_code == 0, shown.output
    text = shown.stdout
    for expected in (
        "Customers for the CRM",
        "contacts of acme as jsonl (gzip) incrementally",
        "fields    email, first_name",
        "filter    lifecycle_stage:eq:customer",
        "filter    address.country:in:DE|AT",
        "filter    phone.mobile:not_null",
        "segment   30_day_engaged",
        "lists     vip, newsletter",
        "option    date_format='L'",
        "option    labels={'email': 'E-Mail'}",
        "option    overwrite=True",  # --overwrite, as on ferry export
        "to        sftp/partner as {resource}-{date}.{format}",
        "schedule  0 2 * * * (Europe/Berlin)",
    ):
        assert expected in text, (expected, text)
    ferry_json("jobs", "delete", name)


def test_product_scope_is_shown_and_both_variant_spellings_work_documented_once():
    name = job_name("variants")
    created = ferry_json(
        "jobs",
        "create",
        "--name",
        name,
        "--workspace",
        "acme",
        "--resource",
        "products",
        "--catalog",
        "main",
        "--schema",
        "apparel",
        "--scope",
        "language=de",
        "--include-variants",
    )
    assert created["scope"]["includeVariants"] is True
    text = ferry("jobs", "show", name).stdout
    for expected in ("catalog   main", "schema    apparel", "scope     language=de", "include variants yes"):
        assert expected in text, (expected, text)

    base = ("jobs", "update", name, "--workspace", "acme", "--resource", "products")
    assert ferry_json(*base, "--no-include-variants")["scope"]["includeVariants"] is False  # `ferry export`'s spelling
    assert ferry_json(*base, "--include-variants")["scope"]["includeVariants"] is True
    assert ferry_json(*base, "--no-variants")["scope"]["includeVariants"] is False  # the earlier spelling still works

    help_text = ferry("jobs", "create", "--help", env={"COLUMNS": "200"}).stdout
    assert "--no-include-variants" in help_text and "--no-variants" not in help_text
    ferry_json("jobs", "delete", name)


def test_job_problems_suggest_the_closest_format_and_field():
    base = ("jobs", "create", "--name", job_name("typos"), "--workspace", "acme", "--resource", "contacts")

    bad_format = ferry(*base, "--format", "xlsxx")
    assert bad_format.exit_code == 2 and "format='xlsxx'" in bad_format.stderr and "did you mean 'xlsx'?" in bad_format.stderr

    bad_field = ferry(*base, "--fields", "emial", "--filter", "lifecycle:eq:lead")
    assert bad_field.exit_code == 2
    for expected in (
        "scope.fields[0]='emial'",
        "did you mean 'email'?",
        "scope.filters[0].field='lifecycle'",
        "did you mean 'lifecycle_stage'?",
    ):
        assert expected in bad_field.stderr, bad_field.stderr
