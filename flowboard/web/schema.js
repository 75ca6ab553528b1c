// Node types and their data fields, read from the API's own OpenAPI document
// (`x-node-types` names each type's data schema), so the forms follow the server.

/**
 * @typedef {{name: string, label: string, kind: "text" | "textarea" | "number" |
 *   "integer" | "boolean" | "choice" | "list", nullable: boolean, choices?: any[],
 *   min?: number, max?: number, maxLength?: number, defaultValue?: any}} Field
 * @typedef {{name: string, runnable: boolean, media: string | null, fields: Field[]}} NodeTypeInfo
 */

function resolve(doc, schema) {
  let current = schema;
  while (current && current.$ref) {
    const name = current.$ref.split("/").pop();
    current = doc.components.schemas[name];
  }
  return current || {};
}

/** Split `anyOf: [X, {type: "null"}]` into X and whether null is allowed. */
function unwrap(doc, schema) {
  const resolved = resolve(doc, schema);
  if (!resolved.anyOf) return { inner: resolved, nullable: false };
  const options = resolved.anyOf.map((option) => resolve(doc, option));
  const nullable = options.some((option) => option.type === "null");
  const rest = options.filter((option) => option.type !== "null");
  return { inner: rest.length === 1 ? rest[0] : { type: "string" }, nullable };
}

function humanise(name) {
  const words = name.replace(/([A-Z])/g, " $1").toLowerCase().trim();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

function kindOf(inner) {
  if (inner.enum) return "choice";
  if (inner.type === "boolean") return "boolean";
  if (inner.type === "integer") return "integer";
  if (inner.type === "number") return "number";
  if (inner.type === "array") return "list";
  if (inner.type === "string" && (inner.maxLength || 0) > 1000) return "textarea";
  return "text";
}

function fieldOf(doc, name, schema) {
  const { inner, nullable } = unwrap(doc, schema);
  return {
    name,
    label: humanise(name),
    kind: kindOf(inner),
    nullable,
    choices: inner.enum,
    min: inner.minimum,
    max: inner.maximum,
    maxLength: inner.maxLength,
    defaultValue: resolve(doc, schema).default,
  };
}

/** @returns {Map<string, NodeTypeInfo>} */
export function nodeTypes(doc) {
  const types = new Map();
  for (const [name, info] of Object.entries(doc["x-node-types"] || {})) {
    const data = resolve(doc, info.data);
    const fields = Object.entries(data.properties || {}).map(([key, s]) => fieldOf(doc, key, s));
    types.set(name, { name, runnable: info.runnable, media: info.media, fields });
  }
  return types;
}

/** The value a form control holds, as the API wants it (null removes the key;
 * undefined: the control holds nothing the API could take). */
export function readControl(field, control) {
  if (field.kind === "boolean" && !field.nullable) return control.checked;
  const raw = control.value;
  if (raw === "") return null;
  if (field.kind === "boolean") return raw === "true";
  if (field.kind === "integer" || field.kind === "number") {
    const number = field.kind === "integer" ? Number.parseInt(raw, 10) : Number.parseFloat(raw);
    return Number.isFinite(number) ? number : undefined; // not a number: nothing to send
  }
  if (field.kind === "choice") {
    const found = field.choices.find((choice) => String(choice) === raw);
    return found === undefined ? raw : found;
  }
  return raw;
}

/** Put a stored value into a form control (the default shows as a placeholder). */
export function writeControl(field, control, value) {
  if (field.kind === "boolean" && !field.nullable) {
    control.checked = value === undefined ? Boolean(field.defaultValue) : Boolean(value);
  } else if (field.kind === "list") {
    control.value = Array.isArray(value) ? value.join(", ") : "";
  } else {
    control.value = value === undefined || value === null ? "" : String(value);
  }
}
