// A flow's live events: a single-use ticket per connection (EventSource sends no
// headers), reopened with the last event id after any drop, so nothing is missed twice.

import { PREFIX } from "./api.js";

const EVENTS = ["SYNC_CANVAS", "CANVAS_PATCH", "EXECUTION_UPDATE", "FLOW_DELETED"];
const FIRST_DELAY_MS = 250;
const MAX_DELAY_MS = 5000;

export class FlowStream {
  /**
   * @param {import("./api.js").Api} api
   * @param {string} flowId
   * @param {(type: string, data: any) => void} onEvent
   * @param {(state: "connecting" | "live" | "reconnecting" | "closed") => void} onState
   */
  constructor(api, flowId, onEvent, onState) {
    this.api = api;
    this.flowId = flowId;
    this.onEvent = onEvent;
    this.onState = onState;
    this.lastEventId = "";
    this.source = null;
    this.timer = 0;
    this.delay = FIRST_DELAY_MS;
    this.stopped = true;
  }

  start() {
    this.stopped = false;
    this.onState("connecting");
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.source) this.source.close();
    this.source = null;
    this.onState("closed");
  }

  async connect() {
    if (this.stopped) return;
    let ticket;
    try {
      ticket = (await this.api.post(`/subscribe/${encodeURIComponent(this.flowId)}/ticket`)).ticket;
    } catch (err) {
      if (err.status === 401 || err.status === 404) return this.stop();
      return this.retry();
    }
    if (this.stopped) return;
    const query = new URLSearchParams({ ticket });
    if (this.lastEventId) query.set("lastEventId", this.lastEventId);
    const source = new EventSource(`${PREFIX}/subscribe/${encodeURIComponent(this.flowId)}?${query}`);
    this.source = source;
    source.addEventListener("open", () => {
      this.delay = FIRST_DELAY_MS;
      this.onState("live");
    });
    for (const type of EVENTS) {
      source.addEventListener(type, (event) => this.receive(source, type, event));
    }
    // The browser would reconnect with the same (spent) ticket: close and reopen ourselves.
    source.addEventListener("error", () => {
      source.close();
      if (this.source !== source || this.stopped) return;
      this.source = null;
      this.onState("reconnecting");
      this.retry();
    });
  }

  receive(source, type, event) {
    if (this.source !== source) return;
    if (event.lastEventId) this.lastEventId = event.lastEventId;
    this.onEvent(type, JSON.parse(event.data));
  }

  retry() {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), this.delay);
    this.delay = Math.min(this.delay * 2, MAX_DELAY_MS);
  }
}
