//! Chat sessions: the session row and its turns. Turns refer to images by id; the
//! bytes stay in the image store. Thought signatures are stored as standard base64 of
//! the exact bytes received, so a conversation is sent back byte for byte.

use serde::{Deserialize, Serialize};
use sqlx::Row as _;

use crate::store::StoreError;
use crate::store::db::Db;

#[derive(Debug, Clone, PartialEq)]
pub struct SessionRecord {
    pub id: String,
    pub owner: String,
    pub model: String,
    pub system_prompt: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub expires_at_ms: i64,
    pub turn_count: i64,
    pub image_bytes: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoredPart {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub thought: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoredTurn {
    pub seq: i64,
    /// "user" or "model".
    pub role: String,
    pub parts: Vec<StoredPart>,
    pub created_at_ms: i64,
}

pub struct SessionStore {
    db: Db,
}

impl SessionStore {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    pub async fn create(&self, s: &SessionRecord) -> Result<(), StoreError> {
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

    /// The session if it exists, belongs to `owner` and has not expired at `now_ms`.
    pub async fn get(
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

    pub async fn turns(&self, id: &str) -> Result<Vec<StoredTurn>, StoreError> {
        let rows = sqlx::query("SELECT seq, role, parts, created_at_ms FROM session_turns WHERE session_id = $1 ORDER BY seq")
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
                        .map_err(|e| StoreError::malformed("turn parts", e))?,
                    created_at_ms: row.try_get("created_at_ms")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()
    }

    /// Appends `turns` only if the session still has `expected_turns` turns, so two
    /// writers (even on two instances) cannot interleave a conversation. `false` on conflict.
    pub async fn append(
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
            let parts = serde_json::to_string(&turn.parts)
                .map_err(|e| StoreError::malformed("turn parts", e))?;
            sqlx::query("INSERT INTO session_turns (session_id, seq, role, parts, created_at_ms) VALUES ($1, $2, $3, $4, $5)")
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

    pub async fn delete(&self, id: &str, owner: &str) -> Result<bool, StoreError> {
        let mut tx = self.db.pool.begin().await?;
        let deleted = sqlx::query("DELETE FROM sessions WHERE id = $1 AND owner = $2")
            .bind(id)
            .bind(owner)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM session_turns WHERE session_id = $1 AND NOT EXISTS (SELECT 1 FROM sessions WHERE id = $1)")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(deleted.rows_affected() == 1)
    }

    pub async fn delete_expired(&self, now_ms: i64) -> Result<u64, StoreError> {
        let mut tx = self.db.pool.begin().await?;
        sqlx::query("DELETE FROM session_turns WHERE session_id IN (SELECT id FROM sessions WHERE expires_at_ms <= $1)")
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        let gone = sqlx::query("DELETE FROM sessions WHERE expires_at_ms <= $1")
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(gone.rows_affected())
    }
}

fn record(row: &sqlx::any::AnyRow) -> Result<SessionRecord, sqlx::Error> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn session(id: &str, now: i64) -> SessionRecord {
        SessionRecord {
            id: id.into(),
            owner: "alice".into(),
            model: "m".into(),
            system_prompt: Some("be brief".into()),
            created_at_ms: now,
            updated_at_ms: now,
            expires_at_ms: now + 1000,
            turn_count: 0,
            image_bytes: 0,
        }
    }

    fn turn(seq: i64, role: &str) -> StoredTurn {
        StoredTurn {
            seq,
            role: role.into(),
            parts: vec![StoredPart {
                text: Some(format!("turn {seq}")),
                image_id: None,
                mime: None,
                thought: false,
                signature: Some("AAEC".into()),
            }],
            created_at_ms: 1,
        }
    }

    #[tokio::test]
    async fn sessions_are_owned_expire_and_append_without_interleaving() {
        let dir = tempfile::tempdir().unwrap();
        let store = SessionStore::new(Db::open(dir.path()).await.unwrap());
        store.create(&session("s1", 100)).await.unwrap();
        assert!(store.get("s1", "alice", 100).await.unwrap().is_some());
        assert!(
            store.get("s1", "mallory", 100).await.unwrap().is_none(),
            "another owner sees nothing"
        );
        assert!(
            store.get("s1", "alice", 1100).await.unwrap().is_none(),
            "expired"
        );

        assert!(
            store
                .append("s1", 0, &[turn(0, "user"), turn(1, "model")], 10, 200, 5000)
                .await
                .unwrap()
        );
        assert!(
            !store
                .append("s1", 0, &[turn(0, "user")], 0, 200, 5000)
                .await
                .unwrap(),
            "a stale writer loses"
        );
        let turns = store.turns("s1").await.unwrap();
        assert_eq!(turns.len(), 2);
        assert_eq!(turns[1].parts[0].signature.as_deref(), Some("AAEC"));
        let s = store.get("s1", "alice", 300).await.unwrap().unwrap();
        assert_eq!(
            (s.turn_count, s.image_bytes, s.expires_at_ms),
            (2, 10, 5000)
        );

        assert_eq!(store.delete_expired(6000).await.unwrap(), 1);
        assert!(store.turns("s1").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn sessions_survive_reopening_the_database() {
        let dir = tempfile::tempdir().unwrap();
        SessionStore::new(Db::open(dir.path()).await.unwrap())
            .create(&session("s2", 100))
            .await
            .unwrap();
        let reopened = SessionStore::new(Db::open(dir.path()).await.unwrap());
        assert!(reopened.get("s2", "alice", 100).await.unwrap().is_some());
    }
}
