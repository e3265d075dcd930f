-- Chat sessions and their turns. Image bytes live in the blob store; turns hold ids.
CREATE TABLE sessions (
    id             TEXT PRIMARY KEY,
    owner          TEXT NOT NULL,
    model          TEXT NOT NULL,
    system_prompt  TEXT,
    created_at_ms  BIGINT NOT NULL,
    updated_at_ms  BIGINT NOT NULL,
    expires_at_ms  BIGINT NOT NULL,
    turn_count     BIGINT NOT NULL DEFAULT 0,
    image_bytes    BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX sessions_expiry ON sessions (expires_at_ms);

CREATE TABLE session_turns (
    session_id     TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    seq            BIGINT NOT NULL,
    role           TEXT NOT NULL,
    parts          TEXT NOT NULL,
    created_at_ms  BIGINT NOT NULL,
    PRIMARY KEY (session_id, seq)
);
