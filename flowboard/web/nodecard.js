// One node on the canvas: its header (drag handle, ports), media, fields, inputs and run state.

import { h, replaceChildren } from "./dom.js";
import { fieldForm } from "./fields.js";
import { safeUrl } from "./urls.js";

/** Task and execution statuses that are still running (cancel applies). */
export const ACTIVE = new Set(["PENDING", "QUEUED", "PROCESSING"]);

/** A node's name on screen: its label, else its type and the end of its id. */
function label(node) {
  if (node.data.label) return node.data.label;
  const type = node.type.replace(/_/g, " ");
  return `${type.charAt(0).toUpperCase()}${type.slice(1)} ${node.id.slice(-6)}`;
}

export class NodeCard {
  /**
   * @param {any} node
   * @param {import("./schema.js").NodeTypeInfo | undefined} info
   * @param {Record<string, Function>} actions the board's handlers
   */
  constructor(node, info, actions) {
    this.id = node.id;
    this.info = info;
    this.actions = actions;
    this.mediaKey = "";
    this.task = null;
    this.element = this.build(node);
    this.update(node);
  }

  build(node) {
    const { actions } = this;
    this.title = h("h3", { class: "node-title" });
    this.inPort = h("button", {
      type: "button", class: "port port-in", hidden: true,
      onclick: () => actions.connectTo(this.id),
    }, "⇥");
    this.outPort = h("button", {
      type: "button", class: "port port-out", onclick: () => actions.connectFrom(this.id),
    }, "↦");
    this.head = h("header", { class: "node-head" }, this.inPort, this.title, this.outPort);
    this.media = h("div", { class: "media" });
    this.inputs = h("ul", { class: "inputs", aria: { label: "Inputs" } });
    const parts = [this.head, this.media];
    if (node.type !== "generated_asset" && this.info && this.info.fields.length) {
      this.form = fieldForm(this.info.fields, (name, value) => actions.edit(this.id, name, value));
      const open = node.type !== "asset";
      parts.push(h("details", { class: "settings", open }, h("summary", {}, "Fields"), this.form.element));
    }
    parts.push(this.inputs);
    if (this.info && this.info.runnable) parts.push(this.buildRun());
    parts.push(h("footer", { class: "node-foot" }, h("button", {
      type: "button", class: "danger", onclick: () => actions.remove(this.id),
    }, "Delete node")));
    return h("article", {
      class: "node", tabIndex: 0, role: "group", dataset: { nodeId: node.id, nodeType: node.type },
    }, parts);
  }

  buildRun() {
    const { actions } = this;
    this.status = h("span", { class: "status", dataset: { status: "IDLE" } }, "Not run");
    this.progress = h("progress", { max: 100, value: 0, aria: { label: "Progress" } });
    this.percent = h("span", { class: "percent" }, "");
    this.error = h("p", { class: "error", role: "alert", hidden: true });
    this.runButton = h("button", { type: "button", onclick: () => actions.run(this.id) }, "Run");
    this.cancelButton = h("button", { type: "button", hidden: true, onclick: () => actions.cancel(this.id) }, "Cancel");
    this.retryButton = h("button", { type: "button", hidden: true, onclick: () => actions.retry(this.id) }, "Retry");
    return h("div", { class: "run" },
      h("div", { class: "run-state" }, this.status, this.progress, this.percent),
      this.error,
      h("div", { class: "buttons" }, this.runButton, this.cancelButton, this.retryButton));
  }

  /** Show the node's stored state (its position is set by the board). */
  update(node) {
    this.node = node;
    const name = label(node);
    this.title.textContent = name;
    this.title.title = node.id;
    this.element.setAttribute("aria-label", `${node.type} node ${name}`);
    this.outPort.setAttribute("aria-label", `Connect from ${name}`);
    this.inPort.setAttribute("aria-label", `Connect to ${name}`);
    if (this.progress) this.progress.setAttribute("aria-label", `Progress of ${name}`);
    if (this.form) this.form.update(node.data);
    this.updateMedia(node);
  }

  updateMedia(node) {
    const data = node.data;
    const key = JSON.stringify([data.url, data.urls, data.posterUrl, data.assetId, data.mediaType]);
    if (key === this.mediaKey) return;
    this.mediaKey = key;
    if (node.type === "generated_asset") return replaceChildren(this.media, outputMedia(data));
    if (node.type === "asset") {
      replaceChildren(this.media);
      this.actions.assetUrl(data).then((found) => {
        const url = safeUrl(found);
        if (!url || this.mediaKey !== key) return;
        const alt = data.label || "input image";
        replaceChildren(this.media, data.mediaType === "video"
          ? h("video", { controls: true, preload: "metadata", src: url, aria: { label: alt } })
          : h("img", { src: url, alt }));
      });
    }
  }

  /** Show where an edge may end while the user is connecting (null: not connecting). */
  setConnecting(sourceId) {
    const target = sourceId !== null && sourceId !== this.id;
    this.inPort.hidden = !target;
    this.element.classList.toggle("connect-source", sourceId === this.id);
  }

  setInputs(edges, nodes) {
    replaceChildren(this.inputs, edges.map((edge) => {
      const source = nodes.get(edge.source);
      const name = source ? label(source) : edge.source;
      return h("li", { dataset: { edgeId: edge.id } }, `from ${name} `, h("button", {
        type: "button", class: "small", aria: { label: `Remove edge from ${name}` },
        onclick: () => this.actions.removeEdge(edge.id),
      }, "×"));
    }));
  }

  /** Show the run state of the node's latest task (null: never run). */
  setTask(task) {
    if (!this.status) return;
    this.task = task;
    const status = task ? task.status : "IDLE";
    const active = ACTIVE.has(status);
    this.status.dataset.status = status;
    this.status.textContent = task ? statusText(task) : "Not run";
    this.element.dataset.status = status;
    const value = task ? Math.round(task.progress) : 0;
    this.progress.value = value;
    const estimated = Boolean(task && task.progressEstimated);
    this.progress.dataset.estimated = String(estimated);
    this.progress.setAttribute("aria-valuetext", `${value}%${estimated ? " (estimated)" : ""}`);
    this.percent.textContent = task ? `${estimated ? "~" : ""}${value}%${estimated ? " estimated" : ""}` : "";
    const failed = task && task.error && status !== "COMPLETED";
    this.error.hidden = !failed;
    this.error.textContent = failed ? `${task.error.code}: ${task.error.message}` : "";
    this.runButton.hidden = active;
    this.cancelButton.hidden = !active;
    this.retryButton.hidden = !(status === "FAILED" || status === "CANCELLED");
  }
}

/** "queued #2, ~40 s" while waiting for a provider slot; the status word otherwise. */
function statusText(task) {
  const word = task.status.toLowerCase();
  if (task.status !== "QUEUED" || !task.queuePosition) return word;
  const eta = task.etaSeconds == null ? "" : `, ~${Math.ceil(task.etaSeconds)} s`;
  return `${word} #${task.queuePosition}${eta}`;
}

function outputMedia(data) {
  const url = safeUrl(data.url);  // an older record may hold one the service now refuses
  if (!url) return h("p", { class: "muted" }, data.url ? "Output link refused" : "No output yet");
  const download = (url, n) => h("a", { href: url, download: "", class: "download" }, n ? `Download ${n}` : "Download");
  if (data.mediaType === "video") {
    return [
      h("video", {
        controls: true, preload: "auto", playsInline: true, src: url,
        poster: safeUrl(data.posterUrl) || undefined, aria: { label: "Generated video" },
      }),
      download(url),
    ];
  }
  const listed = (data.urls || []).filter((u) => safeUrl(u));
  const urls = listed.length ? listed : [url];
  return urls.map((url, i) => [
    h("img", { src: url, alt: `Generated image ${i + 1}` }),
    download(url, urls.length > 1 ? i + 1 : 0),
  ]);
}
