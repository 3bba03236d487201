-- Latchkey schema v8: browser origins a client registered explicitly for CORS at the token,
-- userinfo and revocation endpoints (issue 11 item 1), beside the origins of its redirect URIs.
-- A JSON array of `scheme://host[:port]` strings.
ALTER TABLE clients ADD COLUMN allowed_origins TEXT NOT NULL DEFAULT '[]';
