-- Who each stored image belongs to; the bytes are objects named by id.
CREATE TABLE images (
    id             TEXT PRIMARY KEY,
    owner          TEXT NOT NULL,
    mime           TEXT NOT NULL,
    size_bytes     BIGINT NOT NULL,
    created_at_ms  BIGINT NOT NULL
);
CREATE INDEX images_owner ON images (owner, created_at_ms);
