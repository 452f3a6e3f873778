"""Every Prefect block type Ferry uses, gathered in one module namespace.

``prefect block register -m blocks.kinds`` (what ``ferry blocks register``
runs) registers every block class it finds here, so one command - one Prefect
client, one server start when no server is configured - registers Ferry's own
blocks (destinations, sources, SMTP) and the collection blocks it delivers
through (prefect-aws, prefect-azure, prefect-gcp, prefect-email).

The kinds ``ferry blocks create`` makes are the same: every destination and
notifier, and every block their fields take (the credentials of the collection
blocks: ``aws-credentials``, ``minio-credentials``, ``gcp-credentials``,
``azure-blob-storage-credentials``), found from the classes' fields, so a
block added to a collection's field appears without code here.
"""

from __future__ import annotations

import inspect

from prefect.blocks.core import Block
from prefect_email import EmailServerCredentials

from blocks.registry import DESTINATIONS
from blocks.smtp import SmtpServer

NOTIFIERS: dict[str, type[Block]] = {
    SmtpServer.get_block_type_slug(): SmtpServer,
    EmailServerCredentials.get_block_type_slug(): EmailServerCredentials,
}


def block_classes() -> dict[str, type[Block]]:
    """slug -> block class, for every kind Ferry reads, writes or notifies through, and the blocks their fields take."""
    from prefect.utilities.dispatch import lookup_type

    classes: dict[str, type[Block]] = {}
    for slug, entry in DESTINATIONS.items():
        if isinstance(entry, type):
            classes[slug] = entry
            continue
        resolved = entry.resolve()  # imports the module (and its collection) that defines the kind
        classes[slug] = resolved if isinstance(resolved, type) else lookup_type(Block, slug)
    classes.update(NOTIFIERS)
    for cls in list(classes.values()):  # credentials and other blocks a kind's fields hold (S3Bucket.credentials, ...)
        for field in cls.model_fields.values():
            for referenced in _block_types(field.annotation):
                classes.setdefault(referenced.get_block_type_slug(), referenced)
    return classes


def used_by(slug: str, classes: dict[str, type[Block]] | None = None) -> dict[str, list[str]]:
    """The kinds whose fields take a ``slug`` block: kind slug -> field names (``aws-credentials`` -> s3-bucket's credentials)."""
    classes = classes if classes is not None else block_classes()
    found: dict[str, list[str]] = {}
    for kind, cls in classes.items():
        for name, field in cls.model_fields.items():
            if any(t.get_block_type_slug() == slug for t in _block_types(field.annotation)):
                found.setdefault(kind, []).append(name)
    return found


def _gather() -> None:
    """Put every kind's block class, Ferry's wrappers and the blocks their fields reference into this namespace."""
    found: list[type[Block]] = list(block_classes().values())
    for entry in DESTINATIONS.values():
        owner = getattr(entry.resolve(), "__self__", None) if not isinstance(entry, type) else None
        if inspect.isclass(owner) and issubclass(owner, Block):
            found.append(owner)  # e.g. S3Destination behind s3-bucket's factory
    for cls in list(found):
        for field in cls.model_fields.values():
            found += _block_types(field.annotation)
    for cls in found:
        globals().setdefault(f"_{cls.__module__.replace('.', '_')}_{cls.__name__}", cls)


def _block_types(annotation) -> list[type[Block]]:
    from typing import get_args

    found = [annotation] if inspect.isclass(annotation) and issubclass(annotation, Block) else []
    for arg in get_args(annotation):
        found += _block_types(arg)
    return found


_gather()
