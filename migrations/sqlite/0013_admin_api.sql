-- Latchkey schema v13: the admin API (issue 13 item 1).
-- Users are listed in email order (SQLite's BINARY collation: byte order) by the unique index
-- on `email`, so nothing is needed for them here.
-- The audit trail filtered by the client an event is about, newest first.
CREATE INDEX audit_events_client ON audit_events (client_id, id);
