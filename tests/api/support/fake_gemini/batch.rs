//! The Batch API and the Files API, as google-genai's `client.batches` and `client.files`
//! call them: `models/{m}:batchGenerateContent` (inline requests or a JSONL `fileName`),
//! `batches/{id}` (get, `:cancel`, delete), `batches` (list under `operations`, paged by
//! `pageSize`/`pageToken` with `nextPageToken`, as the SDK's pager follows it), the
//! resumable upload (`upload/{ver}/files`, then chunks to the `x-goog-upload-url` it
//! answered, which carries no key) and `{ver}/files/{id}:download?alt=media` (as
//! google-genai downloads; `download/{ver}/…` too).
//!
//! A batch advances one state per `GET` (pending → running → succeeded) unless told
//! otherwise ([`FakeGemini::batch_polls_to_finish`]); each item is answered exactly as
//! `generateContent` would answer it, so `[[fake:NAME]]` markers script item-level
//! refusals and errors. `[[fake:expire]]` in the display name ends it `EXPIRED`. Inline
//! input gets inline responses; file input gets a responses file. When a batch webhook is
//! set, every batch that ends posts a Standard-Webhooks-signed `batch.*` event to it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};

use super::{FakeGemini, Reply, Shared, errors, handler, lock, models};

#[derive(Default)]
pub struct BatchState {
    batches: Vec<FakeBatch>,
    files: HashMap<String, Vec<u8>>,
    uploads: HashMap<String, Upload>,
    next_id: u64,
    /// GETs on `None` mean the default (2).
    polls_to_finish: Option<u32>,
    webhook: Option<(String, String)>,
    /// The largest page `GET batches` answers, whatever `pageSize` asks.
    list_page_cap: Option<usize>,
    /// Creates are recorded, then their answer is held this long (a crash in between).
    hold_creates: Option<Duration>,
    held: Arc<tokio::sync::Notify>,
    /// Creates still to be refused with 503 before anything is recorded.
    failing_creates: u32,
    /// How long answers about an ended batch take (a slow collection).
    ended_answer_delay: Option<Duration>,
    /// Downloads of files (responses files, in practice).
    pub downloads: u32,
    pub creates: u32,
}

struct Upload {
    data: Vec<u8>,
    mime: String,
}

struct FakeBatch {
    name: String,
    model: String,
    display_name: String,
    version: String,
    requests: Vec<(String, Value)>,
    from_file: bool,
    state: &'static str,
    polls: u32,
    output: Option<Value>,
}

impl FakeBatch {
    fn done(&self) -> bool {
        !matches!(self.state, "BATCH_STATE_PENDING" | "BATCH_STATE_RUNNING")
    }

    fn resource(&self) -> Value {
        let mut metadata = json!({
            "@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch",
            "name": self.name,
            "model": format!("models/{}", self.model),
            "displayName": self.display_name,
            "state": self.state,
            "createTime": "2026-12-02T10:00:00Z",
            "updateTime": "2026-12-02T10:00:01Z",
            "batchStats": {"requestCount": self.requests.len().to_string()},
        });
        let mut operation = json!({"name": self.name, "done": self.done()});
        if let Some(output) = &self.output {
            metadata["output"] = output.clone();
            let mut response = output.clone();
            response["@type"] = json!(
                "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatchOutput"
            );
            operation["response"] = response;
        }
        if self.state == "BATCH_STATE_FAILED" {
            operation["error"] = json!({"code": 13, "message": "The batch failed."});
        }
        operation["metadata"] = metadata;
        operation
    }
}

impl FakeGemini {
    /// How many `GET`s take a batch from pending to its end (0: only [`Self::end_batches`]).
    pub fn batch_polls_to_finish(&self, polls: u32) {
        lock(&self.shared.batches).polls_to_finish = Some(polls);
    }

    /// Posts a signed `batch.*` event to `url` whenever a batch ends.
    pub fn batch_webhook(&self, url: &str, secret: &str) {
        lock(&self.shared.batches).webhook = Some((url.to_owned(), secret.to_owned()));
    }

    /// `GET batches` answers at most `cap` batches a page, so listing must follow
    /// `nextPageToken`.
    pub fn batch_list_page_cap(&self, cap: usize) {
        lock(&self.shared.batches).list_page_cap = Some(cap);
    }

    /// Batch creates are accepted and recorded, then answered only after `hold`: the
    /// window in which a client that dies never learns the batch's name.
    pub fn hold_batch_creates(&self, hold: Duration) {
        lock(&self.shared.batches).hold_creates = Some(hold);
    }

    /// The next `n` creates are refused with 503 UNAVAILABLE, nothing recorded.
    pub fn fail_batch_creates(&self, n: u32) {
        lock(&self.shared.batches).failing_creates = n;
    }

    /// Resolves once a held create ([`Self::hold_batch_creates`]) has been recorded.
    pub async fn held_batch_created(&self) {
        let held = lock(&self.shared.batches).held.clone();
        held.notified().await;
    }

    /// Every answer about an ended batch (its state and inline results) takes `delay`.
    pub fn slow_ended_batches(&self, delay: Duration) {
        lock(&self.shared.batches).ended_answer_delay = Some(delay);
    }

    /// Ends every open batch now, as Google would in its own time.
    pub async fn end_batches(&self) {
        let names: Vec<String> = lock(&self.shared.batches)
            .batches
            .iter()
            .filter(|b| !b.done())
            .map(|b| b.name.clone())
            .collect();
        for name in names {
            finish(&self.shared, &name).await;
        }
    }

    /// (batches created, files downloaded).
    pub fn batch_counts(&self) -> (u32, u32) {
        let state = lock(&self.shared.batches);
        (state.creates, state.downloads)
    }

    /// The display names of the batches accepted so far, in order.
    pub fn batch_display_names(&self) -> Vec<String> {
        lock(&self.shared.batches)
            .batches
            .iter()
            .map(|b| b.display_name.clone())
            .collect()
    }

    /// The JSONL files uploaded, by name.
    pub fn uploaded_files(&self) -> Vec<(String, usize)> {
        lock(&self.shared.batches)
            .files
            .iter()
            .map(|(name, data)| (name.clone(), data.len()))
            .collect()
    }
}

fn json_reply(status: u16, body: Value) -> Response {
    Reply::Json { status, body }.into_response()
}

fn not_found(what: &str) -> Response {
    errors::envelope(404, "NOT_FOUND", &format!("{what} not found."), vec![]).into_response()
}

fn bad(message: &str) -> Response {
    errors::invalid_argument(message).into_response()
}

/// Answers the batch and file routes; `None` for every other path.
pub async fn route(
    shared: &Shared,
    method: &Method,
    path: &str,
    query: &[(String, String)],
    headers: &HeaderMap,
    key_ok: bool,
    body: &Bytes,
) -> Option<Response> {
    let path = path.replace("%3A", ":").replace("%3a", ":");
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    // Chunks go to the upload URL, authorised by its upload id rather than a key.
    if let ["upload", "session", id] = segments.as_slice() {
        return Some(upload_chunk(shared, id, headers, body));
    }
    let wanted = match segments.as_slice() {
        ["upload", _, "files"]
        | ["download", _, "files", _]
        | [_, "batches", ..]
        | [_, "files", ..] => true,
        [_, "models", m] => m.ends_with(":batchGenerateContent"),
        _ => false,
    };
    if !wanted {
        return None;
    }
    if !key_ok {
        return Some(errors::missing_key().into_response());
    }
    Some(match (method.as_str(), segments.as_slice()) {
        ("POST", ["upload", _, "files"]) => start_upload(shared, headers, body),
        ("GET", ["download", _, "files", id]) => download(shared, id),
        // google-genai downloads from `{ver}/files/{id}:download`; the REST docs say `download/{ver}/…`.
        ("GET", [_, "files", id]) if id.ends_with(":download") => download(shared, id),
        ("GET", [_, "files", id]) => {
            match lock(&shared.batches).files.get(&format!("files/{id}")) {
                Some(data) => json_reply(
                    200,
                    json!({"name": format!("files/{id}"), "sizeBytes": data.len().to_string(), "state": "ACTIVE"}),
                ),
                None => not_found("File"),
            }
        }
        ("POST", [version, "models", m]) => {
            let model = m.trim_end_matches(":batchGenerateContent");
            let (response, hold) = create(shared, version, model, body);
            if let Some(hold) = hold {
                tokio::time::sleep(hold).await;
            }
            response
        }
        ("GET", [_, "batches"]) => list(shared, query),
        ("GET", [_, "batches", id]) => get(shared, id).await,
        ("POST", [_, "batches", action]) if action.ends_with(":cancel") => {
            let name = format!("batches/{}", action.trim_end_matches(":cancel"));
            let mut state = lock(&shared.batches);
            match state.batches.iter_mut().find(|b| b.name == name) {
                Some(b) => {
                    if !b.done() {
                        b.state = "BATCH_STATE_CANCELLED";
                    }
                    json_reply(200, json!({}))
                }
                None => not_found("Batch"),
            }
        }
        ("DELETE", [_, "batches", id]) => {
            let name = format!("batches/{id}");
            let mut state = lock(&shared.batches);
            let before = state.batches.len();
            state.batches.retain(|b| b.name != name);
            if state.batches.len() < before {
                json_reply(200, json!({}))
            } else {
                not_found("Batch")
            }
        }
        _ => errors::route_not_found().into_response(),
    })
}

/// One page of batches, newest first: `pageToken` is where the previous page stopped.
fn list(shared: &Shared, query: &[(String, String)]) -> Response {
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let state = lock(&shared.batches);
    let asked = match param("pageSize").map(str::parse::<usize>) {
        None => 50,
        Some(Ok(n)) => n.clamp(1, 1000),
        Some(Err(_)) => return bad("Invalid value at 'page_size' (TYPE_INT32)."),
    };
    let size = state.list_page_cap.map_or(asked, |cap| asked.min(cap));
    let start = match param("pageToken").filter(|t| !t.is_empty()) {
        None => 0,
        Some(token) => match token.strip_prefix("after-").and_then(|n| n.parse().ok()) {
            Some(n) => n,
            None => return bad("Invalid page token."),
        },
    };
    let newest_first: Vec<&FakeBatch> = state.batches.iter().rev().collect();
    let page: Vec<Value> = newest_first
        .iter()
        .skip(start)
        .take(size)
        .map(|b| b.resource())
        .collect();
    let mut body = json!({"operations": page});
    if start + size < newest_first.len() {
        body["nextPageToken"] = json!(format!("after-{}", start + size));
    }
    json_reply(200, body)
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

fn start_upload(shared: &Shared, headers: &HeaderMap, body: &Bytes) -> Response {
    if !header(headers, "x-goog-upload-protocol").eq_ignore_ascii_case("resumable")
        || !header(headers, "x-goog-upload-command").eq_ignore_ascii_case("start")
    {
        return bad("Only resumable uploads are supported.");
    }
    let meta: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let file = &meta["file"];
    let mime = file["mimeType"]
        .as_str()
        .or(file["mime_type"].as_str())
        .unwrap_or(header(headers, "x-goog-upload-header-content-type"))
        .to_owned();
    let mut state = lock(&shared.batches);
    state.next_id += 1;
    let id = format!("up{}", state.next_id);
    state.uploads.insert(
        id.clone(),
        Upload {
            data: Vec::new(),
            mime,
        },
    );
    let host = header(headers, "host");
    let mut response = json_reply(200, json!({}));
    let url = format!("http://{host}/upload/session/{id}");
    if let Ok(v) = HeaderValue::from_str(&url) {
        response.headers_mut().insert("x-goog-upload-url", v);
    }
    response
        .headers_mut()
        .insert("x-goog-upload-status", HeaderValue::from_static("active"));
    response
}

fn upload_chunk(shared: &Shared, id: &str, headers: &HeaderMap, body: &Bytes) -> Response {
    let command = header(headers, "x-goog-upload-command").to_ascii_lowercase();
    let offset: usize = header(headers, "x-goog-upload-offset")
        .parse()
        .unwrap_or(usize::MAX);
    let mut state = lock(&shared.batches);
    let Some(upload) = state.uploads.get_mut(id) else {
        return not_found("Upload");
    };
    if offset != upload.data.len() {
        return bad("X-Goog-Upload-Offset does not match the bytes received.");
    }
    upload.data.extend_from_slice(body);
    if !command.contains("finalize") {
        let mut response = json_reply(200, json!({}));
        response
            .headers_mut()
            .insert("x-goog-upload-status", HeaderValue::from_static("active"));
        return response;
    }
    let Some(upload) = state.uploads.remove(id) else {
        return not_found("Upload");
    };
    let name = format!("files/{id}");
    let size = upload.data.len();
    state.files.insert(name.clone(), upload.data);
    let mut response = json_reply(
        200,
        json!({"file": {"name": name, "mimeType": upload.mime, "sizeBytes": size.to_string(), "state": "ACTIVE"}}),
    );
    response
        .headers_mut()
        .insert("x-goog-upload-status", HeaderValue::from_static("final"));
    response
}

fn download(shared: &Shared, id: &str) -> Response {
    let name = format!("files/{}", id.trim_end_matches(":download"));
    let mut state = lock(&shared.batches);
    match state.files.get(&name).cloned() {
        Some(data) => {
            state.downloads += 1;
            (StatusCode::OK, data).into_response()
        }
        None => not_found("File"),
    }
}

/// The answer to a create, and how long to hold it ([`FakeGemini::hold_batch_creates`]).
fn create(
    shared: &Shared,
    version: &str,
    model: &str,
    body: &Bytes,
) -> (Response, Option<Duration>) {
    let response = create_batch(shared, version, model, body);
    let state = lock(&shared.batches);
    let hold = state
        .hold_creates
        .filter(|_| response.status() == StatusCode::OK);
    if hold.is_some() {
        state.held.notify_one();
    }
    (response, hold)
}

fn create_batch(shared: &Shared, version: &str, model: &str, body: &Bytes) -> Response {
    {
        let mut state = lock(&shared.batches);
        if state.failing_creates > 0 {
            state.failing_creates -= 1;
            return errors::envelope(
                503,
                "UNAVAILABLE",
                "The service is currently unavailable.",
                vec![],
            )
            .into_response();
        }
    }
    let model = model.trim_start_matches("models/");
    if models::spec(model).is_none() {
        return errors::model_not_found(model, version, "batchGenerateContent").into_response();
    }
    let Ok(body) = serde_json::from_slice::<Value>(body) else {
        return bad("Invalid JSON payload received.");
    };
    let batch = &body["batch"];
    let input = &batch["inputConfig"]
        .as_object()
        .map(|_| &batch["inputConfig"])
        .unwrap_or(&batch["input_config"]);
    let mut state = lock(&shared.batches);
    let (requests, from_file) = if let Some(list) = input["requests"]["requests"].as_array() {
        let requests = list
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let key = r["metadata"]["key"]
                    .as_str()
                    .map_or_else(|| i.to_string(), str::to_owned);
                (key, r["request"].clone())
            })
            .collect();
        (requests, false)
    } else if let Some(file) = input["fileName"].as_str().or(input["file_name"].as_str()) {
        let Some(data) = state.files.get(file) else {
            return not_found("File");
        };
        let mut requests = Vec::new();
        for line in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let Ok(entry) = serde_json::from_slice::<Value>(line) else {
                return bad("The input file has a line that is not JSON.");
            };
            let key = entry["key"].as_str().unwrap_or_default().to_owned();
            requests.push((key, entry["request"].clone()));
        }
        (requests, true)
    } else {
        return bad("batch.inputConfig needs requests or fileName.");
    };
    if requests.is_empty() {
        return bad("A batch needs at least one request.");
    }
    state.next_id += 1;
    state.creates += 1;
    let name = format!("batches/fake{}", state.next_id);
    let batch = FakeBatch {
        name,
        model: model.to_owned(),
        display_name: batch["displayName"].as_str().unwrap_or_default().to_owned(),
        version: version.to_owned(),
        requests,
        from_file,
        state: "BATCH_STATE_PENDING",
        polls: 0,
        output: None,
    };
    let resource = batch.resource();
    state.batches.push(batch);
    json_reply(200, resource)
}

async fn get(shared: &Shared, id: &str) -> Response {
    let name = format!("batches/{id}");
    let finish_now = {
        let mut state = lock(&shared.batches);
        let polls_to_finish = state.polls_to_finish.unwrap_or(2);
        let Some(b) = state.batches.iter_mut().find(|b| b.name == name) else {
            return not_found("Batch");
        };
        if b.done() {
            if b.output
                .as_ref()
                .is_some_and(|o| o.get("inlinedResponses").is_some())
            {
                state.downloads += 1;
            }
            false
        } else {
            b.polls += 1;
            if b.polls == 1 && polls_to_finish != 1 {
                b.state = "BATCH_STATE_RUNNING";
            }
            polls_to_finish != 0 && b.polls >= polls_to_finish
        }
    };
    if finish_now {
        finish(shared, &name).await;
    }
    let delay = {
        let state = lock(&shared.batches);
        let ended = state.batches.iter().any(|b| b.name == name && b.done());
        state.ended_answer_delay.filter(|_| ended)
    };
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    let state = lock(&shared.batches);
    match state.batches.iter().find(|b| b.name == name) {
        Some(b) => json_reply(200, b.resource()),
        None => not_found("Batch"),
    }
}

/// Runs every item as `generateContent` would and ends the batch.
async fn finish(shared: &Shared, name: &str) {
    let (requests, model, version, expire, from_file) = {
        let state = lock(&shared.batches);
        let Some(b) = state.batches.iter().find(|b| b.name == name) else {
            return;
        };
        (
            b.requests.clone(),
            b.model.clone(),
            b.version.clone(),
            b.display_name.contains("[[fake:expire]]"),
            b.from_file,
        )
    };
    let (state_name, output) = if expire {
        ("BATCH_STATE_EXPIRED", None)
    } else {
        let mut answers = Vec::with_capacity(requests.len());
        for (key, mut request) in requests {
            // The SDK names the model inside each inline request too.
            if let Some(obj) = request.as_object_mut() {
                obj.remove("model");
            }
            let (status, body) = handler::generate_one(shared, &version, &model, request).await;
            let answer = if status == 200 {
                json!({"response": body})
            } else {
                json!({"error": {"code": status, "message": body["error"]["message"]}})
            };
            answers.push((key, answer));
        }
        let output = if from_file {
            let mut jsonl = Vec::new();
            for (key, mut answer) in answers {
                answer["key"] = json!(key);
                jsonl.extend_from_slice(answer.to_string().as_bytes());
                jsonl.push(b'\n');
            }
            let mut state = lock(&shared.batches);
            state.next_id += 1;
            let file = format!("files/batch-out{}", state.next_id);
            state.files.insert(file.clone(), jsonl);
            json!({"responsesFile": file})
        } else {
            let inline: Vec<Value> = answers
                .into_iter()
                .map(|(key, mut answer)| {
                    answer["metadata"] = json!({"key": key});
                    answer
                })
                .collect();
            json!({"inlinedResponses": {"inlinedResponses": inline}})
        };
        ("BATCH_STATE_SUCCEEDED", Some(output))
    };
    let webhook = {
        let mut state = lock(&shared.batches);
        if let Some(b) = state.batches.iter_mut().find(|b| b.name == name) {
            if b.done() {
                return;
            }
            b.state = state_name;
            b.output = output;
        }
        state.webhook.clone()
    };
    if let Some((url, secret)) = webhook {
        let kind = match state_name {
            "BATCH_STATE_EXPIRED" => "batch.expired",
            "BATCH_STATE_SUCCEEDED" => "batch.succeeded",
            _ => "batch.failed",
        };
        let body = json!({"type": kind, "data": {"name": name}}).to_string();
        let id = format!("msg_{name}");
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let signature = imagegate::jobs::webhooks::sign(&secret, &id, timestamp, &body)
            .expect("the batch webhook secret is base64");
        let _ = reqwest::Client::new()
            .post(url)
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await;
    }
}
