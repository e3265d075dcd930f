-- Who is running an Idempotency-Key right now, so that instances sharing this database
-- run a key once: the first to insert the row runs it, the others wait for its result.
-- A claim is a lease: past claimed_until_ms a crashed runner's claim may be taken over.
CREATE TABLE idempotency_claims (
    key_id           TEXT NOT NULL,
    idempotency_key  TEXT NOT NULL,
    fingerprint      TEXT NOT NULL,
    owner            TEXT NOT NULL,
    claimed_until_ms BIGINT NOT NULL,
    PRIMARY KEY (key_id, idempotency_key)
);
