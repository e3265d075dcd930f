//! Who is calling: turns a bearer token into a [`Caller`] (contract §5). Keys issued by
//! `imagegate keys create` are looked up by digest; the server's own `GOOGLE_API_KEY` is
//! also accepted, as a paid caller, so the guide's samples work as written.

pub mod keys;

use std::sync::Arc;

use crate::caller::Caller;
use crate::config::Secret;
use crate::store::StoreError;
use crate::store::keys::{KeyRecord, KeyStore};
use keys::KeyDigest;

/// The caller id of requests that present the server's Google key.
pub const GOOGLE_KEY_ID: &str = "key_google";
/// The tier of the server's Google key: whoever holds it pays the upstream bill anyway.
pub const GOOGLE_KEY_TIER: &str = "paid";

pub struct Authenticator {
    keys: Arc<dyn KeyStore>,
    google_key: Option<KeyDigest>,
}

impl Authenticator {
    pub fn new(keys: Arc<dyn KeyStore>, google_key: Option<&Secret>) -> Self {
        Self {
            keys,
            google_key: google_key.map(|k| KeyDigest::of(k.expose())),
        }
    }

    /// The caller a token stands for; `None` for unknown and revoked keys.
    pub async fn identify(&self, token: &str) -> Result<Option<Caller>, StoreError> {
        let digest = KeyDigest::of(token);
        if self.google_key.as_ref().is_some_and(|g| g.matches(&digest)) {
            return Ok(Some(Caller {
                key_id: GOOGLE_KEY_ID.to_owned(),
                tier: GOOGLE_KEY_TIER.to_owned(),
            }));
        }
        if !token.starts_with(keys::KEY_PREFIX) {
            return Ok(None);
        }
        // The digest is the index. Looking it up is not a timing oracle on the key: an
        // attacker cannot steer a SHA-256 towards a stored digest byte by byte. The
        // final comparison is constant-time all the same.
        let Some(record) = self.keys.find_active(&digest).await? else {
            return Ok(None);
        };
        if !record.digest.matches(&digest) {
            return Ok(None);
        }
        Ok(Some(Caller {
            key_id: record.key_id,
            tier: record.tier,
        }))
    }
}

/// A key as issued: the secret (to show once) and its stored record.
pub struct IssuedKey {
    pub token: Secret,
    pub record: KeyRecord,
}

/// Generates a key of `tier` and stores its digest; the secret itself is never stored.
pub async fn issue_key(
    store: &dyn KeyStore,
    tier: &str,
    name: Option<String>,
    now_ms: i64,
) -> Result<IssuedKey, StoreError> {
    let generated = keys::generate();
    let record = KeyRecord {
        key_id: crate::ids::new_id("key"),
        name,
        tier: tier.to_owned(),
        digest: generated.digest,
        shown: generated.shown,
        created_at_ms: now_ms,
        revoked_at_ms: None,
    };
    store.insert(&record).await?;
    Ok(IssuedKey {
        token: generated.token,
        record,
    })
}
