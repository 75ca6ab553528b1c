// One form control per data field of a node type (built from the schema, see schema.js).

import { h } from "./dom.js";
import { readControl, writeControl } from "./schema.js";

let counter = 0;

function control(field, id) {
  if (field.kind === "choice") {
    const options = field.choices.map((choice) => h("option", { value: String(choice) }, String(choice)));
    if (field.nullable) options.unshift(h("option", { value: "" }, "(default)"));
    return h("select", { id }, options);
  }
  if (field.kind === "boolean") {
    if (!field.nullable) return h("input", { id, type: "checkbox" });
    return h(
      "select",
      { id },
      h("option", { value: "" }, "(default)"),
      h("option", { value: "true" }, "yes"),
      h("option", { value: "false" }, "no"),
    );
  }
  if (field.kind === "textarea") return h("textarea", { id, rows: 2, maxLength: field.maxLength });
  if (field.kind === "integer" || field.kind === "number") {
    return h("input", {
      id,
      type: "number",
      min: field.min,
      max: field.max,
      step: field.kind === "integer" ? "1" : "any",
      placeholder: field.defaultValue ?? "",
    });
  }
  const readOnly = field.kind === "list";
  return h("input", { id, type: "text", maxLength: field.maxLength, readOnly, placeholder: field.defaultValue ?? "" });
}

/**
 * A form of a node's fields; `onEdit(name, value)` when the user changes one.
 * Returns {element, update(data, force)}: update leaves the control being edited alone
 * unless forced (after a refused edit, to show the stored value again).
 */
export function fieldForm(fields, onEdit) {
  const controls = new Map();
  const rows = fields.map((field) => {
    const id = `field-${++counter}`;
    const input = control(field, id);
    input.name = field.name;
    input.dataset.field = field.name;
    input.addEventListener("change", () => {
      const value = readControl(field, input);
      if (value !== undefined) onEdit(field.name, value);
    });
    controls.set(field.name, { field, input });
    return h("div", { class: "field" }, h("label", { htmlFor: id }, field.label), input);
  });
  // Fields with a value by default first; the optional ones (null: unset) folded away.
  const main = rows.filter((_, i) => !fields[i].nullable);
  const more = rows.filter((_, i) => fields[i].nullable);
  const element = h("div", { class: "fields" }, main,
    more.length ? h("details", { class: "more" }, h("summary", {}, "More fields"), h("div", { class: "fields" }, more)) : null);
  const update = (data, force = false) => {
    for (const { field, input } of controls.values()) {
      if (document.activeElement === input && !force) continue;
      writeControl(field, input, data[field.name]);
    }
  };
  return { element, update };
}
