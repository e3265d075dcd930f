//! Google's Batch API (`models/{model}:batchGenerateContent`, `batches/{id}`) and the Files
//! API's resumable upload and download, as google-genai's `client.batches` and
//! `client.files` call them. Requests go inline while their JSON fits under the inline
//! limit (Google's is 20 MB); past it they go as a JSONL file, one `{"key", "request"}`
//! per line.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use reqwest::Method;
use serde_json::{Value, json};

use super::{Failure, GeminiProvider, mapping, unreachable_upstream};
use crate::models::ResolvedModel;
use crate::provider::batch::{BatchItem, BatchProvider, ItemResult, UpstreamBatch, UpstreamState};
use crate::provider::{Generated, ProviderError, ServedAs};

/// The Files API takes resumable uploads in chunks; 8 MiB is the SDK's chunk size.
const UPLOAD_CHUNK: usize = 8 << 20;

/// Batches asked for per page of `GET batches`, and the most pages read while looking for
/// one: the list is newest first, and a batch looked for was created minutes ago, so a
/// project with more than this many batches since is looked through no further.
const LIST_PAGE_SIZE: usize = 100;
const LIST_MAX_PAGES: usize = 50;

pub struct GeminiBatches {
    gemini: Arc<GeminiProvider>,
    /// Requests whose JSON is larger than this go through the Files API.
    inline_limit: usize,
}

impl GeminiBatches {
    pub fn new(gemini: Arc<GeminiProvider>, inline_limit: usize) -> Self {
        Self {
            gemini,
            inline_limit,
        }
    }

    fn url(&self, path: &str) -> String {
        let g = &self.gemini;
        format!("{}/{}/{path}", g.base_url, g.api_version)
    }

    async fn call(
        &self,
        method: Method,
        url: &str,
        body: Option<Value>,
    ) -> Result<Bytes, ProviderError> {
        let mut request = self
            .gemini
            .http
            .request(method, url)
            .header("x-goog-api-key", self.gemini.api_key.expose())
            .timeout(self.gemini.deadline);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(unreachable_upstream)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(unreachable_upstream)?;
        if status.is_success() {
            Ok(bytes)
        } else {
            Err(Failure::parse(status, &bytes).into_error())
        }
    }

    async fn json(
        &self,
        method: Method,
        url: &str,
        body: Option<Value>,
    ) -> Result<Value, ProviderError> {
        let bytes = self.call(method, url, body).await?;
        serde_json::from_slice(&bytes).map_err(|e| unusable("an unreadable answer", e))
    }

    /// Uploads `data` through the Files API's resumable protocol; returns `files/{id}`.
    async fn upload(&self, display_name: &str, data: Vec<u8>) -> Result<String, ProviderError> {
        let g = &self.gemini;
        let start = g
            .http
            .post(format!("{}/upload/{}/files", g.base_url, g.api_version))
            .header("x-goog-api-key", g.api_key.expose())
            .header("X-Goog-Upload-Protocol", "resumable")
            .header("X-Goog-Upload-Command", "start")
            .header("X-Goog-Upload-Header-Content-Length", data.len())
            .header("X-Goog-Upload-Header-Content-Type", "application/jsonl")
            .json(&json!({"file": {"displayName": display_name, "mimeType": "application/jsonl", "sizeBytes": data.len().to_string()}}))
            .timeout(g.deadline)
            .send()
            .await
            .map_err(unreachable_upstream)?;
        let status = start.status();
        let upload_url = start
            .headers()
            .get("x-goog-upload-url")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let Some(upload_url) = upload_url.filter(|_| status.is_success()) else {
            let body = start.bytes().await.unwrap_or_default();
            return Err(Failure::parse(status, &body).into_error());
        };
        let data = Bytes::from(data);
        let mut offset = 0;
        loop {
            let end = (offset + UPLOAD_CHUNK).min(data.len());
            let last = end == data.len();
            // The upload URL carries its own authorisation (the SDK sends no key with it).
            let answer = g
                .http
                .post(&upload_url)
                .header(
                    "X-Goog-Upload-Command",
                    if last { "upload, finalize" } else { "upload" },
                )
                .header("X-Goog-Upload-Offset", offset)
                .body(data.slice(offset..end))
                .timeout(g.deadline)
                .send()
                .await
                .map_err(unreachable_upstream)?;
            let status = answer.status();
            let bytes = answer.bytes().await.map_err(unreachable_upstream)?;
            if !status.is_success() {
                return Err(Failure::parse(status, &bytes).into_error());
            }
            if last {
                let file: Value = serde_json::from_slice(&bytes)
                    .map_err(|e| unusable("an unreadable upload answer", e))?;
                return file["file"]["name"]
                    .as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| unusable("an upload answer without a file name", ""));
            }
            offset = end;
        }
    }

    async fn download(&self, file: &str) -> Result<Bytes, ProviderError> {
        let g = &self.gemini;
        // Where google-genai's `files.download` reads a generated file.
        let url = format!(
            "{}/{}/{}:download?alt=media",
            g.base_url,
            g.api_version,
            checked_name(file, "files/")?
        );
        self.call(Method::GET, &url, None).await
    }
}

fn unusable(what: &str, cause: impl std::fmt::Display) -> ProviderError {
    ProviderError::BadResponse {
        status: Some(200),
        message: format!("The upstream Batch API returned {what}."),
        cause: cause.to_string(),
    }
}

/// An upstream resource name goes into URLs: only `prefix` + `[A-Za-z0-9_-]` is accepted.
fn checked_name<'a>(name: &'a str, prefix: &str) -> Result<&'a str, ProviderError> {
    let ok = name.strip_prefix(prefix).is_some_and(|id| {
        !id.is_empty()
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    if ok {
        Ok(name)
    } else {
        Err(unusable("a malformed resource name", name))
    }
}

fn state(operation: &Value) -> UpstreamState {
    let state = operation["metadata"]["state"]
        .as_str()
        .or(operation["state"].as_str())
        .unwrap_or_default();
    match state {
        "BATCH_STATE_RUNNING" | "JOB_STATE_RUNNING" => UpstreamState::Running,
        "BATCH_STATE_SUCCEEDED" | "JOB_STATE_SUCCEEDED" => UpstreamState::Succeeded,
        "BATCH_STATE_FAILED" | "JOB_STATE_FAILED" => UpstreamState::Failed,
        "BATCH_STATE_CANCELLED" | "JOB_STATE_CANCELLED" => UpstreamState::Cancelled,
        "BATCH_STATE_EXPIRED" | "JOB_STATE_EXPIRED" => UpstreamState::Expired,
        _ => UpstreamState::Pending,
    }
}

/// A per-item `{code, message}` error as the contract's provider error.
fn item_error(error: &Value) -> ProviderError {
    let code = error["code"].as_u64().unwrap_or(0);
    let message = error["message"].as_str().unwrap_or_default().to_owned();
    match code {
        400 => ProviderError::Rejected { message },
        429 => ProviderError::RateLimited {
            retry_after_secs: 60,
        },
        _ => ProviderError::Unavailable {
            status: u16::try_from(code).ok(),
            cause: message,
        },
    }
}

fn item_result(entry: &Value, key: String, model: &ResolvedModel) -> ItemResult {
    if let Some(error) = entry.get("error") {
        return (key, Err(item_error(error)));
    }
    let result: Result<Generated, ProviderError> = match entry.get("response") {
        Some(response) => serde_json::to_vec(response)
            .map_err(|e| unusable("an unreadable item", e))
            .and_then(|bytes| {
                // Batches take no service tier: the batch price applies instead.
                let served = ServedAs {
                    model: model.clone(),
                    service_tier: None,
                };
                mapping::interpret(&bytes, served)
            }),
        None => Err(unusable("an item with neither response nor error", "")),
    };
    (key, result)
}

#[async_trait]
impl BatchProvider for GeminiBatches {
    async fn create(
        &self,
        model: &str,
        display_name: &str,
        items: Vec<BatchItem>,
    ) -> Result<String, ProviderError> {
        let mut requests = Vec::with_capacity(items.len());
        let mut size = 0;
        for item in &items {
            let body = mapping::request_body(&item.request)
                .map_err(|e| unusable("an item that could not be encoded", e))?;
            size += body.len();
            let request: Value = serde_json::from_slice(&body)
                .map_err(|e| unusable("an item that could not be encoded", e))?;
            requests.push((item.key.clone(), request));
        }
        let input = if size <= self.inline_limit {
            let requests: Vec<Value> = requests
                .into_iter()
                .map(|(key, request)| json!({"request": request, "metadata": {"key": key}}))
                .collect();
            json!({"requests": {"requests": requests}})
        } else {
            let mut jsonl = Vec::with_capacity(size + 32 * requests.len());
            for (key, request) in requests {
                serde_json::to_writer(&mut jsonl, &json!({"key": key, "request": request}))
                    .map_err(|e| unusable("an item that could not be encoded", e))?;
                jsonl.push(b'\n');
            }
            json!({"fileName": self.upload(display_name, jsonl).await?})
        };
        let body = json!({"batch": {"displayName": display_name, "inputConfig": input}});
        let url = self.url(&format!("models/{model}:batchGenerateContent"));
        let operation = self.json(Method::POST, &url, Some(body)).await?;
        let name = operation["name"]
            .as_str()
            .ok_or_else(|| unusable("a batch without a name", &operation))?;
        Ok(checked_name(name, "batches/")?.to_owned())
    }

    async fn get(&self, name: &str) -> Result<UpstreamBatch, ProviderError> {
        let operation = self
            .json(
                Method::GET,
                &self.url(checked_name(name, "batches/")?),
                None,
            )
            .await?;
        let error = operation["error"]["message"].as_str().map(str::to_owned);
        Ok(UpstreamBatch {
            state: state(&operation),
            error,
        })
    }

    async fn results(
        &self,
        name: &str,
        model: &ResolvedModel,
    ) -> Result<Vec<ItemResult>, ProviderError> {
        let operation = self
            .json(
                Method::GET,
                &self.url(checked_name(name, "batches/")?),
                None,
            )
            .await?;
        let output = [&operation["response"], &operation["metadata"]["output"]]
            .into_iter()
            .find(|o| o.is_object())
            .cloned()
            .unwrap_or(Value::Null);
        if let Some(inline) = output["inlinedResponses"]["inlinedResponses"].as_array() {
            return Ok(inline
                .iter()
                .map(|entry| {
                    let key = entry["metadata"]["key"].as_str().unwrap_or_default();
                    item_result(entry, key.to_owned(), model)
                })
                .collect());
        }
        let Some(file) = output["responsesFile"].as_str() else {
            // A batch that ended without output (cancelled or expired before any ran).
            return Ok(Vec::new());
        };
        let jsonl = self.download(file).await?;
        let mut results = Vec::new();
        for line in jsonl.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let entry: Value = serde_json::from_slice(line)
                .map_err(|e| unusable("an unreadable responses file", e))?;
            let key = entry["key"]
                .as_str()
                .or(entry["metadata"]["key"].as_str())
                .unwrap_or_default()
                .to_owned();
            results.push(item_result(&entry, key, model));
        }
        Ok(results)
    }

    /// `GET {ver}/batches?pageSize=…&pageToken=…` page by page, as google-genai's
    /// `client.batches.list` pager asks, reading `operations` and `nextPageToken`.
    async fn find(&self, display_name: &str) -> Result<Option<String>, ProviderError> {
        let mut token: Option<String> = None;
        for _ in 0..LIST_MAX_PAGES {
            let mut url = reqwest::Url::parse(&self.url("batches"))
                .map_err(|e| unusable("a malformed list URL", e))?;
            url.query_pairs_mut()
                .append_pair("pageSize", &LIST_PAGE_SIZE.to_string());
            if let Some(t) = &token {
                url.query_pairs_mut().append_pair("pageToken", t);
            }
            let page = self.json(Method::GET, url.as_str(), None).await?;
            let operations = page["operations"].as_array().map_or(&[][..], Vec::as_slice);
            let found = operations
                .iter()
                .find(|op| op["metadata"]["displayName"].as_str() == Some(display_name));
            if let Some(op) = found {
                let name = op["name"].as_str().unwrap_or_default();
                return Ok(Some(checked_name(name, "batches/")?.to_owned()));
            }
            match page["nextPageToken"].as_str() {
                // A token that does not move on would page forever.
                Some(next) if !next.is_empty() && token.as_deref() != Some(next) => {
                    token = Some(next.to_owned());
                }
                _ => return Ok(None),
            }
        }
        tracing::warn!(
            display_name,
            pages = LIST_MAX_PAGES,
            "upstream batch list not read to its end"
        );
        Ok(None)
    }

    async fn cancel(&self, name: &str) -> Result<(), ProviderError> {
        let url = self.url(&format!("{}:cancel", checked_name(name, "batches/")?));
        self.call(Method::POST, &url, Some(json!({}))).await?;
        Ok(())
    }
}
