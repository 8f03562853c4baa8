// The rider: pick pickup and destination on the map, request, watch the saga live, cancel
// while allowed, read notifications (the receipt, the refund).

import type { Api, GrabStatus, NearbyTaxi, Notification, Point, Quote } from "../api";
import { dl, errorBox, h } from "../dom";
import { nearestLandmark, LANDMARKS } from "../geo";
import { seoulMap, type Marker } from "../map";
import { Poller } from "../poll";
import { aboutRide, canCancel, describeQuote, facts, quoteUsable, receipt, refund, statusLabel, steps } from "../ride";
import type { Session } from "../session";

export function riderView(api: Api, session: Session): { el: HTMLElement; stop: () => void } {
  const err = errorBox(); // what the last action was refused with
  const pollErr = errorBox(); // live updates failing (cleared when they recover)
  let pickup: Point | undefined;
  let destination: Point | undefined;
  let picking: "pickup" | "destination" = "pickup";
  let grabId: string | undefined;
  let view: GrabStatus | undefined;
  let notes: Notification[] = [];
  let taxis: NearbyTaxi[] = []; // available taxis around the pickup (or Seoul Station), as dots
  // The server's price for the trip on the form (grab charges the quote, not a client figure).
  let quote: Quote | undefined;
  let quoting = 0; // the newest quote request; an older answer that arrives late is dropped

  const map = seoulMap((p) => {
    const named = { ...p, name: nearestLandmark(p) ?? `${p.lat.toFixed(4)}, ${p.lng.toFixed(4)}` };
    if (picking === "pickup") {
      pickup = named;
      picking = "destination";
    } else {
      destination = named;
      picking = "pickup";
    }
    pointsChanged();
  }, "Map of Seoul: click to set pickup, then destination");

  const landmarkSelect = (id: string, set: (p: Point) => void) => {
    const sel = h("select", { id }, h("option", { value: "" }, "— or pick a landmark —"),
      ...LANDMARKS.map((l, i) => h("option", { value: String(i) }, l.name ?? "")));
    sel.addEventListener("change", () => {
      if (sel.value !== "") set({ ...LANDMARKS[Number(sel.value)] });
      sel.value = "";
      pointsChanged();
    });
    return sel;
  };
  const pickupText = h("output", { id: "pickup" });
  const destText = h("output", { id: "destination" });
  const fareText = h("output", { id: "fare" });
  const requestBtn = h("button", { id: "request", type: "button", disabled: true }, "Request ride");
  const hint = h("p", { class: "hint", id: "pick-hint" });
  const form = h("section", { class: "card" },
    h("h2", {}, "Where to?"), hint,
    h("div", { class: "row" }, h("span", { class: "dot pickup" }), "Pickup: ", pickupText, landmarkSelect("pickup-landmark", (p) => { pickup = p; picking = "destination"; })),
    h("div", { class: "row" }, h("span", { class: "dot destination" }), "Destination: ", destText, landmarkSelect("destination-landmark", (p) => { destination = p; picking = "pickup"; })),
    h("p", {}, "Fare: ", fareText),
    requestBtn);

  const ridePanel = h("section", { class: "card", id: "ride", hidden: true });
  const notesPanel = h("section", { class: "card", id: "notifications" }, h("h2", {}, "Notifications"));
  const history = h("section", { class: "card", id: "my-rides" }, h("h2", {}, "My rides"));

  function renderForm() {
    pickupText.textContent = pickup?.name ?? "not set";
    destText.textContent = destination?.name ?? "not set";
    hint.textContent = `Click the map to set the ${picking}.`;
    fareText.textContent = quote ? describeQuote(quote) : pickup && destination ? "pricing…" : "—";
    requestBtn.disabled = !quote || (view !== undefined && !settledOrNone());
    const ms: Marker[] = taxis.map((t) => ({ point: t, kind: "taxi" }));
    if (pickup) ms.push({ point: pickup, kind: "pickup", label: "Pickup" });
    if (destination) ms.push({ point: destination, kind: "destination", label: "Destination" });
    map.setMarkers(ms);
  }
  /** Ask the server for the fare of the trip on the form. */
  async function requote(): Promise<Quote | undefined> {
    const ticket = ++quoting;
    quote = undefined;
    renderForm();
    if (!pickup || !destination) return undefined;
    try {
      const q = await api.quote(pickup, destination);
      if (ticket !== quoting) return undefined;
      quote = q;
    } catch (e) {
      if (ticket === quoting) err.show(e);
    }
    renderForm();
    return quote;
  }
  function pointsChanged() {
    err.clear();
    void requote();
  }
  const settledOrNone = () => !view || !canCancel(view) && view.grabStatus !== "RideStarted";

  requestBtn.addEventListener("click", async () => {
    if (!quote) return;
    err.clear();
    requestBtn.disabled = true;
    try {
      // A quote about to expire is priced again first (the fare may change, e.g. at night).
      const q = quoteUsable(quote, Date.now()) ? quote : await requote();
      if (!q) return;
      const g = await api.requestGrab({ phoneNumber: session.subject, quoteId: q.quoteId }, crypto.randomUUID());
      grabId = g.id;
      view = undefined;
      poller.poke();
    } catch (e) {
      err.show(e);
      renderForm();
    }
  });

  function renderRide() {
    if (!view) {
      ridePanel.hidden = true;
      return;
    }
    ridePanel.hidden = false;
    const v = view;
    const cancel = h("button", { id: "cancel", type: "button", class: "danger" }, "Cancel ride");
    cancel.addEventListener("click", async () => {
      err.clear();
      cancel.disabled = true;
      try {
        await api.cancelGrab(v.grabId);
        poller.poke();
      } catch (e) {
        err.show(e);
        cancel.disabled = false;
      }
    });
    const r = receipt(notes, v.grabId);
    const rf = refund(notes, v.grabId);
    ridePanel.replaceChildren(
      h("h2", {}, "Your ride"),
      h("p", { class: `status s-${v.grabStatus}`, id: "ride-status", "data-status": v.grabStatus }, statusLabel(v.grabStatus)),
      h("ol", { class: "steps" }, ...steps(v).map((st) => h("li", { class: st.state }, st.label))),
      dl([["From", v.startingPoint?.name ?? "—"], ["To", v.destination?.name ?? "—"], ...facts(v)]),
    );
    if (r) ridePanel.append(h("p", { class: "receipt", id: "receipt" }, r.message));
    if (rf) ridePanel.append(h("p", { class: "refund", id: "refund" }, rf.message));
    if (canCancel(v)) ridePanel.append(cancel);
  }

  function renderNotes() {
    const list = grabId ? aboutRide(notes, grabId) : notes;
    notesPanel.replaceChildren(h("h2", {}, "Notifications"),
      list.length
        ? h("ul", { class: "notes" }, ...list.map((n) => h("li", { "data-kind": n.kind }, h("strong", {}, n.kind), " ", n.message)))
        : h("p", { class: "hint" }, "Nothing yet."));
  }

  function renderHistory(rides: GrabStatus[]) {
    history.replaceChildren(h("h2", {}, "My rides"),
      rides.length
        ? h("ul", { class: "rides" }, ...rides.map((r) => {
            const b = h("button", { type: "button", class: "link" }, `${r.startingPoint?.name ?? "?"} → ${r.destination?.name ?? "?"}: ${statusLabel(r.grabStatus)}`);
            b.addEventListener("click", () => { grabId = r.grabId; view = r; renderRide(); poller.poke(); });
            return h("li", {}, b);
          }))
        : h("p", { class: "hint" }, "No rides yet."));
  }

  let last = "";
  const poller = new Poller(async () => {
    const [mine, ns, near] = await Promise.all([
      api.grabStatuses(),
      api.notifications(),
      api.nearbyTaxis(pickup ?? LANDMARKS.find((l) => l.name === "Seoul Station") ?? LANDMARKS[0]),
    ]);
    taxis = near;
    if (grabId) view = await api.grabStatus(grabId);
    notes = ns;
    const snapshot = JSON.stringify([mine, ns, view, near]);
    const changed = snapshot !== last;
    last = snapshot;
    pollErr.clear();
    if (changed) {
      renderHistory(mine);
      renderRide();
      renderNotes();
      renderForm();
    }
    return changed;
  }, (e) => pollErr.show(e)).start();

  renderForm();
  const el = h("div", { class: "view rider" },
    err.el, pollErr.el,
    h("div", { class: "split" }, h("div", { class: "map-wrap" }, map.el), h("div", { class: "side" }, form, ridePanel, notesPanel, history)));
  return { el, stop: () => poller.stop() };
}
