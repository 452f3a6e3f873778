"""Quoting for the names in the load's SQL: staging tables and columns are named after the run and the mapping."""

from __future__ import annotations


def q(name: str) -> str:
    """``name`` as a quoted SQL identifier (a double quote inside is doubled)."""
    return '"' + name.replace('"', '""') + '"'
