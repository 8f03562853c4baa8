// A few DOM helpers: elements built from data (text is always text, never parsed HTML).

type Attrs = Record<string, string | number | boolean | undefined | ((e: Event) => void)>;
type Child = Node | string | null | undefined | false;

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  for (const c of children) if (c) el.append(c);
  return el;
}

const SVG_NS = "http://www.w3.org/2000/svg";

export function s(tag: string, attrs: Attrs = {}, ...children: Child[]): SVGElement {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  for (const c of children) if (c) el.append(c);
  return el;
}

function setAttrs(el: Element, attrs: Attrs): void {
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    if (typeof v === "function") el.addEventListener(k.replace(/^on/, ""), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
}

/** An area that shows an error in words (role=alert), or nothing. */
export function errorBox(): { el: HTMLElement; show: (e: unknown) => void; clear: () => void } {
  const el = h("p", { class: "error", role: "alert", hidden: true });
  return {
    el,
    show(e) {
      el.textContent = e instanceof Error ? e.message : String(e);
      el.hidden = false;
    },
    clear() {
      el.textContent = "";
      el.hidden = true;
    },
  };
}

export function dl(rows: [string, string][]): HTMLElement {
  const out = h("dl", { class: "facts" });
  for (const [k, v] of rows) out.append(h("dt", {}, k), h("dd", {}, v));
  return out;
}
