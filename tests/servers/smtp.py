"""A real SMTP server for tests: aiosmtpd, STARTTLS with a self-signed certificate and AUTH LOGIN/PLAIN.

aiosmtpd's Controller runs the server in a thread of the test process and is
ready as soon as it returns; received messages are kept in memory. A second,
plain server (no TLS, no AUTH) stands in for relays inside a trusted network.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path

import pytest

from .ftp import make_self_signed


@dataclass
class Mailbox:
    """What the server received: one parsed message per DATA, with its envelope."""

    messages: list[tuple[str, list[str], Message]] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd handler hook
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), message_from_bytes(envelope.content)))
        return "250 OK"


@dataclass
class SmtpServerInfo:
    host: str
    port: int
    username: str
    password: str
    ca_file: str | None
    mailbox: Mailbox
    controller: object


def start_smtp(workdir: Path, tls: bool, username: str = "ferry", password: str = "s3cret-Smtp-pw") -> SmtpServerInfo:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    mailbox = Mailbox()
    kwargs: dict = {}
    ca_file = None
    if tls:
        workdir.mkdir(parents=True, exist_ok=True)
        cert, key = make_self_signed(workdir)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == username and auth_data.password.decode() == password
            return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself

        kwargs = dict(tls_context=context, require_starttls=True, authenticator=authenticator, auth_required=True, auth_require_tls=True)
        ca_file = str(cert)
    failure = ""
    for _attempt in range(3):  # aiosmtpd's readiness probe needs a real port number, so pick a free one first
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        controller = Controller(mailbox, hostname="127.0.0.1", port=port, ready_timeout=10, **kwargs)
        try:
            controller.start()
        except Exception as exc:  # noqa: BLE001 - port taken meanwhile: try another; else a test error with the reason
            failure = f"{type(exc).__name__}: {exc}"
            continue
        return SmtpServerInfo("127.0.0.1", port, username, password, ca_file, mailbox, controller)
    pytest.fail(f"aiosmtpd did not start: {failure}", pytrace=False)


@pytest.fixture(scope="session")
def smtp_server(tmp_path_factory) -> SmtpServerInfo:
    """STARTTLS required, AUTH required (over TLS only)."""
    server = start_smtp(tmp_path_factory.mktemp("smtp"), tls=True)
    yield server
    server.controller.stop()


@pytest.fixture(scope="session")
def plain_smtp_server(tmp_path_factory) -> SmtpServerInfo:
    server = start_smtp(tmp_path_factory.mktemp("smtp-plain"), tls=False)
    yield server
    server.controller.stop()


@pytest.fixture
def mailbox(smtp_server) -> Mailbox:
    smtp_server.mailbox.messages.clear()
    return smtp_server.mailbox
