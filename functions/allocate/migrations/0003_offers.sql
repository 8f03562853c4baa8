-- Dispatch offers a ride to one taxi at a time (issue 13): an allocation is one offer, with a
-- deadline, that the driver accepts (Allocated), declines or lets expire; then the next taxi
-- gets a new allocation row. So a grab has many rows, but at most one that is not Declined
-- or Expired, and a taxi holds at most one Offered/Allocated/RideStarted row.
-- Taxis go on and off duty and report where they are.
ALTER TABLE taxis ADD COLUMN duty TEXT NOT NULL DEFAULT 'OnDuty' CHECK (duty IN ('OnDuty', 'OffDuty'));
ALTER TABLE taxis ADD COLUMN location_at TEXT;
UPDATE taxis SET location_at = registered_at;
DROP INDEX taxis_available_by_place;
CREATE INDEX taxis_available_by_place ON taxis (status, duty, lat, lng);

CREATE TABLE allocations_v3 (
    allocation_id TEXT PRIMARY KEY,
    grab_id TEXT NOT NULL,
    payment_id TEXT,
    taxi_id TEXT NOT NULL REFERENCES taxis (taxi_id),
    taxi_num TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('Offered', 'Allocated', 'RideStarted', 'Completed', 'Cancelled', 'Declined', 'Expired')),
    distance_meters INTEGER NOT NULL,
    pickup_lat REAL NOT NULL,
    pickup_lng REAL NOT NULL,
    pickup_name TEXT,
    correlation_id TEXT NOT NULL,
    offer_number INTEGER NOT NULL DEFAULT 1,
    allocated_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    accepted_at TEXT,
    started_at TEXT,
    completed_at TEXT,
    cancelled_at TEXT,
    cancel_reason TEXT,
    ended_at TEXT,
    end_reason TEXT
);
-- Rows from before offers were accepted at once.
INSERT INTO allocations_v3 (allocation_id, grab_id, payment_id, taxi_id, taxi_num, status,
    distance_meters, pickup_lat, pickup_lng, pickup_name, correlation_id, offer_number,
    allocated_at, expires_at, accepted_at, started_at, completed_at, cancelled_at, cancel_reason)
    SELECT allocation_id, grab_id, payment_id, taxi_id, taxi_num, status, distance_meters,
    pickup_lat, pickup_lng, pickup_name, correlation_id, 1, allocated_at, allocated_at,
    allocated_at, started_at, completed_at, cancelled_at, cancel_reason FROM allocations;
DROP TABLE allocations;
ALTER TABLE allocations_v3 RENAME TO allocations;
CREATE UNIQUE INDEX allocations_one_active_per_taxi ON allocations (taxi_id)
    WHERE status IN ('Offered', 'Allocated', 'RideStarted');
-- Exactly one taxi ever ends up with the ride: one live row per grab.
CREATE UNIQUE INDEX allocations_one_live_per_grab ON allocations (grab_id)
    WHERE status NOT IN ('Declined', 'Expired');
CREATE UNIQUE INDEX allocations_offer_number ON allocations (grab_id, offer_number);
CREATE INDEX allocations_recent ON allocations (allocated_at);
CREATE INDEX allocations_open_offers ON allocations (expires_at) WHERE status = 'Offered';
