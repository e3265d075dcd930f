//! Durable async work (docs/async.md). An accepted request is written to storage before its
//! 202 goes out, as a typed unit of work ([`Work`]) whose uploads are already in the blob
//! store; workers claim requests under a lease, run them with the same executor the
//! synchronous path uses, and record the outcome together with its webhook delivery. A
//! request whose worker died is taken up again when the lease expires, a bounded number
//! of times.
//!
//! Requests accepted by versions before typed work were stored as their HTTP body; a
//! worker still finishes them: [`LegacyWork`] turns such a body into the same `Work`.

mod lease;
pub mod webhook_targets;
pub mod webhooks;

use std::sync::Arc;

use std::collections::HashMap;

use bytes::Bytes;
use serde_json::{Value, json};

use crate::caller::{Caller, RequestContext};
use crate::clock::{Clock, rfc3339};
use crate::config::JobsConfig;
use crate::error::{error_chain, stored_body};
use crate::generation::GenerationError;
use crate::generation::execute::{self, Executor};
use crate::generation::work::{StoredWork, WORK_CONTENT_TYPE, WORK_VERSION, Work};
use crate::ids;
use crate::limits::ConcurrencyPermit;
use crate::store::ObjectBlobs;
use crate::store::keys::KeyStore;
use crate::store::requests::{Cancel, NewDelivery, RequestRecord, RequestStore};
use crate::tasks::Tasks;
use lease::{Held, Lease};

/// Reads a request stored in the format before typed work (its HTTP body) as a unit
/// of work and the uploads it carried inline.
#[async_trait::async_trait]
pub trait LegacyWork: Send + Sync + 'static {
    async fn decode(
        &self,
        path: &str,
        content_type: &str,
        body: Bytes,
    ) -> Result<(Work, HashMap<String, Bytes>), GenerationError>;
}

pub struct Jobs {
    store: Arc<RequestStore>,
    executor: Arc<Executor>,
    legacy: Arc<dyn LegacyWork>,
    /// Request bodies, in the blob store every instance shares: a request accepted by
    /// one instance can be run by another.
    blobs: Arc<ObjectBlobs>,
    clock: Arc<dyn Clock>,
    pub config: JobsConfig,
    wake: tokio::sync::Notify,
    /// Wakes the webhook sender when a delivery is queued, instead of at its next poll.
    deliveries: tokio::sync::Notify,
    /// Told how each async request ended (`/stats` counts async work by its outcome).
    outcomes: Option<Arc<dyn AsyncOutcomes>>,
    /// Keys' stored settings (their own concurrency), read when their work runs.
    keys: Option<Arc<KeyStore>>,
}

/// How long queued work whose key has no free slot stays out of the queue's reach.
const SLOT_RETRY_MS: i64 = 100;

/// Who wants to know how async requests end.
pub trait AsyncOutcomes: Send + Sync + 'static {
    /// `succeeded` or not, and the seconds from acceptance to the outcome.
    fn finished(&self, owner: &str, succeeded: bool, seconds: f64);
}

fn not_found() -> GenerationError {
    GenerationError::not_found("The request")
}

impl Jobs {
    pub fn new(
        store: Arc<RequestStore>,
        blobs: Arc<ObjectBlobs>,
        clock: Arc<dyn Clock>,
        config: JobsConfig,
        executor: Arc<Executor>,
        legacy: Arc<dyn LegacyWork>,
    ) -> Self {
        Self {
            store,
            executor,
            legacy,
            blobs,
            clock,
            config,
            wake: tokio::sync::Notify::new(),
            deliveries: tokio::sync::Notify::new(),
            outcomes: None,
            keys: None,
        }
    }

    /// The executor the workers run work with (tests hold a key's slot through it).
    pub fn executor(&self) -> &Arc<Executor> {
        &self.executor
    }

    pub fn with_keys(mut self, keys: Arc<KeyStore>) -> Self {
        self.keys = Some(keys);
        self
    }

    pub fn with_outcomes(mut self, outcomes: Arc<dyn AsyncOutcomes>) -> Self {
        self.outcomes = Some(outcomes);
        self
    }

    fn body_key(id: &str) -> Option<String> {
        ids::is_valid("req", id).then(|| format!("requests/{id}.body"))
    }

    /// Where an upload of request `id` is kept until the request has run.
    fn input_key(id: &str, n: usize) -> String {
        format!("requests/{id}.input{n}")
    }

    /// Stores the work (uploads first, then the unit itself, then the row) so it survives
    /// a crash, then wakes a worker. `uploads` holds the bytes of `work`'s image keys.
    pub async fn submit(
        &self,
        id: &str,
        caller: &Caller,
        path: &str,
        mut work: Work,
        mut uploads: HashMap<String, Bytes>,
        webhook_url: Option<String>,
    ) -> Result<(), GenerationError> {
        let key =
            Self::body_key(id).ok_or_else(|| GenerationError::internal("malformed request id"))?;
        let mut stored = Vec::new();
        let mut n = 0;
        work.rekey(|old| {
            let new = Self::input_key(id, n);
            n += 1;
            stored.push((new.clone(), uploads.remove(old)));
            new
        });
        for (input, bytes) in stored {
            let bytes = bytes
                .ok_or_else(|| GenerationError::internal(format!("upload for {input} missing")))?;
            self.blobs.put(&input, bytes).await?;
        }
        // A chat message takes its place in its session's order as it is stored.
        let session = match &work {
            Work::ChatMessage { session_id, .. } => Some(session_id.clone()),
            _ => None,
        };
        let unit = StoredWork {
            version: WORK_VERSION,
            work,
        };
        let body = serde_json::to_vec(&unit)
            .map_err(GenerationError::failed("encoding the unit of work"))?;
        self.blobs.put(&key, Bytes::from(body)).await?;
        let record = RequestRecord {
            id: id.to_owned(),
            owner: caller.key_id.clone(),
            tier: caller.tier.clone(),
            path: path.to_owned(),
            content_type: WORK_CONTENT_TYPE.to_owned(),
            body_ref: id.to_owned(),
            webhook_url,
            status: "queued".into(),
            attempts: 0,
            result: None,
            error: None,
            created_at_ms: self.clock.now_ms(),
            finished_at_ms: None,
        };
        match session {
            Some(session) => self.store.insert_message(&record, &session, None).await?,
            None => self.store.insert(&record).await?,
        }
        self.wake.notify_one();
        Ok(())
    }

    /// The body of `GET /requests/{id}` (and of its webhook).
    pub fn status_body(record: &RequestRecord) -> Value {
        let parse = |s: &Option<String>| {
            s.as_deref()
                .and_then(|s| serde_json::from_str::<Value>(s).ok())
                .unwrap_or(Value::Null)
        };
        json!({
            "request_id": record.id,
            "status": record.status,
            "result": parse(&record.result),
            "error": parse(&record.error),
            "created_at": rfc3339(record.created_at_ms),
            "finished_at": record.finished_at_ms.map(rfc3339),
        })
    }

    pub async fn status(&self, id: &str, owner: &str) -> Result<Value, GenerationError> {
        if !ids::is_valid("req", id) {
            return Err(not_found());
        }
        let record = self.store.get(id, owner).await?.ok_or_else(not_found)?;
        Ok(Self::status_body(&record))
    }

    pub async fn cancel(&self, id: &str, owner: &str) -> Result<Value, GenerationError> {
        if !ids::is_valid("req", id) {
            return Err(not_found());
        }
        let record = self.store.get(id, owner).await?.ok_or_else(not_found)?;
        let now = self.clock.now_ms();
        let mut canceled = record.clone();
        canceled.status = "canceled".into();
        canceled.finished_at_ms = Some(now);
        let delivery = self.delivery_for(&canceled);
        match self.store.cancel(id, owner, now, delivery.as_ref()).await? {
            Cancel::Canceled => {
                if delivery.is_some() {
                    self.deliveries.notify_one();
                }
                self.remove_body(id).await;
                Ok(Self::status_body(&canceled))
            }
            Cancel::TooLate(status) => Err(GenerationError::conflict(format!(
                "Only queued requests can be canceled; this one is {status}."
            ))
            .detail("status", status)),
            Cancel::NotFound => Err(not_found()),
        }
    }

    pub async fn webhook_secret(&self, owner: &str) -> Result<String, GenerationError> {
        Ok(self
            .store
            .webhook_secret(owner, &webhooks::new_secret, self.clock.now_ms())
            .await?)
    }

    pub async fn queue_depth(&self) -> Result<i64, GenerationError> {
        Ok(self.store.queue_depth().await?)
    }

    fn delivery_for(&self, record: &RequestRecord) -> Option<NewDelivery> {
        record.webhook_url.as_ref().map(|url| NewDelivery {
            id: ids::new_id("msg"),
            url: url.clone(),
            payload: Self::webhook_body(record).to_string(),
        })
    }

    /// A webhook's body: the status body with the images at the top level, where the
    /// guide's handler reads them (`data.get('images', [])`); `result` keeps the rest of
    /// the answer, so each image is sent once.
    pub fn webhook_body(record: &RequestRecord) -> Value {
        let mut body = Self::status_body(record);
        let images = body["result"]
            .as_object_mut()
            .and_then(|result| result.remove("images"))
            .filter(Value::is_array)
            .unwrap_or_else(|| json!([]));
        body["images"] = images;
        body
    }

    async fn remove_body(&self, id: &str) {
        let Some(key) = Self::body_key(id) else {
            return;
        };
        // The stored unit names its uploads (a native body may carry many); a body
        // stored before typed work carried its uploads inline.
        let inputs: Vec<String> = match self.blobs.get(&key).await {
            Ok(Some(body)) => serde_json::from_slice::<StoredWork>(&body)
                .map(|unit| {
                    unit.work
                        .images()
                        .into_iter()
                        .map(|r| r.key.clone())
                        .collect()
                })
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        // The unit goes last: until then it still says which uploads are left.
        for key in inputs.into_iter().chain(std::iter::once(key)) {
            if let Err(e) = self.blobs.delete(&key).await {
                // Only space is lost: the finished request never reads its body again.
                tracing::warn!(request_id = %id, error = %e, "request body not removed");
            }
        }
    }

    /// Claims and runs one request. `false` when there was none.
    pub async fn run_once(&self) -> Result<bool, GenerationError> {
        self.run_next(&Tasks::new()).await
    }

    /// As [`Jobs::run_once`], for a worker of the app's `tasks`: it claims nothing once
    /// the app is stopping, and hands its request back at the drain deadline.
    pub async fn run_next(&self, tasks: &Tasks) -> Result<bool, GenerationError> {
        if tasks.stop.is_cancelled() {
            return Ok(false);
        }
        let lease_ms = self.config.lease().as_millis() as i64;
        let claimed_at = self.clock.now_ms();
        let Some(job) = self.store.claim(claimed_at, lease_ms).await? else {
            return Ok(false);
        };
        let outcome = if job.attempts > i64::from(self.config.max_attempts) {
            Err(stored_body(
                GenerationError::Abandoned {
                    attempts: job.attempts - 1,
                },
                &job.id,
            ))
        } else {
            let caller = self.caller_of(&job).await;
            let Some(slot) = self.executor.try_slot(&caller).await else {
                // Its key is at its concurrency: the request goes back to the queue for
                // a moment, and this worker takes the next one (another key's, or this
                // one's once a slot is free), so one saturated key cannot hold every
                // worker. The attempt is not counted.
                let not_before = self.clock.now_ms() + SLOT_RETRY_MS;
                let deferred = self.store.defer(&job.id, job.attempts, not_before).await?;
                tracing::debug!(request_id = %job.id, deferred, "key at its concurrency; request handed back");
                return Ok(true);
            };
            match self
                .execute(&job, caller, slot, claimed_at + lease_ms, tasks)
                .await
            {
                Held::Done(outcome) => outcome,
                Held::Lost => {
                    // Its upstream call was canceled with the run; whoever claims the
                    // request once the lease has expired records the outcome.
                    tracing::warn!(request_id = %job.id, attempt = job.attempts, "lease lost; the run was canceled");
                    return Ok(true);
                }
                Held::HandedBack => {
                    let released = self.store.release(&job.id, job.attempts).await?;
                    tracing::warn!(request_id = %job.id, attempt = job.attempts, released, "drain deadline passed; request handed back to the queue");
                    return Ok(true);
                }
            }
        };
        let (status, result, error) = match outcome {
            Ok(body) => ("succeeded", Some(body), None),
            Err(body) => ("failed", None, Some(body)),
        };
        let now = self.clock.now_ms();
        let mut finished = job.clone();
        finished.status = status.into();
        finished.result = result.as_ref().map(Value::to_string);
        finished.error = error.as_ref().map(Value::to_string);
        finished.finished_at_ms = Some(now);
        let delivery = self.delivery_for(&finished);
        let recorded = self
            .store
            .finish(
                &job.id,
                job.attempts,
                status,
                finished.result.as_deref(),
                finished.error.as_deref(),
                now,
                delivery.as_ref(),
            )
            .await?;
        if recorded && delivery.is_some() {
            self.deliveries.notify_one();
        }
        if recorded {
            if let Some(outcomes) = &self.outcomes {
                let seconds = (now - job.created_at_ms).max(0) as f64 / 1000.0;
                outcomes.finished(&job.owner, status == "succeeded", seconds);
            }
            self.remove_body(&job.id).await;
            tracing::info!(request_id = %job.id, status, attempt = job.attempts, "async request finished");
        } else {
            tracing::warn!(request_id = %job.id, attempt = job.attempts, "async request was taken over; outcome dropped");
        }
        Ok(true)
    }

    /// The stored unit of work and its uploads.
    async fn load(
        &self,
        job: &RequestRecord,
    ) -> Result<(Work, HashMap<String, Bytes>), GenerationError> {
        let key = Self::body_key(&job.id)
            .ok_or_else(|| GenerationError::internal("malformed request id"))?;
        let body =
            self.blobs.get(&key).await?.ok_or_else(|| {
                GenerationError::internal(format!("request body {key} is missing"))
            })?;
        if job.content_type != WORK_CONTENT_TYPE {
            return self.legacy.decode(&job.path, &job.content_type, body).await;
        }
        let unit: StoredWork = serde_json::from_slice(&body).map_err(|e| {
            GenerationError::internal(format!("reading stored work {key}")).caused_by(e)
        })?;
        if unit.version != WORK_VERSION {
            return Err(GenerationError::internal(format!(
                "stored work {key} has version {}, this build runs {WORK_VERSION}",
                unit.version
            )));
        }
        let mut uploads = HashMap::new();
        for r in unit.work.images() {
            let bytes = self.blobs.get(&r.key).await?.ok_or_else(|| {
                GenerationError::internal(format!("request input {} is missing", r.key))
            })?;
            uploads.insert(r.key.clone(), bytes);
        }
        Ok((unit.work, uploads))
    }

    /// The key the work runs for, with its settings as they are now (its own concurrency
    /// above all). Models and spending are checked against the key's stored row before
    /// each upstream call (`generation::spend`). A key that cannot be read runs with its
    /// tier's limits.
    async fn caller_of(&self, job: &RequestRecord) -> Caller {
        let mut caller = Caller::of_tier(job.owner.clone(), job.tier.clone());
        if let Some(keys) = &self.keys {
            match keys.get(&job.owner).await {
                Ok(Some(key)) => caller.settings = Arc::new(key.settings),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(request_id = %job.id, error = %e, "key settings unread; the tier's limits apply");
                }
            }
        }
        caller
    }

    /// Runs the stored work with the executor while the lease is held (until
    /// `held_until_ms` unless renewed; see [`Lease::hold`]), holding the key's in-flight
    /// `slot` for the whole run.
    async fn execute(
        &self,
        job: &RequestRecord,
        caller: Caller,
        slot: ConcurrencyPermit,
        held_until_ms: i64,
        tasks: &Tasks,
    ) -> Held<Result<Value, Value>> {
        let run = async {
            // The budget was charged with the work's cost when it was accepted.
            let ctx = RequestContext {
                request_id: job.id.clone(),
                caller,
                slot: Some(crate::limits::Slot::new(slot)),
                budget: None,
            };
            let (work, uploads) = self.load(job).await?;
            let plan = work.plan(&self.executor.env)?;
            let executor = &self.executor;
            let inputs =
                execute::prepare(&work, &plan, uploads, executor.env.intake, &executor.pixels)
                    .await?;
            self.executor
                .run(&ctx, plan, inputs, &execute::no_progress)
                .await?
                .into_json()
        };
        let lease = Lease {
            store: self.store.as_ref(),
            clock: self.clock.as_ref(),
            length: self.config.lease(),
        };
        lease
            .hold(job, held_until_ms, tasks, run)
            .await
            .map(|outcome| outcome.map_err(|e| stored_body(e, &job.id)))
    }

    /// Sends one due webhook. `false` when none was due.
    pub async fn deliver_once(&self) -> Result<bool, GenerationError> {
        let wh = &self.config.webhooks;
        let Some(d) = self
            .store
            .claim_delivery(self.clock.now_ms(), (wh.timeout() * 2).as_millis() as i64)
            .await?
        else {
            return Ok(false);
        };
        let secret = self.webhook_secret(&d.owner).await?;
        let now_secs = self.clock.now_ms() / 1000;
        let attempt = webhooks::attempt(&d.url, wh, &d.id, now_secs, &d.payload, &secret).await;
        let (http, status, next) = match attempt {
            webhooks::Attempt::Delivered(code) => (Some(code), "delivered", None),
            webhooks::Attempt::Gone => (Some(410), "failed", None),
            webhooks::Attempt::Refused => (None, "failed", None),
            webhooks::Attempt::Retry(code) if d.attempts >= i64::from(wh.max_attempts) => {
                (code, "failed", None)
            }
            webhooks::Attempt::Retry(code) => {
                let wait =
                    webhooks::backoff(d.attempts - 1, wh.initial_backoff(), wh.max_backoff());
                (
                    code,
                    "pending",
                    Some(self.clock.now_ms() + wait.as_millis() as i64),
                )
            }
        };
        self.store
            .delivery_attempted(&d.id, http, status, next)
            .await?;
        tracing::info!(request_id = %d.request_id, webhook_id = %d.id, attempt = d.attempts, http_status = http, status, "webhook attempt");
        Ok(true)
    }

    pub async fn pending_deliveries(&self) -> Result<i64, GenerationError> {
        Ok(self.store.pending_deliveries().await?)
    }

    /// Starts the request workers and the webhook sender on `tasks`. At `tasks.stop` they
    /// claim nothing more and end after the request or delivery in hand; at
    /// `tasks.abandon` a request still running is handed back to the queue.
    pub fn spawn(self: &Arc<Self>, tasks: &Tasks) {
        for _ in 0..self.config.workers {
            let (jobs, tasks_for_worker) = (self.clone(), tasks.clone());
            tasks.spawn(async move {
                let tasks = tasks_for_worker;
                while !tasks.stop.is_cancelled() {
                    let worked = jobs.run_next(&tasks).await.unwrap_or_else(|e| {
                        tracing::warn!(error = %error_chain(&e), "request worker");
                        false
                    });
                    if worked {
                        continue;
                    }
                    tokio::select! {
                        () = jobs.wake.notified() => {}
                        () = tokio::time::sleep(jobs.config.poll()) => {}
                        () = tasks.stop.cancelled() => break,
                    }
                }
            });
        }
        if !self.config.webhooks.deliver {
            return;
        }
        let (jobs, stop) = (self.clone(), tasks.stop.clone());
        tasks.spawn(async move {
            while !stop.is_cancelled() {
                let worked = jobs.deliver_once().await.unwrap_or_else(|e| {
                    tracing::warn!(error = %error_chain(&e), "webhook sender");
                    false
                });
                if worked {
                    continue;
                }
                tokio::select! {
                    () = jobs.deliveries.notified() => {}
                    () = tokio::time::sleep(jobs.config.poll()) => {}
                    () = stop.cancelled() => break,
                }
            }
        });
    }
}

#[cfg(test)]
mod tests;
