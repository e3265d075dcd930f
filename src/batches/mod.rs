//! Bulk generation at the upstream's batch price (docs/batches.md). A submission is a list
//! of checked units of work, stored before its 202 goes out; a worker (of any instance)
//! claims a due batch under a lease and takes one step: submit it upstream as one batch,
//! poll it with backoff, or, once it has ended, collect its results, keep each image for
//! the calling key, price each item at the batch rate, and record the per-item outcomes
//! together with the caller's webhook.

pub mod config;
pub mod google_webhook;
mod lease;
mod outcomes;
mod run;

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Value, json};

pub use config::BatchesConfig;
pub use outcomes::ItemOutcome;

use crate::caller::Caller;
use crate::clock::{Clock, rfc3339};
use crate::error::error_chain;
use crate::generation::GenerationError;
use crate::generation::Generator;
use crate::generation::params::Options;
use crate::generation::work::Plan;
use crate::generation::work::{StoredWork, WORK_VERSION, Work, WorkEnv};
use crate::ids;
use crate::provider::batch::BatchProvider;
use crate::store::batches::{BatchRecord, BatchStore, CancelBatch, Inserted, Reserved};
use crate::store::requests::NewDelivery;
use crate::store::{ImageStore, ObjectBlobs};
use crate::tasks::Tasks;

/// An item's image given by the id of an image the key already has (`image_id`).
pub const STORED_IMAGE_PREFIX: &str = "img:";

pub struct Batches {
    store: Arc<BatchStore>,
    blobs: Arc<ObjectBlobs>,
    images: Arc<ImageStore>,
    provider: Arc<dyn BatchProvider>,
    generator: Generator,
    env: WorkEnv,
    clock: Arc<dyn Clock>,
    pub config: BatchesConfig,
    wake: tokio::sync::Notify,
}

/// What a submission asks for, as its body said it: [`Batches::submit`] checks the rest.
pub struct Submission {
    /// The batch's one model (`None`: the default model).
    pub model: Option<String>,
    pub display_name: Option<String>,
    pub webhook_url: Option<String>,
    /// `/generate-image` bodies, or edits and compositions of stored images.
    pub items: Vec<Work>,
}

/// The longest display name, in characters.
const MAX_DISPLAY_NAME_CHARS: usize = 128;

/// An item as the batch runs it: on the batch's model, at the batch price, without what
/// only a synchronous request can do; checked as the synchronous route checks it, and
/// returned with its checked options (what its worst case is priced from).
fn batch_item(
    index: usize,
    mut work: Work,
    model: &str,
    env: &WorkEnv,
) -> Result<(Work, Options), GenerationError> {
    let (Work::Generate {
        options, quality, ..
    }
    | Work::Edit {
        options, quality, ..
    }
    | Work::Compose {
        options, quality, ..
    }) = &mut work
    else {
        return Err(GenerationError::internal(
            "a batch item is not a generation",
        ));
    };
    // The Batch API is a price class of its own (half the standard price, docs/batches.md):
    // Google's service tiers are for online calls, and one batch runs one model, so
    // neither a tier nor a fallback would mean anything for an item.
    let refuse = |field: &str, message: String| {
        Err(item_error(index, GenerationError::invalid(field, message)))
    };
    let routing = &options.routing;
    let online = (routing.service_tier.as_ref().map(|_| "service_tier"))
        .or(routing.fallback.map(|_| "fallback"));
    if let Some(field) = online {
        return refuse(
            field,
            format!(
                "'{field}' does not apply to batch items: a batch runs at the batch price on the batch's model."
            ),
        );
    }
    let checked = (quality.include_quality.map(|_| "include_quality"))
        .or(quality.min_quality_score.map(|_| "min_quality_score"));
    if let Some(field) = checked {
        let message = "Quality checks need a synchronous request, not a batch.";
        return refuse(field, message.to_owned());
    }
    match options.model.as_deref() {
        Some(m) if m != model => {
            let message = "One batch runs one model; set it on the batch.";
            let refusal = GenerationError::invalid("model", message).detail("batch_model", model);
            return Err(item_error(index, refusal));
        }
        _ => options.model = Some(model.to_owned()),
    }
    match work.plan(env).map_err(|e| item_error(index, e))? {
        Plan::Generate { options, .. }
        | Plan::Edit { options, .. }
        | Plan::Compose { options, .. } => Ok((work, options)),
        _ => Err(GenerationError::internal(
            "a batch item is not a generation",
        )),
    }
}

fn not_found() -> GenerationError {
    GenerationError::not_found("The batch")
}

/// Where a batch's items are kept until it has ended.
fn items_key(id: &str) -> String {
    format!("batches/{id}.items.json")
}

/// Where a batch's collected outcomes are kept between collecting and recording them, so a
/// worker that takes over after a crash never downloads (or stores) the results twice.
fn outcomes_key(id: &str) -> String {
    format!("batches/{id}.outcomes.json")
}

impl Batches {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<BatchStore>,
        blobs: Arc<ObjectBlobs>,
        images: Arc<ImageStore>,
        provider: Arc<dyn BatchProvider>,
        generator: Generator,
        env: WorkEnv,
        clock: Arc<dyn Clock>,
        config: BatchesConfig,
    ) -> Self {
        Self {
            store,
            blobs,
            images,
            provider,
            generator,
            env,
            clock,
            config,
            wake: tokio::sync::Notify::new(),
        }
    }

    /// Checks that every image an item names is one of the caller's.
    async fn check_images(&self, caller: &Caller, items: &[Work]) -> Result<(), GenerationError> {
        for (index, work) in items.iter().enumerate() {
            for r in work.images() {
                let id = r.key.strip_prefix(STORED_IMAGE_PREFIX).unwrap_or_default();
                let known = ids::is_valid("img", id)
                    && self.images.get(id, &caller.key_id).await?.is_some();
                if !known {
                    return Err(item_error(
                        index,
                        GenerationError::invalid(&r.field, "No image of this key has that id.")
                            .detail("image_id", id),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Checks that the key may use each item's model, and prices the items' worst cases at
    /// the batch rate: the amount the batch holds against the key's budget until it ends.
    /// `None` when the key's spending is not tracked.
    async fn hold(
        &self,
        caller: &Caller,
        items: &[Options],
    ) -> Result<Option<Reserved>, GenerationError> {
        let Some(spending) = self.generator.spending() else {
            return Ok(None);
        };
        let Some((settings, period)) = spending.held_ahead(&caller.key_id).await? else {
            return Ok(None);
        };
        let mut micro = 0i64;
        for (index, options) in items.iter().enumerate() {
            let model = &options.model;
            let requested = model
                .substituted
                .as_ref()
                .map_or(&model.entry.name, |(name, _)| name);
            if !settings.allows_model(requested) {
                return Err(item_error(
                    index,
                    crate::generation::spend::forbidden_model(requested, &settings.models),
                ));
            }
            let size = options.image_size.as_ref().map(|s| s.as_str().to_owned());
            let worst = model
                .entry
                .worst_case_micro(size.as_deref(), model.entry.prices.batch());
            micro = micro.saturating_add(worst.max(0));
        }
        Ok(Some(Reserved { micro, period }))
    }

    /// Stores the batch (items first, then the row, with its reservation) and wakes a
    /// worker; the 202's body.
    pub async fn submit(
        &self,
        caller: &Caller,
        submission: Submission,
    ) -> Result<Value, GenerationError> {
        let Submission {
            model,
            display_name,
            webhook_url,
            items,
        } = submission;
        let count = items.len();
        if count == 0 {
            return Err(GenerationError::invalid(
                "items",
                "A batch needs at least one item.",
            ));
        }
        if count > self.config.max_items {
            return Err(GenerationError::invalid(
                "items",
                format!("A batch holds at most {} items.", self.config.max_items),
            )
            .detail("max_items", self.config.max_items)
            .detail("count", count));
        }
        if display_name
            .as_ref()
            .is_some_and(|name| name.chars().count() > MAX_DISPLAY_NAME_CHARS)
        {
            return Err(GenerationError::invalid(
                "display_name",
                format!("A display name has at most {MAX_DISPLAY_NAME_CHARS} characters."),
            ));
        }
        let model = model.unwrap_or_else(|| self.env.default_model.clone());
        let model = self.env.models.resolve(&model)?.entry.name;
        let (items, options): (Vec<Work>, Vec<Options>) = (items.into_iter().enumerate())
            .map(|(index, work)| batch_item(index, work, &model, &self.env))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .unzip();
        self.check_images(caller, &items).await?;
        let reserved = self.hold(caller, &options).await?;
        let id = ids::new_id("batch");
        let units: Vec<StoredWork> = items
            .into_iter()
            .map(|work| StoredWork {
                version: WORK_VERSION,
                work,
            })
            .collect();
        let body = serde_json::to_vec(&units)
            .map_err(GenerationError::failed("encoding the batch items"))?;
        self.blobs.put(&items_key(&id), Bytes::from(body)).await?;
        let now = self.clock.now_ms();
        let record = BatchRecord {
            id: id.clone(),
            owner: caller.key_id.clone(),
            tier: caller.tier.clone(),
            model,
            display_name,
            webhook_url,
            state: "queued".into(),
            item_count: count as i64,
            upstream_name: None,
            cancel_requested: false,
            attempts: 0,
            polls: 0,
            next_poll_ms: now,
            items: None,
            error: None,
            created_at_ms: now,
            updated_at_ms: now,
            finished_at_ms: None,
            reserved,
        };
        let cap = self.config.max_pending(&caller.tier);
        let inserted = self
            .store
            .insert(&record, i64::try_from(cap).unwrap_or(i64::MAX))
            .await?;
        if inserted != Inserted::Inserted {
            self.remove_blobs(&id).await;
        }
        if inserted == Inserted::OverBudget {
            let micro = record.reserved.as_ref().map_or(0, |r| r.micro);
            return Err(match self.generator.spending() {
                Some(spending) => spending.refusal(&caller.key_id, micro).await,
                None => GenerationError::internal("a budget refused without spending tracked"),
            });
        }
        if inserted == Inserted::OverCap {
            let pending = self.store.pending_items(&caller.key_id).await?;
            return Err(GenerationError::TooManyPending {
                max_pending_items: cap,
                pending_items: pending,
                count,
            });
        }
        self.wake.notify_one();
        tracing::info!(batch_id = %id, items = count, "batch accepted");
        Ok(Self::summary(&record))
    }

    /// The batch without its items: for lists, the 202 and webhooks.
    pub fn summary(b: &BatchRecord) -> Value {
        let outcomes = b
            .items
            .as_deref()
            .and_then(|s| serde_json::from_str::<Vec<ItemOutcome>>(s).ok());
        json!({
            "batch_id": b.id,
            "state": b.state,
            "model": b.model,
            "display_name": b.display_name,
            "counts": outcomes::counts(b, outcomes.as_deref()),
            "cancel_requested": b.cancel_requested,
            "error": b.error.as_deref().and_then(|e| serde_json::from_str::<Value>(e).ok()),
            "created_at": rfc3339(b.created_at_ms),
            "updated_at": rfc3339(b.updated_at_ms),
            "finished_at": b.finished_at_ms.map(rfc3339),
        })
    }

    async fn record(&self, id: &str, owner: &str) -> Result<BatchRecord, GenerationError> {
        if !ids::is_valid("batch", id) {
            return Err(not_found());
        }
        self.store.get(id, owner).await?.ok_or_else(not_found)
    }

    /// `GET /batches/{id}`: the summary and one page of per-item status.
    pub async fn status(
        &self,
        id: &str,
        owner: &str,
        offset: usize,
        limit: usize,
    ) -> Result<Value, GenerationError> {
        let b = self.record(id, owner).await?;
        let all = outcomes::items(&b);
        let page: Vec<&ItemOutcome> = all.iter().skip(offset).take(limit).collect();
        let mut body = Self::summary(&b);
        body["items"] = json!(page);
        body["offset"] = json!(offset);
        body["next_offset"] =
            json!((offset + page.len() < all.len()).then_some(offset + page.len()));
        Ok(body)
    }

    /// `GET /batches/{id}/results`: one JSON line per item, once the batch has ended.
    pub async fn results(&self, id: &str, owner: &str) -> Result<String, GenerationError> {
        let b = self.record(id, owner).await?;
        if b.finished_at_ms.is_none() {
            return Err(GenerationError::conflict(format!(
                "The batch has not ended yet; it is {}.",
                b.state
            ))
            .detail("state", b.state));
        }
        let mut out = String::new();
        for item in outcomes::items(&b) {
            out.push_str(
                &serde_json::to_string(&item)
                    .map_err(GenerationError::failed("encoding an item outcome"))?,
            );
            out.push('\n');
        }
        Ok(out)
    }

    pub async fn list(
        &self,
        owner: &str,
        before_ms: i64,
        limit: i64,
    ) -> Result<Value, GenerationError> {
        let batches = self.store.list(owner, before_ms, limit).await?;
        Ok(json!({ "batches": batches.iter().map(Self::summary).collect::<Vec<_>>() }))
    }

    pub async fn cancel(&self, id: &str, owner: &str) -> Result<Value, GenerationError> {
        let b = self.record(id, owner).await?;
        let now = self.clock.now_ms();
        let mut cancelled = b.clone();
        cancelled.state = "cancelled".into();
        cancelled.items = Some("[]".into());
        cancelled.finished_at_ms = Some(now);
        cancelled.updated_at_ms = now;
        let delivery = self.delivery_for(&cancelled);
        match self.store.cancel(id, owner, now, delivery.as_ref()).await? {
            CancelBatch::Cancelled => {
                self.remove_blobs(id).await;
                Ok(Self::summary(&cancelled))
            }
            CancelBatch::Requested => {
                self.wake.notify_one();
                let b = self.record(id, owner).await?;
                Ok(Self::summary(&b))
            }
            CancelBatch::Final(state) => Err(GenerationError::conflict(format!(
                "The batch has already ended; it is {state}."
            ))
            .detail("state", state)),
            CancelBatch::NotFound => Err(not_found()),
        }
    }

    /// Google said the batch `upstream_name` ended: collect it now instead of at the next poll.
    pub async fn upstream_ended(&self, upstream_name: &str) -> Result<bool, GenerationError> {
        let known = self
            .store
            .due_now(upstream_name, self.clock.now_ms())
            .await?;
        if known {
            self.wake.notify_one();
        }
        Ok(known)
    }

    fn delivery_for(&self, b: &BatchRecord) -> Option<NewDelivery> {
        b.webhook_url.as_ref().map(|url| NewDelivery {
            id: ids::new_id("msg"),
            url: url.clone(),
            payload: Self::summary(b).to_string(),
        })
    }

    async fn remove_blobs(&self, id: &str) {
        for key in [items_key(id), outcomes_key(id)] {
            if let Err(e) = self.blobs.delete(&key).await {
                // Only space is lost: an ended batch never reads them again.
                tracing::warn!(batch_id = %id, error = %e, "batch data not removed");
            }
        }
    }

    /// Starts this instance's batch workers on `tasks`: they take no new step once
    /// `stop` fires, and drop the step they are in at `abandon` (its lease then expires
    /// and any instance takes the batch up again).
    pub fn spawn(self: &Arc<Self>, tasks: &Tasks) {
        for _ in 0..self.config.workers {
            let (batches, tasks_for_worker) = (self.clone(), tasks.clone());
            tasks.spawn(async move {
                let tasks = tasks_for_worker;
                while !tasks.stop.is_cancelled() {
                    let step = tokio::select! {
                        step = batches.run_once() => step,
                        () = tasks.abandon.cancelled() => break,
                    };
                    let worked = step.unwrap_or_else(|e| {
                        tracing::warn!(error = %error_chain(&e), "batch worker");
                        false
                    });
                    if worked {
                        continue;
                    }
                    // Due batches are found by polling the table: a poll falls due
                    // without anyone waking us.
                    let idle = std::time::Duration::from_millis(idle_poll_ms(&batches.config));
                    tokio::select! {
                        () = batches.wake.notified() => {}
                        () = tokio::time::sleep(idle) => {}
                        () = tasks.stop.cancelled() => break,
                    }
                }
            });
        }
    }
}

/// How often an idle worker looks for a batch that has fallen due.
fn idle_poll_ms(config: &BatchesConfig) -> u64 {
    config.poll_initial_ms.clamp(10, 1_000)
}

/// An item's error, naming the item.
fn item_error(index: usize, e: GenerationError) -> GenerationError {
    GenerationError::Item {
        index,
        error: Box::new(e),
    }
}
