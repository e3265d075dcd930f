-- Chat messages run in the order they were accepted (issue 17). A message's request row
-- names its session and its place in that session's order; a synchronous message holds
-- a row too (status 'sync', never claimed by a worker) while it waits and runs, so that
-- later messages, sync or async and on any instance, wait for it. The unique index makes
-- two messages taking the same place at once impossible: the second one takes the next.
ALTER TABLE requests ADD COLUMN session_id TEXT;
ALTER TABLE requests ADD COLUMN session_seq BIGINT;
CREATE UNIQUE INDEX requests_session_order ON requests (session_id, session_seq);
