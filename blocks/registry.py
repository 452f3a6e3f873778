"""Every destination block Ferry knows, by block type slug."""

from __future__ import annotations

import re
from pathlib import Path

from blocks.destination import Destination
from blocks.ftp import FtpServer
from blocks.local_directory import LocalDirectory
from blocks.sftp import SftpServer
from blocks.webhook import Webhook
from ferry.errors import DestinationError

DESTINATIONS: dict[str, type[Destination]] = {
    LocalDirectory.get_block_type_slug(): LocalDirectory,
    SftpServer.get_block_type_slug(): SftpServer,
    FtpServer.get_block_type_slug(): FtpServer,
    Webhook.get_block_type_slug(): Webhook,
}


def resolve_destination(reference: str | None, default_folder: Path) -> Destination:
    """``None`` -> the managed exports folder; ``SLUG/NAME`` -> a saved block; anything else -> a folder path."""
    if reference is None:
        return LocalDirectory(path=str(default_folder))
    match = re.fullmatch(r"([a-z0-9-]+)/([^/]+)", reference)
    if match and match.group(1) in DESTINATIONS:
        slug, name = match.groups()
        try:
            return DESTINATIONS[slug].load(name)
        except ValueError as exc:
            raise DestinationError(f"No {slug} block named {name!r}.", f"Create it first (ferry blocks create {slug} {name} ...).") from exc
    return LocalDirectory(path=reference)
