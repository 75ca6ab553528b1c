"""`flowboard run FLOW.json`: run a flow file headless and report what it made.

The file is a `flowboard.flow/v1` document (docs/flow-format.md). Nodes naming a local
`file` get it uploaded first; the flow is then imported (created, or updated by the
file's id), run, and followed with one progress bar per node. Exit status: 0 when every
node completed, 1 when one did not (each failure's code and message on stderr), 2 for
a file or server that cannot be used, 130 after Ctrl-C (the run is cancelled first).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import aiohttp
from pydantic import ValidationError
from rich.console import Console

from flowboard.commands.run_client import FlowboardClient, RunError, output_urls
from flowboard.commands.run_target import TOKEN_ENV, open_target
from flowboard.commands.run_view import follow
from flowboard.commands.tokens import org_name
from flowboard.config import Settings

EXIT_FAILED = 1
EXIT_UNUSABLE = 2
EXIT_INTERRUPTED = 130
T = TypeVar("T")


class Interrupted(Exception):
    """Ctrl-C (or SIGTERM) arrived."""


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = commands.add_parser("run", help="run a flow file (flowboard.flow/v1) and report")
    run.add_argument("flow", type=Path, help="the flow file")
    run.add_argument("--server", help="a Flowboard server's URL (default: the local one)")
    run.add_argument("--token", help=f"API token for --server (default: ${TOKEN_ENV})")
    run.add_argument("--download", type=Path, metavar="DIR", help="save every output in DIR")
    run.add_argument(
        "--org", type=org_name, default="default", help="organisation of a local run's flow"
    )


def load_document(path: Path) -> dict[str, Any]:
    """The file as JSON, checked against the format before anything is sent."""
    from flowboard.flowdoc import FlowDocument

    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RunError(f"{path}: {exc}") from exc
    try:
        FlowDocument.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        raise RunError(f"{path}: {where}: {first['msg']}") from exc
    document: dict[str, Any] = raw
    return document


async def upload_files(client: FlowboardClient, document: dict[str, Any], base: Path) -> None:
    """Upload each node's local `file` (relative to the flow file) and set its assetId."""
    uploaded: dict[Path, str] = {}
    for node in document.get("nodes", []):
        name = node.pop("file", None)
        if name is None:
            continue
        path = (base / name).resolve()
        if not path.is_file():
            raise RunError(f"node {node.get('id')!r}: no file {str(path)!r}")
        if path not in uploaded:
            uploaded[path] = await client.upload(path)
        node.setdefault("data", {})["assetId"] = uploaded[path]


def _download_name(node_id: str, index: int, url: str) -> str:
    name = Path(urlsplit(url).path).name or "output"
    return f"{node_id}-{index}-{name}"


async def report(
    client: FlowboardClient, final: dict[str, Any], download: Path | None, out: Console
) -> int:
    """Print each output's URL (saving it under `download`) and each failure; the exit code."""
    failed = False
    for node_id, task in final.get("tasks", {}).items():
        if task.get("status") != "COMPLETED":
            failed = True
            error = task.get("error") or {}
            code, message = error.get("code", task.get("status")), error.get("message", "")
            sys.stderr.write(f"node {node_id} {task.get('status')}: {code}: {message}\n")
        if not task.get("outputAssetId"):
            continue
        asset = await client.asset(str(task["outputAssetId"]))
        for index, url in enumerate(output_urls(asset)):
            out.print(f"{node_id}\t{client.absolute(url)}", soft_wrap=True, highlight=False)
            if download is not None:
                target = download / _download_name(node_id, index, url)
                await client.download(url, target)
                out.print(f"{node_id}\tsaved {target}", soft_wrap=True, highlight=False)
    return EXIT_FAILED if failed or final.get("status") != "COMPLETED" else 0


async def _unless_stopped(step: Awaitable[T], stop: asyncio.Event) -> T:
    """Await one step; raise Interrupted as soon as `stop` is set."""
    work = asyncio.ensure_future(step)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait((work, stopped), return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    if not work.done():
        work.cancel()
        raise Interrupted
    return work.result()


async def _run_file(settings: Settings, args: argparse.Namespace, stop: asyncio.Event) -> int:
    document = load_document(args.flow)
    if args.download is not None:
        args.download.mkdir(parents=True, exist_ok=True)
    # Status lines carry paths and URLs: never wrap them at the console's width (80
    # when stderr is not a terminal), or a copied URL breaks.
    out, status = Console(), Console(stderr=True, soft_wrap=True)
    async with (
        open_target(settings, args.server, args.token, args.org) as target,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as session,
    ):
        client = FlowboardClient(session, target.base_url, target.token)
        status.print(f"running {args.flow} on {target.where} ({target.base_url})", highlight=False)
        await _unless_stopped(upload_files(client, document, args.flow.parent), stop)
        flow = await _unless_stopped(client.import_flow(document), stop)
        execution = await _unless_stopped(client.run_flow(str(flow["id"])), stop)
        status.print(f"flow {flow['id']} execution {execution['id']}", highlight=False)
        final = await follow(client, execution, stop, status)
        if final is None:
            cancelled = await client.cancel(str(execution["id"]))
            status.print(f"execution {execution['id']} {cancelled.get('status')}", highlight=False)
            return EXIT_INTERRUPTED
        return await report(client, final, args.download, out)


async def _main(settings: Settings, args: argparse.Namespace) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        return await _run_file(settings, args, stop)
    except Interrupted:
        return EXIT_INTERRUPTED
    except (RunError, aiohttp.ClientError) as exc:
        sys.stderr.write(f"flowboard run: {exc}\n")
        return EXIT_INTERRUPTED if stop.is_set() else EXIT_UNUSABLE
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def run(settings: Settings, args: argparse.Namespace) -> int:
    """`flowboard run FLOW.json`."""
    return asyncio.run(_main(settings, args))
