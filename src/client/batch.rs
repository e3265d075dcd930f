//! `imagegate batch submit|status|results`: bulk generation at the batch price
//! (docs/batches.md). `submit` takes a text file (one prompt a line) or a `.jsonl` file
//! (one `/generate-image` body a line) and can wait for the batch with a progress bar.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use super::{Client, ClientError, Target, extension};

#[derive(Debug, clap::Subcommand)]
pub enum BatchCommand {
    /// Submit prompts.txt (one prompt a line) or items.jsonl (one /generate-image body a line).
    Submit {
        file: PathBuf,
        #[arg(long)]
        model: Option<String>,
        #[arg(long)]
        display_name: Option<String>,
        #[arg(long)]
        webhook_url: Option<String>,
        /// Wait for the batch to end, showing its progress.
        #[arg(long)]
        wait: bool,
        /// Seconds between status checks while waiting.
        #[arg(long, default_value_t = 5.0)]
        poll_secs: f64,
        #[command(flatten)]
        target: Target,
    },
    /// Show a batch's state and counts.
    Status {
        batch_id: String,
        #[command(flatten)]
        target: Target,
    },
    /// Print a batch's results (JSON lines), or save its images with --download.
    Results {
        batch_id: String,
        #[arg(long)]
        download: Option<PathBuf>,
        #[command(flatten)]
        target: Target,
    },
}

pub async fn batch(command: BatchCommand) -> Result<(), ClientError> {
    match command {
        BatchCommand::Submit {
            file,
            model,
            display_name,
            webhook_url,
            wait,
            poll_secs,
            target,
        } => {
            let client = Client::new(target)?;
            let text = tokio::fs::read_to_string(&file)
                .await
                .map_err(|e| ClientError::local(format!("cannot read {}: {e}", file.display())))?;
            let request = if file.extension().is_some_and(|e| e == "jsonl") {
                // Options travel in the query string next to a JSONL body.
                let mut url = reqwest::Url::parse("http://localhost/batches")
                    .map_err(|e| ClientError::local(e.to_string()))?;
                for (k, v) in [
                    ("model", &model),
                    ("display_name", &display_name),
                    ("webhook_url", &webhook_url),
                ] {
                    if let Some(v) = v {
                        url.query_pairs_mut().append_pair(k, v);
                    }
                }
                let path = match url.query() {
                    Some(q) => format!("/batches?{q}"),
                    None => "/batches".to_owned(),
                };
                client
                    .request(Method::POST, &path)
                    .header(reqwest::header::CONTENT_TYPE, "application/jsonl")
                    .body(text)
            } else {
                let items: Vec<Value> = prompts(&text)
                    .map(|prompt| json!({ "prompt": prompt }))
                    .collect();
                client.request(Method::POST, "/batches").json(&json!({
                    "items": items,
                    "model": model,
                    "display_name": display_name,
                    "webhook_url": webhook_url,
                }))
            };
            let accepted = client.send(request).await?;
            let id = accepted["batch_id"].as_str().unwrap_or_default().to_owned();
            println!("{id}");
            if wait {
                let ended =
                    watch(&client, &id, Duration::from_secs_f64(poll_secs.max(0.1))).await?;
                print_status(&ended);
            }
            Ok(())
        }
        BatchCommand::Status { batch_id, target } => {
            let client = Client::new(target)?;
            let status = client
                .send(client.request(Method::GET, &format!("/batches/{batch_id}?limit=1")))
                .await?;
            print_status(&status);
            Ok(())
        }
        BatchCommand::Results {
            batch_id,
            download,
            target,
        } => {
            let client = Client::new(target)?;
            let response = client
                .send_raw(client.request(Method::GET, &format!("/batches/{batch_id}/results")))
                .await?;
            let text = response
                .text()
                .await
                .map_err(|e| ClientError::local(format!("unreadable answer: {e}")))?;
            match download {
                None => print!("{text}"),
                Some(dir) => {
                    let saved = download_images(&client, &text, &dir).await?;
                    println!("{saved} images saved to {}", dir.display());
                }
            }
            Ok(())
        }
    }
}

/// The prompts of a text file: one a line; blank lines and `#` comments are skipped.
pub fn prompts(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

/// Polls until the batch ends, with a bar of the items done.
async fn watch(client: &Client, id: &str, every: Duration) -> Result<Value, ClientError> {
    let style = indicatif::ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg}")
        .map_err(|e| ClientError::local(e.to_string()))?
        .progress_chars("=> ");
    let bar = indicatif::ProgressBar::new(0)
        .with_style(style)
        .with_prefix(id.to_owned());
    loop {
        let status = client
            .send(client.request(Method::GET, &format!("/batches/{id}?limit=1")))
            .await?;
        let counts = &status["counts"];
        let total = counts["total"].as_u64().unwrap_or(0);
        bar.set_length(total);
        bar.set_position(total.saturating_sub(counts["pending"].as_u64().unwrap_or(0)));
        bar.set_message(status["state"].as_str().unwrap_or_default().to_owned());
        if !status["finished_at"].is_null() {
            bar.finish();
            return Ok(status);
        }
        tokio::time::sleep(every).await;
    }
}

fn print_status(status: &Value) {
    let counts = &status["counts"];
    let mut line = format!(
        "{} {}",
        status["batch_id"].as_str().unwrap_or_default(),
        status["state"].as_str().unwrap_or_default()
    );
    for kind in [
        "total",
        "pending",
        "succeeded",
        "blocked",
        "no_image",
        "failed",
        "cancelled",
        "expired",
    ] {
        match counts[kind].as_u64() {
            Some(n) if n > 0 || kind == "total" => line.push_str(&format!(" {kind}={n}")),
            _ => {}
        }
    }
    println!("{line}");
}

/// Saves every image of the results as `DIR/<item>-<n>.<ext>`; returns how many.
async fn download_images(client: &Client, results: &str, dir: &Path) -> Result<usize, ClientError> {
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| ClientError::local(format!("cannot create {}: {e}", dir.display())))?;
    let mut saved = 0;
    for line in results.lines().filter(|l| !l.trim().is_empty()) {
        let item: Value = serde_json::from_str(line)
            .map_err(|e| ClientError::local(format!("unreadable result line: {e}")))?;
        let index = item["index"].as_u64().unwrap_or(0);
        let ids = item["image_ids"].as_array().cloned().unwrap_or_default();
        for (n, id) in ids.iter().filter_map(Value::as_str).enumerate() {
            let response = client
                .send_raw(client.request(Method::GET, &format!("/images/{id}")))
                .await?;
            let mime = response
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("image/png")
                .to_owned();
            let bytes = response
                .bytes()
                .await
                .map_err(|e| ClientError::local(format!("image {id}: {e}")))?;
            let path = dir.join(format!("{index:04}-{n}.{}", extension(&mime)));
            tokio::fs::write(&path, bytes)
                .await
                .map_err(|e| ClientError::local(format!("cannot write {}: {e}", path.display())))?;
            saved += 1;
        }
    }
    Ok(saved)
}
