-- Outbox leases: a flush first claims the rows it will send (lease_owner, lease_until in
-- epoch milliseconds), so concurrent instances flushing the same outbox send disjoint rows.
-- A claim that dies with its instance expires and the rows are sent by a later flush.
ALTER TABLE outbox ADD COLUMN lease_owner TEXT;
ALTER TABLE outbox ADD COLUMN lease_until INTEGER NOT NULL DEFAULT 0;
