//! Opens the configured storage once at start-up: the database named by `database_url`
//! (embedded SQLite by default, or PostgreSQL) with its migrations applied, and the blob
//! store named by `object_store_url` (files under the data directory by default, or
//! S3). Everything else sees the stores' methods, never SQL.

use std::sync::Arc;

use crate::config::Config;
use crate::store::StoreError;
use crate::store::batches::BatchStore;
use crate::store::blobs::ObjectBlobs;
use crate::store::db::Db;
use crate::store::idempotency::IdempotencyStore;
use crate::store::images::{ImageIndex, ImageStore};
use crate::store::keys::KeyStore;
use crate::store::requests::RequestStore;
use crate::store::sessions::SessionStore;
use crate::store::usage::UsageStore;

/// The file a `sqlite://` URL names (`None` for in-memory databases).
fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then(|| std::path::PathBuf::from(path))
}

/// Every store the service uses.
#[derive(Clone)]
pub struct Storage {
    pub keys: Arc<KeyStore>,
    pub sessions: Arc<SessionStore>,
    pub images: Arc<ImageStore>,
    pub usage: Arc<UsageStore>,
    pub idempotency: Arc<IdempotencyStore>,
    pub requests: Arc<RequestStore>,
    pub batches: Arc<BatchStore>,
    pub blobs: Arc<ObjectBlobs>,
    pub database: Db,
    /// For the start-up log: where state and bytes are kept, without credentials.
    pub description: String,
}

impl Storage {
    /// Opens the database (applying missing migrations) and the blob store.
    pub async fn open(config: &Config) -> Result<Self, StoreError> {
        let blobs: Arc<ObjectBlobs> = Arc::new(match &config.object_store_url {
            Some(url) => ObjectBlobs::s3(url, &config.object_store)?,
            None => ObjectBlobs::local(&config.data_dir)?,
        });
        let url = config.database_url.as_ref();
        let (db, database) = match url.map(|u| (u.scheme(), u.expose())) {
            Some(("postgres" | "postgresql", url)) => (
                Db::connect_postgres(url, config.database.acquire_timeout()).await?,
                "PostgreSQL",
            ),
            Some((_, url)) => (Db::open_url(url).await?, "SQLite"),
            None => (Db::open(&config.data_dir).await?, "SQLite"),
        };
        let mut storage = Self::over(db, blobs);
        let at = url.map_or_else(
            || config.data_dir.join("imagegate.db").display().to_string(),
            |u| u.redacted(),
        );
        storage.description = format!("{database} at {at}; bytes in {}", storage.blobs.describe());
        Ok(storage)
    }

    /// Opens storage that must already exist: for commands that read (`keys list`,
    /// `keys revoke`), where a mistyped data directory or URL would otherwise create a
    /// new, empty database and report that it holds nothing.
    pub async fn open_existing(config: &Config) -> Result<Self, StoreError> {
        let hint = "check --data-dir / IMAGEGATE_DATA_DIR or --database-url / \
                    IMAGEGATE_DATABASE_URL (`imagegate serve` or `imagegate migrate` creates it)";
        match config.database_url.as_ref().map(|u| (u.scheme(), u)) {
            Some(("postgres" | "postgresql", url)) => {
                if !Db::has_postgres_schema(url.expose()).await? {
                    return Err(StoreError::NoDatabase {
                        at: format!("{} (it has no migration table)", url.redacted()),
                        hint,
                    });
                }
            }
            other => {
                let file = match other {
                    Some((_, url)) => sqlite_file(url.expose()),
                    None => Some(config.data_dir.join("imagegate.db")),
                };
                if let Some(file) = file
                    && !file.exists()
                {
                    return Err(StoreError::NoDatabase {
                        at: file.display().to_string(),
                        hint,
                    });
                }
            }
        }
        Self::open(config).await
    }

    /// Every store over one database (SQLite or PostgreSQL, or one schema of it).
    pub fn over(db: Db, blobs: Arc<ObjectBlobs>) -> Self {
        let index = ImageIndex::new(db.clone());
        Self {
            keys: Arc::new(KeyStore::new(db.clone())),
            sessions: Arc::new(SessionStore::new(db.clone())),
            images: Arc::new(ImageStore::new(index, blobs.clone())),
            usage: Arc::new(UsageStore::new(db.clone())),
            idempotency: Arc::new(IdempotencyStore::new(db.clone())),
            requests: Arc::new(RequestStore::new(db.clone())),
            batches: Arc::new(BatchStore::new(db.clone())),
            blobs,
            database: db,
            description: String::new(),
        }
    }
}
