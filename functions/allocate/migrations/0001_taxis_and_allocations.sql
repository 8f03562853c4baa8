-- Taxis drivers registered. taxi_num is the plate (unique), status is Available or Busy.
CREATE TABLE taxis (
    taxi_id TEXT PRIMARY KEY,
    taxi_num TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL CHECK (status IN ('Available', 'Busy')),
    lat REAL NOT NULL,
    lng REAL NOT NULL,
    location_name TEXT,
    registered_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX taxis_available_by_place ON taxis (status, lat, lng);

-- One allocation per grab (grab_id UNIQUE): a duplicate PaymentApproved cannot book twice.
CREATE TABLE allocations (
    allocation_id TEXT PRIMARY KEY,
    grab_id TEXT NOT NULL UNIQUE,
    payment_id TEXT,
    taxi_id TEXT NOT NULL REFERENCES taxis (taxi_id),
    taxi_num TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('Allocated', 'RideStarted', 'Cancelled')),
    distance_meters INTEGER NOT NULL,
    pickup_lat REAL NOT NULL,
    pickup_lng REAL NOT NULL,
    pickup_name TEXT,
    correlation_id TEXT NOT NULL,
    allocated_at TEXT NOT NULL,
    started_at TEXT,
    cancelled_at TEXT,
    cancel_reason TEXT
);
-- The database-level guard against double booking: a taxi holds at most one active allocation.
CREATE UNIQUE INDEX allocations_one_active_per_taxi ON allocations (taxi_id)
    WHERE status IN ('Allocated', 'RideStarted');
CREATE INDEX allocations_recent ON allocations (allocated_at);

-- What allocate remembers about a grab beyond its allocation: a cancel tombstone (so a late
-- PaymentApproved then does nothing) and a failed attempt (a duplicate does nothing).
CREATE TABLE grab_outcomes (
    grab_id TEXT PRIMARY KEY,
    cancelled_at TEXT,
    cancel_reason TEXT,
    failed_at TEXT,
    failed_reason TEXT
);
