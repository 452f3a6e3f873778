"""Import sources: turn ``path``, ``https://...``, ``sftp://...`` (any block scheme) into a local file.

The import parser reads local files only; :func:`resolve_source` downloads
remote sources into the run's spool folder first, so parsing never holds a
network connection open and a retry of the parse does not download again.

URL imports take addresses from customers (the seeds' ``sourceUrl``), so they
are guarded against server-side request forgery:

* only ``http`` and ``https``; no credentials inside the URL;
* the host is resolved here and *every* address it resolves to must be public
  (not loopback, private, link-local, unique-local, CGNAT, multicast, reserved,
  nor a cloud metadata address), unless the operator's allow-list
  (``FERRY_IMPORT_URL_ALLOW``) contains it; the connection then goes to the
  checked address itself (TLS still verifies the host name), so a second DNS
  answer cannot swap in another target (DNS rebinding);
* redirects are followed by hand, each hop checked the same way;
* size (``FERRY_IMPORT_URL_MAX_BYTES``) and time (per read and in total) are capped.

Block schemes: every registered destination block lists the URI schemes it
reads in ``uri_schemes`` (SFTP: ``sftp``; FTP: ``ftp``, ``ftps``). ``SCHEME://NAME/key``
uses the saved block NAME; ``SCHEME://HOST/path`` (or ``s3://BUCKET/key``) uses
the one saved block whose ``matches_uri`` accepts HOST/BUCKET. Blocks that do not
declare ``uri_schemes`` can be mapped in :data:`EXTRA_SCHEMES`.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urljoin, urlsplit

import urllib3

from ferry.checks import is_remote_source, shown_url
from ferry.errors import FerryError, SourceError, TransientSourceError
from ferry.settings import FerrySettings, get_settings

CHUNK = 1 << 20
USER_AGENT = "ferry-import/1"
REDIRECTS = (301, 302, 303, 307, 308)

# Addresses of cloud instance-metadata services. Most are link-local or unique-local anyway;
# Azure's wireserver is a public address, so it is listed by name. Only an allow-list entry for
# the exact address (not a wider network) lets a URL import reach one.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",
        "169.254.170.2",
        "169.254.169.253",
        "fd00:ec2::254",
        "fd00:ec2::23",
        "100.100.100.200",
        "168.63.129.16",
    )
)
NAT64 = ipaddress.ip_network("64:ff9b::/96")

# scheme -> block type slug, for blocks that do not declare ``uri_schemes`` themselves.
EXTRA_SCHEMES: dict[str, str] = {}

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


# --- the address guard ------------------------------------------------------------------


def _embedded_ipv4(ip: Address) -> Address:
    """The IPv4 address inside IPv4-mapped (::ffff:a.b.c.d) and NAT64 IPv6 addresses."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped:
            return ip.ipv4_mapped
        if ip in NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def refusal_reason(ip: Address, allowed: list[Network]) -> str | None:
    """Why a URL import may not connect to ``ip`` (None: it may)."""
    inner = _embedded_ipv4(ip)
    exact = any(net.num_addresses == 1 and (inner in net or ip in net) for net in allowed)
    if inner in METADATA_ADDRESSES or ip in METADATA_ADDRESSES:
        return None if exact else "a cloud metadata address"
    if any(inner in net or ip in net for net in allowed):
        return None
    if inner.is_unspecified:
        return "the unspecified (non-public) address"
    if inner.is_loopback:
        return "a loopback address"
    if inner.is_link_local:
        return "a link-local address"
    if isinstance(inner, ipaddress.IPv6Address) and inner in ipaddress.ip_network("fc00::/7"):
        return "a unique-local address"
    if inner.is_private:
        return "a private address"
    if inner.is_multicast:
        return "a multicast address"
    if inner.is_unspecified or inner.is_reserved or not inner.is_global:
        return "a reserved, shared or otherwise non-public address"
    return None


def resolve_checked(host: str, port: int, allowed: list[Network], shown_url: str) -> list[Address]:
    """Resolve ``host`` and return the addresses to try, in order; refuse if ANY of its addresses is refused."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        if exc.errno == socket.EAI_AGAIN:
            raise TransientSourceError(f"Cannot resolve {host!r} for {shown_url} right now.", "DNS may be down.") from None
        raise SourceError(f"Cannot resolve host {host!r} of {shown_url}.", "Check the URL.") from None
    addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos))
    for ip in addresses:
        reason = refusal_reason(ip, allowed)
        if reason:
            raise SourceError(
                f"Refusing to fetch {shown_url}: host {host!r} resolves to {ip}, {reason}.",
                "URL imports may only reach public addresses; an operator can allow a network with FERRY_IMPORT_URL_ALLOW.",
            )
    if not addresses:
        raise SourceError(f"Host {host!r} of {shown_url} has no address.", "Check the URL.")
    return addresses


# --- URL download ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    scheme: str
    host: str
    port: int
    request_path: str
    host_header: str


def _target(url: str) -> _Target:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise SourceError(f"{shown_url(url)!r} is not a valid URL.", "Check the URL.") from None
    if parts.scheme not in ("http", "https"):
        raise SourceError(
            f"Refusing to fetch {shown_url(url)}: only http and https URLs can be imported, not {parts.scheme or 'no scheme'!r}.",
            "Give an http(s) URL.",
        )
    if parts.username is not None or parts.password is not None:
        raise SourceError(
            f"Refusing to fetch {shown_url(url)}: the URL carries credentials.",
            "Credentials do not belong in an import URL (they end up in logs); use a signed URL or a block.",
        )
    if not parts.hostname:
        raise SourceError(f"{shown_url(url)!r} has no host.", "Check the URL.")
    port = port or (443 if parts.scheme == "https" else 80)
    host = parts.hostname
    default = (parts.scheme == "https" and port == 443) or (parts.scheme == "http" and port == 80)
    bracketed = f"[{host}]" if ":" in host else host
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return _Target(parts.scheme, host, port, path, bracketed if default else f"{bracketed}:{port}")


def _filename(url: str, content_type: str | None) -> str:
    """A safe local file name that keeps the URL's extension (the parser sniffs formats by it)."""
    name = PurePosixPath(unquote(urlsplit(url).path)).name
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip(".-")[:120] or "download"
    if "." not in name and content_type:
        extension = {
            "text/csv": ".csv",
            "application/json": ".json",
            "application/x-ndjson": ".jsonl",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ".xlsx",
            "application/vnd.ms-excel": ".xls",
            "application/xml": ".xml",
            "text/xml": ".xml",
            "text/tab-separated-values": ".tsv",
        }.get(content_type.split(";")[0].strip().lower())
        name += extension or ""
    return name


def fetch_url(url: str, folder: Path, settings: FerrySettings | None = None, ca_file: str | None = None) -> Path:
    """Download ``url`` into ``folder`` under the SSRF guard; return the local file."""
    settings = settings or get_settings()
    allowed = settings.import_url_allowed_networks()
    deadline = time.monotonic() + settings.import_url_max_seconds
    timeout = urllib3.Timeout(connect=settings.import_url_timeout_seconds, read=settings.import_url_timeout_seconds)
    current = url
    for _hop in range(settings.import_url_max_redirects + 1):
        target = _target(current)
        addresses = resolve_checked(target.host, target.port, allowed, shown_url(current))
        pool, response = _connect(target, addresses, timeout, ca_file, current)
        try:
            try:
                if response.status in REDIRECTS:
                    location = response.headers.get("Location")
                    if not location:
                        raise SourceError(f"{shown_url(current)} answered HTTP {response.status} without a Location.", "Check the URL.")
                    current = urljoin(current, location.strip())
                    continue
                if response.status == 429 or response.status >= 500:
                    raise TransientSourceError(f"{shown_url(current)} answered HTTP {response.status}.", "The server is failing or busy.")
                if response.status != 200:
                    raise SourceError(
                        f"{shown_url(current)} answered HTTP {response.status}.",
                        "Check that the URL is right and still valid (signed URLs expire).",
                    )
                return _save(response, current, folder, settings.import_url_max_bytes, deadline)
            finally:
                response.release_conn()
        finally:
            pool.close()
    raise SourceError(f"{shown_url(url)} redirected more than {settings.import_url_max_redirects} times.", "Give the final URL.")


def _connect(target: _Target, addresses: list[Address], timeout: urllib3.Timeout, ca_file: str | None, url: str):
    """GET from the first checked address that accepts a connection; (pool, response)."""
    failure: Exception | None = None
    for ip in addresses:
        pool = _pool(target, ip, timeout, ca_file)
        try:
            response = pool.urlopen(
                "GET",
                target.request_path,
                redirect=False,
                retries=False,
                preload_content=False,
                headers={"Host": target.host_header, "User-Agent": USER_AGENT, "Accept-Encoding": "gzip, identity"},
            )
            return pool, response
        except urllib3.exceptions.SSLError as exc:
            pool.close()
            raise SourceError(
                f"TLS to {shown_url(url)} failed: {_reason(exc)}.", "The server's certificate is not trusted for this host."
            ) from None
        except (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError) as exc:
            pool.close()
            failure = exc  # try the host's next address
        except urllib3.exceptions.HTTPError as exc:
            pool.close()
            raise TransientSourceError(f"Fetching {shown_url(url)} failed: {_reason(exc)}.", "The server may be down or slow.") from None
    raise TransientSourceError(f"Fetching {shown_url(url)} failed: {_reason(failure)}.", "The server may be down or slow.") from None


def _pool(target: _Target, ip: Address, timeout: urllib3.Timeout, ca_file: str | None) -> urllib3.HTTPConnectionPool:
    """A pool that connects to the checked address ``ip`` but speaks (Host, SNI, certificate) to the host name."""
    if target.scheme == "https":
        return urllib3.HTTPSConnectionPool(
            str(ip),
            target.port,
            timeout=timeout,
            retries=False,
            cert_reqs="CERT_REQUIRED",
            ca_certs=ca_file,
            server_hostname=target.host,
            assert_hostname=target.host,
        )
    return urllib3.HTTPConnectionPool(str(ip), target.port, timeout=timeout, retries=False)


def _reason(exc: BaseException) -> str:
    """A short cause without the URL (urllib3's messages repeat it, with its query)."""
    inner = getattr(exc, "reason", None) or exc
    text = type(inner).__name__
    if isinstance(inner, urllib3.exceptions.ReadTimeoutError) or isinstance(exc, urllib3.exceptions.ReadTimeoutError):
        return "read timed out"
    if isinstance(inner, (urllib3.exceptions.ConnectTimeoutError,)):
        return "connection timed out"
    if isinstance(inner, urllib3.exceptions.NewConnectionError):
        return "could not connect"
    return text


def _save(response: urllib3.BaseHTTPResponse, url: str, folder: Path, cap: int, deadline: float) -> Path:
    length = response.headers.get("Content-Length")
    if length and length.isdigit() and int(length) > cap:
        raise SourceError(
            f"{shown_url(url)} is {int(length):,} bytes, more than the import limit of {cap:,}.",
            "Split the file, or ask an operator to raise FERRY_IMPORT_URL_MAX_BYTES.",
        )
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / _filename(url, response.headers.get("Content-Type"))
    partial = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.partial")
    # A hard stop for slow-drip servers: the per-read timeout alone would let them go on forever.
    timer = threading.Timer(max(0.0, deadline - time.monotonic()), response.shutdown)
    timer.daemon = True
    timer.start()
    written = 0
    try:
        with open(partial, "wb") as out:
            while True:
                try:
                    chunk = response.read1(CHUNK, decode_content=True)
                except (urllib3.exceptions.HTTPError, OSError) as exc:
                    if time.monotonic() >= deadline:
                        raise SourceError(
                            f"Downloading {shown_url(url)} took longer than the import limit.",
                            "Ask an operator to raise FERRY_IMPORT_URL_MAX_SECONDS, or use a faster source.",
                        ) from None
                    raise TransientSourceError(f"Downloading {shown_url(url)} broke off after {written:,} bytes: {_reason(exc)}.") from None
                if not chunk:
                    break
                written += len(chunk)
                if written > cap:
                    raise SourceError(
                        f"{shown_url(url)} is larger than the import limit of {cap:,} bytes.",
                        "Split the file, or ask an operator to raise FERRY_IMPORT_URL_MAX_BYTES.",
                    )
                out.write(chunk)
        if time.monotonic() >= deadline:
            raise SourceError(
                f"Downloading {shown_url(url)} took longer than the import limit.", "Ask an operator to raise FERRY_IMPORT_URL_MAX_SECONDS."
            )
        if length and length.isdigit() and "Content-Encoding" not in response.headers and written != int(length):
            raise TransientSourceError(f"{shown_url(url)} sent {written:,} of {int(length):,} bytes.", "The download was cut short.")
        partial.replace(target)
        return target
    finally:
        timer.cancel()
        partial.unlink(missing_ok=True)


# --- block schemes -----------------------------------------------------------------------


def scheme_blocks() -> dict[str, list[type]]:
    """scheme -> the registered block classes that read it (from ``uri_schemes`` and EXTRA_SCHEMES)."""
    from blocks.registry import DESTINATIONS

    mapping: dict[str, list[type]] = {}
    for slug, cls in DESTINATIONS.items():
        schemes = set(getattr(cls, "uri_schemes", ()) or ()) | {s for s, target in EXTRA_SCHEMES.items() if target == slug}
        for scheme in schemes:
            mapping.setdefault(scheme, []).append(cls)
    return mapping


def _saved_names(slug: str) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError

    with get_client(sync_client=True) as client:
        try:
            documents = client.read_block_documents_by_type(slug, include_secrets=False)
        except ObjectNotFound:  # the block type was never registered: no saved blocks
            return []
        except PrefectHTTPStatusError as exc:  # ... which some Prefect calls answer as a plain 404
            if exc.response.status_code == 404:
                return []
            raise
        return [doc.name for doc in documents if doc.name and not doc.is_anonymous]


def _saved_block(cls: type, name: str):
    """The saved block of type ``cls`` named ``name``, or None: no such block, or its type was never registered here."""
    from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError

    try:
        return cls.load(name)
    except (ValueError, FerryError, ObjectNotFound):
        return None
    except PrefectHTTPStatusError as exc:  # Prefect answers 404 for a block type it has never seen
        if exc.response.status_code == 404:
            return None
        raise


def block_for_uri(uri: str):
    """The saved block a ``scheme://NAME-or-HOST/key`` URI reads through, and the key inside it."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    classes = scheme_blocks().get(scheme)
    if not classes:
        raise SourceError(f"No block reads {scheme}:// sources.", f"Supported: {', '.join(supported_schemes())}.")
    netloc = parts.netloc
    key = unquote(parts.path.lstrip("/"))
    if not netloc or not key:
        raise SourceError(f"{uri!r} must look like {scheme}://BLOCK-NAME/path/file or {scheme}://HOST/path/file.", "Check the source.")
    if re.fullmatch(r"[a-z0-9-]+", netloc):
        for cls in classes:
            if (block := _saved_block(cls, netloc)) is not None:
                return block, key
    matches = []
    for cls in classes:
        for name in _saved_names(cls.get_block_type_slug()):
            block = cls.load(name)
            if block.matches_uri(netloc):
                matches.append((name, block))
    if not matches:
        slug = classes[0].get_block_type_slug()
        raise SourceError(
            f"No saved {scheme} block named or pointing at {netloc!r}.",
            f"Create one first: ferry blocks create {slug} NAME --host ... (then use {scheme}://NAME/{key}).",
        )
    if len(matches) > 1:
        matches = _reaching_folder(matches, key) or matches
    if len(matches) > 1:
        raise SourceError(
            f"Several saved blocks point at {netloc!r}: {', '.join(n for n, _ in matches)}.", f"Name one in the URI: {scheme}://NAME/{key}."
        )
    block = matches[0][1]
    folder = _folder_of(block)
    if folder and key.startswith(folder + "/"):
        key = key[len(folder) + 1 :]  # the URI gave the server path; the block's folder is already applied
    return block, key


def _folder_of(block) -> str:
    return str(getattr(block, "folder", "") or "").strip("/")


def _reaching_folder(matches: list, key: str) -> list:
    """Of several blocks on one host, those whose folder holds the key's path, deepest folder only.

    Why: teams save one block per partner folder on a shared server; a host URI naming a path inside
    exactly one of those folders is not ambiguous.
    """
    inside = [(name, block) for name, block in matches if (f := _folder_of(block)) and key.startswith(f + "/")]
    if not inside:
        return []
    deepest = max(len(_folder_of(block)) for _, block in inside)
    return [(name, block) for name, block in inside if len(_folder_of(block)) == deepest]


def supported_schemes() -> list[str]:
    return sorted({"http", "https", *scheme_blocks()})


def resolve_source(source: str | Path, spool_dir: Path, settings: FerrySettings | None = None, allow_local: bool = True) -> Path:
    """A local file holding ``source``: a local path as is; a URL or block URI downloaded into ``spool_dir``.

    ``allow_local=False`` refuses local paths (for sources named by customers rather than operators).
    """
    text = str(source)
    scheme = urlsplit(text).scheme.lower() if is_remote_source(text) else ""
    if not scheme:
        if not allow_local:
            raise SourceError(f"Refusing local path {text!r} as an import source here.", "Give an http(s) URL or a block URI.")
        path = Path(text).expanduser()
        if not path.is_file():
            raise SourceError(f"No file at {text!r}.", "Check the path.")
        return path
    folder = spool_dir / f"source-{uuid.uuid4().hex[:8]}"
    if scheme in ("http", "https"):
        return fetch_url(text, folder, settings)
    block, key = block_for_uri(text)
    try:
        return block.download(key, folder / (PurePosixPath(key).name or "download"))
    except FerryError as exc:
        if isinstance(exc, SourceError):
            raise
        error = TransientSourceError if exc.transient else SourceError
        raise error(exc.message, exc.hint) from None
