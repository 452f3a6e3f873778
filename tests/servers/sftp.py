"""A real SFTP server for tests: asyncssh in a child process, chrooted to a folder.

Password and public-key logins; the host key is generated per session so tests
must pin it (known_hosts line or SHA256 fingerprint). Run as a script it serves
until terminated; imported, :func:`start_sftp` starts it and returns how to reach it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).resolve()


@dataclass
class SftpServerInfo:
    host: str
    port: int
    root: Path
    username: str
    password: str
    client_key_pem: str  # private key (OpenSSH PEM) authorised for `username`
    host_key_line: str  # "[127.0.0.1]:PORT ssh-ed25519 AAAA..."
    host_key_fingerprint: str  # "SHA256:..."
    other_host_key_line: str  # a valid key line that is NOT this server's (for refusal tests)
    process: object

    def log_text(self) -> str:
        return self.process.log_text()


def start_sftp(workdir: Path, username: str = "ferry", password: str = "s3cret-Sftp-pw") -> SftpServerInfo:
    import asyncssh

    from ._process import start_server

    workdir.mkdir(parents=True, exist_ok=True)
    root = workdir / "root"
    root.mkdir(exist_ok=True)
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    host_key.write_private_key(str(workdir / "host_key"))
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    (workdir / "authorized_keys").write_bytes(client_key.export_public_key())
    other = asyncssh.generate_private_key("ssh-ed25519")
    (workdir / "password").write_text(password)
    proc = start_server(
        "sftp",
        HERE,
        [
            "--root",
            str(root),
            "--host-key",
            str(workdir / "host_key"),
            "--authorized-keys",
            str(workdir / "authorized_keys"),
            "--username",
            username,
            "--password-file",
            str(workdir / "password"),
        ],
        workdir,
    )
    port = proc.info["port"]
    public = host_key.export_public_key().decode().strip()
    other_public = other.export_public_key().decode().strip()
    return SftpServerInfo(
        host="127.0.0.1",
        port=port,
        root=root,
        username=username,
        password=password,
        client_key_pem=client_key.export_private_key("openssh").decode(),
        host_key_line=f"[127.0.0.1]:{port} {public}",
        host_key_fingerprint=host_key.get_fingerprint("sha256"),
        other_host_key_line=f"[127.0.0.1]:{port} {other_public}",
        process=proc,
    )


def sftp_block(server: SftpServerInfo, folder: str = "", key_login: bool = False, **overrides):
    """An SftpServer block for ``server``: password login (or key login), host key pinned."""
    from blocks.sftp import SftpServer

    credentials = {"private_key": server.client_key_pem} if key_login else {"password": server.password}
    values = dict(
        host=server.host,
        port=server.port,
        username=server.username,
        host_key=server.host_key_line,
        folder=folder,
        timeout=10,
        **credentials,
    )
    return SftpServer(**{**values, **overrides})


@dataclass
class FolderHandle:
    """A destination plus the folder on the server's disk where its files land (conformance suite)."""

    destination: object
    root: Path

    def read(self, key: str) -> bytes:
        return (self.root / key).read_bytes()

    def keys(self) -> list[str]:
        if not self.root.exists():
            return []
        return sorted(p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file())


@pytest.fixture(scope="session")
def sftp_server(tmp_path_factory) -> SftpServerInfo:
    server = start_sftp(tmp_path_factory.mktemp("sftp-server"))
    yield server
    server.process.stop()


@pytest.fixture
def sftp_handle(sftp_server) -> FolderHandle:
    folder = f"case-{uuid.uuid4().hex[:8]}"
    return FolderHandle(sftp_block(sftp_server, folder=folder), sftp_server.root / folder)


# --- the server (child process) ------------------------------------------------------


def _main() -> None:
    import asyncssh

    parser = argparse.ArgumentParser()
    parser.add_argument("--root", required=True)
    parser.add_argument("--host-key", required=True)
    parser.add_argument("--authorized-keys", required=True)
    parser.add_argument("--username", required=True)
    parser.add_argument("--password-file", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ready-file", required=True)
    args = parser.parse_args()
    password = Path(args.password_file).read_text()
    root = args.root.encode()

    class Server(asyncssh.SSHServer):
        """Password and key logins; the user NAME-kbd takes its password only through keyboard-interactive."""

        _user = ""

        def begin_auth(self, username: str) -> bool:
            self._user = username
            return True

        def password_auth_supported(self) -> bool:
            return not self._user.endswith("-kbd")

        def validate_password(self, username: str, given: str) -> bool:
            return username in (args.username, args.username + "-readonly") and given == password

        def kbdint_auth_supported(self) -> bool:
            return self._user.endswith("-kbd")

        def get_kbdint_challenge(self, username: str, lang: str, submethods: str):
            return "", "", "", [("Password: ", False)]

        def validate_kbdint_response(self, username: str, responses) -> bool:
            return username == args.username + "-kbd" and list(responses) == [password]

        def auth_completed(self) -> None:
            print("auth completed", flush=True)

        def public_key_auth_supported(self) -> bool:
            return True

    class ReadOnlySFTPServer(asyncssh.SFTPServer):
        """The read-only user: the server refuses every change with SFTP's permission-denied status."""

        def _deny(self, *_args, **_kwargs):
            raise asyncssh.SFTPPermissionDenied("read-only user")

        def open(self, path, pflags, attrs):
            if pflags & (asyncssh.FXF_WRITE | asyncssh.FXF_CREAT | asyncssh.FXF_TRUNC | asyncssh.FXF_APPEND):
                self._deny()
            return super().open(path, pflags, attrs)

        mkdir = rename = posix_rename = remove = rmdir = setstat = _deny

    def sftp_factory(chan):
        user = chan.get_extra_info("username")
        if user == args.username + "-readonly":
            return ReadOnlySFTPServer(chan, chroot=root)
        return asyncssh.SFTPServer(chan, chroot=root)

    import logging

    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(asctime)s %(message)s")
    asyncssh.set_log_level(logging.INFO)

    async def serve() -> None:
        sys.path.insert(0, str(HERE.parent))
        from _process import write_ready

        server = await asyncssh.listen(
            "127.0.0.1",
            args.port,
            server_factory=Server,
            server_host_keys=[args.host_key],
            authorized_client_keys=args.authorized_keys,
            sftp_factory=sftp_factory,
            allow_scp=False,
            # Larger windows/packets so the server is not the bottleneck of throughput tests.
            window=8 * 1024 * 1024,
            max_pktsize=256 * 1024,
        )
        port = server.sockets[0].getsockname()[1]
        print(f"sftp server on 127.0.0.1:{port}, root {args.root}", flush=True)
        write_ready(args.ready_file, {"port": port})
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    _main()
