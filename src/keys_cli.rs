//! `imagegate keys create|list|get|update|revoke|rotate|usage`, and the first key made at first start so a
//! newcomer can call the API straight away. A key is printed once, on stdout, and only
//! its digest is stored; everything else goes to stderr so `$(imagegate keys create)`
//! captures exactly the key.

use std::io::{IsTerminal as _, Write};

use anyhow::Context as _;

use crate::auth::{IssuedKey, issue_key};
use crate::cli::load_config as load;
use crate::clock::{Clock, SystemClock, rfc3339};
use crate::config::{Config, ConfigFlags};
use crate::store::Storage;
use crate::store::keys::KeyStore;

mod manage;

#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// Issue a key. It is printed once, on stdout; only its hash is stored.
    Create {
        /// A tier from the configuration (`free` and `paid` always exist).
        #[arg(long, default_value = "free")]
        tier: String,
        /// A note to recognise the key by in `keys list`.
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        settings: manage::SettingsFlags,
        #[command(flatten)]
        config: ConfigFlags,
    },
    /// Show one key's settings as JSON.
    Get {
        key_id: String,
        #[command(flatten)]
        config: ConfigFlags,
    },
    /// Change a key's tier, name or settings; flags left out keep their values.
    Update {
        key_id: String,
        #[arg(long)]
        tier: Option<String>,
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        settings: manage::SettingsFlags,
        #[command(flatten)]
        config: ConfigFlags,
    },
    /// Issue a successor with the same settings (printed once, on stdout); the old key
    /// keeps working for the grace period, then answers 401 naming its successor.
    Rotate {
        key_id: String,
        /// Seconds the old key keeps working.
        #[arg(long, default_value_t = 0)]
        grace_secs: u64,
        #[command(flatten)]
        config: ConfigFlags,
    },
    /// Usage and cost by key, UTC day and model, as JSON.
    Usage {
        /// Only this key.
        #[arg(long)]
        key_id: Option<String>,
        /// Days ending today.
        #[arg(long, default_value_t = 30)]
        days: i64,
        #[command(flatten)]
        config: ConfigFlags,
    },
    /// List issued keys: id, tier, name, first characters, created, revoked.
    List {
        #[command(flatten)]
        config: ConfigFlags,
    },
    /// Revoke a key by its id (`key_…`); requests with it get 401 from then on.
    Revoke {
        key_id: String,
        #[command(flatten)]
        config: ConfigFlags,
    },
}

pub async fn run(command: KeysCommand) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match command {
        KeysCommand::Create {
            tier,
            name,
            settings,
            config,
        } => {
            let input = settings.input(Some(tier), name)?;
            manage::create(&load(&config)?, input, &mut out).await?;
        }
        KeysCommand::Get { key_id, config } => {
            manage::get(&load(&config)?, &key_id, &mut out).await?;
        }
        KeysCommand::Update {
            key_id,
            tier,
            name,
            settings,
            config,
        } => {
            let input = settings.input(tier, name)?;
            manage::update(&load(&config)?, &key_id, input, &mut out).await?;
        }
        KeysCommand::Rotate {
            key_id,
            grace_secs,
            config,
        } => {
            manage::rotate(&load(&config)?, &key_id, grace_secs, &mut out).await?;
        }
        KeysCommand::Usage {
            key_id,
            days,
            config,
        } => {
            manage::usage(&load(&config)?, key_id.as_deref(), days, &mut out).await?;
        }
        KeysCommand::List { config } => {
            let store = open_existing(&load(&config)?).await?;
            writeln!(
                out,
                "{:<31} {:<6} {:<10} {:<26} {:<26} name metadata",
                "key_id", "tier", "key", "created", "revoked"
            )?;
            for key in store.list().await? {
                // Metadata after the name, as `key=value` pairs (owner, team…).
                let metadata: Vec<String> = key
                    .settings
                    .metadata
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                writeln!(
                    out,
                    "{:<31} {:<6} {:<10} {:<26} {:<26} {} {}",
                    key.key_id,
                    key.tier,
                    format!("{}…", key.shown),
                    rfc3339(key.created_at_ms),
                    key.revoked_at_ms.map(rfc3339).unwrap_or_else(|| "-".into()),
                    key.name.unwrap_or_default(),
                    metadata.join(" "),
                )?;
            }
        }
        KeysCommand::Revoke { key_id, config } => {
            let store = open_existing(&load(&config)?).await?;
            if !store.revoke(&key_id, SystemClock.now_ms()).await? {
                anyhow::bail!("no active key has the id {key_id:?} (see `imagegate keys list`)");
            }
            writeln!(out, "revoked {key_id}")?;
        }
    }
    Ok(())
}

/// Issues a key of a configured tier in the configured data directory.
pub async fn create(
    config: &Config,
    tier: &str,
    name: Option<String>,
) -> anyhow::Result<IssuedKey> {
    if config.tiers.get(tier).is_none() {
        anyhow::bail!(
            "unknown tier {tier:?}; configured tiers: {}",
            config.tiers.names().join(", ")
        );
    }
    let store = open(config).await?;
    Ok(issue_key(store.as_ref(), tier, name, SystemClock.now_ms()).await?)
}

/// The key store of the configured database (`database_url`, or the data directory's).
async fn open(config: &Config) -> anyhow::Result<std::sync::Arc<KeyStore>> {
    tokio::fs::create_dir_all(&config.data_dir)
        .await
        .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
    let storage = Storage::open(config)
        .await
        .context("opening the database")?;
    Ok(storage.keys)
}

/// The key store of a database that must exist already: listing or revoking keys in a
/// mistyped data directory is an error, not an empty list in a database made for it.
async fn open_existing(config: &Config) -> anyhow::Result<std::sync::Arc<KeyStore>> {
    Ok(Storage::open_existing(config).await?.keys)
}

/// At the first start ever (no key was ever issued), issues a paid key and shows it on
/// the terminal. Only when stdout is a terminal: a key printed into a captured log
/// stream (a container's, a CI job's) would be a key in the logs.
pub async fn ensure_first_key(config: &Config) -> anyhow::Result<()> {
    if !config.auth.create_first_key {
        return Ok(());
    }
    let store = open(config).await?;
    if !store.list().await?.is_empty() {
        return Ok(());
    }
    if !std::io::stdout().is_terminal() {
        tracing::warn!(
            "no API key exists yet; create one with `imagegate keys create --tier paid`"
        );
        return Ok(());
    }
    let issued = issue_key(
        store.as_ref(),
        "paid",
        Some("first key".into()),
        SystemClock.now_ms(),
    )
    .await?;
    tracing::info!(key_id = %issued.record.key_id, "issued a first API key (shown once on the terminal)");
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "\nNo API key existed, so imagegate issued a first one (tier paid, id {}).\n\
         It is shown only now; only its hash is stored:\n\n    {}\n\n\
         Send it as `Authorization: Bearer <key>`. More keys: `imagegate keys create --tier free|paid`.\n",
        issued.record.key_id,
        issued.token.expose()
    )?;
    Ok(())
}
