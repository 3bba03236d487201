-- Latchkey schema v12: what `latchkey apply` declares beside clients (issue 13 item 3): the
-- words the consent page shows for a scope, and the roles an installation uses.
CREATE TABLE scope_descriptions (
    scope       TEXT PRIMARY KEY,
    description TEXT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE TABLE roles (
    name        TEXT PRIMARY KEY,
    description TEXT NULL,
    updated_at  BIGINT NOT NULL
);
