"""The SSRF guard: refuse URLs that reach this machine or its private networks.

A URL is checked after DNS resolution: every address its host resolves to must be
public, unless the host name or the address's network is in the allow-list
(`network.allow`). `safe_request()` checks again on every redirect (followed by hand,
a bounded number of times) and connects only to the addresses it checked: aiohttp
gets a resolver that answers with those addresses alone, so a second DNS answer
(rebinding) cannot switch the target.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeAlias

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from flowboard.errors import ErrorAnswer, FlowboardError

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolve = Callable[[str, int], Awaitable[list[str]]]

SCHEMES = frozenset({"http", "https"})
REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
# Credentials meant for one origin must not follow a redirect to another.
SENSITIVE_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})


class OutboundError(Exception):
    """An outbound request was refused or failed; the message is safe to show and log."""


class UnsafeUrl(OutboundError, FlowboardError):
    """The URL's scheme or (resolved) address is not allowed (a 422 for API callers)."""

    http_status, error_code = 422, "unsafe_url"

    def answer(self) -> ErrorAnswer:
        return ErrorAnswer(self.http_status, self.error_code, f"url refused: {self}")


class FetchFailed(OutboundError):
    """The request could not be made: DNS, connection, timeout, too many redirects."""


def _host_key(host: str) -> str:
    return host.lower().rstrip(".")


def _idna(host: str) -> str:
    """A host name as URLs carry it on the wire (`bücher.example` → `xn--bcher-kva.example`)."""
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host


@dataclass(frozen=True)
class AllowList:
    """Host names and networks exempt from the address checks (`network.allow`)."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> AllowList:
        """Entries are IP addresses, CIDR networks, or exact host names."""
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for entry in entries:
            try:
                networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError:
                hosts.add(_idna(_host_key(entry.strip())))
        return cls(frozenset(hosts), tuple(networks))

    def allows_host(self, host: str) -> bool:
        return _host_key(host) in self.hosts

    def allows_address(self, ip: IPAddress) -> bool:
        candidates = [ip]
        embedded = _embedded_ipv4(ip) if isinstance(ip, ipaddress.IPv6Address) else None
        if embedded is not None:
            candidates.append(embedded)
        return any(
            c in net for c in candidates for net in self.networks if c.version == net.version
        )


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, Teredo client, NAT64)."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _own_category(ip: IPAddress) -> str | None:
    checks = (
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("unspecified", ip.is_unspecified),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved),
        ("non-public", not ip.is_global),
    )
    return next((name for name, hit in checks if hit), None)


def forbidden_category(ip: IPAddress) -> str | None:
    """Why an address must not be reached ("loopback", "private", ...), or None if public."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if ip.ipv4_mapped is not None and embedded is not None:
            return _own_category(embedded)  # ::ffff:0:0/96 itself counts as private
        if embedded is not None and (category := _own_category(embedded)) is not None:
            return category
    return _own_category(ip)


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


async def system_resolve(host: str, port: int) -> list[str]:
    """The addresses of `host` from the system resolver (asyncio getaddrinfo)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class VettedUrl:
    """A URL that passed the checks, and the only addresses it may be reached at."""

    url: URL
    host: str
    port: int
    addresses: tuple[str, ...]


def _parse(url: str | URL) -> URL:
    try:
        parsed = url if isinstance(url, URL) else URL(url)
    except (ValueError, TypeError) as exc:
        raise UnsafeUrl(f"not a valid URL: {exc}") from exc
    if parsed.scheme.lower() not in SCHEMES:
        raise UnsafeUrl(f"scheme {parsed.scheme or '(none)'!r} is not allowed (http or https only)")
    if not parsed.raw_host:
        raise UnsafeUrl("the URL has no host")
    return parsed


async def _addresses(host: str, port: int, resolve: Resolve) -> list[str]:
    if _literal(host.split("%")[0]) is not None:
        return [host]
    try:
        found = await resolve(host, port)
    except OSError as exc:  # socket.gaierror included
        raise FetchFailed(f"cannot resolve host {host!r}: {exc.strerror or exc}") from exc
    except UnicodeError as exc:  # getaddrinfo's IDNA step: an empty or over-long label
        raise UnsafeUrl(f"not a valid host name {host!r}: {exc}") from exc
    if not found:
        raise FetchFailed(f"host {host!r} has no address")
    return found


def _refuse_unsafe(host: str, addresses: list[str], allow: AllowList) -> None:
    literal = _literal(host.split("%")[0]) is not None
    for raw in addresses:
        ip = ipaddress.ip_address(raw.split("%")[0])
        category = forbidden_category(ip)
        if category is None or allow.allows_address(ip):
            continue
        where = f"{ip} is" if literal else f"host {host!r} resolves to"
        raise UnsafeUrl(f"{where} a {category} address (not in network.allow)")


async def check_url(
    url: str | URL, allow: AllowList | Iterable[str], resolve: Resolve | None = None
) -> VettedUrl:
    """Resolve the URL's host and refuse it unless every address may be reached.

    Raises UnsafeUrl for a refused scheme or address, FetchFailed when the host does
    not resolve. `resolve` replaces the system resolver (tests, custom DNS).
    """
    allowed = allow if isinstance(allow, AllowList) else AllowList.parse(allow)
    parsed = _parse(url)
    host = _host_key(parsed.raw_host or "")  # IDNA-encoded, as aiohttp asks the resolver
    port = parsed.port or (443 if parsed.scheme.lower() == "https" else 80)
    addresses = await _addresses(host, port, resolve or system_resolve)
    if not allowed.allows_host(host):
        _refuse_unsafe(host, addresses, allowed)
    return VettedUrl(parsed, host, port, tuple(addresses))


class PinnedResolver(AbstractResolver):
    """aiohttp's resolver for one request chain: only the vetted addresses, never DNS."""

    def __init__(self) -> None:
        self._pins: dict[str, tuple[str, ...]] = {}

    def pin(self, vetted: VettedUrl) -> None:
        self._pins[vetted.host] = vetted.addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = self._pins.get(_host_key(host), ())
        results: list[ResolveResult] = []
        for address in addresses:
            found = socket.AF_INET6 if ":" in address else socket.AF_INET
            if family in (socket.AF_UNSPEC, found):
                results.append(
                    ResolveResult(
                        hostname=host,
                        host=address,
                        port=port,
                        family=found,
                        proto=0,
                        flags=socket.AI_NUMERICHOST,
                    )
                )
        if not results:
            raise OSError(f"host {host!r} was not checked for this request")
        return results

    async def close(self) -> None:
        self._pins.clear()


@dataclass(frozen=True)
class FetchResult:
    """The final answer of a request chain: its status, URL and number of redirects."""

    status: int
    url: str
    redirects: int


@dataclass
class _Hop:
    """One request of a chain; the next hop follows a redirect."""

    method: str
    url: URL
    data: bytes | None
    headers: dict[str, str] = field(default_factory=dict)

    def redirected(self, status: int, location: str) -> _Hop:
        try:
            target = self.url.join(URL(location))
        except (ValueError, TypeError) as exc:
            raise FetchFailed(f"invalid redirect location: {exc}") from exc
        method, data = self.method, self.data
        if status == 303 or (status in (301, 302) and method == "POST"):
            method, data = ("HEAD" if method == "HEAD" else "GET"), None
        headers = dict(self.headers)
        if target.origin() != self.url.origin():
            headers = {k: v for k, v in headers.items() if k.lower() not in SENSITIVE_HEADERS}
        if data is None:
            headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
        return _Hop(method, target, data, headers)


@dataclass(frozen=True)
class _Chain:
    """How a request chain may go: the allow-list, the resolver, which redirects, how many."""

    allow: AllowList
    resolve: Resolve | None
    follow: frozenset[int]
    max_redirects: int


async def _follow(
    session: aiohttp.ClientSession, pins: PinnedResolver, hop: _Hop, chain: _Chain
) -> FetchResult:
    for redirects in range(chain.max_redirects + 1):
        vetted = await check_url(hop.url, chain.allow, chain.resolve)
        pins.pin(vetted)
        async with session.request(
            hop.method, vetted.url, data=hop.data, headers=hop.headers, allow_redirects=False
        ) as response:
            location = response.headers.get("Location")
            if response.status not in chain.follow or not location:
                return FetchResult(response.status, str(vetted.url), redirects)
        hop = hop.redirected(response.status, location)
    raise FetchFailed(f"more than {chain.max_redirects} redirects")


async def safe_request(
    method: str,
    url: str,
    *,
    allow: AllowList | Iterable[str],
    data: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
    max_redirects: int = MAX_REDIRECTS,
    follow: frozenset[int] = REDIRECTS,
    resolve: Resolve | None = None,
) -> FetchResult:
    """Make a request through the guard: every hop checked, connections pinned, bounded.

    Redirects with a status in `follow` are followed (each target checked first); any
    other answer is the result. Raises UnsafeUrl when a hop is refused (nothing is
    sent to it) and FetchFailed for DNS, connection and protocol failures or when
    `timeout` (for the whole chain) passes.
    """
    allowed = allow if isinstance(allow, AllowList) else AllowList.parse(allow)
    chain = _Chain(allowed, resolve, follow & REDIRECTS, max_redirects)
    pins = PinnedResolver()
    connector = aiohttp.TCPConnector(resolver=pins, use_dns_cache=False, force_close=True)
    hop = _Hop(method.upper(), _parse(url), data, dict(headers or {}))
    try:
        async with (
            asyncio.timeout(timeout),
            aiohttp.ClientSession(
                connector=connector, trust_env=False, timeout=aiohttp.ClientTimeout(total=timeout)
            ) as session,
        ):
            return await _follow(session, pins, hop, chain)
    except TimeoutError as exc:
        raise FetchFailed(f"no answer within {timeout:g} s") from exc
    except aiohttp.ClientError as exc:
        raise FetchFailed(f"{type(exc).__name__}: {exc}") from exc
