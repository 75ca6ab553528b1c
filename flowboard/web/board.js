// The canvas of one flow: nodes at their positions, edges between them, live from the
// flow's event stream; every change goes through the API and comes back as an event.

import { ApiError } from "./api.js";
import { h, notify, replaceChildren } from "./dom.js";
import { ACTIVE, NodeCard } from "./nodecard.js";
import { FlowStream } from "./stream.js";

const SVG = "http://www.w3.org/2000/svg";
const STEP = 20;
const PORT_Y = 22;
// On a phone the nodes are listed top to bottom (app.css): there is nothing to drag.
const PHONE = window.matchMedia("(max-width: 600px)");

export class Board {
  /**
   * @param {import("./api.js").Api} api
   * @param {Map<string, import("./schema.js").NodeTypeInfo>} types
   * @param {string} flowId
   * @param {() => void} onLeave go back to the flow list
   */
  constructor(api, types, flowId, onLeave) {
    this.api = api;
    this.types = types;
    this.flowId = flowId;
    this.onLeave = onLeave;
    this.flow = null;
    this.cards = new Map();
    this.tasks = new Map(); // node id -> {execution, task}
    this.executions = new Map(); // execution id -> latest execution
    this.assetUrls = new Map();
    this.dragging = null;
    this.connecting = null;
    this.reserved = new Set(); // "x,y" of nodes being added
    this.element = this.build();
    this.stream = new FlowStream(api, flowId, (type, data) => this.receive(type, data),
      (state) => this.setLink(state));
  }

  build() {
    this.nameEl = h("h2", { class: "flow-name" }, "…");
    this.link = h("span", { class: "link", role: "status", dataset: { state: "connecting" } }, "connecting");
    const addButtons = [...this.types.values()]
      .filter((t) => t.name !== "generated_asset" && t.name !== "asset")
      .map((t) => h("button", { type: "button", onclick: () => this.addNode(t.name) }, `Add ${t.name.replace(/_/g, " ")}`));
    this.filePicker = h("input", {
      type: "file", accept: "image/*", id: "image-picker", hidden: true,
      onchange: () => this.addImages([...this.filePicker.files]),
    });
    const toolbar = h("div", { class: "toolbar", role: "toolbar", aria: { label: "Flow actions" } },
      h("button", { type: "button", onclick: () => this.onLeave() }, "← Flows"),
      h("button", { type: "button", onclick: () => this.runFlow() }, "Run flow"),
      h("button", { type: "button", onclick: () => this.cancelAll() }, "Cancel run"),
      h("button", { type: "button", onclick: () => this.retryFailed() }, "Retry failed"),
      addButtons,
      h("button", { type: "button", onclick: () => this.filePicker.click() }, "Add image…"),
      this.filePicker);
    this.edges = document.createElementNS(SVG, "svg");
    this.edges.classList.add("edges");
    this.edges.setAttribute("aria-hidden", "true");
    this.surface = h("div", { class: "surface", role: "region", aria: { label: "Canvas" } }, this.edges);
    this.board = h("div", {
      class: "board",
      ondragover: (event) => event.preventDefault(),
      ondrop: (event) => this.drop(event),
    }, this.surface);
    this.surface.addEventListener("pointerdown", (event) => this.dragStart(event));
    this.surface.addEventListener("keydown", (event) => this.key(event));
    return h("section", { class: "flow-view" },
      h("div", { class: "flow-head" }, this.nameEl, this.link),
      h("p", { class: "hint" }, "Keys on a focused node: arrows move it, R runs, C cancels, Delete removes; Esc stops connecting."),
      toolbar, this.board);
  }

  async open() {
    const [flow, runs] = await Promise.all([
      this.api.get(`/flows/${encodeURIComponent(this.flowId)}`),
      this.api.get(`/flows/${encodeURIComponent(this.flowId)}/executions?limit=20`).catch(() => ({ items: [] })),
    ]);
    this.takeFlow(flow, true);
    for (const execution of runs.items.reverse()) this.takeExecution(execution);
    this.stream.start();
  }

  close() {
    this.stream.stop();
  }

  setLink(state) {
    this.link.dataset.state = state;
    this.link.textContent = state === "live" ? "live" : state;
  }

  // -- state from the server ---------------------------------------------------------

  receive(type, data) {
    if (type === "SYNC_CANVAS") this.takeFlow(data, false);
    else if (type === "CANVAS_PATCH") this.takePatch(data);
    else if (type === "EXECUTION_UPDATE") this.takeExecution(data);
    else if (type === "FLOW_DELETED") {
      notify("This flow was deleted.", "warning");
      this.onLeave();
    }
  }

  /** A whole flow (snapshot or an API answer): newer than ours, or forced, replaces ours. */
  takeFlow(flow, force) {
    if (!force && this.flow && flow.revision < this.flow.revision) return;
    this.flow = { ...flow, nodes: [...flow.nodes], edges: [...flow.edges] };
    this.render();
  }

  takePatch(patch) {
    if (!this.flow || patch.revision <= this.flow.revision) return;
    if (patch.baseRevision !== this.flow.revision) {
      this.reload(); // we missed an edit: read the whole flow
      return;
    }
    const upsert = (list, items) => {
      const index = new Map(list.map((item, i) => [item.id, i]));
      for (const item of items) {
        if (index.has(item.id)) list[index.get(item.id)] = item;
        else list.push(item);
      }
    };
    const flow = this.flow;
    upsert(flow.nodes, patch.nodes || []);
    upsert(flow.edges, patch.edges || []);
    const goneNodes = new Set(patch.removedNodes || []);
    const goneEdges = new Set(patch.removedEdges || []);
    flow.nodes = flow.nodes.filter((n) => !goneNodes.has(n.id));
    flow.edges = flow.edges.filter((e) => !goneEdges.has(e.id));
    if (patch.name) flow.name = patch.name;
    flow.revision = patch.revision;
    this.render();
  }

  async reload() {
    try {
      this.takeFlow(await this.api.get(`/flows/${encodeURIComponent(this.flowId)}`), true);
    } catch (err) {
      this.fail(err);
    }
  }

  takeExecution(execution) {
    const known = this.executions.get(execution.id);
    if (known && known.version > execution.version) return;
    this.executions.set(execution.id, execution);
    for (const [nodeId, task] of Object.entries(execution.tasks)) {
      const current = this.tasks.get(nodeId);
      const newer = !current || current.execution.id === execution.id ||
        current.execution.createdAt <= execution.createdAt;
      if (newer) this.tasks.set(nodeId, { execution, task });
    }
    for (const [nodeId, card] of this.cards) card.setTask(this.tasks.get(nodeId)?.task ?? null);
  }

  // -- rendering ---------------------------------------------------------------------

  render() {
    const flow = this.flow;
    this.nameEl.textContent = flow.name;
    this.board.dataset.revision = String(flow.revision);
    const byId = new Map(flow.nodes.map((n) => [n.id, n]));
    for (const [id, card] of this.cards) {
      if (!byId.has(id)) {
        card.element.remove();
        this.cards.delete(id);
      }
    }
    for (const node of flow.nodes) {
      let card = this.cards.get(node.id);
      if (!card) {
        card = new NodeCard(node, this.types.get(node.type), this.actions());
        this.cards.set(node.id, card);
        this.surface.append(card.element);
        card.setTask(this.tasks.get(node.id)?.task ?? null);
      } else if (card.node !== node) {
        card.update(node);
      }
      if (this.dragging?.id !== node.id) this.place(card, node.position.x, node.position.y);
      card.setInputs(flow.edges.filter((e) => e.target === node.id), byId);
      card.setConnecting(this.connecting);
    }
    // DOM order follows the flow's order, so Tab walks the nodes as stored (moved only
    // when it differs: moving an element would take the focus away from it).
    const shown = [...this.surface.querySelectorAll(":scope > .node")].map((el) => el.dataset.nodeId);
    if (shown.join("\n") !== flow.nodes.map((n) => n.id).join("\n")) {
      for (const node of flow.nodes) this.surface.append(this.cards.get(node.id).element);
    }
    this.drawEdges();
  }

  place(card, x, y) {
    card.element.style.left = `${x}px`;
    card.element.style.top = `${y}px`;
    card.element.dataset.x = String(Math.round(x));
    card.element.dataset.y = String(Math.round(y));
  }

  drawEdges() {
    let width = 0;
    let height = 0;
    for (const card of this.cards.values()) {
      const el = card.element;
      width = Math.max(width, el.offsetLeft + el.offsetWidth + 40);
      height = Math.max(height, el.offsetTop + el.offsetHeight + 40);
    }
    this.surface.style.minWidth = `${width}px`;
    this.surface.style.minHeight = `${height}px`;
    this.edges.setAttribute("width", String(width));
    this.edges.setAttribute("height", String(height));
    const paths = this.flow.edges.map((edge) => {
      const from = this.cards.get(edge.source)?.element;
      const to = this.cards.get(edge.target)?.element;
      if (!from || !to) return null;
      const x1 = from.offsetLeft + from.offsetWidth;
      const y1 = from.offsetTop + PORT_Y;
      const x2 = to.offsetLeft;
      const y2 = to.offsetTop + PORT_Y;
      const bend = Math.max(40, Math.abs(x2 - x1) / 2);
      const path = document.createElementNS(SVG, "path");
      path.setAttribute("d", `M${x1},${y1} C${x1 + bend},${y1} ${x2 - bend},${y2} ${x2},${y2}`);
      path.dataset.edgeId = edge.id;
      return path;
    });
    replaceChildren(this.edges, paths);
  }

  // -- user actions ------------------------------------------------------------------

  actions() {
    return {
      edit: (id, name, value) => this.edit(id, name, value),
      run: (id) => this.run(id),
      cancel: (id) => this.cancel(id),
      retry: (id) => this.retry(id),
      remove: (id) => this.write(() => this.api.delete(this.nodePath(id))),
      removeEdge: (id) => this.write(() => this.api.delete(`/flows/${encodeURIComponent(this.flowId)}/edges/${encodeURIComponent(id)}`)),
      connectFrom: (id) => this.connectFrom(id),
      connectTo: (id) => this.connectTo(id),
      assetUrl: (data) => this.assetUrl(data),
    };
  }

  async edit(id, name, value) {
    const flow = await this.write(() => this.api.patch(this.nodePath(id), { data: { [name]: value } }));
    const card = this.cards.get(id);
    if (!flow && card && card.form) card.form.update(card.node.data, true); // refused: show what is stored
  }

  nodePath(id) {
    return `/flows/${encodeURIComponent(this.flowId)}/nodes/${encodeURIComponent(id)}`;
  }

  /** Send one edit; take the flow it answers; on a conflict show the server's flow. */
  async write(call) {
    try {
      const flow = await call();
      if (flow && flow.revision) this.takeFlow(flow, false);
      return flow;
    } catch (err) {
      if (err instanceof ApiError && err.status === 409) {
        notify("Conflict: someone else changed this flow first. Showing the current version.", "warning");
        await this.reload();
      } else {
        this.fail(err);
      }
      return null;
    }
  }

  fail(err) {
    notify(err instanceof ApiError ? `${err.code}: ${err.message}` : String(err), "error");
  }

  /** The first grid slot no node stands on, nor a node still being added. */
  freeSpot() {
    const taken = new Set(this.reserved);
    for (const node of this.flow ? this.flow.nodes : []) {
      taken.add(`${Math.round(node.position.x)},${Math.round(node.position.y)}`);
    }
    for (let slot = 0; ; slot++) {
      const spot = { x: 40 + (slot % 4) * 300, y: 40 + Math.floor(slot / 4) * 320 };
      if (!taken.has(`${spot.x},${spot.y}`)) return spot;
    }
  }

  async addNode(type, data = {}, position = this.freeSpot()) {
    const key = `${position.x},${position.y}`;
    this.reserved.add(key); // a second click before the answer must not land here too
    try {
      return await this.write(() => this.api.post(`/flows/${encodeURIComponent(this.flowId)}/nodes`, { type, position, data }));
    } finally {
      this.reserved.delete(key);
    }
  }

  async addImages(files, position) {
    for (const file of files) {
      if (!file.type.startsWith("image/")) continue;
      try {
        notify(`Uploading ${file.name}…`);
        const asset = await this.api.upload(file);
        this.assetUrls.set(asset.id, asset.url);
        await this.addNode("asset", { assetId: asset.id, mediaType: "image", label: file.name }, position);
        notify("");
      } catch (err) {
        this.fail(err);
      }
    }
    this.filePicker.value = "";
  }

  drop(event) {
    event.preventDefault();
    const files = [...(event.dataTransfer?.files || [])];
    const rect = this.surface.getBoundingClientRect();
    this.addImages(files, { x: Math.max(0, event.clientX - rect.left), y: Math.max(0, event.clientY - rect.top) });
  }

  async assetUrl(data) {
    if (data.url) return data.url;
    if (!data.assetId) return null;
    if (!this.assetUrls.has(data.assetId)) {
      const asset = await this.api.get(`/assets/${encodeURIComponent(data.assetId)}`).catch(() => null);
      this.assetUrls.set(data.assetId, asset ? asset.url : null);
    }
    return this.assetUrls.get(data.assetId);
  }

  connectFrom(id) {
    this.connecting = this.connecting === id ? null : id;
    for (const card of this.cards.values()) card.setConnecting(this.connecting);
    if (this.connecting) notify("Choose the node to connect to (Esc to stop).");
    else notify("");
  }

  async connectTo(id) {
    const source = this.connecting;
    this.connectFrom(source); // leave connecting mode
    if (!source || source === id) return;
    await this.write(() => this.api.post(`/flows/${encodeURIComponent(this.flowId)}/edges`, { source, target: id }));
  }

  /** Post an execution action; show the execution it answers, or tell why it failed. */
  async act(path, body) {
    try {
      this.takeExecution(await this.api.post(path, body));
    } catch (err) {
      this.fail(err);
    }
  }

  async run(id) {
    await this.act("/run-node", { flowId: this.flowId, nodeId: id });
  }

  async runFlow() {
    await this.act(`/run/${encodeURIComponent(this.flowId)}`);
  }

  async cancel(id) {
    const entry = this.tasks.get(id);
    if (!entry) return;
    await this.act(`/executions/${entry.execution.id}/cancel`, { nodeId: id });
  }

  async cancelAll() {
    const active = [...this.executions.values()].filter((e) => ACTIVE.has(e.status));
    for (const execution of active) {
      await this.act(`/executions/${execution.id}/cancel`);
    }
  }

  async retry(id) {
    const entry = this.tasks.get(id);
    if (!entry) return;
    await this.act(`/executions/${entry.execution.id}/retry`);
  }

  async retryFailed() {
    const failed = [...this.executions.values()]
      .filter((e) => e.status === "FAILED" || e.status === "CANCELLED")
      .sort((a, b) => (a.createdAt < b.createdAt ? 1 : -1));
    if (!failed.length) return notify("Nothing to retry.");
    await this.act(`/executions/${failed[0].id}/retry`);
  }

  // -- moving nodes --------------------------------------------------------------------

  dragStart(event) {
    const head = event.target.closest(".node-head");
    if (!head || event.target.closest("button") || event.button !== 0 || PHONE.matches) return;
    const element = head.closest(".node");
    const card = this.cards.get(element.dataset.nodeId);
    if (!card) return;
    event.preventDefault();
    element.focus();
    // The move is based on the revision shown when it began.
    this.dragging = {
      id: card.id, baseRevision: this.flow.revision, startX: event.clientX, startY: event.clientY,
      x: card.node.position.x, y: card.node.position.y, moved: false,
    };
    head.setPointerCapture(event.pointerId);
    const move = (e) => this.dragMove(card, e);
    const end = () => {
      head.removeEventListener("pointermove", move);
      head.removeEventListener("pointerup", end);
      head.removeEventListener("pointercancel", end);
      this.dragEnd(card);
    };
    head.addEventListener("pointermove", move);
    head.addEventListener("pointerup", end);
    head.addEventListener("pointercancel", end);
  }

  dragMove(card, event) {
    const drag = this.dragging;
    if (!drag) return;
    drag.moved = true;
    const x = Math.max(0, drag.x + event.clientX - drag.startX);
    const y = Math.max(0, drag.y + event.clientY - drag.startY);
    this.place(card, x, y);
    this.drawEdges();
  }

  async dragEnd(card) {
    const drag = this.dragging;
    if (!drag) return;
    const position = { x: Number(card.element.dataset.x), y: Number(card.element.dataset.y) };
    if (!drag.moved) {
      this.dragging = null;
      return;
    }
    await this.write(() => this.api.patch(this.nodePath(drag.id), { position, baseRevision: drag.baseRevision }));
    this.dragging = null;
    this.render();
  }

  key(event) {
    const element = event.target;
    if (event.key === "Escape" && this.connecting) return this.connectFrom(this.connecting);
    if (!element.classList || !element.classList.contains("node")) return;
    const card = this.cards.get(element.dataset.nodeId);
    if (!card) return;
    const moves = { ArrowLeft: [-STEP, 0], ArrowRight: [STEP, 0], ArrowUp: [0, -STEP], ArrowDown: [0, STEP] };
    if (moves[event.key]) {
      event.preventDefault();
      const [dx, dy] = moves[event.key];
      const position = { x: Math.max(0, card.node.position.x + dx), y: Math.max(0, card.node.position.y + dy) };
      this.write(() => this.api.patch(this.nodePath(card.id), { position, baseRevision: this.flow.revision }));
    } else if (event.key === "Delete" || event.key === "Backspace") {
      event.preventDefault();
      this.write(() => this.api.delete(this.nodePath(card.id)));
    } else if (event.key === "r" || event.key === "R") {
      if (card.info?.runnable) this.run(card.id);
    } else if (event.key === "c" || event.key === "C") {
      this.cancel(card.id);
    }
  }
}
