"""An SFTP server as an export destination and an import source (paramiko).

Security rules this block enforces, because they are the whole point of SFTP:

* the server's host key must match a key pinned in the block (a known_hosts
  line, or a ``SHA256:`` fingerprint). Unknown or changed keys are refused
  before any credential is sent; nothing is ever auto-added (the equivalent of
  paramiko's ``RejectPolicy``, applied explicitly after key exchange);
* passwords and private keys are ``SecretStr`` and unwrapped only at the call
  that authenticates;
* uploads go to a hidden ``.NAME.xxxx.partial`` sibling and are renamed onto
  the final name when complete (``posix-rename@openssh.com``, which replaces
  atomically), so a reader never sees half a file and a connection that dies
  mid-upload leaves nothing at the final name.
"""

from __future__ import annotations

import base64
import hashlib
import io
import posixpath
import re
import socket
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import BinaryIO, ClassVar
from urllib.parse import quote

import paramiko
from pydantic import Field, SecretStr, field_validator, model_validator

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

# Large SSH windows and packets: with paramiko's defaults (2 MiB / 32 KiB) a
# loopback upload is window-bound; these reach the speed of OpenSSH's `sftp put`.
WINDOW = 8 * 1024 * 1024
MAX_PACKET = 256 * 1024
REQUEST = paramiko.SFTPFile.MAX_REQUEST_SIZE  # 32 KiB: every SFTP server must accept writes this large
LARGE_REQUEST = 256 * 1024 - 1024  # OpenSSH's max-write-length; 8x fewer round trips and packets per byte
# AES-GCM first: one pass of authenticated encryption instead of AES-CTR plus a separate HMAC.
CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "aes128-ctr", "aes192-ctr", "aes256-ctr")
KEY_TYPES = (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey)


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's ``SHA256:...`` fingerprint of a public key."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")


def parse_pins(text: str) -> list[tuple[list[str] | None, str, bytes | str]]:
    """Pinned host keys: ``(host patterns or None, key type or 'fingerprint', key bytes or fingerprint)``.

    Accepts known_hosts lines (``[host]:port ssh-ed25519 AAAA...``, with or without
    the host field, hashed hosts allowed) and ``SHA256:`` fingerprints, one per line.
    Raises ValueError naming the bad line.
    """
    pins: list[tuple[list[str] | None, str, bytes | str]] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        tokens = line.split()
        if tokens[0].startswith("SHA256:") and len(tokens) == 1:
            if len(tokens[0]) < 40:
                raise ValueError(f"line {number}: {tokens[0]!r} is too short for a SHA256 fingerprint")
            pins.append((None, "fingerprint", tokens[0].rstrip("=")))
            continue
        if tokens[0].startswith("@"):
            raise ValueError(f"line {number}: known_hosts markers ({tokens[0]}) are not supported; pin the host key itself")
        hosts: list[str] | None = None
        if not _looks_like_key_type(tokens[0]):
            hosts, tokens = tokens[0].split(","), tokens[1:]
        if len(tokens) < 2 or not _looks_like_key_type(tokens[0]):
            raise ValueError(f"line {number}: expected 'HOST KEYTYPE BASE64' (a known_hosts line) or 'SHA256:...'")
        try:
            blob = base64.b64decode(tokens[1], validate=True)
        except ValueError:
            raise ValueError(f"line {number}: the key is not valid base64") from None
        pins.append((hosts, tokens[0], blob))
    if not pins:
        raise ValueError("no host key given")
    return pins


def _looks_like_key_type(token: str) -> bool:
    return token.startswith(("ssh-", "ecdsa-sha2-", "sk-ssh-", "sk-ecdsa-", "rsa-sha2-"))


def _host_matches(patterns: list[str], host: str, port: int) -> bool:
    names = {host.lower(), f"[{host.lower()}]:{port}"}
    matched = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        pattern = pattern.lstrip("!").lower()
        if pattern.startswith("|1|"):
            hit = any(paramiko.HostKeys.hash_host(name, pattern) == pattern for name in names)
        else:
            regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
            hit = any(re.fullmatch(regex, name) for name in names)
        if hit and negated:
            return False
        matched |= hit
    return matched


class SftpServer(Destination):
    """A folder on an SFTP server: exports are uploaded there, imports read from there."""

    _block_type_name = "Ferry SFTP Server"
    _block_type_slug = "sftp"
    _description = "A folder on an SFTP server, reached with a password or private key and a pinned host key."
    uri_schemes: ClassVar[tuple[str, ...]] = ("sftp",)

    host: str = Field(title="Host", description="Host name or IP address of the SFTP server.")
    port: int = Field(default=22, ge=1, le=65535, title="Port", description="TCP port of the SSH service.")
    username: str = Field(title="Username", description="Login name on the server.")
    password: SecretStr | None = Field(default=None, title="Password", description="Password, when the server uses password login.")
    private_key: SecretStr | None = Field(
        default=None,
        title="Private key",
        description="Private key text (OpenSSH or PEM format: Ed25519, ECDSA or RSA) for key login; preferred over the password.",
    )
    private_key_passphrase: SecretStr | None = Field(
        default=None, title="Private key passphrase", description="Passphrase of an encrypted private key."
    )
    host_key: str = Field(
        title="Pinned host key",
        description="The server's host key, as a known_hosts line (`ssh-keyscan -p PORT HOST` prints it) or a `SHA256:` "
        "fingerprint; several lines allowed during key rotation. Connections to a server with any other key are refused.",
    )
    folder: str = Field(
        default="", title="Folder", description="Folder on the server for the files; relative to the login folder unless absolute."
    )
    timeout: float = Field(default=30.0, gt=0, title="Timeout (s)", description="Seconds to wait for connecting and for each server reply.")

    @field_validator("host_key")
    @classmethod
    def _valid_pins(cls, value: str) -> str:
        try:
            parse_pins(value)
        except ValueError as exc:
            raise ValueError(f"host_key is not usable: {exc}.") from None
        return value

    @model_validator(mode="after")
    def _has_credentials(self) -> SftpServer:
        if self.password is None and self.private_key is None:
            raise ValueError("Give a password or a private_key for the SFTP login.")
        return self

    # --- descriptions -------------------------------------------------------

    def describe(self) -> str:
        return f"{self.block_label()} (sftp://{self.username}@{self.host}:{self.port}/{self.folder.lstrip('/')})"

    def matches_uri(self, netloc: str) -> bool:
        user, _, hostport = netloc.rpartition("@")
        host, _, port = hostport.partition(":")
        if host.startswith("["):
            host, _, port = hostport[1:].partition("]")
            port = port.lstrip(":")
        return host.lower() == self.host.lower() and (not port or port == str(self.port)) and (not user or user == self.username)

    # --- connection ---------------------------------------------------------

    def _private_key(self) -> paramiko.PKey:
        text = self.private_key.get_secret_value()
        passphrase = self.private_key_passphrase.get_secret_value() if self.private_key_passphrase else None
        for key_class in KEY_TYPES:
            try:
                return key_class.from_private_key(io.StringIO(text), password=passphrase)
            except paramiko.PasswordRequiredException:
                raise DestinationError(
                    f"{self.block_label()}: the private key is encrypted.", "Set private_key_passphrase in the block."
                ) from None
            except (paramiko.SSHException, ValueError, TypeError):
                continue
        raise DestinationError(
            f"{self.block_label()}: the private key cannot be read (or its passphrase is wrong).",
            "Check private_key (OpenSSH or PEM text of an Ed25519, ECDSA or RSA key) and private_key_passphrase.",
        )

    def _verify_host_key(self, key: paramiko.PKey) -> None:
        """Refuse any server whose key is not pinned (unknown hosts are never trusted)."""
        presented = fingerprint(key)
        for hosts, kind, value in parse_pins(self.host_key):
            if hosts is not None and not _host_matches(hosts, self.host, self.port):
                continue
            if kind == "fingerprint" and value == presented:
                return
            if kind == key.get_name() and value == key.asbytes():
                return
        raise DestinationError(
            f"{self.block_label()}: the server at {self.host}:{self.port} presented host key {presented} ({key.get_name()}), "
            "which is not the key pinned in the block. Refusing to connect; no credentials were sent.",
            "If the server's key changed legitimately, update host_key (ssh-keyscan prints the line); "
            "otherwise the connection may be intercepted.",
        )

    @contextmanager
    def _session(self, action: str) -> Iterator[paramiko.SFTPClient]:
        """An authenticated SFTP session; every failure inside becomes a Ferry error naming the block."""
        transport: paramiko.Transport | None = None
        try:
            transport = self._connect()
            if self.private_key is not None:
                transport.auth_publickey(self.username, self._private_key())
            else:
                try:
                    transport.auth_password(self.username, self.password.get_secret_value(), fallback=False)
                except paramiko.BadAuthenticationType as exc:
                    if "keyboard-interactive" not in exc.allowed_types:
                        raise
                    # Passwords through keyboard-interactive only. Some servers (asyncssh) drop a session
                    # that switches methods after a refusal, so ask on a fresh connection.
                    transport.close()
                    transport = self._connect()
                    password = self.password.get_secret_value()
                    transport.auth_interactive(self.username, lambda _title, _instructions, prompts: [password for _ in prompts])
            sftp = paramiko.SFTPClient.from_transport(transport, window_size=WINDOW, max_packet_size=MAX_PACKET)
            sftp.get_channel().settimeout(self.timeout)
            yield sftp
        except DestinationError:
            raise
        except Exception as exc:
            if from_source(exc):
                raise  # the source stream broke, not the server: let its error through unchanged
            lost = transport is not None and not transport.is_active()  # the session died under us
            raise self._translate(exc, action, lost) from exc
        finally:
            if transport is not None:
                transport.close()

    def _connect(self) -> paramiko.Transport:
        """A connected transport whose host key matched the pin (no credentials sent yet)."""
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        transport = paramiko.Transport(sock, default_window_size=WINDOW, default_max_packet_size=MAX_PACKET)
        try:
            transport.banner_timeout = transport.auth_timeout = self.timeout
            options = transport.get_security_options()
            options.ciphers = tuple(c for c in CIPHERS if c in options.ciphers) + tuple(c for c in options.ciphers if c not in CIPHERS)
            transport.start_client(timeout=self.timeout)
            self._verify_host_key(transport.get_remote_server_key())
        except BaseException:
            transport.close()
            raise
        return transport

    def _translate(self, exc: Exception, action: str, lost: bool = False) -> DestinationError:
        where = f"{self.block_label()} ({self.host}:{self.port})"
        if isinstance(exc, paramiko.AuthenticationException):
            return DestinationError(
                f"{where}: the server refused the login of {self.username!r} while {action}.",
                "Check username and the password or private_key in the block.",
            )
        if isinstance(exc, PermissionError):
            return DestinationError(
                f"{where}: permission denied while {action}: {exc.strerror or exc}.",
                f"Check that {self.username!r} may write and rename files in folder {self.folder or '(login folder)'!r}.",
            )
        if isinstance(exc, FileNotFoundError):
            return DestinationError(f"{where}: not found while {action}: {exc.strerror or exc}.", "Check the folder and file name.")
        if isinstance(exc, socket.gaierror) and not is_transient_network_error(exc):
            return DestinationError(f"{where}: cannot resolve host {self.host!r}.", "Check host in the block.")
        if lost or is_transient_network_error(exc) or isinstance(exc, paramiko.SSHException):
            return TransientDestinationError(
                f"{where}: connection failed while {action}: {type(exc).__name__}: {exc}.",
                "The server or network may be down.",
            )
        return DestinationError(
            f"{where}: {action} failed: {type(exc).__name__}: {exc}.", "Check the server's log and the block's settings."
        )

    # --- paths --------------------------------------------------------------

    def _base(self, sftp: paramiko.SFTPClient) -> str:
        if self.folder.startswith("/"):
            return posixpath.normpath(self.folder)
        return remote_join(sftp.normalize("."), clean_key(self.folder)) if self.folder.strip("/") else sftp.normalize(".")

    @staticmethod
    def _makedirs(sftp: paramiko.SFTPClient, folder: str) -> None:
        missing: list[str] = []
        current = folder
        while current not in ("/", "", "."):
            try:
                sftp.stat(current)
                break
            except FileNotFoundError:
                missing.append(current)
                current = posixpath.dirname(current)
        for path in reversed(missing):
            try:
                sftp.mkdir(path)
            except OSError as refused:
                try:
                    sftp.stat(path)  # created meanwhile by someone else: fine
                except OSError:
                    raise refused from None

    @staticmethod
    def _write_size(sftp: paramiko.SFTPClient) -> int:
        """Largest write request the server takes: its ``limits@openssh.com`` answer, else the 32 KiB every server takes."""
        try:
            kind, message = sftp._request(paramiko.sftp.CMD_EXTENDED, "limits@openssh.com")
        except (OSError, paramiko.SSHException):
            return REQUEST
        if kind != paramiko.sftp.CMD_EXTENDED_REPLY:
            return REQUEST
        message.get_int64()  # max packet length
        message.get_int64()  # max read length
        max_write = message.get_int64()
        return max(REQUEST, min(max_write or LARGE_REQUEST, LARGE_REQUEST))

    @staticmethod
    def _publish(sftp: paramiko.SFTPClient, partial: str, final: str) -> None:
        """Atomically replace ``final`` with ``partial``."""
        try:
            sftp.posix_rename(partial, final)
            return
        except OSError as exc:
            if isinstance(exc, (PermissionError, FileNotFoundError)):
                raise
        # Servers without posix-rename: plain SFTP rename refuses to overwrite, so remove first
        # (readers may briefly see no file, but never a partial one).
        try:
            sftp.remove(final)
        except FileNotFoundError:
            pass
        sftp.rename(partial, final)

    # --- the contract -------------------------------------------------------

    def deliver(self, source: BinaryIO, key: str, overwrite: bool = True) -> Delivery:
        relative = clean_key(key)
        if not overwrite:
            self.refuse_existing(key)  # before a byte is sent
        reader = SourceReader(source, background_hash=True)
        try:
            return self._upload(reader, relative)
        finally:
            reader.close()

    def _upload(self, reader: SourceReader, relative: PurePosixPath) -> Delivery:
        with self._session(f"uploading {relative}") as sftp:
            final = remote_join(self._base(sftp), relative)
            self._makedirs(sftp, posixpath.dirname(final))
            partial = partial_name(final)
            request = self._write_size(sftp)
            try:
                with sftp.open(partial, "wb") as remote:
                    remote.set_pipelined(True)
                    remote.MAX_REQUEST_SIZE = request
                    while chunk := reader.read(request * 4):  # whole requests per read
                        view = memoryview(chunk)
                        for start in range(0, len(chunk), request):  # one SFTP write request each, no re-slicing of big buffers
                            remote.write(bytes(view[start : start + request]))
                size = sftp.stat(partial).st_size
                if size != reader.bytes:
                    raise TransientDestinationError(
                        f"{self.block_label()}: the server stored {size} of {reader.bytes} bytes of {relative}.",
                        "The upload was cut short.",
                    )
                self._publish(sftp, partial, final)
            except BaseException:
                _quietly_remove(sftp, partial)
                raise
        return Delivery(location=self._location(final), bytes=reader.bytes, sha256=reader.sha256.hexdigest())

    def _location(self, path: str) -> str:
        return f"sftp://{self.host}:{self.port}{quote(path if path.startswith('/') else '/' + path)}"

    def download(self, key: str, target: Path) -> Path:
        relative = clean_key(key)
        with self._session(f"downloading {relative}") as sftp:
            remote = remote_join(self._base(sftp), relative)
            with local_partial(target) as out:
                sftp.getfo(remote, out, prefetch=True)
        return target

    def exists(self, key: str) -> bool:
        relative = clean_key(key)
        with self._session(f"checking {relative}") as sftp:
            try:
                return stat.S_ISREG(sftp.stat(remote_join(self._base(sftp), relative)).st_mode or 0)
            except FileNotFoundError:
                return False

    def delete_file(self, key: str) -> None:
        relative = clean_key(key)
        with self._session(f"deleting {relative}") as sftp:
            try:
                sftp.remove(remote_join(self._base(sftp), relative))
            except FileNotFoundError:
                pass

    def list_files(self, prefix: str = "") -> Iterator[StoredFile]:
        with self._session("listing files") as sftp:
            base = self._base(sftp)
            pending = [""]
            while pending:
                folder = pending.pop()
                try:
                    entries = sftp.listdir_attr(remote_join(base, clean_key(folder)) if folder else base)
                except FileNotFoundError:
                    continue  # nothing delivered yet
                for entry in sorted(entries, key=lambda e: e.filename):
                    key = f"{folder}/{entry.filename}" if folder else entry.filename
                    if stat.S_ISDIR(entry.st_mode or 0):
                        pending.append(key)
                    elif stat.S_ISREG(entry.st_mode or 0) and key.startswith(prefix):
                        yield StoredFile(key=key, bytes=entry.st_size or 0, modified=datetime.fromtimestamp(entry.st_mtime or 0, UTC))

    def leftovers(self, older_than: datetime) -> list[Leftover]:
        """Ferry's own ``.NAME.<hex>.partial`` files in the folder (a killed upload's), last written before ``older_than``."""
        return stale_partials(self, older_than, lambda key: remote_location("sftp", self.username, self.host, self.port, self.folder, key))

    def remove_leftover(self, leftover: Leftover) -> None:
        remove_partial(self, leftover)

    def key_for(self, location: str) -> str:
        try:
            path = location_path(location, ("sftp",), self.host, self.port)
        except ValueError:
            raise DestinationError(f"{location!r} is not on {self.describe()}.", "Was the file delivered through another block?") from None
        with self._session("mapping a location") as sftp:
            base = self._base(sftp).rstrip("/") + "/"
        if not path.startswith(base):
            raise DestinationError(
                f"{location!r} is outside the folder of {self.describe()}.", "Was the file delivered through another block?"
            )
        return path[len(base) :]


def _quietly_remove(sftp: paramiko.SFTPClient, path: str) -> None:
    """Best-effort cleanup of a partial upload (the session may already be dead)."""
    try:
        sftp.remove(path)
    except Exception:  # noqa: BLE001 - the original error matters more
        pass


def known_hosts_lines(text: str, host: str, port: int) -> list[str]:
    """The lines of a known_hosts file that pin ``host``:``port`` (lines without a host field, or unreadable ones, never match)."""
    lines = []
    for raw in text.splitlines():
        try:
            [(hosts, _kind, _key)] = parse_pins(raw)
        except ValueError:
            continue
        if hosts is not None and _host_matches(hosts, host, port):
            lines.append(raw.strip())
    return lines
