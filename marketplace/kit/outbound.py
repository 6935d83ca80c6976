"""Outbound HTTP to addresses that others name (webhook endpoints), guarded against server-side request forgery:
the host is resolved once, every address it resolves to must be public (or in an allow-list), and the request
goes to the checked address itself, with the name kept for the Host header and TLS, no redirect followed, short
timeouts and a small cap on what is read back."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

import httpx

from marketplace.kit.i18n import Message

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_URL_LENGTH = 2000
# What is read of an answer: enough for an error message, never a stream that fills memory.
MAX_RESPONSE_BYTES = 4096
DEFAULT_PORTS = {"https": 443, "http": 80}
# Cloud instance metadata services, refused whatever else is said about their ranges.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254")
)


class UnsafeTarget(ValueError):
    """A URL the guard will not send to; the message says why, in words fit for the caller."""

    def __init__(self, message: Message) -> None:
        super().__init__(str(message))
        self.message = message


@dataclass(frozen=True)
class Target:
    """A URL checked and resolved: where to connect, and the name the server expects."""

    url: SplitResult
    host: str
    port: int
    address: IPAddress

    def pinned_url(self) -> str:
        """The URL with the checked address for its host, so the client connects there and resolves nothing."""
        host = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        path = self.url.path or "/"
        query = f"?{self.url.query}" if self.url.query else ""
        return f"{self.url.scheme}://{host}:{self.port}{path}{query}"

    @property
    def host_header(self) -> str:
        name = f"[{self.host}]" if ":" in self.host else self.host
        return name if self.port == DEFAULT_PORTS[self.url.scheme] else f"{name}:{self.port}"


@dataclass(frozen=True)
class Outcome:
    """What came back: a status (None when no answer came), the time taken, an error, the start of the body."""

    status_code: int | None
    duration_ms: int
    error: str | None
    body: bytes

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def parse_url(url: str) -> SplitResult:
    """The URL's parts, if it is one the guard may send to: https (or http), a host, no credentials, no
    fragment, within MAX_URL_LENGTH."""
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeTarget(Message("url.too-long", "the URL is longer than {limit} characters", limit=MAX_URL_LENGTH))
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise UnsafeTarget(Message("url.invalid", "not a valid URL")) from error
    if parts.scheme not in DEFAULT_PORTS:
        raise UnsafeTarget(
            Message("url.scheme", "the URL must start with https:// (or http:// to an allow-listed network)")
        )
    if not parts.hostname:
        raise UnsafeTarget(Message("url.no-host", "the URL has no host"))
    if parts.username is not None or parts.password is not None:
        raise UnsafeTarget(Message("url.credentials", "the URL must not carry a user name or password"))
    if parts.fragment:
        raise UnsafeTarget(Message("url.fragment", "the URL must not have a fragment"))
    if port == 0:
        raise UnsafeTarget(Message("url.port", "the URL's port must be from 1 to 65535"))
    if any(c.isspace() or ord(c) < 0x20 for c in url):
        raise UnsafeTarget(Message("url.spaces", "the URL must not contain spaces or control characters"))
    return parts


def forbidden_reason(address: IPAddress) -> Message | None:
    """Why an address is no public destination (None: it is one). An IPv4 address inside IPv6 (mapped, 6to4,
    NAT64) is judged as the IPv4 address it carries."""
    inner = _embedded_ipv4(address)
    if inner is not None:
        return forbidden_reason(inner)
    checks = (
        (address in METADATA_ADDRESSES, Message("url.address-metadata", "a cloud metadata address")),
        (address.is_loopback, Message("url.address-loopback", "a loopback address")),
        (address.is_unspecified, Message("url.address-unspecified", "an unspecified address")),
        (address.is_link_local, Message("url.address-link-local", "a link-local address")),
        (address.is_multicast, Message("url.address-multicast", "a multicast address")),
        (address.is_private, Message("url.address-private", "a private address")),
        (address.is_reserved, Message("url.address-reserved", "a reserved address")),
        (not address.is_global, Message("url.address-not-public", "not a public address")),
    )
    return next((reason for hit, reason in checks if hit), None)


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


async def resolve(url: str, allowed: Iterable[IPNetwork]) -> Target:
    """Check `url` and resolve its host once: every address must be public or inside an `allowed` network, and
    plain http goes to allowed networks only. Raises UnsafeTarget saying why not."""
    parts = parse_url(url)
    host = parts.hostname or ""
    port = parts.port or DEFAULT_PORTS[parts.scheme]
    addresses = await _addresses(host, port)
    networks = tuple(allowed)
    for address in addresses:
        if any(address in network for network in networks):
            continue
        if (reason := forbidden_reason(address)) is not None:
            raise UnsafeTarget(
                Message(
                    "url.address-refused", "the host resolves to {address}, {reason}", address=address, reason=reason
                )
            )
        if parts.scheme != "https":
            raise UnsafeTarget(
                Message(
                    "url.scheme-resolved", "the URL must start with https:// (http:// only to an allow-listed network)"
                )
            )
    return Target(parts, host, port, addresses[0])


async def _addresses(host: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        raise UnsafeTarget(Message("url.unresolved", "the host {host} does not resolve", host=host)) from error
    addresses = list(dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in found))
    if not addresses:
        raise UnsafeTarget(Message("url.unresolved", "the host {host} does not resolve", host=host))
    return addresses


async def post(target: Target, body: bytes, headers: Mapping[str, str], *, timeout_seconds: float) -> Outcome:
    """POST `body` to the checked address, the Host header and TLS server name being the URL's host; redirects
    are answers like any other, and at most MAX_RESPONSE_BYTES of the answer are read."""
    started = time.monotonic()
    request_headers = {**headers, "host": target.host_header}
    extensions = {"sni_hostname": target.host} if target.url.scheme == "https" else {}
    # A client per request: connections are pooled by address, and one opened for another name must not serve.
    timeout = httpx.Timeout(timeout_seconds, connect=min(timeout_seconds, 5.0))
    try:
        async with (
            asyncio.timeout(2 * timeout_seconds),
            httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False) as client,
        ):
            request = client.build_request(
                "POST", target.pinned_url(), content=body, headers=request_headers, extensions=extensions
            )
            response = await client.send(request, stream=True)
            try:
                read = await _head_of(response)
            finally:
                await response.aclose()
    except (httpx.HTTPError, OSError, TimeoutError) as error:
        return Outcome(None, _ms_since(started), _error_text(error), b"")
    return Outcome(response.status_code, _ms_since(started), None, read)


async def _head_of(response: httpx.Response) -> bytes:
    read = b""
    async for chunk in response.aiter_raw():
        read += chunk
        if len(read) >= MAX_RESPONSE_BYTES:
            break
    return read[:MAX_RESPONSE_BYTES]


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _error_text(error: BaseException) -> str:
    """The kind of failure, and its message when it has one (no headers, no body)."""
    if isinstance(error, httpx.TimeoutException | TimeoutError):
        return "timed out"
    message = str(error).strip()
    return f"{type(error).__name__}: {message}" if message else type(error).__name__
