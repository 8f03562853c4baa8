-- The broker's log: every accepted CloudEvent, in arrival order. seq is the local
-- stand-in for the Kafka offset (sent as knativekafkaoffset).
CREATE TABLE broker_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    source TEXT NOT NULL,
    event_type TEXT NOT NULL,
    envelope TEXT NOT NULL,
    extras TEXT NOT NULL,
    correlation_id TEXT,
    received_at TEXT NOT NULL
);
CREATE INDEX broker_events_source_id ON broker_events (source, event_id);
CREATE INDEX broker_events_type ON broker_events (event_type, seq);

-- One row per (event, matching Trigger): the Trigger's consumer-group position.
-- status: pending | delivered | deadlettered. A pending row is due at next_attempt_ms
-- (unix ms), and lease_until_ms keeps a second broker instance off a row being delivered.
CREATE TABLE broker_deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_seq INTEGER NOT NULL REFERENCES broker_events (seq),
    trigger_name TEXT NOT NULL,
    subscriber TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL,
    lease_until_ms INTEGER NOT NULL DEFAULT 0,
    last_status INTEGER,
    last_error TEXT,
    last_response TEXT,
    reason TEXT,
    error_code INTEGER,
    error_data TEXT,
    redeliveries INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    last_attempt_at TEXT,
    delivered_at TEXT,
    dead_lettered_at TEXT,
    UNIQUE (event_seq, trigger_name)
);
CREATE INDEX broker_deliveries_due ON broker_deliveries (status, next_attempt_ms);
CREATE INDEX broker_deliveries_trigger ON broker_deliveries (trigger_name, status);
