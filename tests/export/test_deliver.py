"""Deliver: file names rendered from templates stay in their folder; files appear whole or not at all."""

from __future__ import annotations

import hashlib
import io
import os
from datetime import datetime
from pathlib import Path

import pytest
from prefect.states import Failed

from blocks.destination import clean_key
from blocks.local_directory import LocalDirectory
from ferry.errors import DestinationError, TransientDestinationError
from ferry.params import DEFAULT_FILENAME, parse_request
from tasks.export.deliver import render_filename
from tasks.retry import retry_transient

WHEN = datetime(2026, 11, 22, 9, 30)


def name_for(run_id: str = "run-1", **params) -> str:
    params.setdefault("workspace", "acme")
    params.setdefault("resource", "contacts")
    return render_filename(parse_request(params), run_id, WHEN)


def files_in(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


# --- names ---------------------------------------------------------------------------


def test_default_name_has_resource_workspace_date_run_and_extension():
    assert name_for(resource="profiles") == "contacts-acme-2026-11-22-run-1.csv"
    assert name_for(format="parquet", gzip=True) == "contacts-acme-2026-11-22-run-1.parquet.gz"


def test_templates_may_use_folders_and_get_the_extension_they_lack():
    assert name_for(filename="{workspace}/{date}/{resource}") == "acme/2026-11-22/contacts.csv"
    assert name_for(filename="export.{format}", format="jsonl", gzip=True) == "export.jsonl.gz"
    assert name_for(filename="export.csv.gz", gzip=True) == "export.csv.gz"


@pytest.mark.parametrize("workspace", ["../../etc", "..", "/etc/passwd", "a/../../b", "..\\..\\win", "tab\tnew\nline"])
def test_placeholder_values_cannot_add_folders_or_climb_out(tmp_path, workspace):
    name = name_for(workspace=workspace, filename="{workspace}-{resource}.{format}")

    assert "/" not in name and "\\" not in name and not name.startswith(".")
    assert clean_key(name)  # a valid relative key
    target = LocalDirectory(path=str(tmp_path)).target(name)
    assert target.parent == tmp_path.resolve()


def test_a_workspace_placeholder_as_a_folder_stays_inside(tmp_path):
    name = name_for(workspace="../../etc", filename="{workspace}/{resource}.{format}")

    folder = name.split("/")[0]
    assert name == f"{folder}/contacts.csv" and folder.startswith("etc-") and folder != "etc"
    assert LocalDirectory(path=str(tmp_path)).target(name) == tmp_path.resolve() / folder / "contacts.csv"


@pytest.mark.parametrize(("older", "slug"), [("acme corp", "acme-corp"), ("../x", "x"), ("Acme", "acme"), ("..", "unnamed")])
def test_workspaces_whose_names_sanitise_alike_get_distinct_file_names(older, slug):
    """Issue 15: ``acme corp`` and ``acme-corp`` rendered to one path, so one workspace overwrote the other's file."""
    template = "{workspace}/{resource}.{format}"

    assert name_for(workspace=slug, filename=template) == f"{slug}/contacts.csv"  # slugs stay as they are
    assert name_for(workspace=older, filename=template) != name_for(workspace=slug, filename=template)
    assert name_for(workspace=older, filename=template) == name_for(workspace=older, filename=template)  # and stable


def test_the_default_template_is_unique_per_run():
    assert "{run_id}" in DEFAULT_FILENAME
    assert name_for(run_id="run-1") != name_for(run_id="run-2")


def test_run_ids_are_sanitised_too():
    assert name_for(run_id="../x/y", filename="{run_id}.{format}") == "x-y.csv"


@pytest.mark.parametrize("key", ["../x.csv", "a/../../x.csv", "/abs.csv", "\\\\server\\x.csv", "C:x.csv", "x\x00.csv", ""])
def test_keys_that_could_leave_the_folder_are_refused(key):
    with pytest.raises(DestinationError, match="Refusing file name"):
        clean_key(key)


@pytest.mark.parametrize("key", ["a\nb.csv", "x\t.csv", "x\x1b[31m.csv", "x\x7f.csv", "x\x85.csv"])
def test_keys_with_control_characters_are_refused(key):
    with pytest.raises(DestinationError, match="Refusing file name .*control characters"):
        clean_key(key)


def test_a_symlink_out_of_the_folder_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    folder = tmp_path / "exports"
    folder.mkdir()
    (folder / "link").symlink_to(outside, target_is_directory=True)

    with pytest.raises(DestinationError, match="resolves outside"):
        LocalDirectory(path=str(folder)).deliver(io.BytesIO(b"x"), "link/file.csv")
    assert files_in(outside) == []


# --- delivery ------------------------------------------------------------------------


def test_delivery_reports_location_size_and_hash(tmp_path):
    payload = os.urandom(3 * (1 << 20) + 17)  # more than one copy chunk
    delivery = LocalDirectory(path=str(tmp_path / "new" / "folder")).deliver(io.BytesIO(payload), "sub/x.csv")

    path = Path(delivery.location)
    assert path == (tmp_path / "new" / "folder" / "sub" / "x.csv").resolve()
    assert path.read_bytes() == payload
    assert delivery.bytes == len(payload) and delivery.sha256 == hashlib.sha256(payload).hexdigest()
    assert files_in(tmp_path) == ["new/folder/sub/x.csv"]  # no partial file left behind


class BrokenStream(io.RawIOBase):
    """A source that fails after its first chunk, like a disk or network read error mid-file."""

    def __init__(self) -> None:
        self.calls = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        self.calls += 1
        if self.calls > 1:
            raise OSError(5, "Input/output error")
        return b"a" * 1024


def test_a_failed_write_leaves_no_file_and_keeps_the_previous_one(tmp_path):
    (tmp_path / "x.csv").write_bytes(b"previous")

    with pytest.raises(DestinationError, match="Writing .* failed"):
        LocalDirectory(path=str(tmp_path)).deliver(BrokenStream(), "x.csv")
    with pytest.raises(DestinationError):
        LocalDirectory(path=str(tmp_path)).deliver(BrokenStream(), "y.csv")

    assert files_in(tmp_path) == ["x.csv"] and (tmp_path / "x.csv").read_bytes() == b"previous"


def test_an_unwritable_destination_is_a_destination_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")

    with pytest.raises(DestinationError, match="Cannot create folder"):
        LocalDirectory(path=str(blocker / "sub")).deliver(io.BytesIO(b"x"), "x.csv")

    (tmp_path / "taken.csv").mkdir()  # the final name is a folder
    with pytest.raises(DestinationError):
        LocalDirectory(path=str(tmp_path)).deliver(io.BytesIO(b"x"), "taken.csv")
    assert files_in(tmp_path) == ["a-file"]


def test_without_overwrite_a_name_taken_after_the_check_is_still_refused(tmp_path, monkeypatch):
    """The final publish is a hard link, which fails on a taken name: a file written between check and publish stays."""
    folder = LocalDirectory(path=str(tmp_path))
    (tmp_path / "x.csv").write_bytes(b"theirs")
    monkeypatch.setattr(LocalDirectory, "exists", lambda self, key: False)  # the check saw a free name

    with pytest.raises(DestinationError, match="already holds a file named 'x.csv'"):
        folder.deliver(io.BytesIO(b"ours"), "x.csv", overwrite=False)
    assert files_in(tmp_path) == ["x.csv"] and (tmp_path / "x.csv").read_bytes() == b"theirs"
    assert folder.deliver(io.BytesIO(b"ours"), "x.csv", overwrite=True).bytes == 4


def test_the_deliver_task_refuses_a_taken_name_unless_told_to_overwrite(tmp_path):
    from tasks.export.deliver import deliver

    file = tmp_path / "export.csv"
    file.write_bytes(b"new rows")
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "x.csv").write_bytes(b"old rows")
    folder = LocalDirectory(path=str(dest))

    with pytest.raises(DestinationError, match="already holds"):
        deliver.fn(file, folder, "x.csv")  # outside a flow run: no request, so no overwrite
    assert (dest / "x.csv").read_bytes() == b"old rows"
    deliver.fn(file, folder, "x.csv", overwrite=True)
    assert (dest / "x.csv").read_bytes() == b"new rows"


# --- retries -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "retried"),
    [
        (TransientDestinationError("timeout"), True),
        (ConnectionResetError("reset"), True),
        (TimeoutError("slow"), True),
        (DestinationError("refused"), False),
        (PermissionError("denied"), False),
        (ValueError("bug"), False),
    ],
)
def test_only_transient_failures_are_retried(error, retried):
    assert retry_transient(None, None, Failed(data=error)) is retried
