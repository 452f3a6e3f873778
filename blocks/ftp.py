"""An FTP or FTPS server as an export destination and an import source (ftplib).

FTPS is explicit TLS (``AUTH TLS`` on the control port, ``PROT P`` for data)
and always verifies the server certificate and host name: against the system's
CAs, or against ``ca_file`` for a private CA or a self-signed certificate.
Plain FTP sends the password in clear text; use it only inside a trusted network.

Uploads go to a hidden ``.NAME.xxxx.partial`` file that is renamed onto the
final name (``RNFR``/``RNTO``) once the server confirmed the whole transfer, so
a reader never sees half a file.
"""

from __future__ import annotations

import ftplib
import posixpath
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, ClassVar
from urllib.parse import quote

from pydantic import Field, SecretStr, model_validator

from blocks._remote import (
    SourceReader,
    from_source,
    is_transient_network_error,
    local_partial,
    location_path,
    partial_name,
    remote_join,
    remote_location,
)
from blocks.destination import Delivery, Destination, Leftover, StoredFile, clean_key, remove_partial, stale_partials
from ferry.errors import DestinationError, TransientDestinationError

CHUNK = 1 << 20


class FtpServer(Destination):
    """A folder on an FTP or FTPS server: exports are uploaded there, imports read from there."""

    _block_type_name = "Ferry FTP Server"
    _block_type_slug = "ftp"
    _description = "A folder on an FTP server, with explicit TLS (FTPS) and certificate verification when `tls` is on."
    uri_schemes: ClassVar[tuple[str, ...]] = ("ftp", "ftps")

    host: str = Field(title="Host", description="Host name or IP address of the FTP server.")
    port: int = Field(default=21, ge=1, le=65535, title="Port", description="TCP port of the control connection.")
    username: str = Field(default="anonymous", title="Username", description="Login name.")
    password: SecretStr = Field(default=SecretStr(""), title="Password", description="Password of the login.")
    tls: bool = Field(
        default=True, title="FTPS (explicit TLS)", description="Encrypt the control and data connections with AUTH TLS and PROT P."
    )
    ca_file: str | None = Field(
        default=None,
        title="CA file",
        description="PEM file of the CA (or self-signed certificate) that signed the server's certificate; default: the system's CAs.",
    )
    folder: str = Field(
        default="", title="Folder", description="Folder on the server for the files; relative to the login folder unless absolute."
    )
    passive: bool = Field(
        default=True, title="Passive mode", description="Use passive data connections (needed behind most firewalls and NAT)."
    )
    timeout: float = Field(default=30.0, gt=0, title="Timeout (s)", description="Seconds to wait for connecting and for each server reply.")

    @model_validator(mode="after")
    def _ca_file_needs_tls(self) -> FtpServer:
        if self.ca_file and not self.tls:
            raise ValueError("ca_file is set but tls is off; turn tls on (FTPS) or drop ca_file.")
        return self

    # --- descriptions -------------------------------------------------------

    @property
    def scheme(self) -> str:
        return "ftps" if self.tls else "ftp"

    def describe(self) -> str:
        return f"{self.block_label()} ({self.scheme}://{self.username}@{self.host}:{self.port}/{self.folder.lstrip('/')})"

    def matches_uri(self, netloc: str) -> bool:
        user, _, hostport = netloc.rpartition("@")
        host, _, port = hostport.partition(":")
        return host.lower() == self.host.lower() and (not port or port == str(self.port)) and (not user or user == self.username)

    # --- connection ---------------------------------------------------------

    def _ssl_context(self) -> ssl.SSLContext:
        try:
            return ssl.create_default_context(cafile=self.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise DestinationError(
                f"{self.block_label()}: cannot read ca_file {self.ca_file!r}: {exc}.",
                "Give the path of a PEM certificate file readable by the flow's process.",
            ) from None

    @contextmanager
    def _session(self, action: str) -> Iterator[ftplib.FTP]:
        """A logged-in session; every failure inside becomes a Ferry error naming the block."""
        ftp: ftplib.FTP | None = None
        try:
            if self.tls:
                ftp = ftplib.FTP_TLS(context=self._ssl_context(), timeout=self.timeout)
            else:
                ftp = ftplib.FTP(timeout=self.timeout)
            ftp.connect(self.host, self.port, timeout=self.timeout)
            ftp.login(self.username, self.password.get_secret_value())  # FTP_TLS: AUTH TLS first
            if isinstance(ftp, ftplib.FTP_TLS):
                ftp.prot_p()
            ftp.set_pasv(self.passive)
            ftp.voidcmd("TYPE I")
            yield ftp
        except DestinationError:
            raise
        except Exception as exc:
            if from_source(exc):
                raise  # the source stream broke, not the server: let its error through unchanged
            raise self._translate(exc, action) from None
        finally:
            if ftp is not None:
                try:
                    ftp.quit()
                except Exception:  # noqa: BLE001 - already failing or closed
                    ftp.close()

    def _translate(self, exc: Exception, action: str) -> DestinationError:
        where = f"{self.block_label()} ({self.host}:{self.port})"
        reply = str(exc).strip()
        if isinstance(exc, ssl.SSLCertVerificationError):
            return DestinationError(
                f"{where}: the server's TLS certificate is not trusted: {exc.verify_message}.",
                "Set ca_file to the CA or self-signed certificate that signed it, and check that host matches the certificate.",
            )
        if isinstance(exc, ftplib.error_perm):
            code = reply[:3]
            if code in ("530", "332"):
                return DestinationError(
                    f"{where}: the server refused the login of {self.username!r} ({reply}).", "Check username and password in the block."
                )
            if code in ("534", "533", "522"):
                return DestinationError(
                    f"{where}: the server refused TLS ({reply}).", "Check that the server supports FTPS (AUTH TLS), or turn tls off."
                )
            return DestinationError(
                f"{where}: the server refused {action}: {reply}.",
                f"Check that {self.username!r} may write, rename and read in folder {self.folder or '(login folder)'!r}.",
            )
        if isinstance(exc, ftplib.error_temp):
            return TransientDestinationError(f"{where}: temporary failure while {action}: {reply}.")
        if isinstance(exc, ValueError):  # ftplib refuses names with line breaks
            return DestinationError(f"{where}: {action}: {exc}.", "Check the file name.")
        if is_transient_network_error(exc) or isinstance(exc, (ftplib.error_reply, ftplib.error_proto)):
            return TransientDestinationError(
                f"{where}: connection failed while {action}: {type(exc).__name__}: {reply}.",
                "The server or network may be down.",
            )
        return DestinationError(
            f"{where}: {action} failed: {type(exc).__name__}: {reply}.", "Check the server's log and the block's settings."
        )

    # --- paths --------------------------------------------------------------

    def _base(self, ftp: ftplib.FTP) -> str:
        if self.folder.startswith("/"):
            return posixpath.normpath(self.folder)
        cwd = ftp.pwd()
        return remote_join(cwd, clean_key(self.folder)) if self.folder.strip("/") else cwd

    @staticmethod
    def _makedirs(ftp: ftplib.FTP, folder: str) -> None:
        current = ""
        for part in folder.split("/"):
            if not part:
                current = "/" if not current else current
                continue
            current = posixpath.join(current, part) if current else part
            try:
                ftp.mkd(current)
            except ftplib.error_perm as exc:
                if not str(exc).startswith("550") and not str(exc).startswith("521"):
                    raise  # 550/521: exists already (or truly refused: the upload will then say so)

    @staticmethod
    def _publish(ftp: ftplib.FTP, partial: str, final: str) -> None:
        try:
            ftp.rename(partial, final)
        except ftplib.error_perm:
            # Some servers refuse to rename onto an existing file: remove it, then rename
            # (readers may briefly see no file, but never a partial one).
            ftp.delete(final)
            ftp.rename(partial, final)

    @staticmethod
    def _store(ftp: ftplib.FTP, path: str, reader: SourceReader) -> None:
        """STOR ``path`` from ``reader`` (ftplib's storbinary, but it keeps the control channel in step when the source fails)."""
        conn = ftp.transfercmd(f"STOR {path}")
        try:
            with conn:
                while chunk := reader.read(CHUNK):
                    conn.sendall(chunk)
                if isinstance(conn, ssl.SSLSocket):
                    conn.unwrap()
        except BaseException:
            try:
                ftp.getresp()  # the server's verdict on the cut transfer, so the next command gets its own reply
            except Exception:  # noqa: BLE001 - the original error matters more
                pass
            raise
        ftp.voidresp()

    # --- the contract -------------------------------------------------------

    def deliver(self, source: BinaryIO, key: str, overwrite: bool = True) -> Delivery:
        relative = clean_key(key)
        if not overwrite:
            self.refuse_existing(key)  # before a byte is sent
        reader = SourceReader(source)
        with self._session(f"uploading {relative}") as ftp:
            final = remote_join(self._base(ftp), relative)
            self._makedirs(ftp, posixpath.dirname(final))
            partial = partial_name(final)
            try:
                self._store(ftp, partial, reader)
                size = ftp.size(partial)
                if size is not None and size != reader.bytes:
                    raise TransientDestinationError(
                        f"{self.block_label()}: the server stored {size} of {reader.bytes} bytes of {relative}.",
                        "The upload was cut short.",
                    )
                self._publish(ftp, partial, final)
            except BaseException:
                _quietly_delete(ftp, partial)
                raise
        return Delivery(location=self._location(final), bytes=reader.bytes, sha256=reader.sha256.hexdigest())

    def _location(self, path: str) -> str:
        return f"{self.scheme}://{self.host}:{self.port}{quote(path if path.startswith('/') else '/' + path)}"

    def download(self, key: str, target: Path) -> Path:
        relative = clean_key(key)
        with self._session(f"downloading {relative}") as ftp:
            remote = remote_join(self._base(ftp), relative)
            with local_partial(target) as out:
                ftp.retrbinary(f"RETR {remote}", out.write, blocksize=CHUNK)
        return target

    @staticmethod
    def _size(ftp: ftplib.FTP, path: str) -> int | None:
        """Size of a file, None when there is none (SIZE answers 550 for missing files and folders)."""
        try:
            return ftp.size(path)
        except ftplib.error_perm as exc:
            if str(exc).startswith("550"):
                return None
            raise

    def exists(self, key: str) -> bool:
        relative = clean_key(key)
        with self._session(f"checking {relative}") as ftp:
            return self._size(ftp, remote_join(self._base(ftp), relative)) is not None

    def delete_file(self, key: str) -> None:
        relative = clean_key(key)
        with self._session(f"deleting {relative}") as ftp:
            path = remote_join(self._base(ftp), relative)
            try:
                ftp.delete(path)
            except ftplib.error_perm:
                if self._size(ftp, path) is not None:
                    raise  # it is there and could not be deleted

    def list_files(self, prefix: str = "") -> Iterator[StoredFile]:
        """Walks the folder with MLSD (RFC 3659), which gives type, size and time in one listing."""
        with self._session("listing files") as ftp:
            base = self._base(ftp)
            pending = [""]
            while pending:
                folder = pending.pop()
                try:
                    entries = list(ftp.mlsd(remote_join(base, clean_key(folder)) if folder else base, facts=["type", "size", "modify"]))
                except ftplib.error_perm as exc:
                    if str(exc).startswith("550"):
                        continue  # nothing delivered yet
                    raise
                for name, facts in sorted(entries):
                    key = f"{folder}/{name}" if folder else name
                    kind = facts.get("type", "")
                    if kind == "dir":
                        pending.append(key)
                    elif kind == "file" and key.startswith(prefix):
                        modified = datetime.strptime(facts["modify"][:14], "%Y%m%d%H%M%S").replace(tzinfo=UTC)
                        yield StoredFile(key=key, bytes=int(facts.get("size", 0)), modified=modified)

    def leftovers(self, older_than: datetime) -> list[Leftover]:
        """Ferry's own ``.NAME.<hex>.partial`` files in the folder (a killed upload's), last written before ``older_than``."""
        return stale_partials(
            self, older_than, lambda key: remote_location(self.scheme, self.username, self.host, self.port, self.folder, key)
        )

    def remove_leftover(self, leftover: Leftover) -> None:
        remove_partial(self, leftover)

    def key_for(self, location: str) -> str:
        try:
            path = location_path(location, (self.scheme,), self.host, self.port)
        except ValueError:
            raise DestinationError(f"{location!r} is not on {self.describe()}.", "Was the file delivered through another block?") from None
        with self._session("mapping a location") as ftp:
            base = self._base(ftp).rstrip("/") + "/"
        if not path.startswith(base):
            raise DestinationError(
                f"{location!r} is outside the folder of {self.describe()}.", "Was the file delivered through another block?"
            )
        return path[len(base) :]


def _quietly_delete(ftp: ftplib.FTP, path: str) -> None:
    """Best-effort cleanup of a partial upload (the session may already be dead)."""
    try:
        ftp.delete(path)
    except Exception:  # noqa: BLE001 - the original error matters more
        pass
