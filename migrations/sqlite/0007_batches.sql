-- Bulk generation through the upstream's Batch API (docs/batches.md): one row per
-- submission, claimed under a lease by whichever instance's worker is free, so a crash
-- or a restart loses nothing and another instance can take a batch over.
CREATE TABLE batches (
    id               TEXT PRIMARY KEY,
    owner            TEXT NOT NULL,
    tier             TEXT NOT NULL,
    model            TEXT NOT NULL,
    display_name     TEXT,
    webhook_url      TEXT,
    -- queued (not yet upstream) | running | succeeded | failed | cancelled | expired
    state            TEXT NOT NULL,
    item_count       INTEGER NOT NULL,
    upstream_name    TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    attempts         INTEGER NOT NULL DEFAULT 0,
    polls            INTEGER NOT NULL DEFAULT 0,
    next_poll_ms     INTEGER NOT NULL,
    lease_until_ms   INTEGER,
    -- Per-item outcomes (JSON array), written once with the terminal state.
    items            TEXT,
    error            TEXT,
    created_at_ms    INTEGER NOT NULL,
    updated_at_ms    INTEGER NOT NULL,
    finished_at_ms   INTEGER
);
CREATE INDEX batches_due ON batches (state, next_poll_ms);
CREATE INDEX batches_owner ON batches (owner, created_at_ms);
CREATE INDEX batches_upstream ON batches (upstream_name);
