-- A ride can now end Completed (the driver dropped the rider off). SQLite cannot change a
-- CHECK constraint in place, so the table is rebuilt with the same rows.
CREATE TABLE grabs_v3 (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL CHECK (status IN ('Requested', 'Paid', 'Allocated', 'RideStarted', 'Completed', 'Cancelled', 'Rejected', 'Failed')),
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
INSERT INTO grabs_v3 SELECT id, status, phone_number, starting_point, destination, estimated_fee,
    payment_id, allocation_id, taxi_id, taxi_num, reason, correlation_id, created_at, updated_at
    FROM grabs;
DROP TABLE grabs;
ALTER TABLE grabs_v3 RENAME TO grabs;
CREATE INDEX grabs_by_phone ON grabs (phone_number, created_at);
