"""Debian's nginx in front of a cluster, configured from the shipped deploy/nginx.conf."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.servers._process import ServerProcess, free_port

NGINX = Path("/usr/sbin/nginx")
DEPLOYED = Path(__file__).resolve().parents[2] / "deploy" / "nginx.conf"


@dataclass(frozen=True)
class NginxServer:
    """A running nginx: its URL, and its access log (`<upstream address> <request line>`)."""

    url: str
    root: Path

    def upstreams(self, path_part: str) -> list[str]:
        """The upstream addresses that served requests whose line contains `path_part`."""
        lines = (self.root / "access.log").read_text().splitlines()
        return [line.split(" ", 1)[0] for line in lines if path_part in line]


StartNginx = Callable[[Sequence[int]], NginxServer]


def render(upstream_ports: Sequence[int], port: int) -> str:
    """deploy/nginx.conf with these servers in its upstream, listening on `port`."""
    text = DEPLOYED.read_text()
    servers = "".join(
        f"    server 127.0.0.1:{p} max_fails=1 fail_timeout=5s;\n" for p in upstream_ports
    )
    text, found = re.subn(
        r"(upstream flowboard \{\n)(?:.*\n)*?(    keepalive)", rf"\g<1>{servers}\g<2>", text
    )
    assert found == 1, "deploy/nginx.conf has no `upstream flowboard` block"
    text, found = re.subn(r"listen 80;", f"listen 127.0.0.1:{port};", text)
    assert found == 1, "deploy/nginx.conf has no `listen 80;`"
    return text


def main_config(root: Path, site: Path) -> str:
    """A main nginx.conf of a test's own: every path under `root`, in the foreground."""
    temps = "".join(
        f"    {name}_temp_path {root / name};\n"
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        f"daemon off;\nworker_processes 1;\npid {root / 'nginx.pid'};\n"
        f"error_log {root / 'error.log'} info;\nevents {{ worker_connections 1024; }}\n"
        "http {\n    log_format upstream '$upstream_addr $request';\n"
        f"    access_log {root / 'access.log'} upstream;\n{temps}    include {site};\n}}\n"
    )


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[StartNginx]:
    """`nginx(ports)` starts nginx in front of the servers on those loopback ports."""
    if not NGINX.exists():
        pytest.skip("nginx is not installed (Debian package nginx; .ci/run installs it)")
    started: list[ServerProcess] = []

    def start(upstream_ports: Sequence[int]) -> NginxServer:
        root = tmp_path / f"nginx{len(started)}"
        root.mkdir()
        port = free_port()
        site = root / "flowboard.conf"
        site.write_text(render(upstream_ports, port))
        conf = root / "nginx.conf"
        conf.write_text(main_config(root, site))
        argv = [str(NGINX), "-c", str(conf), "-p", str(root), "-e", str(root / "error.log")]
        started.append(ServerProcess(argv, port, root / "stdout.log").start())
        return NginxServer(f"http://127.0.0.1:{port}", root)

    try:
        yield start
    finally:
        for server in started:
            server.stop()
