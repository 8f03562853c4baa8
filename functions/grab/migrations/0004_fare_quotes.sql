-- Fares are priced by the server: a quote is one rider's priced trip, valid until expires_at
-- (swept by the outbox flush tick once it is a day past). A grab remembers its quote.
CREATE TABLE fare_quotes (
    quote_id TEXT PRIMARY KEY,
    phone_number TEXT NOT NULL,
    starting_point TEXT NOT NULL,
    destination TEXT NOT NULL,
    fare INTEGER NOT NULL CHECK (fare > 0),
    straight_line_meters INTEGER NOT NULL,
    road_meters INTEGER NOT NULL,
    night_surcharge INTEGER NOT NULL CHECK (night_surcharge IN (0, 1)),
    quoted_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX fare_quotes_by_expiry ON fare_quotes (expires_at);
ALTER TABLE grabs ADD COLUMN quote_id TEXT;
