"""The SMTP server that sends Ferry's notification e-mails: prefect-email's block, completed.

:class:`SmtpServer` *is* a prefect-email ``EmailServerCredentials`` (same fields,
usable wherever that block is, e.g. ``prefect_email.email_send_message``) with
what a notification sender also needs: a From address, a CA file for private
or self-signed certificates, a timeout, and a refusal to send a password over
an unencrypted connection. A plain ``email-server-credentials`` block works for
notifications too (From is then its username, as prefect-email does).
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from typing import Union

from prefect_email import EmailServerCredentials
from prefect_email.credentials import SMTPServer, SMTPType
from pydantic import Field

from blocks._remote import is_transient_network_error
from ferry.errors import NotificationError, TransientNotificationError


def block_label(block: EmailServerCredentials) -> str:
    name = getattr(block, "_block_document_name", None)
    slug = block.get_block_type_slug()
    return f"{slug} block {name!r}" if name else f"unsaved {slug} block"


def _host(block: EmailServerCredentials) -> str:
    return block.smtp_server.value if isinstance(block.smtp_server, SMTPServer) else str(block.smtp_server)


def _port(block: EmailServerCredentials) -> int:
    return block.smtp_port or SMTPType(block.smtp_type).value


class SmtpServer(EmailServerCredentials):
    """An SMTP server and sender address for notification e-mails."""

    _block_type_name = "Ferry SMTP Server"
    _block_type_slug = "smtp-server"
    _description = "An SMTP server (SSL, STARTTLS) and the From address Ferry's notification e-mails use."

    smtp_server: Union[SMTPServer, str] = Field(
        title="SMTP Server", description="Host name of the SMTP server, or a known provider key such as 'gmail'."
    )
    sender: str = Field(title="From", description="The From address of notification e-mails, e.g. `Ferry <ferry@example.com>`.")
    ca_file: str | None = Field(
        default=None,
        title="CA file",
        description="PEM file of the CA (or self-signed certificate) of the server; default: the system's CAs.",
    )
    timeout: float = Field(default=30.0, gt=0, title="Timeout (s)", description="Seconds to wait for connecting and for each server reply.")

    def get_server(self) -> smtplib.SMTP:
        """A connected, TLS-secured (per smtp_type) and logged-in SMTP session."""
        host, port, kind = _host(self), _port(self), SMTPType(self.smtp_type)
        if self.username and (kind == SMTPType.INSECURE or not self.verify):
            raise NotificationError(
                f"{block_label(self)}: refusing to send the SMTP password over a connection that is not encrypted and verified.",
                "Use smtp_type STARTTLS or SSL with verify on (and ca_file for a private CA).",
            )
        if self.verify:
            context = ssl.create_default_context(cafile=self.ca_file)
        else:
            context = ssl._create_unverified_context(protocol=ssl.PROTOCOL_TLS_CLIENT)
        if kind == SMTPType.SSL:
            server: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=self.timeout, context=context)
        else:
            server = smtplib.SMTP(host, port, timeout=self.timeout)
            if kind == SMTPType.STARTTLS:
                server.starttls(context=context)
        if self.username:
            server.login(self.username, self.password.get_secret_value())
        return server


def sender_of(block: EmailServerCredentials) -> str:
    return getattr(block, "sender", None) or block.username or "ferry@localhost"


def send_email(block: EmailServerCredentials, to: list[str], subject: str, text: str) -> None:
    """Send one plain-text e-mail; failures become NotificationErrors that name the block and never the password."""
    message = EmailMessage()
    message["From"] = sender_of(block)
    message["To"] = ", ".join(to)
    message["Subject"] = subject
    message.set_content(text)
    where = f"{block_label(block)} ({_host(block)}:{_port(block)})"
    server = None
    try:
        server = block.get_server()
        server.send_message(message)
    except NotificationError:
        raise
    except smtplib.SMTPAuthenticationError as exc:
        raise NotificationError(
            f"{where}: the server refused the login of {block.username!r} (SMTP {exc.smtp_code}).",
            "Check username and password in the block.",
        ) from None
    except smtplib.SMTPRecipientsRefused as exc:
        raise NotificationError(
            f"{where}: the server refused the recipient(s) {', '.join(exc.recipients)}.", "Check the notification address."
        ) from None
    except ssl.SSLCertVerificationError as exc:
        raise NotificationError(
            f"{where}: the server's TLS certificate is not trusted: {exc.verify_message}.",
            "Set ca_file to the CA that signed it, and check the host name.",
        ) from None
    except smtplib.SMTPNotSupportedError as exc:
        raise NotificationError(f"{where}: {exc}.", "Check smtp_type (SSL, STARTTLS) against what the server offers.") from None
    except smtplib.SMTPResponseException as exc:
        error = TransientNotificationError if 400 <= exc.smtp_code < 500 else NotificationError
        raise error(f"{where}: the server answered SMTP {exc.smtp_code} while sending.", "Check the server's log.") from None
    except (smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError) as exc:
        raise TransientNotificationError(f"{where}: the connection failed: {type(exc).__name__}.") from None
    except OSError as exc:
        if is_transient_network_error(exc):
            raise TransientNotificationError(f"{where}: the connection failed: {type(exc).__name__}.") from None
        raise NotificationError(
            f"{where}: sending failed: {type(exc).__name__}: {exc.strerror or exc}.", "Check smtp_server and smtp_port."
        ) from None
    finally:
        if server is not None:
            try:
                server.quit()
            except Exception:  # noqa: BLE001 - closing a broken session
                server.close()
