// The one typed client of H Taxi's public API. Every call goes through `request`, which
// turns a problem+json answer (or a network failure) into an `ApiProblem` with words a
// person can read. Views never call fetch themselves.

export interface Point {
  lat: number;
  lng: number;
  name?: string | null;
}

export interface EventSummary {
  type: string;
  id: string;
  time: string;
}

export type GrabStatusWord =
  | "Requested"
  | "Paid"
  | "Allocated"
  | "RideStarted"
  | "Completed"
  | "Cancelled"
  | "Rejected"
  | "Failed";

/** `GET /grabStatuses/{id}`: the read model of one ride (unknown facts are null). */
export interface GrabStatus {
  grabId: string;
  grabStatus: GrabStatusWord;
  paymentStatus: string | null;
  allocationStatus: string | null;
  phoneNumber: string | null;
  startingPoint: Point | null;
  destination: Point | null;
  estimatedFee: number | null;
  /** The fare charged: the quote's (server-priced). */
  fare: number | null;
  quoteId: string | null;
  paymentId: string | null;
  amount: number | null;
  allocationId: string | null;
  taxiId: string | null;
  taxiNum: string | null;
  distanceMeters: number | null;
  /** While a driver is being asked: which offer this is (1, 2, ...) and until when. */
  offerNumber: number | null;
  offerExpiresAt: string | null;
  reason: string | null;
  cancelledBy: string | null;
  correlationId: string | null;
  createdAt: string | null;
  updatedAt: string | null;
  events: EventSummary[];
}

/** `POST /fares/quote`: the server's price for a trip, bookable until `expiresAt`. */
export interface Quote {
  quoteId: string;
  startingPoint: Point;
  destination: Point;
  fare: number;
  straightLineMeters: number;
  roadMeters: number;
  nightSurcharge: boolean;
  quotedAt: string;
  expiresAt: string;
}

/** `POST /grabs`' answer (the fields the console reads). */
export interface Grab {
  id: string;
  grabStatus: GrabStatusWord;
}

export type Duty = "OnDuty" | "OffDuty";

export interface Taxi {
  taxiId: string;
  taxiNum: string;
  status: string;
  duty: Duty;
  location: Point;
}

/** `GET /taxis/nearby`: an available taxi as a rider's map shows it (no plate, no id). */
export interface NearbyTaxi {
  lat: number;
  lng: number;
  distanceMeters: number;
}

export interface Allocation {
  allocationId: string;
  grabId: string;
  taxiId: string;
  taxiNum: string;
  status: string;
  /** Where to collect the rider (allocate knows no destination: notify tells the driver). */
  pickup: Point;
  distanceMeters: number | null;
  /** 1 for the first taxi offered the ride, 2 for the next, ... */
  offerNumber: number;
  /** When the offer was made, and until when the driver may accept it. */
  allocatedAt: string | null;
  expiresAt: string | null;
  acceptedAt: string | null;
  startedAt: string | null;
  completedAt: string | null;
  cancelledAt: string | null;
  cancelReason: string | null;
  /** A declined, expired or withdrawn offer: when and why. */
  endedAt: string | null;
  endReason: string | null;
}

export interface Notification {
  notificationId: string;
  audience: string;
  kind: string;
  grabId: string | null;
  message: string;
  occurredAt: string;
}

/** One row of the local broker's dead-letter list (the fields the console shows). */
export interface DeadLetter {
  id: number | string;
  eventType?: string;
  type?: string;
  subject?: string | null;
  trigger?: string;
  subscriber?: string;
  reason?: string | null;
  errorCode?: number | null;
  attempts?: number;
  deadLetteredAt?: string | null;
  [key: string]: unknown;
}

export interface Health {
  status: string;
  component: string;
  /** grab, to an operator: the breaker guarding its calls to pay. */
  payBreaker?: Record<string, unknown>;
  [key: string]: unknown;
}

export interface DevToken {
  token: string;
  role: string;
  subject: string;
  expiresAt: number;
}

export type DriverAction = "accept" | "decline" | "pickup" | "complete";

export type SignInForm =
  | { role: "rider"; phoneNumber: string }
  | { role: "driver"; taxiId: string }
  | { role: "operator" };

/** An RFC 9457 problem, or a failure to reach the app at all (`status` 0). */
export class ApiProblem extends Error {
  constructor(
    readonly status: number,
    readonly title: string,
    readonly detail: string,
    readonly field?: string,
    readonly retryAfterSecs?: number,
  ) {
    super(describeProblem(status, title, detail, field));
    this.name = "ApiProblem";
  }
}

/** A problem in words: "Payment required: payment rejected: over the limit (field estimatedFee)". */
export function describeProblem(status: number, title: string, detail: string, field?: string): string {
  if (status === 0) return `The app could not be reached: ${detail}`;
  const head = title || `HTTP ${status}`;
  const body = detail && detail !== head ? `: ${detail}` : "";
  const where = field ? ` (field ${field})` : "";
  return `${head}${body}${where}`;
}

/** Build the `ApiProblem` for a non-2xx answer from its status, headers and body text. */
export function problemFrom(status: number, contentType: string | null, retryAfter: string | null, text: string): ApiProblem {
  const retry = retryAfter !== null && /^\d+$/.test(retryAfter) ? Number(retryAfter) : undefined;
  if (contentType && /json/i.test(contentType)) {
    try {
      const p = JSON.parse(text) as Record<string, unknown>;
      const str = (v: unknown) => (typeof v === "string" ? v : "");
      return new ApiProblem(
        typeof p.status === "number" ? p.status : status,
        str(p.title),
        str(p.detail),
        typeof p.field === "string" ? p.field : undefined,
        retry,
      );
    } catch {
      // Not JSON after all: fall through to the text.
    }
  }
  const snippet = text.trim().slice(0, 200);
  return new ApiProblem(status, `HTTP ${status}`, snippet || "no details were given", undefined, retry);
}

export type Fetch = (input: string, init?: RequestInit) => Promise<Response>;

/** The client: one instance per signed-in person (the token goes on every call). */
export class Api {
  constructor(
    private readonly token: () => string | null,
    private readonly fetchFn: Fetch = (i, init) => fetch(i, init),
  ) {}

  private async request<T>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<T> {
    const h: Record<string, string> = { accept: "application/json, application/problem+json", ...headers };
    const token = this.token();
    if (token) h.authorization = `Bearer ${token}`;
    if (body !== undefined) h["content-type"] = "application/json";
    let resp: Response;
    try {
      resp = await this.fetchFn(path, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (e) {
      throw new ApiProblem(0, "Network error", e instanceof Error ? e.message : String(e));
    }
    const text = await resp.text();
    if (!resp.ok) {
      throw problemFrom(resp.status, resp.headers.get("content-type"), resp.headers.get("retry-after"), text);
    }
    if (!text) return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new ApiProblem(resp.status, "Unreadable answer", `${method} ${path} did not answer JSON`);
    }
  }

  // Sign-in (local runs only: the console component's dev route).
  devToken(form: SignInForm): Promise<DevToken> {
    return this.request("POST", "/console/dev/token", form);
  }

  // Rider
  quote(startingPoint: Point, destination: Point): Promise<Quote> {
    return this.request("POST", "/fares/quote", { startingPoint, destination });
  }
  requestGrab(req: { phoneNumber: string; quoteId: string }, idempotencyKey: string): Promise<Grab> {
    return this.request("POST", "/grabs", req, { "idempotency-key": idempotencyKey });
  }
  cancelGrab(grabId: string): Promise<void> {
    return this.request("DELETE", `/grabs/${encodeURIComponent(grabId)}`);
  }
  grabStatus(grabId: string): Promise<GrabStatus> {
    return this.request("GET", `/grabStatuses/${encodeURIComponent(grabId)}`);
  }
  grabStatuses(query: { phoneNumber?: string; limit?: number } = {}): Promise<GrabStatus[]> {
    return this.request("GET", `/grabStatuses${queryString(query)}`);
  }
  notifications(query: { phoneNumber?: string; taxiId?: string } = {}): Promise<Notification[]> {
    return this.request("GET", `/notifications${queryString(query)}`);
  }

  // Driver
  registerTaxi(taxiNum: string, location: Point, idempotencyKey: string): Promise<Taxi> {
    return this.request("POST", "/taxis", { taxiNum, location }, { "idempotency-key": idempotencyKey });
  }
  nearbyTaxis(around: Point): Promise<NearbyTaxi[]> {
    return this.request("GET", `/taxis/nearby${queryString({ lat: around.lat, lng: around.lng })}`);
  }
  taxi(taxiId: string): Promise<Taxi> {
    return this.request("GET", `/taxis/${encodeURIComponent(taxiId)}`);
  }
  allocations(query: { grabId?: string } = {}): Promise<Allocation[]> {
    return this.request("GET", `/allocations${queryString(query)}`);
  }
  setDuty(taxiId: string, duty: Duty): Promise<Taxi> {
    return this.request("PUT", `/taxis/${encodeURIComponent(taxiId)}/duty`, { duty });
  }
  /** Answer an allocation: accept or decline an offer, pick the rider up, complete the ride. */
  act(allocationId: string, action: DriverAction): Promise<Allocation> {
    return this.request("POST", `/allocations/${encodeURIComponent(allocationId)}/${action}`);
  }

  // Operations
  taxis(query: { status?: string } = {}): Promise<Taxi[]> {
    return this.request("GET", `/taxis${queryString(query)}`);
  }
  deadLetters(): Promise<DeadLetter[]> {
    return this.request("GET", "/broker/deadletters");
  }
  redeliver(id: string | number): Promise<unknown> {
    return this.request("POST", `/broker/deadletters/${encodeURIComponent(String(id))}/redeliver`);
  }
  health(component: string): Promise<Health> {
    return this.request("GET", `/health/${encodeURIComponent(component)}`);
  }
}

/** `?a=1&b=x` from the defined entries, or "" when there are none. */
export function queryString(q: Record<string, string | number | undefined>): string {
  const parts = Object.entries(q)
    .filter((e): e is [string, string | number] => e[1] !== undefined && e[1] !== "")
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`);
  return parts.length ? `?${parts.join("&")}` : "";
}
