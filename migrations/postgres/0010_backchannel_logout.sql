-- Latchkey schema v10: OpenID Connect Back-Channel Logout 1.0 (issue 13 item 6). A client's
-- registered `backchannel_logout_uri` (§2.2) and `backchannel_logout_session_required`. The
-- logout tokens themselves travel through the outbox (kind 'backchannel_logout').
ALTER TABLE clients ADD COLUMN backchannel_logout_uri TEXT NULL;
ALTER TABLE clients ADD COLUMN backchannel_logout_session_required BIGINT NOT NULL DEFAULT 0;
