-- Idempotency keys become reservations: a request reserves (scope, key) in the same
-- transaction that creates its resource, so concurrent duplicates and retries after a
-- crash find the key taken. A reservation names the resource and holds a lease; a
-- finished one keeps the answer. SQLite cannot relax NOT NULL in place: rebuild.
CREATE TABLE idempotency_keys_v2 (
    scope TEXT NOT NULL,
    idem_key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    resource_id TEXT,
    state TEXT NOT NULL CHECK (state IN ('InProgress', 'Done')),
    lease_until_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    status INTEGER,
    headers TEXT,
    body BLOB,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (scope, idem_key),
    CHECK (state = 'InProgress' OR (status IS NOT NULL AND headers IS NOT NULL AND body IS NOT NULL))
);

-- Keys stored before reservations were final answers: keep them, for 24 h from then.
INSERT INTO idempotency_keys_v2
    (scope, idem_key, request_hash, resource_id, state, lease_until_ms, expires_at_ms, status, headers, body, created_at_ms)
SELECT scope, idem_key, request_hash, NULL, 'Done', 0,
       CAST(strftime('%s', created_at) AS INTEGER) * 1000 + 86400000,
       status, headers, body,
       CAST(strftime('%s', created_at) AS INTEGER) * 1000
FROM idempotency_keys;

DROP TABLE idempotency_keys;

ALTER TABLE idempotency_keys_v2 RENAME TO idempotency_keys;

CREATE INDEX idempotency_keys_by_expiry ON idempotency_keys (expires_at_ms);
