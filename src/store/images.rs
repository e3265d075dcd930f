//! Stored images: the bytes in the blob store (files or S3, one object per image, written
//! atomically), each image's owner recorded in the database: an image is served only to
//! the caller it was made for.

use std::sync::Arc;

use bytes::Bytes;

use crate::clock::{Clock, SystemClock};
use crate::ids;
use crate::imaging::ImageFormat;
use crate::store::StoreError;
use crate::store::blobs::ObjectBlobs;
use crate::store::db::Db;

/// What is known about a stored image besides its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageMeta {
    pub id: String,
    pub mime: String,
    pub size_bytes: i64,
    pub created_at_ms: i64,
}

/// Where an image's bytes are kept; `None` for a malformed id.
pub fn blob_key(id: &str) -> Option<String> {
    ids::is_valid("img", id).then(|| format!("images/{id}"))
}

/// Images as the API sees them: bytes in the blob store, owner in the database.
pub struct ImageStore {
    index: ImageIndex,
    blobs: Arc<ObjectBlobs>,
}

impl ImageStore {
    pub fn new(index: ImageIndex, blobs: Arc<ObjectBlobs>) -> Self {
        Self { index, blobs }
    }

    /// The bytes of an image the database knows about: their absence is an error that
    /// names the cause, never a "not found" that contradicts `GET /images`.
    async fn read_known(&self, id: &str) -> Result<Option<Bytes>, StoreError> {
        let Some(key) = blob_key(id) else {
            return Ok(None);
        };
        match self.blobs.get(&key).await? {
            Some(bytes) => Ok(Some(bytes)),
            None => {
                let err = StoreError::MissingBytes {
                    id: id.to_owned(),
                    blobs: self.blobs.describe(),
                };
                tracing::error!(image_id = id, error = %err, "image bytes missing");
                Err(err)
            }
        }
    }

    pub async fn put(
        &self,
        id: &str,
        owner: &str,
        format: ImageFormat,
        bytes: Bytes,
    ) -> Result<(), StoreError> {
        let key = blob_key(id).ok_or(StoreError::Malformed {
            what: "image id",
            source: None,
        })?;
        let size_bytes = bytes.len() as i64;
        // Bytes first: a row never points at an image that is not there.
        self.blobs.put(&key, bytes).await?;
        self.index
            .insert(
                owner,
                &ImageMeta {
                    id: id.to_owned(),
                    mime: format.mime().to_owned(),
                    size_bytes,
                    created_at_ms: SystemClock.now_ms(),
                },
            )
            .await
    }

    /// `None` for unknown or malformed ids and for images of another owner.
    pub async fn get(&self, id: &str, owner: &str) -> Result<Option<Bytes>, StoreError> {
        if blob_key(id).is_none() || !self.index.is_owner(id, owner).await? {
            return Ok(None);
        }
        self.read_known(id).await
    }

    /// For history replay and signed links: the bytes regardless of owner (the caller
    /// checked the session or the signature). Missing bytes are an error, not `None`.
    pub async fn get_any_owner(&self, id: &str) -> Result<Option<Bytes>, StoreError> {
        // Callers hold an id the service handed out (a session's history, a signed link).
        self.read_known(id).await
    }

    /// The owner's most recent images, newest first, without their bytes.
    pub async fn list(&self, owner: &str, limit: u32) -> Result<Vec<ImageMeta>, StoreError> {
        self.index.list(owner, limit).await
    }
}

/// Image metadata (owner, type, size) in the database; the bytes are in [`ObjectBlobs`].
pub struct ImageIndex {
    db: Db,
}

impl ImageIndex {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    pub async fn insert(&self, owner: &str, image: &ImageMeta) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO images (id, owner, mime, size_bytes, created_at_ms) VALUES ($1, $2, $3, $4, $5)")
            .bind(&image.id)
            .bind(owner)
            .bind(&image.mime)
            .bind(image.size_bytes)
            .bind(image.created_at_ms)
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }

    pub async fn is_owner(&self, id: &str, owner: &str) -> Result<bool, StoreError> {
        let owned: Option<String> =
            sqlx::query_scalar("SELECT id FROM images WHERE id = $1 AND owner = $2")
                .bind(id)
                .bind(owner)
                .fetch_optional(&self.db.pool)
                .await?;
        Ok(owned.is_some())
    }

    /// The owner's most recent images, newest first.
    pub async fn list(&self, owner: &str, limit: u32) -> Result<Vec<ImageMeta>, StoreError> {
        // Served by the (owner, created_at_ms) index; the id breaks ties within a millisecond.
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
