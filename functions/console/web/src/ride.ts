// A ride as the rider and driver see it, derived only from the API's answers: the steps of
// the saga reached so far, whether it may still be cancelled, the receipt and the refund.

import type { Allocation, DriverAction, GrabStatus, GrabStatusWord, Notification, Quote } from "./api";
import { formatDistance } from "./geo";

export type StepState = "done" | "current" | "todo" | "stopped";

export interface Step {
  label: string;
  state: StepState;
}

const HAPPY_PATH: GrabStatusWord[] = ["Requested", "Paid", "Allocated", "RideStarted", "Completed"];
const LABELS: Record<GrabStatusWord, string> = {
  Requested: "Requested",
  Paid: "Paid",
  Allocated: "Taxi allocated",
  RideStarted: "Ride started",
  Completed: "Completed",
  Cancelled: "Cancelled",
  Rejected: "Payment rejected",
  Failed: "Failed",
};

export function statusLabel(s: GrabStatusWord): string {
  return LABELS[s] ?? s;
}

/** The saga's steps: the happy path up to where the ride is, and where it stopped if it did. */
export function steps(view: Pick<GrabStatus, "grabStatus" | "paymentStatus" | "allocationStatus">): Step[] {
  const at = HAPPY_PATH.indexOf(view.grabStatus);
  if (at >= 0) {
    return HAPPY_PATH.map((s, i) => ({
      label: LABELS[s],
      state: i < at || s === "Completed" && i === at ? "done" : i === at ? "current" : "todo",
    }));
  }
  // Stopped: the steps it did reach, then the stop.
  const reached: GrabStatusWord[] = ["Requested"];
  if (view.paymentStatus === "Approved" || view.paymentStatus === "Refunded") reached.push("Paid");
  if (view.allocationStatus === "Allocated" || view.allocationStatus === "Cancelled" || view.allocationStatus === "RideStarted") {
    reached.push("Allocated");
  }
  return [
    ...reached.map((s) => ({ label: LABELS[s], state: "done" as StepState })),
    { label: LABELS[view.grabStatus], state: "stopped" },
  ];
}

/** Whether the rider may still cancel (before the ride starts; the API has the last word). */
export function canCancel(view: Pick<GrabStatus, "grabStatus">): boolean {
  return view.grabStatus === "Requested" || view.grabStatus === "Paid" || view.grabStatus === "Allocated";
}

/** Whether nothing more will happen to the ride, except a refund arriving. */
export function isSettled(view: Pick<GrabStatus, "grabStatus" | "paymentStatus">): boolean {
  switch (view.grabStatus) {
    case "Completed":
    case "Rejected":
      return true;
    case "Cancelled":
    case "Failed":
      return view.paymentStatus !== "Approved";
    default:
      return false;
  }
}

export function formatKrw(n: number): string {
  return `${n.toLocaleString("en-US")} KRW`;
}

/** The facts worth a line each: payment, allocation, taxi, distance, why it stopped. */
export function facts(view: GrabStatus): [string, string][] {
  const out: [string, string][] = [];
  const pay = view.paymentStatus ?? "pending";
  out.push(["Payment", view.amount != null ? `${pay}, ${formatKrw(view.amount)}` : pay]);
  out.push([
    "Allocation",
    view.allocationStatus === "Offered"
      ? `offered to ${view.taxiNum ?? "a taxi"} (offer ${view.offerNumber ?? 1}), waiting for the driver`
      : view.allocationStatus ?? "waiting for a taxi",
  ]);
  if (view.taxiNum && view.allocationStatus !== "Offered") out.push(["Taxi", view.taxiNum]);
  if (view.distanceMeters != null) out.push(["Taxi distance", `${formatDistance(view.distanceMeters)} from pickup`]);
  if (view.reason) out.push(["Reason", view.reason]);
  return out;
}

/** The notifications about one ride, newest first. */
export function aboutRide(ns: Notification[], grabId: string): Notification[] {
  return ns.filter((n) => n.grabId === grabId).sort((a, b) => b.occurredAt.localeCompare(a.occurredAt));
}

/** The receipt (notify's RideCompleted message for this ride), if it has arrived. */
export function receipt(ns: Notification[], grabId: string): Notification | undefined {
  return aboutRide(ns, grabId).find((n) => n.kind === "RideCompleted");
}

/** The refund notice (PaymentRefunded), if it has arrived. */
export function refund(ns: Notification[], grabId: string): Notification | undefined {
  return aboutRide(ns, grabId).find((n) => n.kind === "PaymentRefunded");
}

/** A quote in words: "11,600 KRW · 10.5 km by road", with the night surcharge if any. */
export function describeQuote(q: Pick<Quote, "fare" | "roadMeters" | "nightSurcharge">): string {
  const night = q.nightSurcharge ? " · night surcharge included" : "";
  return `${formatKrw(q.fare)} · ${formatDistance(q.roadMeters)} by road${night}`;
}

/** Whether a quote can still be booked: a little before its expiry, so the request lands in time. */
export function quoteUsable(q: Pick<Quote, "expiresAt">, nowMs: number): boolean {
  return Date.parse(q.expiresAt) - nowMs > 10_000;
}

/** The driver's current ride or offer, the most advanced first; ended ones are none. */
export function currentOffer(allocs: Allocation[]): Allocation | undefined {
  const order: Record<string, number> = { RideStarted: 0, Allocated: 1, Offered: 2 };
  const rank = (s: string) => order[s] ?? 9;
  return [...allocs].filter((a) => rank(a.status) < 9).sort((a, b) => rank(a.status) - rank(b.status))[0];
}

/** What the driver may do with an allocation now: answer an offer, pick up, drop off. */
export function driverActions(a: Allocation): DriverAction[] {
  switch (a.status) {
    case "Offered":
      return ["accept", "decline"];
    case "Allocated":
      return ["pickup"];
    case "RideStarted":
      return ["complete"];
    default:
      return [];
  }
}

/** Whole seconds left to answer an offer (0 once its deadline passed). */
export function secondsLeft(a: Pick<Allocation, "expiresAt">, nowMs: number): number {
  return a.expiresAt ? Math.max(0, Math.ceil((Date.parse(a.expiresAt) - nowMs) / 1000)) : 0;
}
