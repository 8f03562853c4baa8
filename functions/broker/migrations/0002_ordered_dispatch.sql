-- Concurrent dispatch keeps the Kafka broker's per-partition order for Triggers marked
-- `delivery.order: ordered`: a row of such a Trigger is not sent while an earlier row of
-- the same Trigger and partition key is still pending (in flight or waiting to retry).
ALTER TABLE broker_deliveries ADD COLUMN partition_key TEXT;
ALTER TABLE broker_deliveries ADD COLUMN ordered INTEGER NOT NULL DEFAULT 0;
CREATE INDEX broker_deliveries_partition ON broker_deliveries (trigger_name, partition_key, status, event_seq);
