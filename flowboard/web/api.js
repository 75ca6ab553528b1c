// Calls to the Flowboard API with the tab's bearer token; errors keep the API's code.

import { token } from "./session.js";

export const PREFIX = "/api/creative-flowboard";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export class Api {
  /** @param {() => void} onUnauthorized called when a credential is refused (401) */
  constructor(onUnauthorized) {
    this.onUnauthorized = onUnauthorized;
  }

  async request(method, path, body) {
    const headers = { Accept: "application/json" };
    const secret = token();
    if (secret) headers.Authorization = `Bearer ${secret}`;
    const init = { method, headers };
    if (body instanceof FormData) {
      init.body = body;
    } else if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const url = path.startsWith("/api/") ? path : PREFIX + path;
    const resp = await fetch(url, init);
    if (resp.status === 204) return null;
    const data = await resp.json().catch(() => null);
    if (!resp.ok) {
      const error = data && data.error ? data.error : {};
      if (resp.status === 401) this.onUnauthorized();
      throw new ApiError(resp.status, error.code || `http_${resp.status}`, error.message || resp.statusText);
    }
    return data;
  }

  get(path) { return this.request("GET", path); }
  post(path, body) { return this.request("POST", path, body); }
  patch(path, body) { return this.request("PATCH", path, body); }
  delete(path) { return this.request("DELETE", path); }

  upload(file) {
    const form = new FormData();
    form.append("file", file, file.name || "image");
    return this.post("/assets", form);
  }
}
