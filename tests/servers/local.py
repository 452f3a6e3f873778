"""A local folder as a destination case (no server: the reference implementation of the contract)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class LocalHandle:
    destination: object
    root: Path

    def read(self, key: str) -> bytes:
        return (self.root / key).read_bytes()

    def keys(self) -> list[str]:
        return sorted(p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file())


@pytest.fixture
def local_directory_handle(tmp_path) -> LocalHandle:
    from blocks.local_directory import LocalDirectory

    root = tmp_path / "exports"
    return LocalHandle(LocalDirectory(path=str(root)), root)
