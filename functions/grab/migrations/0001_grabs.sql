-- Ride requests. Points are JSON {"lat","lng","name"?}, money is whole KRW.
CREATE TABLE grabs (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL CHECK (status IN ('Requested', 'Paid', 'Allocated', 'RideStarted', 'Cancelled', 'Rejected', 'Failed')),
    phone_number TEXT NOT NULL,
    starting_point TEXT NOT NULL,
    destination TEXT NOT NULL,
    estimated_fee INTEGER NOT NULL CHECK (estimated_fee > 0),
    payment_id TEXT,
    allocation_id TEXT,
    taxi_id TEXT,
    taxi_num TEXT,
    reason TEXT,
    correlation_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX grabs_by_phone ON grabs (phone_number, created_at);
