"""Real servers for tests, and the destination cases the conformance suite runs over.

``DESTINATIONS`` lists one :class:`DestinationCase` per destination kind. Each
names a pytest fixture (defined in a conftest or test module that the suite
imports) returning a :class:`DestinationHandle`: a configured destination block
plus a way to read back what landed at the server, so one test body can check
every backend the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol


class DestinationHandle(Protocol):
    destination: object  # a blocks.destination.Destination

    def read(self, key: str) -> bytes:
        """The bytes stored at ``key`` (raises if missing)."""

    def keys(self) -> list[str]:
        """Every object/file stored, including temporary ones, relative to the destination's root."""


@dataclass(frozen=True)
class DestinationCase:
    name: str
    fixture: str  # pytest fixture name returning a DestinationHandle


DESTINATIONS: list[DestinationCase] = [
]
