"""The SSRF guard against real loopback servers: refused targets never see a connection."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web

from flowboard.net.ssrf import (
    AllowList,
    FetchFailed,
    UnsafeUrl,
    check_url,
    forbidden_category,
    safe_request,
    system_resolve,
)
from tests.servers.app import AppClient
from tests.servers.http_recorder import (
    ConnectSpy,
    HttpRecorder,
    MakeRecorder,
    Recorded,
    Respond,
)
from tests.servers.waiting import API

PUBLIC_NAME = "hooks.example.com"


def fake_dns(
    names: dict[str, list[list[str]]], calls: list[str] | None = None
) -> Callable[[str, int], Awaitable[list[str]]]:
    """A resolver giving `names` their answers in turn (the last repeats); others: system."""

    async def resolve(host: str, port: int) -> list[str]:
        if calls is not None:
            calls.append(host)
        answers = names.get(host)
        if answers is None:
            return await system_resolve(host, port)
        return answers.pop(0) if len(answers) > 1 else answers[0]

    return resolve


def redirect_to(location: Callable[[], str], status: int = 302) -> Respond:
    async def respond(recorder: HttpRecorder, request: Recorded) -> web.StreamResponse:
        return web.Response(status=status, headers={"Location": location()})

    return respond


@pytest.mark.parametrize(
    ("address", "category"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("fc00::1", "private"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("240.0.0.1", "private"),
        ("100.64.0.1", "non-public"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "link-local"),
        ("::ffff:10.0.0.1", "private"),
        ("2002:7f00:1::", "loopback"),  # 6to4 around 127.0.0.1
        ("93.184.216.34", None),
        ("::ffff:93.184.216.34", None),
        ("2606:4700:4700::1111", None),
    ],
)
def test_address_categories(address: str, category: str | None) -> None:
    assert forbidden_category(ipaddress.ip_address(address)) == category


def test_allow_list_entries() -> None:
    allow = AllowList.parse(["10.1.2.0/24", "127.0.0.1", "Hooks.Internal."])
    assert allow.allows_host("hooks.internal")
    assert allow.allows_address(ipaddress.ip_address("10.1.2.9"))
    assert allow.allows_address(ipaddress.ip_address("::ffff:127.0.0.1"))
    assert not allow.allows_address(ipaddress.ip_address("10.1.3.1"))


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://example.com/x", "gopher://example.com/", "http:///nohost"]
)
async def test_only_http_and_https(url: str) -> None:
    with pytest.raises(UnsafeUrl):
        await check_url(url, [])


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.1:{port}/",
        "http://[::1]:{port6}/",
        "http://localhost:{port}/",
        "http://0.0.0.0:{port}/",
        "http://2130706433:{port}/",  # 127.0.0.1 as one decimal number
        "http://[::ffff:127.0.0.1]:{port}/",
        "http://10.0.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/latest/meta-data/",
    ],
)
async def test_refused_targets_get_no_connection(
    target: str, http_recorder: MakeRecorder, connect_spy: ConnectSpy
) -> None:
    v4 = await http_recorder()
    v6 = await http_recorder(host="::1")
    url = target.format(port=v4.port, port6=v6.port)
    with pytest.raises(UnsafeUrl, match="address"):
        await safe_request("POST", url, allow=[], data=b"{}", timeout=5)
    assert v4.requests == [] and v6.requests == []
    assert connect_spy.addresses == []


async def test_the_spy_sees_an_allowed_connection(
    http_recorder: MakeRecorder, connect_spy: ConnectSpy
) -> None:
    target = await http_recorder()
    result = await safe_request("GET", target.url("/ok"), allow=["127.0.0.1"], timeout=5)
    assert result.status == 200 and [r.path for r in target.requests] == ["/ok"]
    assert connect_spy.addresses and connect_spy.addresses[0][:2] == ("127.0.0.1", target.port)


@pytest.mark.parametrize(
    "location",
    [
        "http://127.0.0.1:{port}/internal",
        "http://localhost:{port}/internal",
        "http://[::ffff:127.0.0.1]:{port}/internal",
        "http://169.254.169.254/latest/meta-data/",
    ],
)
async def test_redirect_to_loopback_is_refused(
    location: str, http_recorder: MakeRecorder, connect_spy: ConnectSpy
) -> None:
    """A public name (allow-listed by name only) that redirects inward: the hop is refused."""
    target = await http_recorder()
    first = await http_recorder(respond=redirect_to(lambda: location.format(port=target.port), 307))
    dns = fake_dns({PUBLIC_NAME: [["127.0.0.1"]]})
    with pytest.raises(UnsafeUrl):
        await safe_request(
            "POST",
            f"http://{PUBLIC_NAME}:{first.port}/hook",
            allow=[PUBLIC_NAME],
            data=b"{}",
            resolve=dns,
            timeout=5,
        )
    assert [r.path for r in first.requests] == ["/hook"]
    assert target.requests == []
    assert [a[1] for a in connect_spy.addresses] == [first.port]


async def test_allowed_redirects_are_followed_and_bounded(http_recorder: MakeRecorder) -> None:
    target = await http_recorder()
    first = await http_recorder(respond=redirect_to(lambda: target.url("/final"), 308))
    result = await safe_request("POST", first.url("/a"), allow=["127.0.0.1"], data=b"x", timeout=5)
    assert (result.status, result.redirects) == (200, 1)
    assert [(r.method, r.path, r.body) for r in target.requests] == [("POST", "/final", b"x")]

    looping = await http_recorder(respond=redirect_to(lambda: looping.url("/again")))
    with pytest.raises(FetchFailed, match="redirects"):
        await safe_request("GET", looping.url("/"), allow=["127.0.0.1"], max_redirects=3)
    assert len(looping.requests) == 4


async def test_redirect_not_followed_unless_asked(http_recorder: MakeRecorder) -> None:
    target = await http_recorder()
    first = await http_recorder(respond=redirect_to(lambda: target.url("/x"), 302))
    result = await safe_request(
        "POST", first.url(), allow=["127.0.0.1"], data=b"{}", follow=frozenset({307, 308})
    )
    assert result.status == 302 and target.requests == []


async def test_dns_rebinding_cannot_switch_the_target(
    http_recorder: MakeRecorder, connect_spy: ConnectSpy
) -> None:
    """The name is resolved once and the connection goes to that vetted address."""
    target = await http_recorder()
    calls: list[str] = []
    # the second answer would point at a private address, were anything to ask again
    dns = fake_dns({"rebind.example.com": [["127.0.0.1"], ["10.0.0.1"]]}, calls)
    url = f"http://rebind.example.com:{target.port}/"
    result = await safe_request("GET", url, allow=["127.0.0.1"], resolve=dns, timeout=5)
    assert result.status == 200 and len(target.requests) == 1
    assert target.requests[0].headers["Host"] == f"rebind.example.com:{target.port}"
    assert calls == ["rebind.example.com"]
    assert [a[0] for a in connect_spy.addresses] == ["127.0.0.1"]
    # the next request resolves again, gets the private answer, and is refused
    with pytest.raises(UnsafeUrl):
        await safe_request("GET", url, allow=["127.0.0.1"], resolve=dns, timeout=5)
    assert len(target.requests) == 1


async def test_a_name_with_one_unsafe_address_is_refused(http_recorder: MakeRecorder) -> None:
    target = await http_recorder()
    dns = fake_dns({"mixed.example.com": [["93.184.216.34", "127.0.0.1"]]})
    with pytest.raises(UnsafeUrl, match="loopback"):
        await safe_request("GET", f"http://mixed.example.com:{target.port}/", allow=[], resolve=dns)
    assert target.requests == []


async def test_unresolvable_host_fails_without_a_request() -> None:
    async def nxdomain(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(FetchFailed, match="cannot resolve"):
        await safe_request("GET", "http://nowhere.example.com/", allow=[], resolve=nxdomain)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://[::1]/hook",
        "http://10.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://localhost/hook",
    ],
)
async def test_api_answers_422_for_an_unsafe_webhook_url(client: AppClient, url: str) -> None:
    resp = await client.post(f"{API}/webhooks", json={"url": url})
    assert resp.status == 422
    error = (await resp.json())["error"]
    assert error["code"] == "unsafe_url" and error["message"].startswith("url refused: ")


async def test_a_webhook_url_of_another_scheme_is_refused_first(client: AppClient) -> None:
    resp = await client.post(f"{API}/webhooks", json={"url": "file:///etc/passwd"})
    assert resp.status == 422
    error = (await resp.json())["error"]  # the URL rule (safe_url.py), before any lookup
    assert error["code"] == "invalid_url" and error["message"].startswith("url: scheme 'file'")
