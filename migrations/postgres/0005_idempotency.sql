-- Results of POSTs sent with an Idempotency-Key, replayed for 24 hours.
CREATE TABLE idempotency (
    key_id           TEXT NOT NULL,
    idempotency_key  TEXT NOT NULL,
    fingerprint      TEXT NOT NULL,
    status           BIGINT NOT NULL,
    headers          TEXT NOT NULL,
    body             BYTEA NOT NULL,
    created_at_ms    BIGINT NOT NULL,
    expires_at_ms    BIGINT NOT NULL,
    PRIMARY KEY (key_id, idempotency_key)
);
CREATE INDEX idempotency_expiry ON idempotency (expires_at_ms);
