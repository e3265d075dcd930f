//! The batch worker's steps: submit a queued batch upstream, poll a running one, collect
//! and record the results of one that has ended.

use std::collections::HashMap;

use bytes::Bytes;

use super::outcomes::ItemOutcome;
use super::{Batches, STORED_IMAGE_PREFIX, items_key, outcomes_key};
use crate::caller::{Caller, RequestContext};
use crate::error::{error_chain, stored_body};
use crate::generation::GenerationError;
use crate::generation::work::{ImageRef, Plan, StoredWork, WORK_VERSION, Work};
use crate::generation::{Usage, requests};
use crate::imaging::{self, InputImage};
use crate::models::BATCH_USAGE_SUFFIX;
use crate::provider::batch::{BatchItem, ItemResult, UpstreamState};
use crate::provider::{Generated, ProviderError, ProviderRequest, Role, ServedAs, Turn};
use crate::store::batches::BatchRecord;

impl Batches {
    /// Claims one due batch and takes one step with it, renewing its lease while the step
    /// runs (collecting thousands of images can outlast one lease). `false` when none was
    /// due.
    pub async fn run_once(&self) -> Result<bool, GenerationError> {
        let lease = self.config.lease().as_millis() as i64;
        let claimed_at = self.clock.now_ms();
        let Some(b) = self.store.claim(claimed_at, lease).await? else {
            return Ok(false);
        };
        let stepped = tokio::select! {
            stepped = self.step(&b) => stepped,
            () = self.keep_lease(&b, claimed_at + lease) => {
                // Another worker may hold the batch now: this step stops here, and what it
                // had not recorded is done again by whoever holds it.
                tracing::warn!(batch_id = %b.id, attempt = b.attempts, "batch lease lost; step dropped");
                return Ok(true);
            }
        };
        if let Err(e) = stepped {
            // Tried again after the backoff (the step's error is usually the upstream's).
            tracing::warn!(batch_id = %b.id, error = %error_chain(&e), "batch step failed");
            let now = self.clock.now_ms();
            let next = now + self.config.poll_after(b.polls).as_millis() as i64;
            self.store
                .step(&b.id, b.attempts, &b.state, None, next, now)
                .await?;
        }
        Ok(true)
    }

    async fn step(&self, b: &BatchRecord) -> Result<(), GenerationError> {
        match (b.state.as_str(), b.upstream_name.as_deref()) {
            ("queued", _) if b.cancel_requested => {
                let items = (0..b.item_count as usize)
                    .map(|i| ItemOutcome::new(i, "cancelled"))
                    .collect();
                self.end(b, "cancelled", items, None, 0).await
            }
            ("queued", _) => self.submit_upstream(b).await,
            ("running", Some(name)) => self.poll(b, name).await,
            (state, _) => Err(GenerationError::internal(format!(
                "batch {} claimed in state {state} without an upstream name",
                b.id
            ))),
        }
    }

    async fn load_items(&self, b: &BatchRecord) -> Result<Vec<Work>, GenerationError> {
        let key = items_key(&b.id);
        let body =
            self.blobs.get(&key).await?.ok_or_else(|| {
                GenerationError::internal(format!("batch items {key} are missing"))
            })?;
        let units: Vec<StoredWork> = serde_json::from_slice(&body).map_err(|e| {
            GenerationError::internal(format!("reading batch items {key}")).caused_by(e)
        })?;
        units
            .into_iter()
            .map(|u| {
                (u.version == WORK_VERSION)
                    .then_some(u.work)
                    .ok_or_else(|| {
                        GenerationError::internal(format!("batch items {key} have another version"))
                    })
            })
            .collect()
    }

    /// A stored image named by an item, checked as an upload would be.
    async fn stored_image(&self, owner: &str, r: &ImageRef) -> Result<InputImage, GenerationError> {
        let id = r.key.strip_prefix(STORED_IMAGE_PREFIX).unwrap_or_default();
        let bytes = self.images.get(id, owner).await?.ok_or_else(|| {
            GenerationError::invalid(&r.field, "The image is gone.").detail("image_id", id)
        })?;
        let (field, limits) = (r.field.clone(), self.env.intake);
        tokio::task::spawn_blocking(move || imaging::accept_input(&field, bytes, &limits))
            .await
            .map_err(GenerationError::failed("checking a stored image"))?
    }

    /// The upstream request of one item: the same prompt building as `/generate-image`,
    /// `/edit-image` and `/compose-images`.
    async fn request_for(
        &self,
        owner: &str,
        work: &Work,
    ) -> Result<ProviderRequest, GenerationError> {
        let mut request = self.request_of(owner, work).await?;
        // Batches have their own price and no service tier (docs/batches.md).
        request.routing.service_tier = None;
        Ok(request)
    }

    async fn request_of(
        &self,
        owner: &str,
        work: &Work,
    ) -> Result<ProviderRequest, GenerationError> {
        Ok(match work.plan(&self.env)? {
            Plan::Generate {
                prompt, options, ..
            } => requests::text_to_image(prompt, options),
            Plan::Edit {
                prompt,
                strength,
                preserve_subject,
                options,
                image,
                ..
            } => {
                let image = self.stored_image(owner, &image).await?;
                requests::edit(prompt, image, strength, preserve_subject, options)
            }
            Plan::Compose {
                prompt,
                style,
                options,
                images,
                ..
            } => {
                let mut inputs = Vec::with_capacity(images.len());
                for r in &images {
                    inputs.push(self.stored_image(owner, r).await?);
                }
                requests::compose(prompt, inputs, style, options)?
            }
            _ => {
                return Err(GenerationError::internal(
                    "a batch item is not a generation",
                ));
            }
        })
    }

    async fn submit_upstream(&self, b: &BatchRecord) -> Result<(), GenerationError> {
        let display_name = upstream_display_name(b);
        // An earlier attempt may have died after the upstream accepted the batch and before
        // its name was recorded: the batch is found by its display name, not paid twice.
        if b.attempts > 1
            && let Some(name) = self.provider.find(&display_name).await?
        {
            tracing::info!(batch_id = %b.id, upstream = %name, "upstream batch adopted");
            return self.record_running(b, &name).await;
        }
        let works = self.load_items(b).await?;
        let mut items = Vec::with_capacity(works.len());
        for (index, work) in works.iter().enumerate() {
            match self.request_for(&b.owner, work).await {
                Ok(request) => items.push(BatchItem {
                    key: index.to_string(),
                    request,
                }),
                // Only an image deleted since acceptance gets here: nothing went upstream.
                Err(e) => {
                    let e = super::item_error(index, e);
                    let outcomes = (0..works.len())
                        .map(|i| ItemOutcome::new(i, "failed"))
                        .collect();
                    return self.end(b, "failed", outcomes, Some(e), 0).await;
                }
            }
        }
        let model = self.env.models.resolve(&b.model)?.entry.upstream_id;
        let name = match self.provider.create(&model, &display_name, items).await {
            Ok(name) => name,
            Err(e @ (ProviderError::Rejected { .. } | ProviderError::BadResponse { .. })) => {
                let outcomes = (0..works.len())
                    .map(|i| ItemOutcome::new(i, "failed"))
                    .collect();
                return self.end(b, "failed", outcomes, Some(e.into()), 0).await;
            }
            Err(e) => return Err(e.into()),
        };
        tracing::info!(batch_id = %b.id, upstream = %name, items = works.len(), "batch submitted upstream");
        self.record_running(b, &name).await
    }

    async fn record_running(&self, b: &BatchRecord, name: &str) -> Result<(), GenerationError> {
        let now = self.clock.now_ms();
        let next = now + self.config.poll_after(0).as_millis() as i64;
        self.store
            .step(&b.id, b.attempts, "running", Some(name), next, now)
            .await?;
        Ok(())
    }

    async fn poll(&self, b: &BatchRecord, name: &str) -> Result<(), GenerationError> {
        if let Some(saved) = self.blobs.get(&outcomes_key(&b.id)).await? {
            // Collected by a worker that stopped before recording them.
            let (state, outcomes, spent) = read_saved(&saved)?;
            return self.end(b, &state, outcomes, None, spent).await;
        }
        if b.cancel_requested {
            self.provider.cancel(name).await?;
        }
        let upstream = self.provider.get(name).await?;
        if upstream.state == UpstreamState::Forgotten {
            if b.cancel_requested {
                let items = (0..b.item_count as usize)
                    .map(|i| ItemOutcome::new(i, "cancelled"))
                    .collect();
                return self.end(b, "cancelled", items, None, 0).await;
            }
            // Run locally by a process that has ended: nothing was paid for, so it runs
            // again from its stored items.
            tracing::info!(batch_id = %b.id, upstream = %name, "offline batch run again after a restart");
            return self.submit_upstream(b).await;
        }
        if !upstream.state.is_done() {
            let now = self.clock.now_ms();
            let next = now + self.config.poll_after(b.polls).as_millis() as i64;
            self.store
                .step(&b.id, b.attempts, "running", None, next, now)
                .await?;
            return Ok(());
        }
        let model = self.env.models.resolve(&b.model)?;
        let results = match upstream.state {
            UpstreamState::Succeeded | UpstreamState::Cancelled => {
                self.provider.results(name, &model).await?
            }
            _ => Vec::new(),
        };
        let state = match upstream.state {
            UpstreamState::Succeeded => "succeeded",
            UpstreamState::Cancelled => "cancelled",
            UpstreamState::Expired => "expired",
            _ => "failed",
        };
        let (outcomes, spent) = self.collect(b, state, results).await?;
        let saved = serde_json::to_vec(&(state, &outcomes, spent))
            .map_err(GenerationError::failed("encoding the collected outcomes"))?;
        self.blobs
            .put(&outcomes_key(&b.id), Bytes::from(saved))
            .await?;
        let error = upstream.error.map(|message| GenerationError::BadResult {
            message: "The upstream batch failed.",
            upstream_message: Some(message),
            source: None,
        });
        self.end(b, state, outcomes, error, spent).await
    }

    /// Keeps each result's images for the caller and prices it at the batch rate; the
    /// outcomes, and what they cost in micro-dollars (what the batch's reservation is
    /// settled to).
    async fn collect(
        &self,
        b: &BatchRecord,
        state: &str,
        results: Vec<ItemResult>,
    ) -> Result<(Vec<ItemOutcome>, i64), GenerationError> {
        let mut spent = 0i64;
        let works = self.load_items(b).await?;
        let model = self.env.models.resolve(&b.model)?;
        let mut by_key: HashMap<String, Result<Generated, ProviderError>> =
            results.into_iter().collect();
        let mut outcomes = Vec::with_capacity(works.len());
        for (index, work) in works.iter().enumerate() {
            let ctx = RequestContext {
                request_id: format!("{}.{index}", b.id),
                caller: Caller::of_tier(b.owner.clone(), b.tier.clone()),
                // Batch items hold no in-flight slot and no share of the minute: the
                // upstream runs them under its separate batch quota.
                slot: None,
                budget: None,
            };
            let Some(result) = by_key.remove(&index.to_string()) else {
                let status = if state == "succeeded" {
                    "failed"
                } else {
                    state
                };
                let mut outcome = ItemOutcome::new(index, status);
                if status == "failed" {
                    let e = GenerationError::BadResult {
                        message: "The upstream batch returned no result for this item.",
                        upstream_message: None,
                        source: None,
                    };
                    outcome.error = Some(stored_body(e, &b.id));
                }
                outcomes.push(outcome);
                continue;
            };
            let wants_image = match work.plan(&self.env)? {
                Plan::Generate { options, .. }
                | Plan::Edit { options, .. }
                | Plan::Compose { options, .. } => options.modalities.image,
                _ => true,
            };
            let result = result.and_then(|g| {
                if wants_image && g.images.is_empty() {
                    Err(ProviderError::NoImage {
                        finish_reason: g.finish_reason.clone(),
                        text: g.text.clone(),
                        usage: g.usage,
                    })
                } else {
                    Ok(g)
                }
            });
            let outcome = match result {
                Ok(mut generated) => {
                    at_batch_price(&mut generated);
                    let (image_ids, usage): (Vec<String>, Usage) =
                        self.generator.keep(&ctx, &generated).await?;
                    spent += micro(usage.cost_usd);
                    ItemOutcome {
                        image_ids,
                        ..ItemOutcome::new(index, "succeeded")
                    }
                }
                Err(e) => {
                    if let Some(tokens) = e.usage().filter(|t| *t != Default::default()) {
                        // A refusal is billed upstream too: record it, with no image.
                        let mut refused = Generated {
                            model: model.entry.upstream_id.clone(),
                            served: ServedAs {
                                model: model.clone(),
                                service_tier: None,
                            },
                            images: Vec::new(),
                            text: None,
                            finish_reason: String::new(),
                            usage: tokens,
                            model_turn: Turn {
                                role: Role::Model,
                                parts: Vec::new(),
                            },
                        };
                        at_batch_price(&mut refused);
                        let (_, usage) = self.generator.keep(&ctx, &refused).await?;
                        spent += micro(usage.cost_usd);
                    }
                    let status = match &e {
                        ProviderError::Blocked { .. } => "blocked",
                        ProviderError::NoImage { .. } => "no_image",
                        _ => "failed",
                    };
                    ItemOutcome {
                        error: Some(stored_body(e.into(), &b.id)),
                        ..ItemOutcome::new(index, status)
                    }
                }
            };
            outcomes.push(outcome);
        }
        Ok((outcomes, spent))
    }

    /// Records the final state with the caller's webhook and settles the batch's
    /// reservation to `spent_micro`, then drops the batch's blobs.
    pub(super) async fn end(
        &self,
        b: &BatchRecord,
        state: &str,
        outcomes: Vec<ItemOutcome>,
        error: Option<GenerationError>,
        spent_micro: i64,
    ) -> Result<(), GenerationError> {
        let now = self.clock.now_ms();
        let items = serde_json::to_string(&outcomes)
            .map_err(GenerationError::failed("encoding the outcomes"))?;
        let error = error.map(|e| stored_body(e, &b.id).to_string());
        let mut ended = b.clone();
        ended.state = state.to_owned();
        ended.items = Some(items.clone());
        ended.error = error.clone();
        ended.finished_at_ms = Some(now);
        ended.updated_at_ms = now;
        let delivery = self.delivery_for(&ended);
        let recorded = self
            .store
            .finish(
                &b.id,
                b.attempts,
                state,
                &items,
                error.as_deref(),
                now,
                delivery.as_ref(),
                spent_micro,
            )
            .await?;
        if recorded {
            self.remove_blobs(&b.id).await;
            tracing::info!(batch_id = %b.id, state, "batch ended");
        } else {
            tracing::warn!(batch_id = %b.id, "batch was taken over; outcome dropped");
        }
        Ok(())
    }
}

/// The name the upstream batch is created under: the caller's display name (if any) with
/// the batch id, so that it is unique to this batch and can be looked for by it.
fn upstream_display_name(b: &BatchRecord) -> String {
    match &b.display_name {
        Some(name) => format!("{name} [{}]", b.id),
        None => b.id.clone(),
    }
}

/// Dollars as the micro-dollars budgets count in.
fn micro(usd: f64) -> i64 {
    (usd * 1e6).round() as i64
}

/// Outcomes saved between collecting and recording them. Saved by an earlier version
/// without their cost: those batches reserved nothing, so 0 settles nothing.
fn read_saved(saved: &[u8]) -> Result<(String, Vec<ItemOutcome>, i64), GenerationError> {
    serde_json::from_slice(saved).or_else(|_| {
        let (state, outcomes): (String, Vec<ItemOutcome>) = serde_json::from_slice(saved)
            .map_err(GenerationError::failed("reading the saved outcomes"))?;
        Ok((state, outcomes, 0))
    })
}

/// Prices a batch item at the model's batch rate and records it apart from standard usage.
fn at_batch_price(generated: &mut Generated) {
    let entry = &mut generated.served.model.entry;
    entry.prices = entry.prices.batch();
    generated.served.service_tier = None;
    generated.model = format!("{}{BATCH_USAGE_SUFFIX}", generated.model);
}
