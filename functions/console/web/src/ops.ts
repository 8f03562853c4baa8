// The operations view's data handling: filtering rides, counting taxis by status, a ride's
// event history in order, and a component's health in a line.

import type { EventSummary, GrabStatus, Health, Taxi } from "./api";

export interface RideFilter {
  status?: string;
  /** Matches the phone number, plate, grab id or correlation id (case-insensitive). */
  text?: string;
}

export function filterRides(rides: GrabStatus[], f: RideFilter): GrabStatus[] {
  const text = f.text?.trim().toLowerCase();
  return rides.filter((r) => {
    if (f.status && r.grabStatus !== f.status) return false;
    if (!text) return true;
    return [r.grabId, r.phoneNumber, r.taxiNum, r.correlationId].some((v) => v?.toLowerCase().includes(text));
  });
}

/** The statuses present, for the filter's options, in saga order. */
export function statusesOf(rides: GrabStatus[]): string[] {
  const order = ["Requested", "Paid", "Allocated", "RideStarted", "Completed", "Cancelled", "Rejected", "Failed"];
  const present = new Set(rides.map((r) => r.grabStatus as string));
  return order.filter((s) => present.has(s));
}

/** Taxis counted by status, e.g. {Available: 3, Busy: 1}. */
export function taxisByStatus(taxis: Taxi[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const t of taxis) out[t.status] = (out[t.status] ?? 0) + 1;
  return out;
}

/** A ride's events oldest first, with the type's `htaxi.` prefix dropped. */
export function history(events: EventSummary[]): { name: string; time: string; id: string }[] {
  return [...events]
    .sort((a, b) => a.time.localeCompare(b.time) || a.id.localeCompare(b.id))
    .map((e) => ({ name: e.type.replace(/^htaxi\./, ""), time: e.time, id: e.id }));
}

/** The components the console reports on. */
export const COMPONENTS = ["grab", "pay", "allocate", "grab-status", "notify", "broker", "console"] as const;

/** A health answer in a line: "ok", plus the pay breaker's state (grab's `payBreaker`, shown to an operator). */
export function healthLine(h: Health): string {
  const b = h.payBreaker as { state?: string; consecutiveFailures?: number; lastFailureReason?: string | null } | undefined;
  if (!b) return h.status;
  const parts = [`${h.status}; pay breaker ${b.state ?? "?"}`];
  if (b.consecutiveFailures) parts.push(`${b.consecutiveFailures} consecutive failures`);
  if (b.lastFailureReason) parts.push(`last failure: ${b.lastFailureReason}`);
  return parts.join(", ");
}
