import { describe, expect, it } from "vitest";
import type { GrabStatus, Taxi } from "./api";
import { filterRides, healthLine, history, statusesOf, taxisByStatus } from "./ops";

const r = (grabId: string, grabStatus: GrabStatus["grabStatus"], phoneNumber: string, taxiNum: string | null = null) =>
  ({ grabId, grabStatus, phoneNumber, taxiNum, correlationId: `corr-${grabId}`, events: [] }) as unknown as GrabStatus;

describe("the operations view", () => {
  const rides = [r("a1", "Completed", "010-1111-2222", "서울32저4703"), r("b2", "Cancelled", "010-3333-4444"), r("c3", "Completed", "010-3333-4444")];

  it("filters rides by status and by any of phone, plate, grab or correlation id", () => {
    expect(filterRides(rides, { status: "Completed" }).map((x) => x.grabId)).toEqual(["a1", "c3"]);
    expect(filterRides(rides, { text: "3333" }).map((x) => x.grabId)).toEqual(["b2", "c3"]);
    expect(filterRides(rides, { text: "저4703" }).map((x) => x.grabId)).toEqual(["a1"]);
    expect(filterRides(rides, { text: "CORR-B2" }).map((x) => x.grabId)).toEqual(["b2"]);
    expect(filterRides(rides, { status: "Cancelled", text: "1111" })).toEqual([]);
    expect(filterRides(rides, { text: "  " })).toHaveLength(3);
  });

  it("offers the statuses present, in saga order", () => {
    expect(statusesOf(rides)).toEqual(["Completed", "Cancelled"]);
  });

  it("counts taxis by status", () => {
    const t = (status: string) => ({ status }) as Taxi;
    expect(taxisByStatus([t("Available"), t("Busy"), t("Available")])).toEqual({ Available: 2, Busy: 1 });
  });

  it("orders a ride's events oldest first without the type prefix", () => {
    expect(history([
      { type: "htaxi.PaymentApproved", id: "2", time: "2026-01-01T00:00:02Z" },
      { type: "htaxi.GrabRequested", id: "1", time: "2026-01-01T00:00:01Z" },
    ]).map((e) => e.name)).toEqual(["GrabRequested", "PaymentApproved"]);
  });

  it("shows grab's pay breaker when the health answer has one", () => {
    expect(healthLine({ status: "ok", component: "pay" })).toBe("ok");
    expect(healthLine({ status: "ok", component: "grab", payBreaker: { state: "open", consecutiveFailures: 5, lastFailureReason: "timeout" } }))
      .toBe("ok; pay breaker open, 5 consecutive failures, last failure: timeout");
  });
});
