-- Per-key settings (issue 15): scopes, models, limit overrides and metadata as JSON;
-- expiry and rotation; spending limits and the spend counters they are checked against.
-- The counters live on the key's own row so that one conditional UPDATE reserves a
-- call's worst-case cost against both the day's and the month's limit atomically.
ALTER TABLE api_keys ADD COLUMN settings TEXT NOT NULL DEFAULT '{}';
ALTER TABLE api_keys ADD COLUMN expires_at_ms BIGINT;
ALTER TABLE api_keys ADD COLUMN rotated_to TEXT;
ALTER TABLE api_keys ADD COLUMN grace_until_ms BIGINT;
ALTER TABLE api_keys ADD COLUMN daily_budget_micro BIGINT;
ALTER TABLE api_keys ADD COLUMN monthly_budget_micro BIGINT;
ALTER TABLE api_keys ADD COLUMN spend_day TEXT NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN spend_day_micro BIGINT NOT NULL DEFAULT 0;
ALTER TABLE api_keys ADD COLUMN spend_month TEXT NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN spend_month_micro BIGINT NOT NULL DEFAULT 0;
