-- Latchkey schema v13: the admin API (issue 13 item 1).
-- Users are listed in email order and searched by the start of their address. The order is the
-- bytes' ("C"), whatever the database's collation, so a prefix is one contiguous range of this
-- index and a page cursor means the same thing on every server.
CREATE INDEX users_email_bytes ON users (email COLLATE "C");
-- The audit trail filtered by the client an event is about, newest first.
CREATE INDEX audit_events_client ON audit_events (client_id, id);
