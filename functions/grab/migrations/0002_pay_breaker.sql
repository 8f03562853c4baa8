-- The circuit breaker guarding the call to pay, shared by every grab instance (one row).
-- Times are epoch milliseconds.
CREATE TABLE pay_breaker (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    state TEXT NOT NULL CHECK (state IN ('closed', 'open', 'half-open')),
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    opened_at_ms INTEGER,
    trial_started_at_ms INTEGER,
    last_failure_reason TEXT,
    last_failure_at_ms INTEGER,
    updated_at TEXT NOT NULL
);
INSERT INTO pay_breaker (id, state, consecutive_failures, updated_at)
VALUES (1, 'closed', 0, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));
