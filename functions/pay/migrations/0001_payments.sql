-- One payment per grab (the UNIQUE grab_id is the DB-level guard of "idempotent per grab").
CREATE TABLE payments (
    payment_id TEXT PRIMARY KEY,
    grab_id TEXT NOT NULL UNIQUE,
    amount INTEGER NOT NULL CHECK (amount > 0),
    phone_number TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('Approved', 'Rejected', 'Refunded')),
    reason TEXT,
    correlation_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    approved_at TEXT,
    refunded_at TEXT,
    updated_at TEXT NOT NULL
);

-- A grab called off (GrabCancelled / AllocationFailed) before any payment existed:
-- a later POST /payments for it answers 409 and charges nothing.
CREATE TABLE payment_tombstones (
    grab_id TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    recorded_at TEXT NOT NULL
);
