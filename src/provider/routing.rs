//! Serving a request when its model cannot (docs/models.md): an upstream 404 retires the
//! model at once and the same request goes to its successor; a model that stays
//! overloaded (503/429 after the retries) hands the request to the next model of its
//! fallback chain, when fallback is allowed — a shed `flex` call first retries on the
//! standard tier. The result names the model and tier that served, which is what it
//! is priced as.

use std::sync::Arc;

use async_trait::async_trait;

use crate::generation::params::{AspectRatio, ImageSize};
use crate::models::{ModelTable, Reason, ResolvedModel, ServiceTier, Substitution};
use crate::provider::{Generated, ImageProvider, ProviderError, ProviderRequest};

/// Sizes in increasing order, to find the nearest one a successor has.
const SIZES: [&str; 4] = ["512", "1K", "2K", "4K"];

pub struct Routed {
    inner: Arc<dyn ImageProvider>,
    models: Arc<ModelTable>,
}

impl Routed {
    pub fn new(inner: Arc<dyn ImageProvider>, models: Arc<ModelTable>) -> Self {
        Self { inner, models }
    }
}

#[async_trait]
impl ImageProvider for Routed {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn generate(&self, mut request: ProviderRequest) -> Result<Generated, ProviderError> {
        let requested = match &request.model.substituted {
            Some((name, _)) => name.clone(),
            None => request.model.entry.name.clone(),
        };
        let fallback = request
            .routing
            .fallback
            .unwrap_or(self.models.fallback_by_default());
        // The chain of the model that was to serve: Pro's, for a request naming Pro.
        let mut chain = request.model.entry.fallback.clone().into_iter();
        let mut tried = vec![request.model.entry.name.clone()];
        loop {
            let error = match self.inner.generate(request.clone()).await {
                Ok(generated) => return Ok(generated),
                Err(e) => e,
            };
            let model = request.model.entry.name.clone();
            let next = match &error {
                ProviderError::ModelNotFound { .. } => {
                    if !self.models.mark_retired(&model) {
                        return Err(error);
                    }
                    match self.models.resolve(&model) {
                        Ok(next) if !tried.contains(&next.entry.name) => {
                            let shut_down = next.substituted.and_then(|(_, s)| s.shut_down);
                            retarget(&request, next.entry, &requested, Reason::Retired, shut_down)
                        }
                        _ => None,
                    }
                }
                e if e.is_overload() && fallback => {
                    if request.routing.service_tier == Some(ServiceTier::Flex) {
                        tracing::info!(model = %model, "flex call shed; trying the standard tier");
                        request.routing.service_tier = Some(ServiceTier::Standard);
                        continue;
                    }
                    chain.by_ref().find_map(|name| {
                        let next = self.models.resolve(&name).ok()?;
                        if tried.contains(&next.entry.name) {
                            return None;
                        }
                        retarget(&request, next.entry, &requested, Reason::Overloaded, None)
                    })
                }
                _ => None,
            };
            let Some(next) = next else {
                return Err(error);
            };
            tracing::warn!(
                from = %model,
                to = %next.model.entry.name,
                cause = %error,
                "serving the request with another model"
            );
            tried.push(next.model.entry.name.clone());
            request = next;
        }
    }
}

/// `request` for `entry` instead, or `None` when `entry` cannot take it (more input
/// images, or an aspect ratio it lacks). A size it lacks becomes the nearest it has
/// (the next larger first); a thinking level it does not take is dropped.
fn retarget(
    request: &ProviderRequest,
    entry: crate::models::ModelEntry,
    requested: &str,
    reason: Reason,
    shut_down: Option<String>,
) -> Option<ProviderRequest> {
    if request.input_images().count() > entry.max_input_images {
        return None;
    }
    let model = ResolvedModel {
        substituted: Some((
            requested.to_owned(),
            Substitution {
                successor: entry.name.clone(),
                reason,
                shut_down,
            },
        )),
        entry,
    };
    let aspect_ratio = match &request.aspect_ratio {
        Some(ratio) => Some(AspectRatio::parse(ratio.as_str(), &model).ok()?),
        None => None,
    };
    let image_size = request
        .image_size
        .as_ref()
        .and_then(|size| nearest_size(size.as_str(), &model));
    let mut routing = request.routing.clone();
    if let Some(level) = &routing.thinking_level
        && !model
            .entry
            .thinking_levels
            .iter()
            .any(|l| l == level.as_str())
    {
        routing.thinking_level = None;
    }
    let mut substitute = request.clone();
    substitute.model = model;
    substitute.image_size = image_size;
    substitute.aspect_ratio = aspect_ratio;
    substitute.routing = routing;
    Some(substitute)
}

fn nearest_size(size: &str, model: &ResolvedModel) -> Option<ImageSize> {
    let at = SIZES.iter().position(|s| *s == size).unwrap_or(1);
    let larger = SIZES[at..].iter();
    let smaller = SIZES[..at].iter().rev();
    larger
        .chain(smaller)
        .find_map(|s| ImageSize::parse(s, model).ok())
}
