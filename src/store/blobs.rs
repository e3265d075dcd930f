//! Bytes kept beside the database: stored images (`images/<id>`) and the bodies of
//! async requests (`requests/<id>.body`). Files under the data directory by default, or
//! an S3-compatible bucket that every instance shares, both through `object_store`, so
//! the two differ only in how they are opened.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt as _, PutPayload};

use crate::config::ObjectStoreConfig;
use crate::store::StoreError;

pub struct ObjectBlobs {
    store: Arc<dyn ObjectStore>,
    /// Inside a shared bucket, everything of this deployment is under this prefix.
    prefix: Option<ObjectPath>,
    description: String,
}

/// A stored object's name must be one of ours: no `..`, no absolute paths, no empty parts.
fn checked(key: &str) -> Result<ObjectPath, StoreError> {
    let valid = !key.is_empty()
        && key.split('/').all(|part| {
            !part.is_empty()
                && part != ".."
                && part != "."
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        });
    if !valid {
        return Err(StoreError::malformed("blob key", format!("{key:?}")));
    }
    ObjectPath::parse(key).map_err(|e| StoreError::malformed("blob key", e))
}

fn failed(what: &str, key: &str) -> impl FnOnce(object_store::Error) -> StoreError {
    let message = format!("{what} {key}");
    move |e| StoreError::Blob {
        action: message,
        source: e.into(),
    }
}

impl ObjectBlobs {
    /// Files under `dir`, each written to a temporary name and renamed into place.
    pub fn local(dir: &std::path::Path) -> Result<Self, StoreError> {
        // The folders exist from the start, as earlier versions made them.
        for folder in ["images", "requests"] {
            let path = dir.join(folder);
            std::fs::create_dir_all(&path).map_err(|e| StoreError::Blob {
                action: format!("creating {}", path.display()),
                source: e.into(),
            })?;
        }
        let store = LocalFileSystem::new_with_prefix(dir).map_err(|e| StoreError::Blob {
            action: format!("opening {}", dir.display()),
            source: e.into(),
        })?;
        Ok(Self {
            store: Arc::new(store),
            prefix: None,
            description: format!("files under {}", dir.display()),
        })
    }

    /// A bucket named by `s3://BUCKET[/PREFIX]`. Nothing is contacted until first use.
    pub fn s3(url: &str, settings: &ObjectStoreConfig) -> Result<Self, StoreError> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| StoreError::Config(format!("not an s3:// URL: {url:?}")))?;
        // Its HTTP client is reqwest without a built-in TLS provider; ring is the one we
        // ship. (Also done by `App::build`; the CLI opens storage without an App.)
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(bucket)
            // A stalled object store must not hold a generation (or a worker) forever.
            .with_client_options(
                ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(5))
                    .with_timeout(Duration::from_secs(60)),
            )
            // After the client options, which it is part of (they would reset it).
            .with_allow_http(settings.allow_http);
        // S3-compatible servers answer at one host for every bucket (path-style URLs).
        if let Some(endpoint) = &settings.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        builder = builder.with_region(settings.region.as_deref().unwrap_or("us-east-1"));
        if let Some(id) = &settings.access_key_id {
            builder = builder.with_access_key_id(id);
        }
        if let Some(secret) = &settings.secret_access_key {
            builder = builder.with_secret_access_key(secret.expose());
        }
        if let Some(token) = &settings.session_token {
            builder = builder.with_token(token.expose());
        }
        let store = builder.build().map_err(|e| StoreError::Blob {
            action: format!("object store {url}"),
            source: e.into(),
        })?;
        let prefix = prefix.trim_matches('/');
        Ok(Self {
            store: Arc::new(store),
            prefix: if prefix.is_empty() {
                None
            } else {
                Some(checked(prefix)?)
            },
            description: match &settings.endpoint {
                Some(endpoint) => format!("{url} at {endpoint}"),
                None => url.to_owned(),
            },
        })
    }

    fn path(&self, key: &str) -> Result<ObjectPath, StoreError> {
        let key = checked(key)?;
        Ok(match &self.prefix {
            Some(prefix) => prefix.parts().chain(key.parts()).collect(),
            None => key,
        })
    }

    /// Writes `bytes` under `key` atomically: a reader sees all of them or none.
    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<(), StoreError> {
        let path = self.path(key)?;
        self.store
            .put(&path, PutPayload::from(bytes))
            .await
            .map_err(failed("writing", key))?;
        Ok(())
    }

    /// `None` when nothing is stored under `key`.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        let path = self.path(key)?;
        match self.store.get(&path).await {
            Ok(found) => Ok(Some(found.bytes().await.map_err(failed("reading", key))?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(failed("reading", key)(e)),
        }
    }

    /// Removing a missing key is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let path = self.path(key)?;
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(failed("removing", key)(e)),
        }
    }

    /// Writes and removes a small object: can this store take bytes now? (`/ready`)
    pub async fn probe(&self) -> Result<(), StoreError> {
        // Where images go, since storing them is what must work; a unique name, so
        // concurrent probes (of several instances) never collide. It is no image id, so
        // it can never be served.
        let key = format!("images/ready-{}", ulid::Ulid::new());
        self.put(&key, Bytes::from_static(b"ready")).await?;
        self.delete(&key).await
    }

    /// Where the bytes go, for the start-up log (no credentials).
    pub fn describe(&self) -> String {
        self.description.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn files_round_trip_and_missing_keys_are_none() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = ObjectBlobs::local(dir.path()).unwrap();
        blobs
            .put("images/img_1", Bytes::from_static(b"png"))
            .await
            .unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("images/img_1")).unwrap(),
            b"png",
            "the layout under the data directory is the one earlier versions wrote"
        );
        assert_eq!(
            blobs.get("images/img_1").await.unwrap().as_deref(),
            Some(&b"png"[..])
        );
        assert_eq!(blobs.get("images/img_2").await.unwrap(), None);
        blobs.delete("images/img_1").await.unwrap();
        blobs.delete("images/img_1").await.unwrap();
        assert_eq!(blobs.get("images/img_1").await.unwrap(), None);
        blobs.probe().await.unwrap();
    }

    #[tokio::test]
    async fn keys_that_could_leave_the_store_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = ObjectBlobs::local(dir.path()).unwrap();
        for key in ["../x", "/etc/passwd", "a//b", "", "images/a b", "images/.."] {
            assert!(blobs.get(key).await.is_err(), "{key:?}");
        }
    }
}
