//! The single catch-all handler: `{ver}/models/{model}:{method}` puts a colon inside a path
//! segment, which axum routes cannot express, so the path is parsed here.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};

use super::models::ModelSpec;
use super::response::{self, Output};
use super::scenarios::{self, Script};
use super::validate::{self, Plan};
use super::wire::{self, CountTokensRequest, GenerateContentRequest};
use super::{FAKE_API_KEY, RecordedRequest, Reply, Shared, errors, images, lock};

/// The pre-2026 inline request limit, which the spec asks the fake to enforce.
const MAX_BODY_BYTES: usize = 20_971_520;

enum Route {
    List,
    Get { model: String },
    Call { model: String, method: String },
}

pub async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let at = Instant::now();
    let _in_flight = InFlight::enter(&shared);
    let query = query_pairs(uri.query().unwrap_or_default());
    let api_key = headers
        .get("x-goog-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| query_value(&query, "key"));
    let parsed = serde_json::from_slice::<Value>(&body);
    let raw = match &parsed {
        Ok(value) => value.clone(),
        Err(_) if body.is_empty() => Value::Null,
        Err(_) => Value::String(String::from_utf8_lossy(&body).into_owned()),
    };
    let path = uri.path().to_string();
    let (version, route) = parse_route(&path);
    let model = match &route {
        Some(Route::Get { model } | Route::Call { model, .. }) => model.clone(),
        _ => String::new(),
    };

    let key_ok = authorize(api_key.as_deref()).is_ok();
    if let Some(response) =
        super::batch::route(&shared, &method, &path, &query, &headers, key_ok, &body).await
    {
        let status = response.status().as_u16();
        lock(&shared.requests).push(RecordedRequest {
            method: method.to_string(),
            path,
            query: uri.query().unwrap_or_default().to_string(),
            model,
            api_key,
            images: Vec::new(),
            body: raw,
            at,
            status,
        });
        return response;
    }

    let ctx = Ctx {
        shared: &shared,
        version: &version,
        sse: query_value(&query, "alt").as_deref() == Some("sse"),
        query: &query,
    };
    let (reply, delay) = match authorize(api_key.as_deref()) {
        Err(reply) => (reply, None),
        Ok(()) => ctx.dispatch(&method, route, body.len(), parsed).await,
    };

    lock(&shared.requests).push(RecordedRequest {
        method: method.to_string(),
        path,
        query: uri.query().unwrap_or_default().to_string(),
        model,
        api_key,
        images: recorded_images(&raw),
        body: raw,
        at,
        status: reply.status(),
    });
    // Recorded before sleeping so a client that times out still sees its request counted.
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    reply.into_response()
}

fn authorize(api_key: Option<&str>) -> Result<(), Reply> {
    match api_key {
        None | Some("") => Err(errors::missing_key()),
        Some(FAKE_API_KEY) => Ok(()),
        Some(_) => Err(errors::invalid_key()),
    }
}

struct Ctx<'a> {
    shared: &'a Shared,
    version: &'a str,
    sse: bool,
    query: &'a [(String, String)],
}

/// Google's page size when none is asked for, and the most it gives.
const DEFAULT_PAGE_SIZE: usize = 50;
const MAX_PAGE_SIZE: usize = 1000;

impl Ctx<'_> {
    async fn dispatch(
        &self,
        method: &Method,
        route: Option<Route>,
        body_len: usize,
        parsed: Result<Value, serde_json::Error>,
    ) -> (Reply, Option<Duration>) {
        let (model, call) = match (method.as_str(), route) {
            ("GET", Some(Route::List)) => return (self.list().unwrap_or_else(|r| r), None),
            ("GET", Some(Route::Get { model })) => {
                let spec = lock(&self.shared.catalogue).lookup(&model);
                let reply = match spec {
                    Some(spec) => json_ok(spec.resource_as(&model)),
                    None => errors::model_not_found(&model, self.version, "generateContent"),
                };
                return (reply, None);
            }
            ("POST", Some(Route::Call { model, method })) => (model, method),
            _ => return (errors::route_not_found(), None),
        };
        if !["generateContent", "streamGenerateContent", "countTokens"].contains(&call.as_str()) {
            return (errors::route_not_found(), None);
        }
        if body_len > MAX_BODY_BYTES {
            return (errors::payload_too_large(), None);
        }
        let (spec, overloaded, shed_flex) = {
            let catalogue = lock(&self.shared.catalogue);
            (
                catalogue.lookup(&model),
                catalogue.overloaded.contains(&model),
                catalogue.shed_flex,
            )
        };
        let Some(spec) = spec else {
            return (errors::model_not_found(&model, self.version, &call), None);
        };

        let body = match parsed {
            Ok(body) => body,
            Err(err) => return (errors::malformed_json(&err.to_string()), None),
        };
        if call == "countTokens" {
            return (self.count_tokens(spec, body).unwrap_or_else(|r| r), None);
        }
        // Capacity is only a question for a request that is valid.
        let shed = shed_flex && service_tier(&body) == Some("flex");
        let busy = (overloaded || shed).then(|| {
            if overloaded {
                errors::overloaded()
            } else {
                errors::flex_shed()
            }
        });
        match self
            .generate(spec, body, call == "streamGenerateContent", busy)
            .await
        {
            Ok(done) => done,
            Err(reply) => (reply, None),
        }
    }

    /// `GET /{ver}/models?pageSize=&pageToken=`: paged as Google pages it, `nextPageToken`
    /// absent on the last page.
    fn list(&self) -> Result<Reply, Reply> {
        let size = match query_value(self.query, "pageSize") {
            None => DEFAULT_PAGE_SIZE.min(self.shared.opts.max_page_size.unwrap_or(MAX_PAGE_SIZE)),
            Some(v) => match v.parse::<i64>() {
                Ok(n) if n <= 0 => DEFAULT_PAGE_SIZE,
                Ok(n) => (n as usize)
                    .min(MAX_PAGE_SIZE)
                    .min(self.shared.opts.max_page_size.unwrap_or(MAX_PAGE_SIZE)),
                Err(_) => {
                    return Err(errors::field_violation(
                        "page_size",
                        &format!("Invalid value at 'page_size' (TYPE_INT32), \"{v}\""),
                    ));
                }
            },
        };
        let start = match query_value(self.query, "pageToken").filter(|t| !t.is_empty()) {
            None => 0,
            Some(token) => token
                .strip_prefix("fake-page-")
                .and_then(|n| n.parse::<usize>().ok())
                .ok_or_else(|| errors::invalid_argument("Invalid page token."))?,
        };
        let listed = lock(&self.shared.catalogue).listed();
        let page: Vec<Value> = listed
            .iter()
            .skip(start)
            .take(size)
            .map(|(id, spec)| spec.resource_as(id))
            .collect();
        let mut answer = json!({ "models": page });
        if start + size < listed.len() {
            answer["nextPageToken"] = json!(format!("fake-page-{}", start + size));
        }
        Ok(json_ok(answer))
    }

    fn count_tokens(&self, spec: &ModelSpec, body: Value) -> Result<Reply, Reply> {
        let lenient = self.shared.opts.lenient_unknown_fields;
        let req: CountTokensRequest = wire::parse(body, lenient).map_err(errors::parse_error)?;
        let contents = req
            .contents
            .or(req.generate_content_request.map(|r| r.contents))
            .unwrap_or_default();
        let tokens = validate::check_contents(&contents, spec, None)?.tokens;
        let usage = response::usage(tokens, Output::default());
        let mut answer = json!({ "totalTokens": tokens.text + tokens.image });
        if let Some(details) = usage.get("promptTokensDetails") {
            answer["promptTokensDetails"] = details.clone();
        }
        Ok(json_ok(answer))
    }

    async fn generate(
        &self,
        spec: &ModelSpec,
        body: Value,
        stream: bool,
        busy: Option<Reply>,
    ) -> Result<(Reply, Option<Duration>), Reply> {
        let opts = &self.shared.opts;
        let mut text = scenarios::last_user_text(&body);
        text.push_str(&scenarios::turn_markers(&body));
        let req: GenerateContentRequest =
            wire::parse(body, opts.lenient_unknown_fields).map_err(errors::parse_error)?;
        let plan = if opts.strict_signatures {
            validate::validate(&req, spec, Some(&*lock(&self.shared.signatures)))?
        } else {
            validate::validate(&req, spec, None)?
        };
        if let Some(busy) = busy {
            return Err(busy);
        }

        let markers = scenarios::parse_markers(&text);
        let script = if markers.is_empty() {
            Script::default()
        } else {
            Script::for_attempt(&markers, self.shared.next_attempt(&text))?
        };
        let reply = self
            .scripted_or_generated(spec, &plan, &script, &text, stream)
            .await;
        Ok((reply, script.slow))
    }

    async fn scripted_or_generated(
        &self,
        spec: &ModelSpec,
        plan: &Plan,
        script: &Script,
        text: &str,
        stream: bool,
    ) -> Reply {
        let outcome = script.outcome.as_deref().unwrap_or_default();
        if let Some(reply) =
            scenarios::scripted_error(outcome, spec.id, &self.shared.opts.retry_delay)
        {
            return reply;
        }
        let prompt_usage = response::usage(plan.prompt, Output::default());
        let mut body = match scenarios::scripted_block(outcome, prompt_usage) {
            Some(body) => body,
            None => {
                let request = response::Request {
                    spec,
                    plan,
                    script,
                    colour: images::colour_for(text),
                };
                response::success(request, || self.shared.issue_signature()).await
            }
        };
        body["modelVersion"] = json!(spec.id);
        body["responseId"] = json!(response_id());
        if !stream {
            return json_ok(body);
        }
        let events = response::stream_chunks(&body, plan.prompt, script.stream_error);
        if self.sse {
            Reply::Sse { events }
        } else {
            // Without alt=sse, REST server streaming answers one JSON array of the chunks.
            json_ok(Value::Array(events))
        }
    }
}

/// The `serviceTier` a body asks for (either spelling), as sent.
fn service_tier(body: &Value) -> Option<&str> {
    body.get("serviceTier")
        .or_else(|| body.get("service_tier"))
        .and_then(Value::as_str)
}

/// One batch item, answered exactly as `generateContent` answers it: (status, body).
pub async fn generate_one(
    shared: &Shared,
    version: &str,
    model: &str,
    body: Value,
) -> (u16, Value) {
    let ctx = Ctx {
        shared,
        version,
        sse: false,
        query: &[],
    };
    let reply = match super::models::spec(model) {
        Some(spec) => match ctx.generate(spec, body, false, None).await {
            Ok((reply, _)) => reply,
            Err(reply) => reply,
        },
        None => errors::model_not_found(model, version, "generateContent"),
    };
    match reply {
        Reply::Json { status, body } => (status, body),
        other => (other.status(), Value::Null),
    }
}

fn json_ok(body: Value) -> Reply {
    Reply::Json { status: 200, body }
}

/// Random 23-character id like Google's `responseId` ("jp7haNbhEqSoqtsP5M6hqQ8").
fn response_id() -> String {
    use rand::Rng as _;
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(23)
        .map(char::from)
        .collect()
}

/// Splits `/[prefix/]{ver}/models/[models/]{model}[:{method}]`, returning the version (for
/// error messages) and the route, or `None` when the path is not an API path.
fn parse_route(path: &str) -> (String, Option<Route>) {
    let path = path.replace("%3A", ":").replace("%3a", ":");
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let Some(at) = segments
        .iter()
        .skip(1)
        .position(|s| *s == "models")
        .map(|i| i + 1)
    else {
        return (String::new(), None);
    };
    let version = segments[at - 1].to_string();
    let mut rest = &segments[at + 1..];
    if rest.first() == Some(&"models") {
        rest = &rest[1..];
    }
    let route = match rest {
        [] => Some(Route::List),
        [name] => Some(match name.rsplit_once(':') {
            Some((model, method)) => Route::Call {
                model: model.to_string(),
                method: method.to_string(),
            },
            None => Route::Get {
                model: name.to_string(),
            },
        }),
        _ => None,
    };
    (version, route)
}

fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (percent_decode(k), percent_decode(v)))
        .collect()
}

fn query_value(pairs: &[(String, String)], key: &str) -> Option<String> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Every inline image of every content, decoded; read from the raw body so rejected requests
/// are recorded too.
fn recorded_images(body: &Value) -> Vec<(String, Vec<u8>)> {
    let field = |value: &Value, camel: &str, snake: &str| -> Option<Value> {
        value.get(camel).or_else(|| value.get(snake)).cloned()
    };
    let contents = body.get("contents").and_then(Value::as_array);
    contents
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("parts").and_then(Value::as_array))
        .flatten()
        .filter_map(|part| field(part, "inlineData", "inline_data"))
        .filter_map(|blob| {
            let mime = field(&blob, "mimeType", "mime_type")?.as_str()?.to_string();
            let data = validate::decode_base64(blob.get("data")?.as_str()?)?;
            Some((mime, data))
        })
        .collect()
}

/// Counts a call as in flight from its arrival until its answer leaves.
struct InFlight<'a>(&'a Shared);

impl<'a> InFlight<'a> {
    fn enter(shared: &'a Shared) -> Self {
        use std::sync::atomic::Ordering::SeqCst;
        let now = shared.in_flight.fetch_add(1, SeqCst) + 1;
        shared.max_in_flight.fetch_max(now, SeqCst);
        Self(shared)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0
            .in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}
