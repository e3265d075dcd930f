//! `imagegate keys get|update|rotate|usage` and the settings flags of `create` and
//! `update`: the admin API's operations, offline on the configured database.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::Context as _;
use serde_json::{Value, json};

use crate::auth::manage::{self, Known};
use crate::auth::settings::KeySettingsInput;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::models::ModelTable;
use crate::store::Storage;
use crate::store::usage::utc_day;

/// A key's settings as flags (docs/keys.md); each left out keeps its value on update.
#[derive(Debug, Default, clap::Args)]
pub struct SettingsFlags {
    /// Endpoint groups the key may use, comma-separated (generate, edit, compose, chat,
    /// story, advanced, batches, openai, gemini).
    #[arg(long, value_delimiter = ',')]
    pub scopes: Option<Vec<String>>,
    /// Models the key may use, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub models: Option<Vec<String>>,
    /// Spending limit in USD per UTC day (`none` clears it).
    #[arg(long)]
    pub daily_budget: Option<String>,
    /// Spending limit in USD per UTC month (`none` clears it).
    #[arg(long)]
    pub monthly_budget: Option<String>,
    /// Requests per minute, replacing the tier's.
    #[arg(long)]
    pub requests_per_minute: Option<u32>,
    /// Requests in flight, replacing the tier's.
    #[arg(long)]
    pub max_concurrent: Option<u32>,
    /// When the key stops working, RFC 3339 (`none` clears it).
    #[arg(long)]
    pub expires_at: Option<String>,
    /// `KEY=VALUE` labels such as owner=ana or team=web; replaces the metadata.
    #[arg(long = "meta")]
    pub metadata: Vec<String>,
}

impl SettingsFlags {
    /// The flags as the admin API's body, so both are checked by the same code.
    pub fn input(
        self,
        tier: Option<String>,
        name: Option<String>,
    ) -> anyhow::Result<KeySettingsInput> {
        let nullable = |v: Option<String>, number: bool| -> anyhow::Result<Option<Value>> {
            Ok(match v.as_deref() {
                None => None,
                Some("none") => Some(Value::Null),
                Some(text) if number => Some(json!(
                    text.parse::<f64>()
                        .with_context(|| format!("{text:?} is not a number of dollars"))?
                )),
                Some(text) => Some(json!(text)),
            })
        };
        let mut body = serde_json::Map::new();
        let mut put = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                body.insert(k.into(), v);
            }
        };
        put("tier", tier.map(Value::from));
        put("name", name.map(Value::from));
        put("scopes", self.scopes.map(|s| json!(s)));
        put("models", self.models.map(|s| json!(s)));
        put("daily_budget_usd", nullable(self.daily_budget, true)?);
        put("monthly_budget_usd", nullable(self.monthly_budget, true)?);
        put(
            "requests_per_minute",
            self.requests_per_minute.map(Value::from),
        );
        put("max_concurrent", self.max_concurrent.map(Value::from));
        put("expires_at", nullable(self.expires_at, false)?);
        if !self.metadata.is_empty() {
            let mut meta = BTreeMap::new();
            for pair in self.metadata {
                let (k, v) = pair
                    .split_once('=')
                    .with_context(|| format!("--meta {pair:?} is not KEY=VALUE"))?;
                meta.insert(k.to_owned(), v.to_owned());
            }
            put("metadata", Some(json!(meta)));
        }
        Ok(serde_json::from_value(Value::Object(body))?)
    }
}

fn models(config: &Config) -> anyhow::Result<ModelTable> {
    ModelTable::with_overrides(&config.models).map_err(anyhow::Error::msg)
}

async fn storage(config: &Config) -> anyhow::Result<Storage> {
    Storage::open(config).await.context("opening the database")
}

/// The database of existing keys: reading or changing keys in a mistyped data directory is
/// an error, not a database made for it (as `keys list` and `keys revoke`).
async fn existing(config: &Config) -> anyhow::Result<Storage> {
    Ok(Storage::open_existing(config).await?)
}

fn print(out: &mut impl Write, value: &Value) -> anyhow::Result<()> {
    writeln!(out, "{}", serde_json::to_string_pretty(value)?)?;
    Ok(())
}

/// Issues a key with settings; prints the key alone on stdout, the rest on stderr.
pub async fn create(
    config: &Config,
    input: KeySettingsInput,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let storage = storage(config).await?;
    let table = models(config)?;
    let tiers = config.tiers.names();
    let model = |name: &str| table.resolve(name).is_ok();
    let known = Known {
        tiers: &tiers,
        model: &model,
    };
    let issued = manage::create(storage.keys.as_ref(), input, &known, SystemClock.now_ms())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    eprintln!(
        "Created {} (tier {}). The key is shown once; only its hash is stored:",
        issued.record.key_id, issued.record.tier
    );
    writeln!(out, "{}", issued.token.expose())?;
    Ok(())
}

pub async fn get(config: &Config, key_id: &str, out: &mut impl Write) -> anyhow::Result<()> {
    let storage = existing(config).await?;
    let key = manage::get(storage.keys.as_ref(), key_id)
        .await
        .map_err(|e| anyhow::anyhow!("{e} ({key_id})"))?;
    print(out, &manage::view(&key))
}

pub async fn update(
    config: &Config,
    key_id: &str,
    input: KeySettingsInput,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let storage = existing(config).await?;
    let table = models(config)?;
    let tiers = config.tiers.names();
    let model = |name: &str| table.resolve(name).is_ok();
    let known = Known {
        tiers: &tiers,
        model: &model,
    };
    let key = manage::update(storage.keys.as_ref(), key_id, input, &known)
        .await
        .map_err(|e| anyhow::anyhow!("{e} ({key_id})"))?;
    print(out, &manage::view(&key))
}

pub async fn rotate(
    config: &Config,
    key_id: &str,
    grace_secs: u64,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let storage = existing(config).await?;
    let issued = manage::rotate(
        storage.keys.as_ref(),
        key_id,
        grace_secs,
        SystemClock.now_ms(),
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e} ({key_id})"))?;
    eprintln!(
        "Rotated {key_id} to {}; the old key works for {grace_secs} more seconds. The new key is shown once:",
        issued.record.key_id
    );
    writeln!(out, "{}", issued.token.expose())?;
    Ok(())
}

pub async fn usage(
    config: &Config,
    key_id: Option<&str>,
    days: i64,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let storage = existing(config).await?;
    let today = utc_day(SystemClock.now_ms());
    let from = today - time::Duration::days(days.clamp(1, 366) - 1);
    let rows = storage.usage.across_keys(key_id, from, today).await?;
    print(
        out,
        &json!({"from": from.to_string(), "to": today.to_string(), "rows": rows}),
    )
}
