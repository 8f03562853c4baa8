import { describe, expect, it } from "vitest";
import { ApiProblem } from "./api";
import { DEFAULT_BACKOFF, nextDelay, Poller, retryAfterMs } from "./poll";

describe("polling backoff", () => {
  it("polls quickly after a change, slower while nothing changes, up to a cap", () => {
    expect(nextDelay(4000, "changed")).toBe(500);
    let d = 500;
    const seen = [];
    for (let i = 0; i < 8; i++) seen.push((d = nextDelay(d, "same")));
    expect(seen.slice(0, 3)).toEqual([750, 1125, 1688]);
    expect(d).toBe(DEFAULT_BACKOFF.idleMax);
  });

  it("doubles on errors up to the error cap", () => {
    let d = 500;
    const seen = [];
    for (let i = 0; i < 7; i++) seen.push((d = nextDelay(d, "error")));
    expect(seen).toEqual([1000, 2000, 4000, 8000, 15000, 15000, 15000]);
  });
});

describe("the poller", () => {
  it("reports errors, backs off, and stops scheduling once stopped", async () => {
    const delays: number[] = [];
    const pending: (() => void)[] = [];
    const errors: unknown[] = [];
    let n = 0;
    const p = new Poller(
      async () => {
        n++;
        if (n === 2) throw new Error("503 pay unavailable");
        return n === 1;
      },
      (e) => errors.push(e),
      DEFAULT_BACKOFF,
      (f, ms) => { delays.push(ms); pending.push(f); return 0 as unknown as ReturnType<typeof setTimeout>; },
    ).start();
    const flush = async () => { for (let i = 0; i < 5; i++) await Promise.resolve(); };
    await flush();
    pending.shift()!(); await flush();
    pending.shift()!(); await flush();
    expect(delays).toEqual([500, 1000, 1500]);
    expect((errors[0] as Error).message).toBe("503 pay unavailable");
    p.stop();
    pending.shift()!(); await flush();
    expect(n).toBe(3);
    expect(delays.length).toBe(3);
  });
});

describe("Retry-After", () => {
  it("waits at least as long as the API asked, capped at five minutes", async () => {
    expect(retryAfterMs(new ApiProblem(503, "Service Unavailable", "pay is unavailable", undefined, 10))).toBe(10_000);
    expect(retryAfterMs(new ApiProblem(503, "x", "y", undefined, 3600))).toBe(300_000);
    expect(retryAfterMs(new Error("plain"))).toBe(0);
    const delays: number[] = [];
    new Poller(
      async () => { throw new ApiProblem(503, "Service Unavailable", "breaker open", undefined, 7); },
      () => {},
      DEFAULT_BACKOFF,
      (_f, ms) => { delays.push(ms); return 0 as unknown as ReturnType<typeof setTimeout>; },
    ).start();
    for (let i = 0; i < 5; i++) await Promise.resolve();
    expect(delays).toEqual([7000]);
  });
});
