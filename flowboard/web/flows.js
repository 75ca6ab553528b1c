// The flow list: paginated; create, rename, delete, open.

import { ApiError } from "./api.js";
import { h, notify, replaceChildren } from "./dom.js";

const PAGE = 20;

export class FlowList {
  /**
   * @param {import("./api.js").Api} api
   * @param {(flowId: string) => void} onOpen
   */
  constructor(api, onOpen) {
    this.api = api;
    this.onOpen = onOpen;
    this.offset = 0;
    this.element = this.build();
  }

  build() {
    this.nameInput = h("input", { id: "new-flow-name", type: "text", required: true, maxLength: 200, placeholder: "My flow" });
    const form = h("form", { class: "create", onsubmit: (event) => this.create(event) },
      h("label", { htmlFor: "new-flow-name" }, "New flow name"), this.nameInput,
      h("button", { type: "submit" }, "Create flow"));
    this.rows = h("ul", { class: "flows", aria: { label: "Flows" } });
    this.pageInfo = h("span", { class: "page-info" });
    this.prev = h("button", { type: "button", onclick: () => this.page(-PAGE) }, "Previous");
    this.next = h("button", { type: "button", onclick: () => this.page(PAGE) }, "Next");
    return h("section", { class: "flow-list" }, h("h2", {}, "Flows"), form, this.rows,
      h("nav", { class: "pager", aria: { label: "Pages" } }, this.prev, this.pageInfo, this.next));
  }

  async load() {
    try {
      const page = await this.api.get(`/flows?offset=${this.offset}&limit=${PAGE}`);
      if (!page.items.length && this.offset > 0) {
        this.offset = Math.max(0, this.offset - PAGE);
        return this.load();
      }
      replaceChildren(this.rows, page.items.map((flow) => this.row(flow)));
      if (!page.items.length) this.rows.append(h("li", { class: "muted" }, "No flows yet."));
      const last = Math.min(page.total, this.offset + page.items.length);
      this.pageInfo.textContent = page.total ? `${this.offset + 1}–${last} of ${page.total}` : "";
      this.prev.disabled = this.offset === 0;
      this.next.disabled = last >= page.total;
    } catch (err) {
      this.fail(err);
    }
  }

  page(delta) {
    this.offset = Math.max(0, this.offset + delta);
    this.load();
  }

  row(flow) {
    const id = `rename-${flow.id}`;
    const input = h("input", { id, type: "text", value: flow.name, maxLength: 200, required: true });
    const rename = h("form", { class: "rename", onsubmit: (event) => this.rename(event, flow, input.value) },
      h("label", { htmlFor: id, class: "visually-hidden" }, `Name of ${flow.name}`), input,
      h("button", { type: "submit" }, "Rename"));
    const remove = h("button", { type: "button", class: "danger" }, "Delete");
    remove.addEventListener("click", () => this.remove(flow, remove));
    return h("li", { dataset: { flowId: flow.id } },
      h("button", { type: "button", class: "open", onclick: () => this.onOpen(flow.id) }, `Open ${flow.name}`),
      h("span", { class: "muted" }, `${flow.nodes.length} nodes · revision ${flow.revision}`),
      rename, remove);
  }

  async create(event) {
    event.preventDefault();
    const name = this.nameInput.value.trim();
    if (!name) return;
    try {
      const flow = await this.api.post("/flows", { name });
      this.nameInput.value = "";
      this.onOpen(flow.id);
    } catch (err) {
      this.fail(err);
    }
  }

  async rename(event, flow, name) {
    event.preventDefault();
    try {
      await this.api.patch(`/flows/${encodeURIComponent(flow.id)}`, { name: name.trim(), baseRevision: flow.revision });
      notify(`Renamed to ${name.trim()}.`);
    } catch (err) {
      this.fail(err);
    }
    this.load();
  }

  async remove(flow, button) {
    // Two steps instead of a dialog: the first press asks, the second deletes.
    if (button.dataset.armed !== "true") {
      button.dataset.armed = "true";
      button.textContent = `Really delete ${flow.name}?`;
      return;
    }
    try {
      await this.api.delete(`/flows/${encodeURIComponent(flow.id)}`);
      notify(`Deleted ${flow.name}.`);
    } catch (err) {
      this.fail(err);
    }
    this.load();
  }

  fail(err) {
    notify(err instanceof ApiError ? `${err.code}: ${err.message}` : String(err), "error");
  }
}
