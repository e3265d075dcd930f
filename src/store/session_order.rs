//! The order of a chat session's messages (issue 17): each message's request row names
//! its session and takes the next place in it when it is accepted; a message runs only
//! once every earlier place has finished. The SQL is written once, with numbered
//! parameters, for both backends.
//!
//! A place is *pending* while its row is queued or running (a dead worker's row too: it
//! will be taken up again), or held by a synchronous request (`sync`) whose hold has
//! not lapsed. A synchronous row is never claimed by a worker; if its process dies the
//! hold lapses and later messages go on.

/// Status of a synchronous message's row.
pub const SYNC: &str = "sync";

/// Inserts a message's row at the next place of its session, in one statement: the
/// unique index `(session_id, session_seq)` turns a place taken at the same moment by
/// another writer into an error, and the writer takes the next place ([`is_taken`]).
pub(crate) const INSERT: &str = "INSERT INTO requests (id, owner, tier, path, content_type, \
     body_ref, webhook_url, status, attempts, lease_until_ms, created_at_ms, session_id, session_seq) \
     SELECT $1, $2, $3, $4, $5, $6, $7, $8, 0, $9, $10, $11, COALESCE(MAX(session_seq), 0) + 1 \
     FROM requests WHERE session_id = $11";

/// Holds whose process died, so the table does not keep them.
pub(crate) const PRUNE: &str = "DELETE FROM requests WHERE session_id = $1 AND status = 'sync' \
     AND lease_until_ms < $2";

pub(crate) const HOLD: &str =
    "UPDATE requests SET lease_until_ms = $2 WHERE id = $1 AND status = 'sync'";

pub(crate) const LEAVE: &str = "DELETE FROM requests WHERE id = $1 AND status = 'sync'";

pub(crate) const EARLIER: &str = "SELECT COUNT(*) FROM requests e \
     JOIN requests me ON e.session_id = me.session_id \
     WHERE me.id = $1 AND e.session_seq < me.session_seq \
     AND (e.status IN ('queued', 'running') OR (e.status = 'sync' AND e.lease_until_ms >= $2))";

pub(crate) const PENDING: &str = "SELECT COUNT(*) FROM requests e WHERE e.session_id = $1 \
     AND (e.status IN ('queued', 'running') OR (e.status = 'sync' AND e.lease_until_ms >= $2))";

/// Attempts at taking a place before giving up: each lost race means another message of
/// the same session was accepted in between, which a client does not do for long.
pub(crate) const INSERT_ATTEMPTS: usize = 8;

/// A place (or a request id) already taken.
pub(crate) fn is_taken(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_unique_violation())
}
