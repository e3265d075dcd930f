//! Image metadata in PostgreSQL; the bytes are in the shared blob store.

use async_trait::async_trait;

use super::PgDb;
use crate::store::StoreError;
use crate::store::images::{ImageIndex, ImageMeta};

pub struct PgImageIndex {
    db: PgDb,
}

impl PgImageIndex {
    pub fn new(db: PgDb) -> Self {
        Self { db }
    }
}

#[async_trait]
impl ImageIndex for PgImageIndex {
    async fn insert(&self, owner: &str, image: &ImageMeta) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO images (id, owner, mime, size_bytes, created_at_ms) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&image.id)
        .bind(owner)
        .bind(&image.mime)
        .bind(image.size_bytes)
        .bind(image.created_at_ms)
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }

    async fn is_owner(&self, id: &str, owner: &str) -> Result<bool, StoreError> {
        let owned: Option<String> =
            sqlx::query_scalar("SELECT id FROM images WHERE id = $1 AND owner = $2")
                .bind(id)
                .bind(owner)
                .fetch_optional(&self.db.pool)
                .await?;
        Ok(owned.is_some())
    }

    async fn list(&self, owner: &str, limit: u32) -> Result<Vec<ImageMeta>, StoreError> {
        let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(
            "SELECT id, mime, size_bytes, created_at_ms FROM images WHERE owner = $1 \
             ORDER BY created_at_ms DESC, id DESC LIMIT $2",
        )
        .bind(owner)
        .bind(i64::from(limit))
        .fetch_all(&self.db.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, mime, size_bytes, created_at_ms)| ImageMeta {
                id,
                mime,
                size_bytes,
                created_at_ms,
            })
            .collect())
    }
}
