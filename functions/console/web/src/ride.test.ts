import { describe, expect, it } from "vitest";
import type { Allocation, GrabStatus, Notification } from "./api";
import { canCancel, currentOffer, describeQuote, driverActions, facts, isSettled, quoteUsable, receipt, refund, secondsLeft, steps } from "./ride";

function ride(over: Partial<GrabStatus> = {}): GrabStatus {
  return {
    grabId: "g1", grabStatus: "Requested", paymentStatus: null, allocationStatus: null, phoneNumber: "010-1234-5678",
    startingPoint: { lat: 37.5547, lng: 126.9707, name: "Seoul Station" }, destination: { lat: 37.4979, lng: 127.0276, name: "Gangnam Station" },
    estimatedFee: 15000, fare: 15000, quoteId: "q1", paymentId: null, amount: null, allocationId: null, taxiId: null, taxiNum: null, distanceMeters: null,
    offerNumber: null, offerExpiresAt: null, reason: null, cancelledBy: null, correlationId: "c1", createdAt: null, updatedAt: null, events: [], ...over,
  };
}
const note = (kind: string, grabId: string, at: string, message = kind): Notification =>
  ({ notificationId: `${kind}:${grabId}`, audience: "rider", kind, grabId, message, occurredAt: at });

describe("a ride's steps", () => {
  it("marks the steps reached and the current one on the way", () => {
    expect(steps(ride({ grabStatus: "Allocated" })).map((s) => s.state)).toEqual(["done", "done", "current", "todo", "todo"]);
  });

  it("is all done once completed", () => {
    expect(steps(ride({ grabStatus: "Completed" })).every((s) => s.state === "done")).toBe(true);
  });

  it("shows where a cancelled ride stopped after what it reached", () => {
    const s = steps(ride({ grabStatus: "Cancelled", paymentStatus: "Refunded", allocationStatus: "Cancelled" }));
    expect(s.map((x) => [x.label, x.state])).toEqual([
      ["Requested", "done"], ["Paid", "done"], ["Taxi allocated", "done"], ["Cancelled", "stopped"],
    ]);
    expect(steps(ride({ grabStatus: "Rejected", paymentStatus: "Rejected" })).map((x) => x.label)).toEqual(["Requested", "Payment rejected"]);
  });
});

describe("cancelling and settling", () => {
  it("may cancel until the ride starts", () => {
    for (const st of ["Requested", "Paid", "Allocated"] as const) expect(canCancel(ride({ grabStatus: st }))).toBe(true);
    for (const st of ["RideStarted", "Completed", "Cancelled", "Failed", "Rejected"] as const) expect(canCancel(ride({ grabStatus: st }))).toBe(false);
  });

  it("a cancelled ride is settled only once its payment is no longer approved", () => {
    expect(isSettled(ride({ grabStatus: "Cancelled", paymentStatus: "Approved" }))).toBe(false);
    expect(isSettled(ride({ grabStatus: "Cancelled", paymentStatus: "Refunded" }))).toBe(true);
    expect(isSettled(ride({ grabStatus: "Completed", paymentStatus: "Approved" }))).toBe(true);
    expect(isSettled(ride({ grabStatus: "RideStarted" }))).toBe(false);
  });
});

describe("what the rider reads", () => {
  it("lists payment, allocation, plate and distance", () => {
    const f = facts(ride({ paymentStatus: "Approved", amount: 15000, allocationStatus: "Allocated", taxiNum: "서울32저4703", distanceMeters: 184 }));
    expect(f).toEqual([["Payment", "Approved, 15,000 KRW"], ["Allocation", "Allocated"], ["Taxi", "서울32저4703"], ["Taxi distance", "184 m from pickup"]]);
    expect(facts(ride())).toEqual([["Payment", "pending"], ["Allocation", "waiting for a taxi"]]);
  });

  it("finds this ride's receipt and refund among every notification", () => {
    const ns = [note("RideCompleted", "other", "2026-01-01T00:00:09Z"), note("TaxiAllocated", "g1", "2026-01-01T00:00:01Z"),
      note("RideCompleted", "g1", "2026-01-01T00:00:05Z", "Receipt: 15,000 KRW"), note("PaymentRefunded", "g2", "2026-01-01T00:00:03Z")];
    expect(receipt(ns, "g1")?.message).toBe("Receipt: 15,000 KRW");
    expect(refund(ns, "g1")).toBeUndefined();
    expect(refund(ns, "g2")?.kind).toBe("PaymentRefunded");
  });

  it("says an offer is waiting for the driver, without naming the taxi as allocated", () => {
    const f = facts(ride({ grabStatus: "Paid", allocationStatus: "Offered", taxiNum: "서울32저4703", offerNumber: 2 }));
    expect(f[1]).toEqual(["Allocation", "offered to 서울32저4703 (offer 2), waiting for the driver"]);
    expect(f.some(([k]) => k === "Taxi")).toBe(false);
  });
});

describe("the quote", () => {
  it("reads as the fare and the road distance, with the night surcharge when priced at night", () => {
    expect(describeQuote({ fare: 11600, roadMeters: 10487, nightSurcharge: false })).toBe("11,600 KRW · 10.5 km by road");
    expect(describeQuote({ fare: 14000, roadMeters: 10487, nightSurcharge: true })).toBe("14,000 KRW · 10.5 km by road · night surcharge included");
  });
  it("is booked only while comfortably before its expiry", () => {
    const at = Date.parse("2026-12-01T10:05:00Z");
    expect(quoteUsable({ expiresAt: "2026-12-01T10:05:11Z" }, at)).toBe(true);
    expect(quoteUsable({ expiresAt: "2026-12-01T10:05:10Z" }, at)).toBe(false);
    expect(quoteUsable({ expiresAt: "2026-12-01T10:04:00Z" }, at)).toBe(false);
  });
});

describe("the driver's offer", () => {
  const alloc = (id: string, status: string, expiresAt: string | null = null): Allocation => ({ allocationId: id, grabId: "g", taxiId: "t", taxiNum: "서울32저4703", status,
    pickup: { lat: 37.55, lng: 126.97 }, distanceMeters: 0, offerNumber: 1, allocatedAt: null, expiresAt, acceptedAt: null, startedAt: null, completedAt: null,
    cancelledAt: null, cancelReason: null, endedAt: null, endReason: null });
  it("is the started ride first, then the accepted one, then an open offer; ended ones are none", () => {
    expect(currentOffer([alloc("a", "Completed"), alloc("b", "Allocated"), alloc("c", "RideStarted")])?.allocationId).toBe("c");
    expect(currentOffer([alloc("a", "Offered"), alloc("b", "Allocated")])?.allocationId).toBe("b");
    expect(currentOffer([alloc("a", "Declined"), alloc("b", "Offered")])?.allocationId).toBe("b");
    expect(currentOffer([alloc("a", "Completed"), alloc("b", "Expired"), alloc("c", "Cancelled")])).toBeUndefined();
  });
  it("answers an offer, then picks up, then completes", () => {
    expect(driverActions(alloc("a", "Offered"))).toEqual(["accept", "decline"]);
    expect(driverActions(alloc("a", "Allocated"))).toEqual(["pickup"]);
    expect(driverActions(alloc("a", "RideStarted"))).toEqual(["complete"]);
    expect(driverActions(alloc("a", "Expired"))).toEqual([]);
  });
  it("counts down the seconds left to answer, never below zero", () => {
    const at = Date.parse("2026-12-01T10:00:00Z");
    expect(secondsLeft(alloc("a", "Offered", "2026-12-01T10:00:14.200Z"), at)).toBe(15);
    expect(secondsLeft(alloc("a", "Offered", "2026-12-01T09:59:59Z"), at)).toBe(0);
  });
});
