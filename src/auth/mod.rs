//! Who is calling: turns a bearer token into a [`Caller`]
//! (docs/api.md#keys-and-limits). Keys issued by
//! `imagegate keys create` are looked up by digest; the server's own `GOOGLE_API_KEY` is
//! also accepted, as a paid caller, so the guide's samples work as written.

pub mod error;
pub mod keys;
pub mod manage;
pub mod settings;

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
    keys: Arc<KeyStore>,
    google_key: Option<KeyDigest>,
}

impl Authenticator {
    pub fn new(keys: Arc<KeyStore>, google_key: Option<&Secret>) -> Self {
        Self {
            keys,
            google_key: google_key.map(|k| KeyDigest::of(k.expose())),
        }
    }

    /// The caller a token stands for, or why it stands for none at `now_ms`.
    pub async fn identify(&self, token: &str, now_ms: i64) -> Result<Identity, StoreError> {
        let digest = KeyDigest::of(token);
        if self.google_key.as_ref().is_some_and(|g| g.matches(&digest)) {
            return Ok(Identity::Caller(Caller::of_tier(
                GOOGLE_KEY_ID,
                GOOGLE_KEY_TIER,
            )));
        }
        if !token.starts_with(keys::KEY_PREFIX) {
            return Ok(Identity::Unknown);
        }
        // The digest is the index. Looking it up is not a timing oracle on the key: an
        // attacker cannot steer a SHA-256 towards a stored digest byte by byte. The
        // final comparison is constant-time all the same.
        let Some(record) = self.keys.find_active(&digest).await? else {
            return Ok(Identity::Unknown);
        };
        if !record.digest.matches(&digest) {
            return Ok(Identity::Unknown);
        }
        if let (Some(successor), Some(until)) = (&record.rotated_to, record.grace_until_ms)
            && now_ms >= until
        {
            return Ok(Identity::Rotated {
                successor: successor.clone(),
            });
        }
        if record.expires_at_ms.is_some_and(|at| now_ms >= at) {
            return Ok(Identity::Expired);
        }
        Ok(Identity::Caller(Caller {
            key_id: record.key_id,
            tier: record.tier,
            budgeted: record.limits.any(),
            settings: Arc::new(record.settings),
        }))
    }
}

/// Who a token stands for.
#[derive(Debug)]
pub enum Identity {
    Caller(Caller),
    /// Not a key, or a revoked one.
    Unknown,
    Expired,
    /// Rotated, and its grace period is over.
    Rotated {
        successor: String,
    },
}

/// A key as issued: the secret (to show once) and its stored record.
pub struct IssuedKey {
    pub token: Secret,
    pub record: KeyRecord,
}

/// Generates a key of `tier` and stores its digest; the secret itself is never stored.
pub async fn issue_key(
    store: &KeyStore,
    tier: &str,
    name: Option<String>,
    now_ms: i64,
) -> Result<IssuedKey, StoreError> {
    issue_with(
        store,
        KeyTemplate {
            tier: tier.to_owned(),
            name,
            ..KeyTemplate::default()
        },
        now_ms,
    )
    .await
}

/// Everything a new key starts with but its secret.
#[derive(Debug, Clone, Default)]
pub struct KeyTemplate {
    pub tier: String,
    pub name: Option<String>,
    pub settings: settings::KeySettings,
    pub limits: settings::SpendLimits,
    pub expires_at_ms: Option<i64>,
}

impl KeyTemplate {
    /// The settings of an existing key, for its successor.
    pub fn of(record: &KeyRecord) -> Self {
        Self {
            tier: record.tier.clone(),
            name: record.name.clone(),
            settings: record.settings.clone(),
            limits: record.limits,
            expires_at_ms: record.expires_at_ms,
        }
    }
}

/// Generates a key from `template` and stores its digest.
pub async fn issue_with(
    store: &KeyStore,
    template: KeyTemplate,
    now_ms: i64,
) -> Result<IssuedKey, StoreError> {
    let generated = keys::generate();
    let record = KeyRecord {
        key_id: crate::ids::new_id("key"),
        name: template.name,
        tier: template.tier,
        digest: generated.digest,
        shown: generated.shown,
        created_at_ms: now_ms,
        revoked_at_ms: None,
        settings: template.settings,
        limits: template.limits,
        expires_at_ms: template.expires_at_ms,
        rotated_to: None,
        grace_until_ms: None,
    };
    store.insert(&record).await?;
    Ok(IssuedKey {
        token: generated.token,
        record,
    })
}
