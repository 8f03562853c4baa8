// Operations: every ride with filters and its event history, taxis by status on the map,
// dead letters with redeliver, and each component's health (grab's shows the pay breaker).

import type { Api, DeadLetter, GrabStatus, Health, Taxi } from "../api";
import { dl, errorBox, h } from "../dom";
import { seoulMap, type Marker } from "../map";
import { COMPONENTS, filterRides, healthLine, history, statusesOf, taxisByStatus } from "../ops";
import { Poller } from "../poll";
import { facts, statusLabel } from "../ride";

export function opsView(api: Api): { el: HTMLElement; stop: () => void } {
  const err = errorBox();
  const pollErr = errorBox();
  let rides: GrabStatus[] = [];
  let taxis: Taxi[] = [];
  let dead: DeadLetter[] = [];
  let health: Record<string, Health | Error> = {};
  let selected: string | undefined;
  const filter = { status: "", text: "" };

  const map = seoulMap(undefined, "Map of Seoul: taxis by status");
  const statusSel = h("select", { id: "filter-status" });
  const textIn = h("input", { id: "filter-text", placeholder: "phone, plate, grab or correlation id", type: "search" });
  statusSel.addEventListener("change", () => { filter.status = statusSel.value; renderRides(); });
  textIn.addEventListener("input", () => { filter.text = textIn.value; renderRides(); });

  const ridesBody = h("tbody");
  const ridesPanel = h("section", { class: "card wide", id: "rides" },
    h("h2", {}, "Rides"),
    h("div", { class: "row" }, h("label", {}, "Status ", statusSel), h("label", {}, "Search ", textIn)),
    h("div", { class: "scroll" }, h("table", {},
      h("thead", {}, h("tr", {}, h("th", {}, "Ride"), h("th", {}, "Rider"), h("th", {}, "Status"), h("th", {}, "Payment"), h("th", {}, "Taxi"), h("th", {}, "Updated"))),
      ridesBody)));
  const detail = h("section", { class: "card", id: "ride-detail", hidden: true });
  const taxisPanel = h("section", { class: "card", id: "taxis" });
  const deadPanel = h("section", { class: "card", id: "deadletters" });
  const healthPanel = h("section", { class: "card", id: "health" });

  function renderRides() {
    const current = statusSel.value;
    statusSel.replaceChildren(h("option", { value: "" }, "any"),
      ...statusesOf(rides).map((st) => h("option", { value: st, selected: st === current }, statusLabel(st as GrabStatus["grabStatus"]))));
    statusSel.value = current;
    const shown = filterRides(rides, { status: filter.status || undefined, text: filter.text });
    ridesBody.replaceChildren(...shown.map((r) => {
      const b = h("button", { type: "button", class: "link", "data-grab": r.grabId }, r.grabId.slice(0, 8));
      b.addEventListener("click", () => { selected = r.grabId; renderDetail(); });
      return h("tr", { class: r.grabId === selected ? "selected" : "" },
        h("td", {}, b), h("td", {}, r.phoneNumber ?? "—"), h("td", { "data-status": r.grabStatus }, r.grabStatus),
        h("td", {}, r.paymentStatus ?? "—"), h("td", {}, r.taxiNum ?? "—"),
        h("td", {}, r.updatedAt ? new Date(r.updatedAt).toLocaleTimeString() : "—"));
    }));
    if (!shown.length) ridesBody.append(h("tr", {}, h("td", { colspan: 6, class: "hint" }, "No rides match.")));
  }

  function renderDetail() {
    const r = rides.find((x) => x.grabId === selected);
    if (!r) { detail.hidden = true; return; }
    detail.hidden = false;
    detail.replaceChildren(h("h2", {}, `Ride ${r.grabId.slice(0, 8)}`),
      dl([["Grab id", r.grabId], ["Status", r.grabStatus], ["Rider", r.phoneNumber ?? "—"],
        ["Correlation id", r.correlationId ?? "—"], ...facts(r)]),
      h("h3", {}, "Events"),
      h("ol", { class: "events", id: "events" }, ...history(r.events).map((e) =>
        h("li", { "data-type": e.name }, h("strong", {}, e.name), " ", h("time", { datetime: e.time }, new Date(e.time).toLocaleTimeString())))));
    renderRides();
  }

  function renderTaxis() {
    const counts = taxisByStatus(taxis);
    taxisPanel.replaceChildren(h("h2", {}, "Taxis"),
      h("p", { id: "taxi-counts" }, Object.keys(counts).length
        ? Object.entries(counts).map(([k, v]) => `${v} ${k}`).join(", ")
        : "No taxis registered."),
      h("p", { class: "legend" }, h("span", { class: "dot taxi-Available" }), "Available ", h("span", { class: "dot taxi-Busy" }), "Busy"));
    map.setMarkers(taxis.map((t): Marker => ({
      point: t.location,
      kind: t.status === "Available" ? "taxi-Available" : t.status === "Busy" ? "taxi-Busy" : "taxi",
      label: t.taxiNum,
    })));
  }

  function renderDead() {
    deadPanel.replaceChildren(h("h2", {}, "Dead letters"));
    if (!dead.length) { deadPanel.append(h("p", { class: "hint", id: "no-deadletters" }, "None.")); return; }
    deadPanel.append(h("ul", { class: "dead" }, ...dead.map((d) => {
      const b = h("button", { type: "button", "data-redeliver": String(d.id) }, "Redeliver");
      b.addEventListener("click", async () => {
        err.clear();
        b.disabled = true;
        try { await api.redeliver(d.id); poller.poke(); } catch (e) { err.show(e); b.disabled = false; }
      });
      const what = String(d.eventType ?? d.type ?? "event");
      const to = String(d.trigger ?? d.subscriber ?? "");
      return h("li", {}, h("strong", {}, what), ` → ${to} `, d.reason ? `(${String(d.reason)}) ` : "", b);
    })));
  }

  function renderHealth() {
    healthPanel.replaceChildren(h("h2", {}, "Health"),
      h("ul", { class: "health" }, ...COMPONENTS.map((c) => {
        const v = health[c];
        const line = v === undefined ? "…" : v instanceof Error ? `down: ${v.message}` : healthLine(v);
        return h("li", { "data-component": c, class: v instanceof Error ? "bad" : "ok" }, h("strong", {}, c), ` ${line}`);
      })));
  }

  let last = "";
  const poller = new Poller(async () => {
    const settled = await Promise.all(COMPONENTS.map((c) => api.health(c).then((v) => v, (e: Error) => e)));
    const [rs, ts, ds] = await Promise.all([api.grabStatuses({ limit: 200 }), api.taxis(), api.deadLetters()]);
    rides = rs; taxis = ts; dead = ds;
    health = Object.fromEntries(COMPONENTS.map((c, i) => [c, settled[i]]));
    pollErr.clear();
    const snapshot = JSON.stringify([rs, ts, ds, settled.map((s) => (s instanceof Error ? s.message : s))]);
    const changed = snapshot !== last;
    last = snapshot;
    if (changed) { renderRides(); renderDetail(); renderTaxis(); renderDead(); renderHealth(); }
    return changed;
  }, (e) => pollErr.show(e)).start();

  renderRides(); renderTaxis(); renderDead(); renderHealth();
  const el = h("div", { class: "view ops" }, err.el, pollErr.el, ridesPanel, detail,
    h("div", { class: "split" }, h("div", { class: "map-wrap" }, map.el), h("div", { class: "side" }, taxisPanel, healthPanel, deadPanel)));
  return { el, stop: () => poller.stop() };
}
