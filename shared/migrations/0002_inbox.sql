-- Inbox: a consumed CloudEvent's (source, id), recorded in the same transaction as the
-- state change it caused, so a redelivery changes nothing.
CREATE TABLE inbox (
    source TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (source, event_id)
);
