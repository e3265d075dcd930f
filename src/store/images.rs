//! Image bytes, stored under the data directory (one file per image, written
//! atomically), with each image's owner recorded in the database: an image is served
//! only to the caller it was made for.

use std::path::PathBuf;

use async_trait::async_trait;
use bytes::Bytes;

use crate::clock::{Clock, SystemClock};
use crate::ids;
use crate::imaging::ImageFormat;
use crate::store::db::{Db, StoreError};

#[async_trait]
pub trait ImageStore: Send + Sync + 'static {
    async fn put(
        &self,
        id: &str,
        owner: &str,
        format: ImageFormat,
        bytes: Bytes,
    ) -> Result<(), StoreError>;
    /// `None` for unknown or malformed ids and for images of another owner.
    async fn get(&self, id: &str, owner: &str) -> Result<Option<Bytes>, StoreError>;
    /// For history replay: the bytes regardless of owner (the caller checked the session).
    async fn get_unchecked(&self, id: &str) -> Result<Option<Bytes>, StoreError>;
    /// The owner's most recent images, newest first, without their bytes.
    async fn list(&self, owner: &str, limit: u32) -> Result<Vec<ImageMeta>, StoreError>;
}

/// What is known about a stored image besides its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageMeta {
    pub id: String,
    pub mime: String,
    pub size_bytes: i64,
    pub created_at_ms: i64,
}

pub struct FsImageStore {
    dir: PathBuf,
    db: Db,
}

impl FsImageStore {
    pub async fn open(data_dir: &std::path::Path, db: Db) -> std::io::Result<Self> {
        let dir = data_dir.join("images");
        tokio::fs::create_dir_all(&dir).await?;
        Ok(Self { dir, db })
    }

    fn path(&self, id: &str) -> Option<PathBuf> {
        ids::is_valid("img", id).then(|| self.dir.join(id))
    }

    async fn read(&self, id: &str) -> Result<Option<Bytes>, StoreError> {
        let Some(path) = self.path(id) else {
            return Ok(None);
        };
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(Some(Bytes::from(bytes))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::new(format!("reading image {id}: {e}"))),
        }
    }
}

#[async_trait]
impl ImageStore for FsImageStore {
    async fn put(
        &self,
        id: &str,
        owner: &str,
        format: ImageFormat,
        bytes: Bytes,
    ) -> Result<(), StoreError> {
        let path = self
            .path(id)
            .ok_or_else(|| StoreError::new("malformed image id"))?;
        // Write then rename, so a reader never sees half an image after a crash.
        let tmp = path.with_extension("part");
        let io = |e: std::io::Error| StoreError::new(format!("writing image {id}: {e}"));
        tokio::fs::write(&tmp, &bytes).await.map_err(io)?;
        tokio::fs::rename(&tmp, &path).await.map_err(io)?;
        sqlx::query("INSERT INTO images (id, owner, mime, size_bytes, created_at_ms) VALUES (?, ?, ?, ?, ?)")
            .bind(id)
            .bind(owner)
            .bind(format.mime())
            .bind(bytes.len() as i64)
            .bind(SystemClock.now_ms())
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }

    async fn get(&self, id: &str, owner: &str) -> Result<Option<Bytes>, StoreError> {
        if !ids::is_valid("img", id) {
            return Ok(None);
        }
        let owned: Option<String> =
            sqlx::query_scalar("SELECT id FROM images WHERE id = ? AND owner = ?")
                .bind(id)
                .bind(owner)
                .fetch_optional(&self.db.pool)
                .await?;
        match owned {
            Some(_) => self.read(id).await,
            None => Ok(None),
        }
    }

    async fn get_unchecked(&self, id: &str) -> Result<Option<Bytes>, StoreError> {
        self.read(id).await
    }

    async fn list(&self, owner: &str, limit: u32) -> Result<Vec<ImageMeta>, StoreError> {
        // Served by the (owner, created_at_ms) index; the id breaks ties within a millisecond.
        let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(
            "SELECT id, mime, size_bytes, created_at_ms FROM images WHERE owner = ? \
             ORDER BY created_at_ms DESC, id DESC LIMIT ?",
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
