"""Every destination Ferry knows, by block type slug: ``--dest SLUG/NAME`` loads the saved block NAME.

Every entry is :class:`Lazy`: its module (and a cloud SDK, ~1 s of imports
each) loads only when a reference names it, and no block module imports this
registry back at import time. Entries are of two kinds, with the same face
(``load(name)``, ``get_block_type_slug()``, ``uri_schemes``):

* Ferry's own destination blocks (``module:Class``);
* blocks of Prefect's collections that Ferry delivers through (prefect-aws
  ``s3-bucket``, prefect-azure ``azure-blob-storage-container``, prefect-gcp
  ``gcs-bucket``) through a factory (``module:Class.factory``), plus Ferry's
  wrapper blocks that add delivery settings to them.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from blocks.destination import Destination
from ferry.errors import DestinationError


class DestinationKind(Protocol):
    uri_schemes: tuple[str, ...]

    def get_block_type_slug(self) -> str: ...

    def load(self, name: str) -> Destination: ...


@dataclass(frozen=True)
class Lazy:
    """A destination kind whose code is imported on first use.

    ``target`` is ``module:Class`` (a Ferry destination block, loaded with
    ``Class.load``) or ``module:Class.factory`` (a classmethod that loads a
    collection block by name and wraps it).
    """

    slug: str
    target: str
    uri_schemes: tuple[str, ...] = ()

    def get_block_type_slug(self) -> str:
        return self.slug

    def resolve(self) -> Any:
        module, _, attribute = self.target.partition(":")
        value: Any = importlib.import_module(module)
        for part in attribute.split("."):
            value = getattr(value, part)
        return value

    def load(self, name: str) -> Destination:
        value = self.resolve()
        return value.load(name) if isinstance(value, type) else value(name)


DESTINATIONS: dict[str, DestinationKind] = {
    "local-directory": Lazy("local-directory", "blocks.local_directory:LocalDirectory"),
    "sftp": Lazy("sftp", "blocks.sftp:SftpServer", ("sftp",)),
    "ftp": Lazy("ftp", "blocks.ftp:FtpServer", ("ftp", "ftps")),
    "webhook-endpoint": Lazy("webhook-endpoint", "blocks.webhook:Webhook"),
    # Prefect collection blocks, used as they are (default delivery settings):
    "s3-bucket": Lazy("s3-bucket", "blocks.s3:S3Destination.for_bucket_block", ("s3",)),
    "azure-blob-storage-container": Lazy(
        "azure-blob-storage-container", "blocks.azure_blob:AzureBlobDestination.for_container_block", ("az",)
    ),
    "gcs-bucket": Lazy("gcs-bucket", "blocks.gcs:GcsDestination.for_bucket_block", ("gs",)),
    # Ferry's wrappers around them (part size, URL lifetime, ...):
    "s3-destination": Lazy("s3-destination", "blocks.s3:S3Destination"),
    "azure-blob-destination": Lazy("azure-blob-destination", "blocks.azure_blob:AzureBlobDestination"),
    "gcs-destination": Lazy("gcs-destination", "blocks.gcs:GcsDestination"),
}


def resolve_destination(reference: str | None, default_folder: Path) -> Destination:
    """``None`` -> managed storage; ``SLUG/NAME`` -> a saved block; anything else -> a folder path."""
    if reference is None:
        return managed_storage(default_folder)
    match = re.fullmatch(r"([a-z0-9-]+)/([^/]+)", reference)
    if match and match.group(1) in DESTINATIONS:
        slug, name = match.groups()
        try:
            return DESTINATIONS[slug].load(name)
        except ValueError as exc:
            if "Unable to find block document" not in str(exc) and "not found" not in str(exc).lower():
                raise DestinationError(
                    f"The {slug} block {name!r} cannot be loaded: {type(exc).__name__}.",
                    "Check its fields (and those of the blocks it references) in the Prefect UI.",
                ) from None
            raise DestinationError(
                f"No {slug} block named {name!r}.", f"Create it first (ferry blocks create {slug} {name} ...)."
            ) from None
    if match and not Path(match.group(1)).exists():
        # "s3-bukcet/exports" is a typo far more often than a new relative folder: do not write it to disk silently.
        raise DestinationError(
            f"Unknown destination kind {match.group(1)!r} in {reference!r}.",
            f"Use KIND/NAME with KIND one of {', '.join(DESTINATIONS)}; for a new local folder write ./{reference}.",
        )
    from blocks.local_directory import LocalDirectory

    return LocalDirectory(path=reference)


def managed_storage(default_folder: Path):
    """Ferry's managed storage (settings ``FERRY_MANAGED_*``), its inner destination resolved here."""
    from blocks.managed import ManagedStorage

    storage = ManagedStorage.from_settings(default_folder)
    if storage.reference and "/" in storage.reference:
        storage.use(resolve_destination(storage.reference, default_folder))
    return storage


def saved_references(slugs: list[str] | None = None) -> list[str]:
    """``SLUG/NAME`` of every saved (named) block of every destination kind, or of ``slugs``; nothing is loaded."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError

    references: list[str] = []
    with get_client(sync_client=True) as client:
        for slug in slugs if slugs is not None else list(DESTINATIONS):
            try:
                documents = client.read_block_documents_by_type(slug, include_secrets=False)
            except ObjectNotFound:  # the block type was never registered: no saved blocks
                continue
            except PrefectHTTPStatusError as exc:  # ... which some Prefect calls answer as a plain 404
                if exc.response.status_code == 404:
                    continue
                raise
            references += sorted(f"{slug}/{doc.name}" for doc in documents if doc.name and not doc.is_anonymous)
    return references
