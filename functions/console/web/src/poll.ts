// Live updates by polling: quick while things change, slower while they do not, and backing
// off on errors (the error itself is shown by the view, never swallowed).

export interface Backoff {
  /** The delay after a change (ms). */
  base: number;
  /** The longest delay while nothing changes. */
  idleMax: number;
  /** The longest delay after errors. */
  errorMax: number;
}

export const DEFAULT_BACKOFF: Backoff = { base: 500, idleMax: 4000, errorMax: 15000 };

export type Outcome = "changed" | "same" | "error";

/** The next delay after `prev` given what the last poll found. */
export function nextDelay(prev: number, outcome: Outcome, b: Backoff = DEFAULT_BACKOFF): number {
  switch (outcome) {
    case "changed":
      return b.base;
    case "same":
      return Math.min(b.idleMax, Math.max(b.base, Math.round(prev * 1.5)));
    case "error":
      return Math.min(b.errorMax, Math.max(b.base * 2, prev * 2));
  }
}

/**
 * Poll `fn` until stopped. `fn` answers whether anything changed; a throw counts as an
 * error and is handed to `onError`. Timers are injectable for tests.
 */
export class Poller {
  private timer: ReturnType<typeof setTimeout> | undefined;
  private delay: number;
  private stopped = false;

  constructor(
    private readonly fn: () => Promise<boolean>,
    private readonly onError: (e: unknown) => void,
    private readonly b: Backoff = DEFAULT_BACKOFF,
    private readonly schedule: (f: () => void, ms: number) => ReturnType<typeof setTimeout> = (f, ms) => setTimeout(f, ms),
  ) {
    this.delay = b.base;
  }

  /** Run now, then keep going. */
  start(): this {
    void this.tick();
    return this;
  }

  /** Poll again at once (after the user did something). */
  poke(): void {
    if (this.stopped) return;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.delay = this.b.base;
    void this.tick();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
  }

  get currentDelay(): number {
    return this.delay;
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    let outcome: Outcome;
    let wait = 0;
    try {
      outcome = (await this.fn()) ? "changed" : "same";
    } catch (e) {
      outcome = "error";
      wait = retryAfterMs(e);
      this.onError(e);
    }
    if (this.stopped) return;
    this.delay = Math.max(nextDelay(this.delay, outcome, this.b), wait);
    this.timer = this.schedule(() => void this.tick(), this.delay);
  }
}

/** A refusal's `Retry-After` (an `ApiProblem`'s `retryAfterSecs`) in ms, else 0. */
export function retryAfterMs(e: unknown): number {
  const secs = (e as { retryAfterSecs?: unknown } | null)?.retryAfterSecs;
  return typeof secs === "number" && secs > 0 ? Math.min(secs, 300) * 1000 : 0;
}
