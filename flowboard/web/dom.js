// Tiny DOM helpers: elements are built with properties, never from HTML strings.

import { safeUrl } from "./urls.js";

/** Properties that load or link a URL: set only when it passes the rule of urls.js. */
const URL_PROPS = new Set(["href", "src", "poster"]);

/**
 * Make an element: h("button", {type: "button", onclick: fn}, "Run").
 * Keys starting with "on" become listeners, "dataset"/"aria" objects are spread,
 * href/src/poster only when safeUrl() passes them, everything else is set as a
 * property (or attribute when no property exists).
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (URL_PROPS.has(key) && safeUrl(value) === null) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "dataset") {
      Object.assign(el.dataset, value);
    } else if (key === "aria") {
      for (const [name, v] of Object.entries(value)) el.setAttribute(`aria-${name}`, String(v));
    } else if (key === "class") {
      el.className = value;
    } else if (key in el && !key.includes("-")) {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

/** Replace every child of `el`. */
export function replaceChildren(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

/** Show a short message in the page's live region (read out by screen readers). */
export function notify(text, kind = "info") {
  const region = document.getElementById("notice");
  if (!region) return;
  region.textContent = text;
  region.dataset.kind = kind;
  region.hidden = !text;
}
