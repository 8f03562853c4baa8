import { describe, expect, it } from "vitest";
import type { Allocation, GrabStatus, Notification } from "./api";
import { canCancel, currentOffer, driverAction, estimateFee, facts, isSettled, receipt, refund, steps } from "./ride";

function ride(over: Partial<GrabStatus> = {}): GrabStatus {
  return {
    grabId: "g1", grabStatus: "Requested", paymentStatus: null, allocationStatus: null, phoneNumber: "010-1234-5678",
    startingPoint: { lat: 37.5547, lng: 126.9707, name: "Seoul Station" }, destination: { lat: 37.4979, lng: 127.0276, name: "Gangnam Station" },
    estimatedFee: 15000, paymentId: null, amount: null, allocationId: null, taxiId: null, taxiNum: null, distanceMeters: null,
    reason: null, cancelledBy: null, correlationId: "c1", createdAt: null, updatedAt: null, events: [], ...over,
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

  it("estimates Seoul's day tariff: the base fare for a short hop, more for a long one", () => {
    const a = { lat: 37.5547, lng: 126.9707 };
    expect(estimateFee(a, { lat: 37.5550, lng: 126.9710 })).toBe(4800);
    const far = estimateFee(a, { lat: 37.4979, lng: 127.0276 });
    expect(far).toBeGreaterThan(10000);
    expect(far % 100).toBe(0);
  });
});

describe("the driver's offer", () => {
  const alloc = (id: string, status: string): Allocation => ({ allocationId: id, grabId: "g", taxiId: "t", taxiNum: "서울32저4703", status, pickup: { lat: 37.55, lng: 126.97 },
    distanceMeters: 0, allocatedAt: null, startedAt: null, completedAt: null, cancelledAt: null, cancelReason: null });
  it("is the started ride first, else the allocated one; ended ones are no offer", () => {
    expect(currentOffer([alloc("a", "Completed"), alloc("b", "Allocated"), alloc("c", "RideStarted")])?.allocationId).toBe("c");
    expect(currentOffer([alloc("a", "Cancelled"), alloc("b", "Allocated")])?.allocationId).toBe("b");
    expect(currentOffer([alloc("a", "Completed")])).toBeUndefined();
  });
  it("accepts an allocated ride and completes a started one", () => {
    expect(driverAction(alloc("a", "Allocated"))).toBe("accept");
    expect(driverAction(alloc("a", "RideStarted"))).toBe("complete");
    expect(driverAction(alloc("a", "Cancelled"))).toBeUndefined();
  });
});
