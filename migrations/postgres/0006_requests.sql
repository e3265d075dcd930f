-- Durable async work (contract §5): a request is stored before its 202 is sent, claimed
-- by a worker under a lease (FOR UPDATE SKIP LOCKED, so instances never wait on each
-- other), and taken up again when the lease of a dead worker expires.
CREATE TABLE requests (
    id              TEXT PRIMARY KEY,
    owner           TEXT NOT NULL,
    tier            TEXT NOT NULL,
    path            TEXT NOT NULL,
    content_type    TEXT NOT NULL,
    body_ref        TEXT NOT NULL,
    webhook_url     TEXT,
    status          TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    lease_until_ms  BIGINT,
    result          TEXT,
    error           TEXT,
    created_at_ms   BIGINT NOT NULL,
    finished_at_ms  BIGINT
);
CREATE INDEX requests_claim ON requests (status, created_at_ms);

-- Webhook deliveries, written in the same transaction that finishes their request.
CREATE TABLE webhook_deliveries (
    id              TEXT PRIMARY KEY,
    request_id      TEXT NOT NULL,
    owner           TEXT NOT NULL,
    url             TEXT NOT NULL,
    payload         TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_ms BIGINT NOT NULL,
    lease_until_ms  BIGINT,
    last_status     BIGINT,
    created_at_ms   BIGINT NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_ms);

-- One Standard Webhooks signing secret per key, made on first use.
CREATE TABLE webhook_secrets (
    owner          TEXT PRIMARY KEY,
    secret         TEXT NOT NULL,
    created_at_ms  BIGINT NOT NULL
);
