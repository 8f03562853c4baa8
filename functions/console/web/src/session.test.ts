import { describe, expect, it } from "vitest";
import { expired, loadSession, saveSession, sessionFromToken } from "./session";

const b64 = (o: object) =>
  btoa(String.fromCharCode(...new TextEncoder().encode(JSON.stringify(o)))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
const jwt = (claims: object) => `${b64({ alg: "EdDSA" })}.${b64(claims)}.sig`;

describe("a session from a token", () => {
  it("names the role and subject, Korean text included", () => {
    const s = sessionFromToken(jwt({ role: "rider", sub: "010-1234-5678", exp: 2000, name: "김민수" }));
    expect(s).toEqual({ token: expect.any(String), role: "rider", subject: "010-1234-5678", expiresAt: 2000 });
  });

  it("refuses what is not an H Taxi token, saying why", () => {
    expect((sessionFromToken("abc") as Error).message).toMatch(/not a JWT/);
    expect((sessionFromToken("a.%%%.c") as Error).message).toMatch(/not readable/);
    expect((sessionFromToken(jwt({ role: "admin", sub: "x", exp: 1 })) as Error).message).toMatch(/role/);
    expect((sessionFromToken(jwt({ role: "driver", exp: 1 })) as Error).message).toMatch(/sub or exp/);
  });

  it("expires at exp, and an expired stored token is no session", () => {
    const s = sessionFromToken(jwt({ role: "operator", sub: "ops", exp: 100 }));
    if (s instanceof Error) throw s;
    expect(expired(s, 99)).toBe(false);
    expect(expired(s, 100)).toBe(true);
    const store = new Map<string, string>();
    const storage = { getItem: (k: string) => store.get(k) ?? null, setItem: (k: string, v: string) => void store.set(k, v), removeItem: (k: string) => void store.delete(k) };
    saveSession(storage, s);
    expect(loadSession(storage)).toBeNull();
    const live = sessionFromToken(jwt({ role: "operator", sub: "ops", exp: Date.now() / 1000 + 60 }));
    if (live instanceof Error) throw live;
    saveSession(storage, live);
    expect(loadSession(storage)?.role).toBe("operator");
    saveSession(storage, null);
    expect(loadSession(storage)).toBeNull();
  });
});
