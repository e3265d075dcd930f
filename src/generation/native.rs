//! Google's own `generateContent`, run as a unit of work ([`Work::GeminiNative`]): the
//! body is rebuilt from the stored request and its prepared inline images, relayed with
//! the gateway's Google key, and Google's answer is kept as it came (error envelopes
//! included) with its images and usage recorded for the caller. A model upstream answers
//! 404 for is retired and the same body relayed to its successor; one that stays
//! overloaded hands over to its fallback chain when `registry.fallback` is on. On the
//! offline provider the same body is served by [`native_offline`].
//!
//! [`Work::GeminiNative`]: crate::generation::work::Work::GeminiNative

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde_json::Value;

use crate::caller::RequestContext;
use crate::generation::GenerationError;
use crate::generation::execute::Inputs;
use crate::generation::work::NativeImage;
use crate::generation::{Generator, Usage, native_offline};
use crate::models::{ModelTable, Reason, ResolvedModel, ServiceTier, Substitution};
use crate::provider::ServedAs;
use crate::provider::native::NativeUpstream;

/// What relaying needs besides the request.
pub struct Relay<'a> {
    pub generator: &'a Generator,
    pub models: &'a ModelTable,
    pub default_model: &'a str,
    /// `None` on the offline provider.
    pub gemini: Option<&'a dyn NativeUpstream>,
}

/// Google's answer to a relayed call: its HTTP status and body, as they came.
pub struct Answer {
    pub served: ServedAs,
    pub status: u16,
    pub body: Bytes,
}

impl Answer {
    /// The answer as an async request's result: Google's response object, or the
    /// failure its error envelope describes.
    pub fn into_result(self) -> Result<Value, GenerationError> {
        let body: Value = serde_json::from_slice(&self.body).unwrap_or(Value::Null);
        if self.status == 200 {
            return Ok(body);
        }
        let message = body["error"]["message"]
            .as_str()
            .unwrap_or("The upstream refused the request.")
            .to_owned();
        Err(GenerationError::UpstreamRefused {
            status: self.status,
            message,
            error: body["error"].clone(),
        })
    }
}

/// The body to relay: the stored request with each inline image's bytes put back, as
/// sent when intake left it unchanged, downscaled (with its new type) when it did not.
pub fn body(
    mut request: Value,
    images: &[NativeImage],
    inputs: &mut Inputs,
) -> Result<Bytes, GenerationError> {
    for native in images {
        let prepared = inputs.take(&native.image)?;
        let image = &prepared.image;
        let unchanged = image.original_size == (image.width, image.height)
            && image.bytes.len() == prepared.original.len();
        let blob = inline_blob_mut(&mut request, native.content, native.part)
            .and_then(Value::as_object_mut)
            .ok_or_else(|| GenerationError::internal("an inline image's part is gone"))?;
        if unchanged {
            blob.insert("data".into(), STANDARD.encode(&prepared.original).into());
        } else {
            blob.insert("data".into(), STANDARD.encode(&image.bytes).into());
            let mime_key = if blob.contains_key("mime_type") {
                "mime_type"
            } else {
                "mimeType"
            };
            blob.insert(mime_key.into(), image.format.mime().into());
        }
    }
    serde_json::to_vec(&request)
        .map(Bytes::from)
        .map_err(GenerationError::failed("encoding the relayed body"))
}

/// The inline blob of `contents[content].parts[part]`, under either spelling.
pub fn inline_blob_mut(json: &mut Value, content: usize, part: usize) -> Option<&mut Value> {
    let part = json
        .get_mut("contents")?
        .get_mut(content)?
        .get_mut("parts")?
        .get_mut(part)?;
    if part.get("inlineData").is_some() {
        part.get_mut("inlineData")
    } else {
        part.get_mut("inline_data")
    }
}

/// Relays a generation; a 404 retires the model and the request goes to its successor,
/// an overload that outlasts the retries to the fallback chain when that is on.
pub async fn generate(
    relay: &Relay<'_>,
    ctx: &RequestContext,
    served: ServedAs,
    body: Bytes,
) -> Result<Answer, GenerationError> {
    let mut served = served;
    let Some(gemini) = relay.gemini else {
        let answer = native_offline::generate(relay, ctx, served.model.clone(), &body).await?;
        let body = serde_json::to_vec(&answer)
            .map_err(GenerationError::failed("encoding the offline answer"))?;
        return Ok(Answer {
            served,
            status: 200,
            body: Bytes::from(body),
        });
    };
    let (generator, models) = (relay.generator, relay.models);
    let requested = match &served.model.substituted {
        Some((name, _)) => name.clone(),
        None => served.model.entry.name.clone(),
    };
    let mut chain = served.model.entry.fallback.clone().into_iter();
    let mut tried = vec![served.model.entry.name.clone()];
    let mut body = body;
    loop {
        let upstream = served.model.entry.upstream_id.clone();
        // The native body's size is not read here: the largest output is reserved.
        let reservation = generator.reserve(ctx, &served, None).await?;
        let forwarded = gemini
            .forward(&upstream, "generateContent", body.clone())
            .await;
        let (status, bytes) = match forwarded {
            Ok(answer) => answer,
            Err(e) => {
                generator.settle(reservation, 0.0).await;
                return Err(e.into());
            }
        };
        let name = served.model.entry.name.clone();
        if status == 200 {
            let cost = keep(generator, gemini, ctx, &served, &bytes).await;
            generator.settle(reservation, cost).await;
            return Ok(Answer {
                served,
                status,
                body: bytes,
            });
        }
        // Refusals by status are not billed upstream.
        generator.settle(reservation, 0.0).await;
        let next = match status {
            // A shed flex call tries the standard tier before another model.
            429 | 503
                if models.fallback_by_default()
                    && served.service_tier == Some(ServiceTier::Flex) =>
            {
                tracing::info!(model = %name, "flex call shed; relaying on the standard tier");
                body = with_service_tier(&body, ServiceTier::Standard)?;
                served.service_tier = Some(ServiceTier::Standard);
                continue;
            }
            404 if models.mark_retired(&name) => models
                .resolve(&name)
                .ok()
                .map(|next| (next, Reason::Retired)),
            429 | 503 if models.fallback_by_default() => chain
                .by_ref()
                .find_map(|n| models.resolve(&n).ok())
                .map(|next| (next, Reason::Overloaded)),
            _ => None,
        };
        let Some((next, reason)) = next.filter(|(n, _)| !tried.contains(&n.entry.name)) else {
            return Ok(Answer {
                served,
                status,
                body: bytes,
            });
        };
        tracing::warn!(from = %name, to = %next.entry.name, status, "relaying to another model");
        tried.push(next.entry.name.clone());
        let shut_down = next.substituted.and_then(|(_, s)| s.shut_down);
        served.model = ResolvedModel {
            substituted: Some((
                requested.clone(),
                Substitution {
                    successor: next.entry.name.clone(),
                    reason,
                    shut_down,
                },
            )),
            entry: next.entry,
        };
    }
}

/// `body` asking for `tier` (Google's spelling replacing either of the caller's).
pub fn with_service_tier(body: &Bytes, tier: ServiceTier) -> Result<Bytes, GenerationError> {
    let mut json: Value = serde_json::from_slice(body)
        .map_err(GenerationError::failed("reading the stored native body"))?;
    if let Some(object) = json.as_object_mut() {
        object.remove("service_tier");
        object.insert("serviceTier".into(), tier.as_str().into());
    }
    serde_json::to_vec(&json)
        .map(Bytes::from)
        .map_err(GenerationError::failed("encoding the native body"))
}

/// Keeps a relayed answer's images and usage for the caller, and returns what the call
/// cost. The client already has (or will have) its answer as Google sent it, so a
/// failure here is logged rather than turned into an error.
pub async fn keep(
    generator: &Generator,
    upstream: &dyn NativeUpstream,
    ctx: &RequestContext,
    served: &ServedAs,
    answer: &[u8],
) -> f64 {
    match upstream.interpret(answer, served.clone()) {
        Ok(generated) => {
            let cost = Usage::priced(generated.usage, generated.served.prices()).cost_usd;
            if let Err(e) = generator.keep(ctx, &generated).await {
                tracing::warn!(error = %e, "could not keep a relayed answer");
            }
            cost
        }
        // A refusal (blocked prompt, SAFETY) keeps no image, but upstream billed its
        // tokens, so they are recorded like the guide's endpoints record them.
        Err(e) => {
            tracing::debug!(outcome = %e, "relayed answer kept no image");
            generator
                .record_refusal(ctx, &served.model.entry.upstream_id, &e, served.prices())
                .await;
            e.usage()
                .map_or(0.0, |t| Usage::priced(t, served.prices()).cost_usd)
        }
    }
}
