"""The ``ferry`` command run in-process through typer's CliRunner, as the CLI tests call it."""

from __future__ import annotations

import json
from typing import Any

from click.testing import Result
from typer.testing import CliRunner

runner = CliRunner()


def ferry(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
    """``ferry ARGS...``; an exception the CLI does not handle fails the test with its own traceback."""
    from cli.main import app

    return runner.invoke(app, list(args), input=input, env=env, catch_exceptions=False)


def ferry_json(*args: str) -> Any:
    """``ferry ARGS... --json``, which must succeed; its parsed output."""
    result = ferry(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)
