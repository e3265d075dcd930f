-- Batches hold their items' worst-case cost against the key's budget from submission
-- until they end (issue 15, docs/batches.md): the amount and the UTC day and month it was
-- reserved in, so the settlement (real cost minus this) goes back to the same counters.
ALTER TABLE batches ADD COLUMN reserved_micro INTEGER NOT NULL DEFAULT 0;
ALTER TABLE batches ADD COLUMN reserved_day TEXT NOT NULL DEFAULT '';
ALTER TABLE batches ADD COLUMN reserved_month TEXT NOT NULL DEFAULT '';
