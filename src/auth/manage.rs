//! Key management shared by the admin API and `imagegate keys …`: create, update and
//! rotate keys from checked settings, and the one way a key is shown in listings.

use serde_json::{Value, json};

use crate::auth::error::KeyError;
use crate::auth::settings::KeySettingsInput;
use crate::auth::{IssuedKey, KeyTemplate, issue_with};
use crate::clock::rfc3339;
use crate::store::keys::{KeyRecord, KeyStore};

/// Longest grace period a rotation may give the old key: a year is already lenient.
const MAX_GRACE_SECS: u64 = 366 * 24 * 3600;

/// What the service knows, to check settings against.
pub struct Known<'a> {
    pub tiers: &'a [&'a str],
    pub model: &'a (dyn Fn(&str) -> bool + Sync),
}

pub async fn create(
    store: &KeyStore,
    input: KeySettingsInput,
    known: &Known<'_>,
    now_ms: i64,
) -> Result<IssuedKey, KeyError> {
    let tier = input.tier.clone().unwrap_or_else(|| "free".into());
    let change = input.validate(&Default::default(), known.tiers, known.model)?;
    if !known.tiers.contains(&tier.as_str()) {
        return Err(KeyError::invalid("tier", format!("Unknown tier {tier:?}."))
            .detail("allowed", known.tiers.to_vec()));
    }
    let template = KeyTemplate {
        tier,
        name: change.name,
        settings: change.settings,
        limits: crate::auth::settings::SpendLimits {
            daily_micro: change.daily.flatten(),
            monthly_micro: change.monthly.flatten(),
        },
        expires_at_ms: change.expires_at_ms.flatten(),
    };
    Ok(issue_with(store, template, now_ms).await?)
}

pub async fn get(store: &KeyStore, key_id: &str) -> Result<KeyRecord, KeyError> {
    store
        .get(key_id)
        .await?
        .ok_or_else(|| KeyError::NotFound { revoked: false })
}

pub async fn update(
    store: &KeyStore,
    key_id: &str,
    input: KeySettingsInput,
    known: &Known<'_>,
) -> Result<KeyRecord, KeyError> {
    let mut key = get(store, key_id).await?;
    let change = input.validate(&key.settings, known.tiers, known.model)?;
    if let Some(tier) = change.tier {
        key.tier = tier;
    }
    if let Some(name) = change.name {
        key.name = Some(name);
    }
    key.settings = change.settings;
    if let Some(daily) = change.daily {
        key.limits.daily_micro = daily;
    }
    if let Some(monthly) = change.monthly {
        key.limits.monthly_micro = monthly;
    }
    if let Some(expires) = change.expires_at_ms {
        key.expires_at_ms = expires;
    }
    if !store.save(&key).await? {
        return Err(KeyError::NotFound { revoked: true });
    }
    Ok(key)
}

/// Issues a successor with the same settings; the old key keeps working for
/// `grace_secs`, then answers 401 naming its successor.
pub async fn rotate(
    store: &KeyStore,
    key_id: &str,
    grace_secs: u64,
    now_ms: i64,
) -> Result<IssuedKey, KeyError> {
    if grace_secs > MAX_GRACE_SECS {
        return Err(KeyError::invalid(
            "grace_secs",
            format!("grace_secs must be at most {MAX_GRACE_SECS}."),
        ));
    }
    let old = get(store, key_id).await?;
    if old.revoked_at_ms.is_some() || old.rotated_to.is_some() {
        return Err(KeyError::AlreadyReplaced);
    }
    let issued = issue_with(store, KeyTemplate::of(&old), now_ms).await?;
    let grace_until = now_ms + (grace_secs * 1000) as i64;
    // One budget for both credentials: the successor takes over what was spent, and
    // the old key's later calls are counted on the successor (`generation::spend`).
    if !store
        .hand_over(&old.key_id, &issued.record.key_id, grace_until)
        .await?
    {
        // Rotated or revoked by someone else meanwhile; the successor never worked.
        store.revoke(&issued.record.key_id, now_ms).await?;
        return Err(KeyError::AlreadyReplaced);
    }
    Ok(issued)
}

/// A key as listings show it: never its secret or digest.
pub fn view(key: &KeyRecord) -> Value {
    let usd = |m: Option<i64>| m.map(|m| m as f64 / 1e6);
    json!({
        "key_id": key.key_id,
        "name": key.name,
        "tier": key.tier,
        "shown": format!("{}…", key.shown),
        "created_at": rfc3339(key.created_at_ms),
        "revoked_at": key.revoked_at_ms.map(rfc3339),
        "expires_at": key.expires_at_ms.map(rfc3339),
        "rotated_to": key.rotated_to,
        "grace_until": key.grace_until_ms.map(rfc3339),
        "scopes": key.settings.scopes,
        "models": key.settings.models,
        "daily_budget_usd": usd(key.limits.daily_micro),
        "monthly_budget_usd": usd(key.limits.monthly_micro),
        "requests_per_minute": key.settings.requests_per_minute,
        "max_concurrent": key.settings.max_concurrent,
        "metadata": key.settings.metadata,
    })
}

/// A newly issued key with its secret, shown this once.
pub fn issued_view(issued: &IssuedKey) -> Value {
    let mut v = view(&issued.record);
    v["key"] = Value::String(issued.token.expose().to_owned());
    v
}
