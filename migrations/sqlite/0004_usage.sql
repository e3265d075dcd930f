-- One row per upstream result returned to a client, priced when it was recorded.
-- `day` is the UTC date (YYYY-MM-DD) of the call, so reports group without date maths.
CREATE TABLE usage_events (
    id              INTEGER PRIMARY KEY,
    key_id          TEXT NOT NULL,
    request_id      TEXT NOT NULL,
    model           TEXT NOT NULL,
    day             TEXT NOT NULL,
    created_at_ms   INTEGER NOT NULL,
    images          INTEGER NOT NULL,
    input_tokens    INTEGER NOT NULL,
    output_tokens   INTEGER NOT NULL,
    image_tokens    INTEGER NOT NULL,
    thought_tokens  INTEGER NOT NULL,
    cost_micro_usd  INTEGER NOT NULL
);
CREATE INDEX usage_events_key_day ON usage_events (key_id, day);
