//! Image bytes, stored under the data directory (one file per image, written atomically).

use std::path::PathBuf;

use async_trait::async_trait;
use bytes::Bytes;

use crate::ids;

#[async_trait]
pub trait ImageStore: Send + Sync + 'static {
    async fn put(&self, id: &str, bytes: Bytes) -> std::io::Result<()>;
    /// `None` for unknown or malformed ids.
    async fn get(&self, id: &str) -> std::io::Result<Option<Bytes>>;
}

pub struct FsImageStore {
    dir: PathBuf,
}

impl FsImageStore {
    pub async fn open(data_dir: &std::path::Path) -> std::io::Result<Self> {
        let dir = data_dir.join("images");
        tokio::fs::create_dir_all(&dir).await?;
        Ok(Self { dir })
    }

    fn path(&self, id: &str) -> Option<PathBuf> {
        ids::is_valid("img", id).then(|| self.dir.join(id))
    }
}

#[async_trait]
impl ImageStore for FsImageStore {
    async fn put(&self, id: &str, bytes: Bytes) -> std::io::Result<()> {
        let path = self.path(id).ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "malformed image id")
        })?;
        // Write then rename, so a reader never sees half an image after a crash.
        let tmp = path.with_extension("part");
        tokio::fs::write(&tmp, &bytes).await?;
        tokio::fs::rename(&tmp, &path).await
    }

    async fn get(&self, id: &str) -> std::io::Result<Option<Bytes>> {
        let Some(path) = self.path(id) else {
            return Ok(None);
        };
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(Some(Bytes::from(bytes))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}
