//! What a key may do besides its tier (docs/keys.md): the endpoint groups and models it
//! may use, its spending limits, per-key overrides of the tier's limits, and who it is
//! for. Built only through [`KeySettingsInput::validate`], which names the field at fault.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::auth::error::KeyError;

/// The endpoint groups a key can be scoped to, one per family of routes.
pub const SCOPES: &[&str] = &[
    "generate", "edit", "compose", "chat", "story", "advanced", "batches", "openai", "gemini",
];

/// Bounds on what an operator may attach to a key: metadata is for names and owners,
/// not for storing documents in the key table.
const MAX_METADATA_ENTRIES: usize = 16;
const MAX_METADATA_TEXT: usize = 256;
const MAX_NAME: usize = 200;
const MAX_MODELS: usize = 64;
/// A million dollars a day is no limit at all; anything above is a typo.
const MAX_BUDGET_USD: f64 = 1_000_000.0;

/// The settings as stored (JSON in `api_keys.settings`) and as shown in listings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct KeySettings {
    /// Endpoint groups the key may call; `None`: all of them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// Models the key may name; `None`: any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub models: Option<Vec<String>>,
    /// Overrides of the tier's requests per minute and requests in flight.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<u32>,
    /// Free-form labels (owner, team…), returned in listings.
    pub metadata: BTreeMap<String, String>,
}

impl KeySettings {
    pub fn allows_scope(&self, scope: &str) -> bool {
        self.scopes
            .as_ref()
            .is_none_or(|s| s.iter().any(|x| x == scope))
    }

    pub fn allows_model(&self, model: &str) -> bool {
        self.models
            .as_ref()
            .is_none_or(|m| m.iter().any(|x| x == model))
    }

    pub fn from_stored(json: &str) -> Self {
        // Written only by this code; a row it cannot read falls back to no restriction
        // on scopes would be unsafe, so an unreadable row allows nothing.
        serde_json::from_str(json).unwrap_or_else(|_| Self {
            scopes: Some(Vec::new()),
            models: Some(Vec::new()),
            ..Self::default()
        })
    }

    pub fn to_stored(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }
}

/// Spending limits in micro-dollars (exact sums), per UTC day and per UTC month.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpendLimits {
    pub daily_micro: Option<i64>,
    pub monthly_micro: Option<i64>,
}

impl SpendLimits {
    pub fn any(&self) -> bool {
        self.daily_micro.is_some() || self.monthly_micro.is_some()
    }
}

/// What an operator sends to create or change a key (admin API and CLI). Every field is
/// optional; on update, a field left out keeps its value. `null` budgets clear a limit.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySettingsInput {
    pub tier: Option<String>,
    pub name: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub models: Option<Vec<String>>,
    #[serde(default, deserialize_with = "explicit")]
    pub daily_budget_usd: Option<Option<f64>>,
    #[serde(default, deserialize_with = "explicit")]
    pub monthly_budget_usd: Option<Option<f64>>,
    pub requests_per_minute: Option<u32>,
    pub max_concurrent: Option<u32>,
    pub metadata: Option<BTreeMap<String, String>>,
    /// RFC 3339; `null` clears it.
    #[serde(default, deserialize_with = "explicit")]
    pub expires_at: Option<Option<String>>,
}

/// Tells a field sent as `null` (`Some(None)`) from one left out (`None`).
fn explicit<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// A validated change to a key.
#[derive(Debug, Clone, Default)]
pub struct KeyChange {
    pub tier: Option<String>,
    pub name: Option<String>,
    pub settings: KeySettings,
    pub daily: Option<Option<i64>>,
    pub monthly: Option<Option<i64>>,
    pub expires_at_ms: Option<Option<i64>>,
}

impl KeySettingsInput {
    /// Checks every field against what the service knows (`tiers`, `models`), and
    /// applies the change to `current`.
    pub fn validate(
        self,
        current: &KeySettings,
        tiers: &[&str],
        known_model: impl Fn(&str) -> bool,
    ) -> Result<KeyChange, KeyError> {
        let mut settings = current.clone();
        if let Some(tier) = &self.tier
            && !tiers.contains(&tier.as_str())
        {
            return Err(KeyError::invalid("tier", format!("Unknown tier {tier:?}."))
                .detail("allowed", tiers.to_vec()));
        }
        if let Some(name) = &self.name
            && (name.chars().count() > MAX_NAME || name.chars().any(char::is_control))
        {
            return Err(KeyError::invalid(
                "name",
                format!("The name must be at most {MAX_NAME} printable characters."),
            ));
        }
        if let Some(scopes) = self.scopes {
            if let Some(bad) = scopes.iter().find(|s| !SCOPES.contains(&s.as_str())) {
                return Err(
                    KeyError::invalid("scopes", format!("Unknown scope {bad:?}."))
                        .detail("allowed", SCOPES.to_vec()),
                );
            }
            settings.scopes = Some(dedup(scopes));
        }
        if let Some(models) = self.models {
            if models.len() > MAX_MODELS {
                return Err(KeyError::invalid(
                    "models",
                    format!("At most {MAX_MODELS} models."),
                ));
            }
            if let Some(bad) = models.iter().find(|m| !known_model(m)) {
                return Err(KeyError::invalid(
                    "models",
                    format!("Unknown model {bad:?}."),
                ));
            }
            settings.models = Some(dedup(models));
        }
        if let Some(rpm) = self.requests_per_minute {
            settings.requests_per_minute = Some(positive("requests_per_minute", rpm)?);
        }
        if let Some(n) = self.max_concurrent {
            settings.max_concurrent = Some(positive("max_concurrent", n)?);
        }
        if let Some(metadata) = self.metadata {
            check_metadata(&metadata)?;
            settings.metadata = metadata;
        }
        let expires_at_ms = match self.expires_at {
            None => None,
            Some(None) => Some(None),
            Some(Some(text)) => Some(Some(parse_time("expires_at", &text)?)),
        };
        Ok(KeyChange {
            tier: self.tier,
            name: self.name,
            settings,
            daily: budget("daily_budget_usd", self.daily_budget_usd)?,
            monthly: budget("monthly_budget_usd", self.monthly_budget_usd)?,
            expires_at_ms,
        })
    }
}

fn dedup(mut values: Vec<String>) -> Vec<String> {
    values.sort();
    values.dedup();
    values
}

fn positive(field: &str, n: u32) -> Result<u32, KeyError> {
    if n == 0 || n > 1_000_000 {
        return Err(KeyError::invalid(
            field,
            format!("{field} must be between 1 and 1000000."),
        ));
    }
    Ok(n)
}

fn check_metadata(metadata: &BTreeMap<String, String>) -> Result<(), KeyError> {
    let too_long = |s: &String| s.chars().count() > MAX_METADATA_TEXT;
    if metadata.len() > MAX_METADATA_ENTRIES
        || metadata
            .iter()
            .any(|(k, v)| k.is_empty() || too_long(k) || too_long(v))
    {
        return Err(KeyError::invalid(
            "metadata",
            format!(
                "Metadata holds at most {MAX_METADATA_ENTRIES} entries, with non-empty keys and keys and values of at most {MAX_METADATA_TEXT} characters."
            ),
        ));
    }
    Ok(())
}

/// A budget in dollars to micro-dollars; `null` clears the limit.
fn budget(field: &str, value: Option<Option<f64>>) -> Result<Option<Option<i64>>, KeyError> {
    match value {
        None => Ok(None),
        Some(None) => Ok(Some(None)),
        Some(Some(usd)) if (0.0..=MAX_BUDGET_USD).contains(&usd) => {
            Ok(Some(Some((usd * 1e6).round() as i64)))
        }
        Some(Some(_)) => Err(KeyError::invalid(
            field,
            format!("{field} must be a number of dollars from 0 to {MAX_BUDGET_USD}."),
        )),
    }
}

/// An RFC 3339 instant in unix milliseconds.
pub fn parse_time(field: &str, text: &str) -> Result<i64, KeyError> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .map_err(|_| {
            KeyError::invalid(
                field,
                format!("{field} must be an RFC 3339 time such as 2027-01-31T00:00:00Z."),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(json: &str) -> KeySettingsInput {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn unknown_scopes_negative_budgets_and_bad_times_are_refused_with_the_field() {
        for (json, field) in [
            (r#"{"scopes": ["generate", "admin"]}"#, "scopes"),
            (r#"{"daily_budget_usd": -1}"#, "daily_budget_usd"),
            (r#"{"monthly_budget_usd": 1e300}"#, "monthly_budget_usd"),
            (r#"{"expires_at": "tomorrow"}"#, "expires_at"),
            (r#"{"models": ["no-such-model"]}"#, "models"),
            (r#"{"requests_per_minute": 0}"#, "requests_per_minute"),
        ] {
            let e = input(json)
                .validate(&KeySettings::default(), &["free"], |m| m == "known")
                .unwrap_err();
            let KeyError::Invalid { details, .. } = e else {
                panic!("{json}: {e:?}")
            };
            assert_eq!(details["field"], field, "{json}");
        }
    }

    #[test]
    fn budgets_are_micro_dollars_and_null_clears_them() {
        let change = input(r#"{"daily_budget_usd": 0.1, "monthly_budget_usd": null}"#)
            .validate(&KeySettings::default(), &[], |_| true)
            .unwrap();
        assert_eq!(change.daily, Some(Some(100_000)));
        assert_eq!(change.monthly, Some(None));
    }

    #[test]
    fn an_unreadable_stored_row_allows_nothing() {
        let s = KeySettings::from_stored("not json");
        assert!(!s.allows_scope("generate"));
        assert!(!s.allows_model("any"));
        assert!(KeySettings::from_stored("{}").allows_scope("generate"));
    }
}
