-- no-transaction
-- Write-ahead logging: readers never wait for the writer and a commit appends to the
-- log instead of syncing a rollback journal several times. The mode is persistent (it
-- is stored in the database file), so it is set once, here. SQLite refuses to change
-- it inside a transaction, hence `no-transaction` (the runner's marker, as in sqlx).
PRAGMA journal_mode = WAL;
