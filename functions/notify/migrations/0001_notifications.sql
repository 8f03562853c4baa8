-- notify's own database. The inbox row of a consumed CloudEvent, the ride facts it brought and
-- the notifications it caused commit in one transaction, so a redelivery changes nothing.
CREATE TABLE inbox (
    source TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (source, event_id)
);

-- Who rides (from PaymentApproved / PaymentRejected): the rider's phone, the fare and the
-- pickup. Notifications are joined to it when listed, so events that overtake the payment
-- read the same once it has arrived.
CREATE TABLE rides (
    grab_id TEXT PRIMARY KEY,
    phone_number TEXT NOT NULL,
    amount INTEGER NOT NULL,
    starting_point TEXT,
    destination TEXT
);
CREATE INDEX rides_by_phone ON rides (phone_number);

-- One message to one person; at most one per (event, audience).
CREATE TABLE notifications (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    event_id TEXT NOT NULL,
    audience TEXT NOT NULL CHECK (audience IN ('rider', 'driver')),
    grab_id TEXT NOT NULL,
    taxi_id TEXT,
    kind TEXT NOT NULL,
    occurred_at TEXT NOT NULL,
    facts TEXT NOT NULL,
    UNIQUE (source, event_id, audience)
);
CREATE INDEX notifications_by_grab ON notifications (grab_id, audience);
CREATE INDEX notifications_by_taxi ON notifications (taxi_id, audience);
