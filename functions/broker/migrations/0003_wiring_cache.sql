-- The broker's copy of the wiring it loaded from the Trigger manifests (JSON), so the
-- ingress does not read and parse every manifest on each request; refreshed once it is
-- older than the broker's wiring TTL. One row.
CREATE TABLE broker_wiring (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    loaded_ms INTEGER NOT NULL,
    wiring TEXT NOT NULL
);
