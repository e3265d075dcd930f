//! Subcommands of the `imagegate` binary.

use clap::{Parser, Subcommand};

use crate::config::{Config, ConfigFlags, LogFormat};

#[derive(Debug, Parser)]
#[command(
    name = "imagegate",
    version,
    about = "A self-hosted image-generation gateway for Gemini image models"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the HTTP API (port 8000 by default).
    Serve(ConfigFlags),
    /// Print the effective configuration as TOML, secrets redacted, each value commented
    /// with the layer that set it (default, config file, environment, command line).
    Config(ConfigFlags),
    /// Apply the database migrations (`serve` also does at start) and print the version.
    Migrate(ConfigFlags),
    /// Generate an image from a prompt (talks to a running server).
    Generate(crate::client::GenerateArgs),
    /// Edit an image with a prompt.
    Edit(crate::client::EditArgs),
    /// Compose two or three images with a prompt.
    Compose(crate::client::ComposeArgs),
    /// Generate an illustrated sequence, one image per step.
    Story(crate::client::StoryArgs),
    /// An interactive chat session that refines an image turn by turn.
    Chat(crate::client::ChatArgs),
    /// Bulk generation at half price through the upstream's Batch API.
    Batch {
        #[command(subcommand)]
        command: crate::client::BatchCommand,
    },
    /// Issue, list and revoke API keys.
    Keys {
        #[command(subcommand)]
        command: crate::keys_cli::KeysCommand,
    },
}

/// `imagegate migrate`: opens the configured storage, which applies missing migrations
/// (each once, even when instances start together), and says where the schema stands.
pub async fn migrate(config: &Config) -> anyhow::Result<String> {
    let storage = crate::store::Storage::open(config).await?;
    let version = storage.database.schema_version().await?;
    Ok(format!(
        "database schema at version {version} ({})\n",
        storage.description
    ))
}

pub fn load_config(flags: &ConfigFlags) -> anyhow::Result<Config> {
    // `.env` fills in variables that are not already set, as the guide describes.
    let _ = dotenvy::dotenv();
    Ok(Config::load(flags, &|name| std::env::var(name).ok())?)
}

/// `imagegate config`: the effective configuration, as [`load_config`] would build it.
pub fn explain_config(flags: &ConfigFlags) -> anyhow::Result<String> {
    let _ = dotenvy::dotenv();
    Ok(Config::explain(flags, &|name| std::env::var(name).ok())?)
}

pub fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Pretty => builder.init(),
    }
}
