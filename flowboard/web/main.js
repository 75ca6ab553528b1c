// The canvas page: sign in with an API token, pick a flow, work on its canvas.
// The open flow is named in the URL's fragment (#flow=<id>); the token never is.

import { Api } from "./api.js";
import { Board } from "./board.js";
import { h, notify, replaceChildren } from "./dom.js";
import { FlowList } from "./flows.js";
import { nodeTypes } from "./schema.js";
import * as session from "./session.js";

const main = document.getElementById("main");
const account = document.getElementById("account");
let board = null;
let types = null;

const api = new Api(() => {
  session.signOut();
  notify("Your token was refused; please sign in again.", "error");
  show();
});

function signInForm() {
  const input = h("input", { id: "token", type: "password", autocomplete: "off", required: true, spellcheck: false });
  const form = h("form", { class: "sign-in" },
    h("h2", {}, "Sign in"),
    h("p", {}, "Paste an API token (make one with ", h("code", {}, "flowboard token create --org NAME"), "). It is kept in this tab only."),
    h("label", { htmlFor: "token" }, "API token"), input,
    h("button", { type: "submit" }, "Sign in"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    session.signIn(input.value);
    try {
      await api.get("/flows?limit=1");
      notify("");
      show();
    } catch (err) {
      session.signOut();
      notify(`Sign-in failed: ${err.message}`, "error");
    }
  });
  return form;
}

function flowIdFromHash() {
  const match = /^#flow=([\w.-]+)$/.exec(location.hash);
  return match ? match[1] : null;
}

async function loadTypes() {
  if (!types) types = nodeTypes(await api.get("/api/openapi.json"));
  return types;
}

async function show() {
  if (board) {
    board.close();
    board = null;
  }
  if (!session.token()) {
    replaceChildren(account);
    replaceChildren(main, signInForm());
    document.getElementById("token").focus();
    return;
  }
  replaceChildren(account, h("button", { type: "button", onclick: signOut }, "Sign out"));
  const flowId = flowIdFromHash();
  if (!flowId) {
    const list = new FlowList(api, (id) => { location.hash = `flow=${id}`; });
    replaceChildren(main, list.element);
    await list.load();
    return;
  }
  try {
    board = new Board(api, await loadTypes(), flowId, () => { location.hash = ""; });
    replaceChildren(main, board.element);
    await board.open();
  } catch (err) {
    notify(`Could not open the flow: ${err.message}`, "error");
    if (board) board.close();
    board = null;
    replaceChildren(main, h("button", { type: "button", onclick: () => { location.hash = ""; } }, "← Flows"));
  }
}

function signOut() {
  session.signOut();
  location.hash = "";
  show();
}

window.addEventListener("hashchange", show);
show();
