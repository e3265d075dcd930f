//! The command-line client: `imagegate generate|edit|compose|story|chat|batch` talk to a
//! running server (`--url`, default http://localhost:8000) with the key from
//! `--api-key` or `IMAGEGATE_KEY` (the README's name; `IMAGEGATE_API_KEY` is accepted
//! too). Server errors print the contract's message and exit non-zero.

mod batch;
mod chat;
mod commands;

use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::Value;

pub use batch::{BatchCommand, batch};

use crate::imaging::ImageFormat;

pub use chat::{ChatArgs, chat};
pub use commands::{
    ComposeArgs, EditArgs, GenerateArgs, StoryArgs, compose, edit, generate, story,
};

/// Where the server is and how to authenticate.
#[derive(Debug, Clone, clap::Args)]
pub struct Target {
    /// Base URL of the imagegate server.
    #[arg(long, env = "IMAGEGATE_URL", default_value = "http://localhost:8000")]
    pub url: String,
    /// API key (sent as a bearer token); IMAGEGATE_API_KEY is read when IMAGEGATE_KEY is unset.
    #[arg(long = "api-key", env = "IMAGEGATE_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
}

/// What the user sees when a command fails.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with the contract's error body.
    #[error("{message} ({code}, HTTP {status})")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    #[error("cannot reach {url}: {cause}")]
    Unreachable { url: String, cause: String },
    #[error("{0}")]
    Local(String),
}

impl ClientError {
    pub fn local(message: impl Into<String>) -> Self {
        Self::Local(message.into())
    }
}

pub struct Client {
    http: reqwest::Client,
    target: Target,
}

impl Client {
    pub fn new(mut target: Target) -> Result<Self, ClientError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        // Both names have been documented; clap reads one, this the other.
        if target.api_key.is_none() {
            target.api_key = std::env::var("IMAGEGATE_API_KEY")
                .ok()
                .filter(|k| !k.trim().is_empty());
        }
        let http = reqwest::Client::builder()
            .build()
            .map_err(|e| ClientError::local(format!("cannot build an HTTP client: {e}")))?;
        Ok(Self { http, target })
    }

    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let url = format!("{}{path}", self.target.url.trim_end_matches('/'));
        let builder = self.http.request(method, url);
        match &self.target.api_key {
            Some(key) => builder.bearer_auth(key),
            None => builder,
        }
    }

    /// Sends and returns the JSON body of a 2xx answer, or the server's error.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Result<Value, ClientError> {
        let response = self.send_raw(request).await?;
        response
            .json::<Value>()
            .await
            .map_err(|e| ClientError::local(format!("unreadable answer: {e}")))
    }

    pub async fn send_raw(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ClientError> {
        let response = request.send().await.map_err(|e| ClientError::Unreachable {
            url: self.target.url.clone(),
            cause: e.without_url().to_string(),
        })?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or_default();
        Err(api_error(status, &body))
    }
}

pub fn api_error(status: u16, body: &Value) -> ClientError {
    ClientError::Api {
        status,
        code: body["error"].as_str().unwrap_or("error").to_owned(),
        message: body["message"]
            .as_str()
            .unwrap_or("the server refused the request")
            .to_owned(),
    }
}

pub fn extension(mime: &str) -> &'static str {
    match mime {
        "image/jpeg" => "jpg",
        "image/webp" => "webp",
        _ => "png",
    }
}

/// The format a file name asks for: `None` without an extension, an error for one that
/// names no format the client writes.
fn format_for(path: &Path) -> Result<Option<ImageFormat>, ClientError> {
    let Some(ext) = path.extension().and_then(|e| e.to_str()) else {
        return Ok(None);
    };
    match ext.to_ascii_lowercase().as_str() {
        "png" => Ok(Some(ImageFormat::Png)),
        "jpg" | "jpeg" => Ok(Some(ImageFormat::Jpeg)),
        "webp" => Ok(Some(ImageFormat::Webp)),
        other => Err(ClientError::local(format!(
            "cannot write a .{other} image to {}: use a .png, .jpg or .webp file name",
            path.display()
        ))),
    }
}

/// Writes base64 image data to `path`, creating parent directories. The file holds the
/// format its extension names: the server's image is converted when it differs (a JPEG
/// answer saved as `out.png` is written as PNG).
pub fn save_image(b64: &str, path: &Path) -> Result<PathBuf, ClientError> {
    let mut bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| ClientError::local(format!("the server sent undecodable image data: {e}")))?;
    if let Some(wanted) = format_for(path)?
        && ImageFormat::sniff(&bytes) != Some(wanted)
    {
        let decoded = image::load_from_memory(&bytes).map_err(|e| {
            ClientError::local(format!("the server sent an undecodable image: {e}"))
        })?;
        bytes = crate::imaging::encode(&decoded, wanted)
            .map_err(|e| ClientError::local(format!("cannot convert the image: {e}")))?
            .to_vec();
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| ClientError::local(format!("cannot create {}: {e}", parent.display())))?;
    }
    std::fs::write(path, bytes)
        .map_err(|e| ClientError::local(format!("cannot write {}: {e}", path.display())))?;
    Ok(path.to_owned())
}

/// The first image of a generation response, saved to `output` (or `image.<ext>`).
pub fn save_first(response: &Value, output: Option<&Path>) -> Result<PathBuf, ClientError> {
    let b64 = response["images"][0]
        .as_str()
        .ok_or_else(|| ClientError::local("the server returned no image"))?;
    let mime = response["mime_types"][0].as_str().unwrap_or("image/png");
    let path = output.map_or_else(
        || PathBuf::from(format!("image.{}", extension(mime))),
        Path::to_owned,
    );
    save_image(b64, &path)
}

pub async fn read_file(path: &Path) -> Result<reqwest::multipart::Part, ClientError> {
    let bytes = tokio::fs::read(path)
        .await
        .map_err(|e| ClientError::local(format!("cannot read {}: {e}", path.display())))?;
    let name = path
        .file_name()
        .map_or_else(|| "image".to_owned(), |n| n.to_string_lossy().into_owned());
    Ok(reqwest::multipart::Part::bytes(bytes).file_name(name))
}
