-- One row per upstream result returned to a client, priced when it was recorded.
-- `day` is the UTC date (YYYY-MM-DD) of the call, so reports group without date maths.
CREATE TABLE usage_events (
    id              BIGSERIAL PRIMARY KEY,
    key_id          TEXT NOT NULL,
    request_id      TEXT NOT NULL,
    model           TEXT NOT NULL,
    day             TEXT NOT NULL,
    created_at_ms   BIGINT NOT NULL,
    images          BIGINT NOT NULL,
    input_tokens    BIGINT NOT NULL,
    output_tokens   BIGINT NOT NULL,
    image_tokens    BIGINT NOT NULL,
    thought_tokens  BIGINT NOT NULL,
    cost_micro_usd  BIGINT NOT NULL
);
CREATE INDEX usage_events_key_day ON usage_events (key_id, day);
