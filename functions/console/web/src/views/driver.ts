// The driver: register the taxi the token names (or drive the one it names), go on or off
// duty, see the current offer with its pickup on the map and its deadline, accept or
// decline it, pick the rider up, complete the ride.

import { ApiProblem, type Allocation, type Api, type DriverAction, type Notification, type Point, type Taxi } from "../api";
import { dl, errorBox, h } from "../dom";
import { formatDistance, nearestLandmark } from "../geo";
import { seoulMap, type Marker } from "../map";
import { Poller } from "../poll";
import { currentOffer, driverActions, secondsLeft } from "../ride";
import type { Session } from "../session";

const ACTION_LABELS: Record<DriverAction, string> = {
  accept: "Accept ride",
  decline: "Decline",
  pickup: "Rider picked up",
  complete: "Complete ride",
};

export function driverView(api: Api, session: Session): { el: HTMLElement; stop: () => void } {
  const err = errorBox();
  const pollErr = errorBox();
  let taxi: Taxi | null | undefined; // undefined: not loaded yet; null: not registered
  let offer: Allocation | undefined;
  let notes: Notification[] = [];
  let spot: Point | undefined;

  const map = seoulMap((p) => {
    if (taxi === null) {
      spot = { ...p, name: nearestLandmark(p) };
      render();
    }
  }, "Map of Seoul: your taxi and the pickup");

  const panel = h("section", { class: "card", id: "taxi" });
  const offerPanel = h("section", { class: "card", id: "offer" });
  const notesPanel = h("section", { class: "card", id: "driver-notifications" });

  // Kept across renders, so what the driver typed survives a click on the map.
  const plate = h("input", { id: "plate", value: "서울32저4703", autocomplete: "off" });

  function registerForm(): HTMLElement {
    const btn = h("button", { id: "register", type: "button", disabled: !spot }, "Register taxi");
    btn.addEventListener("click", async () => {
      if (!spot) return;
      err.clear();
      btn.disabled = true;
      try {
        taxi = await api.registerTaxi(plate.value, { lat: spot.lat, lng: spot.lng }, crypto.randomUUID());
        render();
        poller.poke();
      } catch (e) {
        err.show(e);
        btn.disabled = false;
      }
    });
    return h("div", {},
      h("h2", {}, "Register your taxi"),
      h("p", { class: "hint" }, `Taxi id ${session.subject}. Click the map where the taxi waits.`),
      h("label", {}, "Plate ", plate),
      h("p", {}, "Location: ", h("output", { id: "spot" }, spot ? spot.name ?? `${spot.lat}, ${spot.lng}` : "not set")),
      btn);
  }

  function render() {
    if (taxi === undefined) panel.replaceChildren(h("p", { class: "hint" }, "Loading your taxi…"));
    else if (taxi === null) panel.replaceChildren(registerForm());
    else {
      const t = taxi;
      const onDuty = t.duty === "OnDuty";
      const duty = h("button", { id: "duty", type: "button", "data-duty": t.duty }, onDuty ? "Go off duty" : "Go on duty");
      duty.addEventListener("click", async () => {
        err.clear();
        duty.disabled = true;
        try {
          taxi = await api.setDuty(t.taxiId, onDuty ? "OffDuty" : "OnDuty");
          render();
          poller.poke();
        } catch (e) {
          err.show(e);
          duty.disabled = false;
        }
      });
      panel.replaceChildren(h("h2", {}, "Your taxi"),
        dl([["Plate", t.taxiNum], ["Status", t.status], ["Duty", onDuty ? "On duty" : "Off duty (no offers)"], ["Id", t.taxiId]]),
        duty);
      panel.querySelector("dd:nth-of-type(2)")?.setAttribute("id", "taxi-status");
    }

    offerPanel.replaceChildren(h("h2", {}, "Current offer"));
    if (!offer) offerPanel.append(h("p", { class: "hint", id: "no-offer" }, "No offer right now. Waiting for riders…"));
    else {
      const o = offer;
      offerPanel.append(
        h("p", { class: `status s-${o.status}`, id: "offer-status", "data-status": o.status }, o.status === "Offered" ? "New ride offer" : o.status),
        dl([
          ["Pickup", o.pickup.name ?? `${o.pickup.lat}, ${o.pickup.lng}`],
          ...(o.distanceMeters != null ? [["Distance to pickup", formatDistance(o.distanceMeters)] as [string, string]] : []),
        ]));
      if (o.status === "Offered") {
        offerPanel.append(h("p", { id: "offer-deadline" }, `Answer within ${secondsLeft(o, Date.now())} s, or the ride goes to the next taxi.`));
      }
      // The destination reaches the driver in notify's PickupAssigned message, once accepted.
      const assigned = notes.find((n) => n.grabId === o.grabId && n.kind === "PickupAssigned");
      if (assigned) offerPanel.append(h("p", { class: "hint", id: "offer-message" }, assigned.message));
      const buttons = driverActions(o).map((act) => {
        const btn = h("button", { id: act, type: "button", class: act === "decline" ? "secondary" : "" }, ACTION_LABELS[act]);
        btn.addEventListener("click", async () => {
          err.clear();
          btn.disabled = true;
          try {
            offer = await api.act(o.allocationId, act);
            render();
            poller.poke();
          } catch (e) {
            err.show(e);
            btn.disabled = false;
          }
        });
        return btn;
      });
      if (buttons.length) offerPanel.append(h("div", { class: "row" }, ...buttons));
    }

    notesPanel.replaceChildren(h("h2", {}, "Notifications"),
      notes.length
        ? h("ul", { class: "notes" }, ...notes.map((n) => h("li", { "data-kind": n.kind }, h("strong", {}, n.kind), " ", n.message)))
        : h("p", { class: "hint" }, "Nothing yet."));

    const ms: Marker[] = [];
    if (taxi) ms.push({ point: taxi.location, kind: "taxi", label: taxi.taxiNum });
    if (taxi === null && spot) ms.push({ point: spot, kind: "taxi", label: "Your taxi" });
    if (offer) ms.push({ point: offer.pickup, kind: "pickup", label: "Pickup" });
    map.setMarkers(ms);
  }

  let last = "";
  const poller = new Poller(async () => {
    try {
      taxi = await api.taxi(session.subject);
    } catch (e) {
      if (e instanceof ApiProblem && e.status === 404) taxi = null;
      else throw e;
    }
    const [allocs, ns] = taxi ? await Promise.all([api.allocations(), api.notifications()]) : [[], []];
    offer = currentOffer(allocs);
    notes = ns;
    pollErr.clear();
    const snapshot = JSON.stringify([taxi, offer, notes]);
    const changed = snapshot !== last;
    last = snapshot;
    if (changed) render();
    return changed;
  }, (e) => pollErr.show(e)).start();

  render();
  const el = h("div", { class: "view driver" }, err.el, pollErr.el,
    h("div", { class: "split" }, h("div", { class: "map-wrap" }, map.el), h("div", { class: "side" }, panel, offerPanel, notesPanel)));
  // The offer's countdown, between polls.
  const tick = setInterval(() => {
    const line = offerPanel.querySelector("#offer-deadline");
    if (line && offer?.status === "Offered") {
      line.textContent = `Answer within ${secondsLeft(offer, Date.now())} s, or the ride goes to the next taxi.`;
    }
  }, 1000);
  return { el, stop: () => { poller.stop(); clearInterval(tick); } };
}
