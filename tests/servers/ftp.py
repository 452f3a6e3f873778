"""A real FTP / FTPS server for tests: pyftpdlib in a child process.

FTPS uses a self-signed certificate made per session (SAN 127.0.0.1 and
localhost); clients trust it through the block's ``ca_file``. With ``--tls`` the
server requires TLS on both control and data connections.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).resolve()


@dataclass
class FtpServerInfo:
    host: str
    port: int
    root: Path
    username: str
    password: str
    tls: bool
    ca_file: str | None  # the self-signed certificate, when tls
    process: object

    def log_text(self) -> str:
        return self.process.log_text()


def make_self_signed(workdir: Path, common_name: str = "127.0.0.1") -> tuple[Path, Path]:
    """A self-signed certificate (and its key) valid for 127.0.0.1 and localhost."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = workdir / f"{common_name}-cert.pem", workdir / f"{common_name}-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return cert_path, key_path


def start_ftp(workdir: Path, tls: bool, username: str = "ferry", password: str = "s3cret-Ftp-pw") -> FtpServerInfo:
    from ._process import start_server

    workdir.mkdir(parents=True, exist_ok=True)
    root = workdir / "root"
    root.mkdir(exist_ok=True)
    (workdir / "password").write_text(password)
    args = ["--root", str(root), "--username", username, "--password-file", str(workdir / "password")]
    ca_file = None
    if tls:
        cert, key = make_self_signed(workdir)
        args += ["--cert", str(cert), "--key", str(key)]
        ca_file = str(cert)
    name = "ftps" if tls else "ftp"
    proc = start_server(name, HERE, args, workdir)
    return FtpServerInfo("127.0.0.1", proc.info["port"], root, username, password, tls, ca_file, proc)


def ftp_block(server: FtpServerInfo, folder: str = "", **overrides):
    """An FtpServer block for ``server`` (FTPS trusting the server's self-signed certificate)."""
    from blocks.ftp import FtpServer

    values = dict(
        host=server.host,
        port=server.port,
        username=server.username,
        password=server.password,
        tls=server.tls,
        ca_file=server.ca_file,
        folder=folder,
        timeout=10,
    )
    return FtpServer(**{**values, **overrides})


@pytest.fixture(scope="session")
def ftp_server(tmp_path_factory) -> FtpServerInfo:
    server = start_ftp(tmp_path_factory.mktemp("ftp-server"), tls=False)
    yield server
    server.process.stop()


@pytest.fixture(scope="session")
def ftps_server(tmp_path_factory) -> FtpServerInfo:
    server = start_ftp(tmp_path_factory.mktemp("ftps-server"), tls=True)
    yield server
    server.process.stop()


@pytest.fixture
def ftp_handle(ftp_server):
    from .sftp import FolderHandle

    folder = f"case-{uuid.uuid4().hex[:8]}"
    return FolderHandle(ftp_block(ftp_server, folder=folder), ftp_server.root / folder)


@pytest.fixture
def ftps_handle(ftps_server):
    from .sftp import FolderHandle

    folder = f"case-{uuid.uuid4().hex[:8]}"
    return FolderHandle(ftp_block(ftps_server, folder=folder), ftps_server.root / folder)


# --- the server (child process) ------------------------------------------------------


def _main() -> None:
    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.handlers import FTPHandler, TLS_FTPHandler
    from pyftpdlib.servers import FTPServer

    parser = argparse.ArgumentParser()
    parser.add_argument("--root", required=True)
    parser.add_argument("--username", required=True)
    parser.add_argument("--password-file", required=True)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--ready-file", required=True)
    args = parser.parse_args()

    authorizer = DummyAuthorizer()
    authorizer.add_user(args.username, Path(args.password_file).read_text(), args.root, perm="elradfmwMT")
    authorizer.add_user(args.username + "-readonly", Path(args.password_file).read_text(), args.root, perm="elr")
    if args.cert:
        handler = TLS_FTPHandler
        handler.certfile, handler.keyfile = args.cert, args.key
        handler.tls_control_required = True
        handler.tls_data_required = True
    else:
        handler = FTPHandler
    handler.authorizer = authorizer
    handler.auth_failed_timeout = 0.1  # pyftpdlib waits 3 s after a failed login by default
    handler.banner = "ferry test ftp"
    server = FTPServer(("127.0.0.1", 0), handler)
    port = server.socket.getsockname()[1]
    print(f"{'ftps' if args.cert else 'ftp'} server on 127.0.0.1:{port}, root {args.root}", flush=True)
    sys.path.insert(0, str(HERE.parent))
    from _process import write_ready

    write_ready(args.ready_file, {"port": port})
    server.serve_forever()


if __name__ == "__main__":
    _main()
