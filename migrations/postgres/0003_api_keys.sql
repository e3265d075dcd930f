-- API keys issued by `imagegate keys create`. Only the SHA-256 of a key is kept.
CREATE TABLE api_keys (
    key_id         TEXT PRIMARY KEY,
    name           TEXT,
    tier           TEXT NOT NULL,
    key_hash       TEXT NOT NULL UNIQUE,
    shown          TEXT NOT NULL,
    created_at_ms  BIGINT NOT NULL,
    revoked_at_ms  BIGINT
);
