// Small DOM helpers: elements are built, never parsed from strings, so no text the API returns
// can become markup.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

let ids = 0;
// A labelled form control: the label names it for people and screen readers alike.
export function field(label, control, hint) {
  const id = control.id || `f${++ids}`;
  control.id = id;
  const hintEl = hint ? h("small", { id: `${id}-hint`, class: "hint" }, hint) : null;
  if (hintEl) control.setAttribute("aria-describedby", hintEl.id);
  return h("div", { class: "field" }, h("label", { for: id }, label), control, hintEl);
}

export function checkbox(label, attrs = {}) {
  const input = h("input", { type: "checkbox", ...attrs });
  return { input, el: h("label", { class: "check" }, input, " ", label) };
}

export function announce(text) {
  const region = document.getElementById("announce");
  region.textContent = "";
  // A fresh text node after a tick is announced even when it repeats the last one.
  setTimeout(() => { region.textContent = text; }, 50);
}

export function errorBox(error) {
  const problem = error.problem || {};
  return h(
    "div",
    { class: "error", role: "alert" },
    h("strong", {}, problem.title || "Something went wrong"),
    " ",
    error.message && error.message !== problem.title ? error.message : "",
    problem.code ? h("span", { class: "code" }, ` (${problem.code})`) : "",
  );
}

export function json(value) {
  return JSON.stringify(value, null, 2);
}

export function when(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

export function shortId(id) {
  return id ? id.slice(0, 8) : "—";
}
