-- Who each stored image belongs to; the bytes are files (or objects) named by id.
CREATE TABLE images (
    id             TEXT PRIMARY KEY,
    owner          TEXT NOT NULL,
    mime           TEXT NOT NULL,
    size_bytes     INTEGER NOT NULL,
    created_at_ms  INTEGER NOT NULL
);
CREATE INDEX images_owner ON images (owner, created_at_ms);
