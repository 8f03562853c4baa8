-- One row per ride, built only from events. `facts` is the JSON GrabFacts (what each event
-- said), statuses are derived from it on read. The other columns are derived copies kept
-- for filtering and ordering lists.
CREATE TABLE grab_statuses (
    grab_id TEXT PRIMARY KEY,
    facts TEXT NOT NULL,
    phone_digits TEXT,
    grab_status TEXT NOT NULL,
    created_at TEXT,
    updated_at TEXT
);
CREATE INDEX grab_statuses_by_phone ON grab_statuses (phone_digits, updated_at);
CREATE INDEX grab_statuses_recent ON grab_statuses (updated_at);
