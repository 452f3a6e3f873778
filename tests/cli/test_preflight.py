"""What a run would refuse and can be told before it starts is told then: exit 2, every problem, no run, no audit entry."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from cli.main import app

runner = CliRunner()


def flow_runs() -> int:
    from prefect import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    with get_client(sync_client=True) as client:
        return client.count_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["export-data", "import-data"])))


def audit_entries(store) -> int:
    with store.engine.connect() as conn:
        return conn.execute(sa.text("SELECT COUNT(*) FROM audit_log")).scalar_one()


@pytest.mark.parametrize("seeded_store", ["sqlite"], indirect=True)
def test_unknown_workspace_segment_list_and_destination_stop_the_export_before_a_run(store, tmp_path):
    runs, audits = flow_runs(), audit_entries(store)

    result = runner.invoke(app, ["export", "contacts", "--workspace", "nope", "--dest", "s3-bucket/no-such-block"])
    assert result.exit_code == 2, result.output
    assert "workspace='nope': Workspace 'nope' does not exist" in result.stderr
    assert "destination='s3-bucket/no-such-block': No s3-bucket block named 'no-such-block'" in result.stderr

    result = runner.invoke(app, ["export", "contacts", "--workspace", "acme", "--lists", "no-such-list", "--filename", "x" * 300])
    assert result.exit_code == 2, result.output
    for expected in ("lists=['no-such-list']", "filename=", "at most 255"):
        assert expected in result.stderr, result.stderr
    result = runner.invoke(app, ["export", "contacts", "--workspace", "acme", "--segment", "no-such-segment"])
    assert result.exit_code == 2 and "segment='no-such-segment'" in result.stderr, result.output

    source = tmp_path / "c.csv"
    source.write_text("Email\na@example.com\n")
    result = runner.invoke(app, ["import", "run", str(source), "--resource", "contacts", "--workspace", "nope", "--auto-map"])
    assert result.exit_code == 2 and "workspace='nope'" in result.stderr

    assert (flow_runs(), audit_entries(store)) == (runs, audits)  # no run was created, nothing was audited
