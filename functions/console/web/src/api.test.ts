import { describe, expect, it } from "vitest";
import { Api, ApiProblem, problemFrom, queryString } from "./api";

function fakeFetch(status: number, body: string, headers: Record<string, string> = {}) {
  const calls: { url: string; init?: RequestInit }[] = [];
  const f = async (url: string, init?: RequestInit) => {
    calls.push({ url, init });
    return new Response(status === 204 ? null : body, { status, headers });
  };
  return { f, calls };
}

describe("the API client", () => {
  it("sends the bearer token, JSON and the idempotency key", async () => {
    const { f, calls } = fakeFetch(201, '{"id":"g1","grabStatus":"Paid"}', { "content-type": "application/json" });
    const api = new Api(() => "tok", f);
    const g = await api.requestGrab({ phoneNumber: "010-1234-5678", quoteId: "q1" }, "key-1");
    expect(g).toEqual({ id: "g1", grabStatus: "Paid" });
    const h = calls[0].init!.headers as Record<string, string>;
    expect(calls[0].url).toBe("/grabs");
    expect(h.authorization).toBe("Bearer tok");
    expect(h["content-type"]).toBe("application/json");
    expect(h["idempotency-key"]).toBe("key-1");
    expect(JSON.parse(calls[0].init!.body as string)).toEqual({ phoneNumber: "010-1234-5678", quoteId: "q1" });
  });

  it("books by quote and answers offers on the allocation's own routes", async () => {
    const { f, calls } = fakeFetch(200, "{}", { "content-type": "application/json" });
    const api = new Api(() => "tok", f);
    await api.quote({ lat: 37.55, lng: 126.97 }, { lat: 37.5, lng: 127.03 });
    for (const a of ["accept", "decline", "pickup", "complete"] as const) await api.act("a/1", a);
    await api.setDuty("t1", "OffDuty");
    await api.nearbyTaxis({ lat: 37.5547, lng: 126.9707 });
    expect(calls.map((c) => `${c.init!.method} ${c.url}`)).toEqual([
      "POST /fares/quote", "POST /allocations/a%2F1/accept", "POST /allocations/a%2F1/decline",
      "POST /allocations/a%2F1/pickup", "POST /allocations/a%2F1/complete", "PUT /taxis/t1/duty",
      "GET /taxis/nearby?lat=37.5547&lng=126.9707",
    ]);
    expect(JSON.parse(calls[0].init!.body as string)).toEqual({ startingPoint: { lat: 37.55, lng: 126.97 }, destination: { lat: 37.5, lng: 127.03 } });
    expect(JSON.parse(calls[5].init!.body as string)).toEqual({ duty: "OffDuty" });
  });

  it("turns a problem+json answer into words, with the field and Retry-After", async () => {
    const { f } = fakeFetch(
      503,
      '{"type":"about:blank","title":"Service Unavailable","status":503,"detail":"pay is unavailable","field":"x"}',
      { "content-type": "application/problem+json", "retry-after": "10" },
    );
    const err = await new Api(() => "t", f).grabStatus("g1").catch((e) => e);
    expect(err).toBeInstanceOf(ApiProblem);
    expect(err.status).toBe(503);
    expect(err.retryAfterSecs).toBe(10);
    expect(err.message).toBe("Service Unavailable: pay is unavailable (field x)");
  });

  it("says when the app cannot be reached at all", async () => {
    const api = new Api(() => null, async () => { throw new TypeError("Failed to fetch"); });
    const err = await api.taxis().catch((e) => e);
    expect(err.status).toBe(0);
    expect(err.message).toBe("The app could not be reached: Failed to fetch");
  });

  it("sends no authorization header when signed out, and a 204 is no body", async () => {
    const { f, calls } = fakeFetch(204, "");
    await expect(new Api(() => null, f).cancelGrab("a/b")).resolves.toBeUndefined();
    expect(calls[0].url).toBe("/grabs/a%2Fb");
    expect((calls[0].init!.headers as Record<string, string>).authorization).toBeUndefined();
    expect(calls[0].init!.method).toBe("DELETE");
  });

  it("keeps a non-JSON error's text, trimmed", () => {
    const p = problemFrom(502, "text/plain", null, "  bad gateway  ");
    expect(p.message).toBe("HTTP 502: bad gateway");
    expect(problemFrom(500, "application/problem+json", null, "{not json").detail).toBe("{not json");
    expect(problemFrom(500, null, "soon", "").message).toBe("HTTP 500: no details were given");
  });

  it("builds query strings from the defined entries only", () => {
    expect(queryString({})).toBe("");
    expect(queryString({ phoneNumber: "010 1", taxiId: undefined, limit: 5 })).toBe("?phoneNumber=010%201&limit=5");
  });
});
