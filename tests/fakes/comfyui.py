"""A local fake ComfyUI server (HTTP + websocket) that behaves like ComfyUI 0.3.64 for tests."""

from __future__ import annotations

import asyncio
import copy
import logging
import random
import uuid
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from aiohttp import web

from tests.fakes.comfyui_http import (
    SERVER_ERROR,
    FailRule,
    Handler,
    HttpFaults,
    add_file_routes,
    json_object,
    with_faults,
)
from tests.fakes.comfyui_nodes import Dirs
from tests.fakes.comfyui_records import (
    FailedRequest,
    HistoryEntry,
    HistoryLag,
    Interrupt,
    QueueDelete,
    QueueItem,
    RejectedPrompt,
    SentMessage,
    SubmittedPrompt,
    Upload,
    WsConnection,
)
from tests.fakes.comfyui_run import NodeFailure, OutputCache, PromptRun
from tests.fakes.comfyui_validate import error, validate_prompt
from tests.fakes.comfyui_ws import SocketHub

_LOGGER = logging.getLogger(__name__)


class FakeComfyUI:
    """A fake ComfyUI on 127.0.0.1 that follows the observed 0.3.64 protocol; every route also
    answers under /api/. `async with FakeComfyUI(tmp_path) as fake:` or start()/stop().

    Node classes: see comfyui_nodes.NODE_CLASSES. SaveVideo writes a real H.264 MP4
    (sides scaled to ≤ 256 px, frames from the latent `length`, fps from CreateVideo).

    Misbehaviour knobs (plain attributes unless a call is shown):
    - step_delay: seconds before each sampler `progress` step (slow runs). Default 0.
    - node_delay: seconds every executed node takes before its steps. Default 0.
    - step_progress_state: also send a progress_state before every `progress` step.
    - fail_next_requests(count, status=503, path=None): answer the next `count` HTTP
      requests (those under `path`, e.g. "/prompt"; /ws only when named) with `status`
      (500/503/429; 429 carries Retry-After: 1) without handling them.
    - fail_randomly(ratio, statuses=(429, 500), seed=0): fail that share of HTTP requests.
    - drop_websockets_after(messages, client_id=None, abrupt=False): close the open
      socket(s) after `messages` more messages; the prompt keeps running. abrupt=True cuts
      the transport without a close frame.
    - history_delay: seconds between execution_success and the prompt entering history (it
      stays in queue_running meanwhile), as on a real server where the first /history read
      right after execution_success often misses. Default 0.
    - history_lag_reads / history_lag_mode: after a prompt succeeds, its next N /history
      reads answer {} (HistoryLag.MISSING) or the entry with outputs {} (NO_OUTPUTS).
    - await restart(): forget queue, history, cache and queue numbers, kill the running
      prompt (no more events) and cut every socket; the server keeps listening.
    - fail_node_class(class_type, message, exception_type="RuntimeError"): every node of
      that class fails at run time (execution_error). `failing_nodes` holds these.
    - accept_then_fail(class_type, input_name, value, message): that input value passes
      validation (even out of range or list) and the node fails at run time.
    - stale_socket_evicts_new: reproduce ComfyUI's bug where an old socket closing removes
      a newer socket with the same clientId from routing.
    - clear_faults(): reset every knob above.

    Records for assertions: prompts, rejected_prompts, uploads, interrupts, queue_deletes,
    failed_requests, requests ((method, path) of every HTTP request handled, /ws included),
    ws_connections, sent (every websocket message), restarts.
    """

    def __init__(self, root: Path, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.dirs = Dirs(root / "input", root / "output", root / "temp")
        self.host, self.port = host, port
        self.step_delay = 0.0
        self.node_delay = 0.0
        self.step_progress_state = False
        self.history_delay = 0.0
        self.history_lag_reads = 0
        self.history_lag_mode = HistoryLag.MISSING
        self.failing_nodes: dict[str, NodeFailure] = {}
        self.accept_then_fail_inputs: dict[tuple[str, str], tuple[Any, NodeFailure]] = {}
        self._faults = HttpFaults()
        self.prompts: list[SubmittedPrompt] = []
        self.rejected_prompts: list[RejectedPrompt] = []
        self.uploads: list[Upload] = []
        self.interrupts: list[Interrupt] = []
        self.queue_deletes: list[QueueDelete] = []
        self.restarts = 0
        self._hub = SocketHub()
        self._cache = OutputCache()
        self._pending: list[QueueItem] = []
        self._running: PromptRun | None = None
        self._history: dict[str, HistoryEntry] = {}
        self._number = 0
        self._interrupt = False
        self._wakeup = asyncio.Event()
        self._changed = asyncio.Condition()
        self._worker: asyncio.Task[None] | None = None
        self._runner: web.AppRunner | None = None

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Return the base URL, e.g. http://127.0.0.1:PORT."""
        return f"http://{self.host}:{self.port}"

    def ws_url(self, client_id: str) -> str:
        """Return the websocket URL for a clientId."""
        return f"ws://{self.host}:{self.port}/ws?clientId={client_id}"

    async def start(self) -> FakeComfyUI:
        """Create the folders, listen, and start the prompt worker."""
        for folder in (self.dirs.input, self.dirs.output, self.dirs.temp):
            folder.mkdir(parents=True, exist_ok=True)
        runner = web.AppRunner(self._make_app(), access_log=None, shutdown_timeout=5.0)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        self._start_worker()
        _LOGGER.debug("fake comfyui listening on %s", self.url)
        return self

    async def stop(self) -> None:
        """Stop the worker, close every socket and stop listening."""
        await self._stop_worker()
        await self._hub.close_all("stopped", abrupt=False)
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> FakeComfyUI:
        return await self.start()

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def restart(self) -> None:
        """Act like a ComfyUI restart: forget all prompts, kill the running one, cut sockets."""
        await self._stop_worker()
        self._pending.clear()
        self._running = None
        self._history.clear()
        self._cache.clear()
        self._number = 0
        self._interrupt = False
        self.restarts += 1
        await self._notify()
        await self._hub.close_all("restart", abrupt=True)
        self._start_worker()

    # -- knobs ------------------------------------------------------------------------------

    def fail_next_requests(self, count: int, status: int = 503, path: str | None = None) -> None:
        """Fail the next `count` HTTP requests (under `path` if given) with `status`."""
        self._faults.rule = FailRule(count, status, path)

    def fail_randomly(
        self, ratio: float, statuses: tuple[int, ...] = (429, 500), seed: int = 0
    ) -> None:
        """Fail a `ratio` share of HTTP requests (not /ws) with one of `statuses`."""
        self._faults.ratio, self._faults.statuses = ratio, statuses
        self._faults.rng = random.Random(seed)

    def drop_websockets_after(
        self, messages: int, client_id: str | None = None, *, abrupt: bool = False
    ) -> int:
        """Close open socket(s) after `messages` more messages; return how many were armed."""
        return self._hub.drop_after(messages, client_id, abrupt=abrupt)

    def fail_node_class(
        self, class_type: str, message: str, exception_type: str = "RuntimeError"
    ) -> None:
        """Make every node of `class_type` raise at run time."""
        self.failing_nodes[class_type] = NodeFailure(message, exception_type)

    def accept_then_fail(
        self,
        class_type: str,
        input_name: str,
        value: Any,
        message: str,
        exception_type: str = "ValueError",
    ) -> None:
        """Let `value` pass validation for that input, then fail the node at run time."""
        failure = NodeFailure(message, exception_type)
        self.accept_then_fail_inputs[(class_type, input_name)] = (value, failure)

    def clear_faults(self) -> None:
        """Reset every misbehaviour knob."""
        self.step_delay = self.node_delay = 0.0
        self.step_progress_state = False
        self.history_delay = 0.0
        self.history_lag_reads = 0
        self.history_lag_mode = HistoryLag.MISSING
        self.failing_nodes.clear()
        self.accept_then_fail_inputs.clear()
        self._faults.rule = None
        self._hub.stale_socket_evicts_new = False

    @property
    def stale_socket_evicts_new(self) -> bool:
        """Say whether an old socket's close also unroutes a newer one with its clientId."""
        return self._hub.stale_socket_evicts_new

    @stale_socket_evicts_new.setter
    def stale_socket_evicts_new(self, value: bool) -> None:
        self._hub.stale_socket_evicts_new = value

    def runtime_failure(self, class_type: str, inputs: Mapping[str, Any]) -> NodeFailure | None:
        """Return the failure a node must raise at run time, if a knob asks for one."""
        for (cls, name), (value, failure) in self.accept_then_fail_inputs.items():
            if cls == class_type and name in inputs and inputs[name] == value:
                return failure
        return self.failing_nodes.get(class_type)

    def _lenient(self, class_type: str, input_name: str, value: Any) -> bool:
        entry = self.accept_then_fail_inputs.get((class_type, input_name))
        return entry is not None and entry[0] == value

    # -- records and waiting ----------------------------------------------------------------

    @property
    def failed_requests(self) -> list[FailedRequest]:
        """Return the HTTP requests failed on purpose."""
        return self._faults.failed

    @property
    def requests(self) -> list[tuple[str, str]]:
        """Return (method, path) of every HTTP request handled, in order (/api/ stripped)."""
        return self._faults.handled

    @property
    def ws_connections(self) -> list[WsConnection]:
        """Return every websocket connection so far, open or closed."""
        return self._hub.connections

    @property
    def sent(self) -> list[SentMessage]:
        """Return every websocket message sent so far."""
        return self._hub.sent

    def sent_to(self, client_id: str) -> list[SentMessage]:
        """Return the messages sent to one clientId's sockets."""
        return [m for m in self._hub.sent if m.sid == client_id]

    @property
    def running_prompt_id(self) -> str | None:
        """Return the id of the prompt being executed."""
        return self._running.item.prompt_id if self._running else None

    @property
    def pending_prompt_ids(self) -> list[str]:
        """Return the pending prompt ids in run order."""
        return [item.prompt_id for item in sorted(self._pending, key=lambda i: i.number)]

    def history_entry(self, prompt_id: str) -> HistoryEntry | None:
        """Return a finished prompt's history entry, ignoring any history lag."""
        return self._history.get(prompt_id)

    async def wait_for_history(self, prompt_id: str) -> HistoryEntry:
        """Wait until a prompt has finished (success or error); bound it with asyncio.timeout."""
        async with self._changed:
            await self._changed.wait_for(lambda: prompt_id in self._history)
        return self._history[prompt_id]

    async def wait_idle(self) -> None:
        """Wait until nothing is running or pending; bound it with asyncio.timeout."""
        async with self._changed:
            await self._changed.wait_for(lambda: not self._pending and self._running is None)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # -- worker -----------------------------------------------------------------------------

    def _start_worker(self) -> None:
        self._worker = asyncio.create_task(self._work(), name="fake-comfyui-worker")

    async def _stop_worker(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)

    async def _work(self) -> None:
        # Runs until _stop_worker cancels it (stop or restart).
        while True:
            while not self._pending:
                self._wakeup.clear()
                await self._wakeup.wait()
            item = min(self._pending, key=lambda i: i.number)
            self._pending.remove(item)
            await self._execute(item)

    async def _execute(self, item: QueueItem) -> None:
        self._interrupt = False
        run = PromptRun(
            item,
            knobs=self,
            cache=self._cache,
            dirs=self.dirs,
            send=self._hub.send,
            interrupted=lambda: self._interrupt,
        )
        self._running = run
        await self._broadcast_status()
        try:
            entry = await run.run()
        except Exception:
            _LOGGER.exception("fake comfyui: prompt %s crashed", item.prompt_id)
            entry = HistoryEntry(item, "error", [], {})
        if entry.status_str == "success":
            entry.hidden_reads, entry.lag = self.history_lag_reads, self.history_lag_mode
            if self.history_delay > 0:
                await asyncio.sleep(self.history_delay)  # still in queue_running meanwhile
        self._history[item.prompt_id] = entry
        self._running = None
        await self._notify()
        await self._broadcast_status()
        if item.client_id is not None:
            await self._hub.send(
                "executing", {"node": None, "prompt_id": item.prompt_id}, item.client_id
            )

    def _queue_info(self) -> dict[str, Any]:
        remaining = len(self._pending) + (1 if self._running else 0)
        return {"exec_info": {"queue_remaining": remaining}}

    async def _broadcast_status(self) -> None:
        await self._hub.send("status", {"status": self._queue_info()}, None)

    def _greeting(self, sid: str) -> list[tuple[str, dict[str, Any]]]:
        frames = [("status", {"status": self._queue_info(), "sid": sid})]
        run = self._running
        if run is not None and run.item.client_id == sid and run.current_node is not None:
            frames.append(("executing", {"node": run.current_node}))
        return frames

    # -- HTTP -------------------------------------------------------------------------------

    def _make_app(self) -> web.Application:
        app = with_faults(self._faults, client_max_size=100 * 1024 * 1024)
        routes: list[tuple[str, str, Handler]] = [
            ("GET", "/ws", self._ws),
            ("POST", "/prompt", self._post_prompt),
            ("GET", "/prompt", self._get_prompt),
            ("GET", "/queue", self._get_queue),
            ("POST", "/queue", self._post_queue),
            ("POST", "/interrupt", self._post_interrupt),
            ("GET", "/history", self._get_history),
            ("POST", "/history", self._post_history),
            ("GET", "/history/{prompt_id}", self._get_history_item),
        ]
        for method, path, handler in routes:
            app.router.add_route(method, path, handler)
            app.router.add_route(method, "/api" + path, handler)
        add_file_routes(app, self.dirs, self.uploads)
        return app

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        return await self._hub.handle(request, self._greeting)

    async def _post_prompt(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except ValueError:
            return web.Response(status=500, text=SERVER_ERROR, content_type="text/plain")
        if not isinstance(body, dict) or "prompt" not in body:
            no_prompt = error("no_prompt", "No prompt provided", "No prompt provided")
            return self._reject(body, {"error": no_prompt, "node_errors": {}})
        checked = validate_prompt(body["prompt"], self.dirs, self._lenient)
        if checked.error is not None:
            return self._reject(body, {"error": checked.error, "node_errors": checked.node_errors})
        item = self._enqueue(body, checked.outputs)
        await self._broadcast_status()
        self._wakeup.set()
        return web.json_response(
            {"prompt_id": item.prompt_id, "number": item.number, "node_errors": checked.node_errors}
        )

    def _reject(self, body: Any, answer: dict[str, Any]) -> web.Response:
        self.rejected_prompts.append(RejectedPrompt(body, answer))
        return web.json_response(answer, status=400)

    def _enqueue(self, body: dict[str, Any], outputs: list[str]) -> QueueItem:
        number = int(body["number"]) if "number" in body else self._number
        if body.get("front"):
            number = -number
        self._number += 1
        given = body.get("extra_data")
        extra = dict(given) if isinstance(given, dict) else {}
        if "client_id" in body:
            extra["client_id"] = body["client_id"]
        prompt_id = str(body.get("prompt_id") or uuid.uuid4())
        item = QueueItem(number, prompt_id, copy.deepcopy(body["prompt"]), extra, outputs)
        self._pending.append(item)
        self.prompts.append(
            SubmittedPrompt(prompt_id, number, item.client_id, item.prompt, copy.deepcopy(body))
        )
        _LOGGER.debug("fake comfyui: queued prompt %s as %d", prompt_id, number)
        return item

    async def _get_prompt(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self._queue_info())

    async def _get_queue(self, request: web.Request) -> web.StreamResponse:
        running = [self._running.item.as_json()] if self._running else []
        pending = sorted(self._pending, key=lambda i: i.number)
        return web.json_response(
            {"queue_running": running, "queue_pending": [i.as_json() for i in pending]}
        )

    async def _post_queue(self, request: web.Request) -> web.StreamResponse:
        body = await json_object(request)
        clear = bool(body.get("clear"))
        wanted = [str(i) for i in body.get("delete") or []]
        removed = [i.prompt_id for i in self._pending if clear or i.prompt_id in wanted]
        self._pending = [i for i in self._pending if i.prompt_id not in removed]
        self.queue_deletes.append(QueueDelete(wanted, clear, removed))
        if removed:
            await self._notify()
            await self._broadcast_status()
        return web.Response(status=200)

    async def _post_interrupt(self, request: web.Request) -> web.StreamResponse:
        body = await json_object(request)
        wanted = body.get("prompt_id")
        running = self.running_prompt_id
        applied = running is not None and (wanted is None or wanted == running)
        if applied:
            self._interrupt = True
        self.interrupts.append(Interrupt(wanted, running, applied))
        return web.Response(status=200)

    async def _get_history(self, request: web.Request) -> web.StreamResponse:
        answer = {}
        for prompt_id, entry in self._history.items():
            value = entry.read()
            if value is not None:
                answer[prompt_id] = value
        limit = request.query.get("max_items")
        if limit is not None and limit.isdigit():
            answer = dict(list(answer.items())[-int(limit) :] if int(limit) else [])
        return web.json_response(answer)

    async def _get_history_item(self, request: web.Request) -> web.StreamResponse:
        prompt_id = request.match_info["prompt_id"]
        entry = self._history.get(prompt_id)
        value = entry.read() if entry is not None else None
        return web.json_response({prompt_id: value} if value is not None else {})

    async def _post_history(self, request: web.Request) -> web.StreamResponse:
        body = await json_object(request)
        if body.get("clear"):
            self._history.clear()
        for prompt_id in body.get("delete") or []:
            self._history.pop(str(prompt_id), None)
        return web.Response(status=200)
