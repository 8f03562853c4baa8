// A ride as the rider and driver see it, derived only from the API's answers: the steps of
// the saga reached so far, whether it may still be cancelled, the receipt and the refund.

import type { Allocation, GrabStatus, GrabStatusWord, Notification, Point } from "./api";
import { distanceMeters, formatDistance } from "./geo";

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
  out.push(["Allocation", view.allocationStatus ?? "waiting for a taxi"]);
  if (view.taxiNum) out.push(["Taxi", view.taxiNum]);
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

/**
 * The rider's fare estimate sent as `estimatedFee` (the API as it stands takes the rider's
 * figure): Seoul's day tariff, 4,800 KRW for the first 1.6 km and 100 KRW per 131 m after,
 * over the straight line times 1.3 for streets, rounded up to 100 KRW.
 */
export function estimateFee(from: Point, to: Point): number {
  const road = distanceMeters(from, to) * 1.3;
  const extra = Math.max(0, road - 1600);
  const fare = 4800 + Math.ceil(extra / 131) * 100;
  return Math.ceil(fare / 100) * 100;
}

/** The driver's current offer: an allocation not yet ended, the started one first. */
export function currentOffer(allocs: Allocation[]): Allocation | undefined {
  const rank = (s: string) => (s === "RideStarted" ? 0 : s === "Allocated" ? 1 : 9);
  return [...allocs].filter((a) => rank(a.status) < 9).sort((a, b) => rank(a.status) - rank(b.status))[0];
}

/** What the driver may do with an allocation now. */
export function driverAction(a: Allocation): "accept" | "complete" | undefined {
  if (a.status === "Allocated") return "accept";
  if (a.status === "RideStarted") return "complete";
  return undefined;
}
