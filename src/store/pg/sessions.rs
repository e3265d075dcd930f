//! Chat sessions in PostgreSQL. `append` is a compare-and-set on the turn count: under
//! READ COMMITTED a second writer's UPDATE waits for the first, re-reads the row and
//! matches nothing, so two instances cannot interleave one conversation.

use async_trait::async_trait;
use sqlx::Row as _;
use sqlx::postgres::PgRow;

use super::PgDb;
use crate::store::StoreError;
use crate::store::sessions::{SessionRecord, SessionStore, StoredTurn};

pub struct PgSessionStore {
    db: PgDb,
}

impl PgSessionStore {
    pub fn new(db: PgDb) -> Self {
        Self { db }
    }
}

fn record(row: &PgRow) -> Result<SessionRecord, sqlx::Error> {
    Ok(SessionRecord {
        id: row.try_get("id")?,
        owner: row.try_get("owner")?,
        model: row.try_get("model")?,
        system_prompt: row.try_get("system_prompt")?,
        created_at_ms: row.try_get("created_at_ms")?,
        updated_at_ms: row.try_get("updated_at_ms")?,
        expires_at_ms: row.try_get("expires_at_ms")?,
        turn_count: row.try_get("turn_count")?,
        image_bytes: row.try_get("image_bytes")?,
    })
}

#[async_trait]
impl SessionStore for PgSessionStore {
    async fn create(&self, s: &SessionRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (id, owner, model, system_prompt, created_at_ms, updated_at_ms, expires_at_ms, turn_count, image_bytes)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&s.id)
        .bind(&s.owner)
        .bind(&s.model)
        .bind(&s.system_prompt)
        .bind(s.created_at_ms)
        .bind(s.updated_at_ms)
        .bind(s.expires_at_ms)
        .bind(s.turn_count)
        .bind(s.image_bytes)
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }

    async fn get(
        &self,
        id: &str,
        owner: &str,
        now_ms: i64,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT * FROM sessions WHERE id = $1 AND owner = $2 AND expires_at_ms > $3",
        )
        .bind(id)
        .bind(owner)
        .bind(now_ms)
        .fetch_optional(&self.db.pool)
        .await?;
        Ok(row.as_ref().map(record).transpose()?)
    }

    async fn turns(&self, id: &str) -> Result<Vec<StoredTurn>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, role, parts, created_at_ms FROM session_turns WHERE session_id = $1 ORDER BY seq",
        )
        .bind(id)
        .fetch_all(&self.db.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let parts: String = row.try_get("parts")?;
                Ok(StoredTurn {
                    seq: row.try_get("seq")?,
                    role: row.try_get("role")?,
                    parts: serde_json::from_str(&parts)
                        .map_err(|e| StoreError::new(format!("turn parts: {e}")))?,
                    created_at_ms: row.try_get("created_at_ms")?,
                })
            })
            .collect()
    }

    async fn append(
        &self,
        id: &str,
        expected_turns: i64,
        turns: &[StoredTurn],
        added_image_bytes: i64,
        now_ms: i64,
        expires_at_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.db.pool.begin().await?;
        let updated = sqlx::query(
            "UPDATE sessions SET turn_count = turn_count + $1, image_bytes = image_bytes + $2, updated_at_ms = $3, expires_at_ms = $4
             WHERE id = $5 AND turn_count = $6",
        )
        .bind(turns.len() as i64)
        .bind(added_image_bytes)
        .bind(now_ms)
        .bind(expires_at_ms)
        .bind(id)
        .bind(expected_turns)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() != 1 {
            return Ok(false);
        }
        for turn in turns {
            let parts =
                serde_json::to_string(&turn.parts).map_err(|e| StoreError::new(e.to_string()))?;
            sqlx::query(
                "INSERT INTO session_turns (session_id, seq, role, parts, created_at_ms) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(id)
            .bind(turn.seq)
            .bind(&turn.role)
            .bind(parts)
            .bind(turn.created_at_ms)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn delete(&self, id: &str, owner: &str) -> Result<bool, StoreError> {
        // Turns go with their session (ON DELETE CASCADE).
        let deleted = sqlx::query("DELETE FROM sessions WHERE id = $1 AND owner = $2")
            .bind(id)
            .bind(owner)
            .execute(&self.db.pool)
            .await?;
        Ok(deleted.rows_affected() == 1)
    }

    async fn delete_expired(&self, now_ms: i64) -> Result<u64, StoreError> {
        let gone = sqlx::query("DELETE FROM sessions WHERE expires_at_ms <= $1")
            .bind(now_ms)
            .execute(&self.db.pool)
            .await?;
        Ok(gone.rows_affected())
    }
}
