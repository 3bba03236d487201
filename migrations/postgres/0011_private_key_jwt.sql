-- Latchkey schema v11: private_key_jwt client authentication (RFC 7523 §2.2, OIDC Core §9;
-- issue 13 item 5). A client's public keys: a JWKS registered inline (`client create
-- --jwks-file`) or the URL Latchkey fetches it from (`--jwks-uri`).
ALTER TABLE clients ADD COLUMN jwks TEXT NULL;
ALTER TABLE clients ADD COLUMN jwks_uri TEXT NULL;

-- Assertions already used, by (client, jti), until they expire: RFC 7523 §3 lets the server
-- refuse a replayed `jti`, and this table makes that hold across replicas.
CREATE TABLE client_assertions (
    client_id  TEXT NOT NULL,
    jti        TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (client_id, jti)
);
CREATE INDEX client_assertions_expiry ON client_assertions (expires_at);
