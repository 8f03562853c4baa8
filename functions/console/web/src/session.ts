// Who is signed in: the bearer token and what its claims say. The token is kept in
// sessionStorage (gone with the tab); the claims are read, not verified: the API verifies.

export type Role = "rider" | "driver" | "operator";

export interface Session {
  token: string;
  role: Role;
  /** The token's `sub`: a phone number, a taxi id, or the operator's name. */
  subject: string;
  /** Unix seconds. */
  expiresAt: number;
}

/** The session a JWT names, or an Error saying why it is not a usable H Taxi token. */
export function sessionFromToken(token: string): Session | Error {
  const parts = token.trim().split(".");
  if (parts.length !== 3) return new Error("that is not a JWT (three dot-separated parts)");
  let claims: Record<string, unknown>;
  try {
    claims = JSON.parse(base64UrlDecode(parts[1])) as Record<string, unknown>;
  } catch {
    return new Error("the token's claims are not readable JSON");
  }
  const role = claims.role;
  if (role !== "rider" && role !== "driver" && role !== "operator") {
    return new Error("the token has no rider, driver or operator role");
  }
  if (typeof claims.sub !== "string" || typeof claims.exp !== "number") {
    return new Error("the token lacks sub or exp");
  }
  return { token: token.trim(), role, subject: claims.sub, expiresAt: claims.exp };
}

/** Whether the session is past its expiry at `nowSecs`. */
export function expired(s: Session, nowSecs: number): boolean {
  return nowSecs >= s.expiresAt;
}

function base64UrlDecode(s: string): string {
  const b64 = s.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(s.length / 4) * 4, "=");
  const bin = atob(b64);
  const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
  return new TextDecoder().decode(bytes);
}

const KEY = "htaxi.session";

export function loadSession(store: Pick<Storage, "getItem">): Session | null {
  const raw = store.getItem(KEY);
  if (!raw) return null;
  const s = sessionFromToken(raw);
  return s instanceof Error || expired(s, Date.now() / 1000) ? null : s;
}

export function saveSession(store: Pick<Storage, "setItem" | "removeItem">, s: Session | null): void {
  if (s) store.setItem(KEY, s.token);
  else store.removeItem(KEY);
}
