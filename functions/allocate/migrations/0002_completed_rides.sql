-- The driver can complete a ride: status Completed, completed_at, and the taxi is released
-- (a Completed allocation is not active, so the one-active-per-taxi index lets it go).
-- SQLite cannot change a CHECK constraint in place, so the table is rebuilt with the same rows.
CREATE TABLE allocations_v2 (
    allocation_id TEXT PRIMARY KEY,
    grab_id TEXT NOT NULL UNIQUE,
    payment_id TEXT,
    taxi_id TEXT NOT NULL REFERENCES taxis (taxi_id),
    taxi_num TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('Allocated', 'RideStarted', 'Completed', 'Cancelled')),
    distance_meters INTEGER NOT NULL,
    pickup_lat REAL NOT NULL,
    pickup_lng REAL NOT NULL,
    pickup_name TEXT,
    correlation_id TEXT NOT NULL,
    allocated_at TEXT NOT NULL,
    started_at TEXT,
    completed_at TEXT,
    cancelled_at TEXT,
    cancel_reason TEXT
);
INSERT INTO allocations_v2 (allocation_id, grab_id, payment_id, taxi_id, taxi_num, status,
    distance_meters, pickup_lat, pickup_lng, pickup_name, correlation_id, allocated_at,
    started_at, cancelled_at, cancel_reason)
    SELECT allocation_id, grab_id, payment_id, taxi_id, taxi_num, status, distance_meters,
    pickup_lat, pickup_lng, pickup_name, correlation_id, allocated_at, started_at,
    cancelled_at, cancel_reason FROM allocations;
DROP TABLE allocations;
ALTER TABLE allocations_v2 RENAME TO allocations;
CREATE UNIQUE INDEX allocations_one_active_per_taxi ON allocations (taxi_id)
    WHERE status IN ('Allocated', 'RideStarted');
CREATE INDEX allocations_recent ON allocations (allocated_at);
