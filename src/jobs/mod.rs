//! Durable async work (contract §5). An accepted request is written to storage before its
//! 202 goes out; workers claim requests under a lease, replay them through the same
//! routes a synchronous request takes, and record the outcome together with its webhook
//! delivery. A request whose worker died is taken up again when the lease expires, a
//! bounded number of times.

pub mod webhooks;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, header};
use bytes::Bytes;
use serde_json::{Value, json};
use tower::ServiceExt as _;

use crate::api::context::RequestId;
use crate::caller::Caller;
use crate::clock::{Clock, rfc3339};
use crate::config::JobsConfig;
use crate::error::{ApiError, ErrorKind};
use crate::ids;
use crate::store::BlobStore;
use crate::store::requests::{Cancel, NewDelivery, RequestRecord, RequestStore};

pub struct Jobs {
    store: Arc<dyn RequestStore>,
    /// Request bodies, in the blob store every instance shares: a request accepted by
    /// one instance can be run by another.
    blobs: Arc<dyn BlobStore>,
    clock: Arc<dyn Clock>,
    pub config: JobsConfig,
    wake: tokio::sync::Notify,
    /// Wakes the webhook sender when a delivery is queued, instead of at its next poll.
    deliveries: tokio::sync::Notify,
}

fn not_found() -> ApiError {
    ApiError::not_found("The request")
}

impl Jobs {
    pub fn new(
        store: Arc<dyn RequestStore>,
        blobs: Arc<dyn BlobStore>,
        clock: Arc<dyn Clock>,
        config: JobsConfig,
    ) -> Self {
        Self {
            store,
            blobs,
            clock,
            config,
            wake: tokio::sync::Notify::new(),
            deliveries: tokio::sync::Notify::new(),
        }
    }

    fn body_key(id: &str) -> Option<String> {
        ids::is_valid("req", id).then(|| format!("requests/{id}.body"))
    }

    /// Stores the request (body first, then the row) so it survives a crash, then wakes a worker.
    pub async fn submit(
        &self,
        id: &str,
        caller: &Caller,
        path: &str,
        content_type: &str,
        body: Bytes,
        webhook_url: Option<String>,
    ) -> Result<(), ApiError> {
        let key = Self::body_key(id).ok_or_else(|| ApiError::internal("malformed request id"))?;
        self.blobs.put(&key, body).await?;
        self.store
            .insert(&RequestRecord {
                id: id.to_owned(),
                owner: caller.key_id.clone(),
                tier: caller.tier.clone(),
                path: path.to_owned(),
                content_type: content_type.to_owned(),
                body_ref: id.to_owned(),
                webhook_url,
                status: "queued".into(),
                attempts: 0,
                result: None,
                error: None,
                created_at_ms: self.clock.now_ms(),
                finished_at_ms: None,
            })
            .await?;
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

    pub async fn status(&self, id: &str, owner: &str) -> Result<Value, ApiError> {
        if !ids::is_valid("req", id) {
            return Err(not_found());
        }
        let record = self.store.get(id, owner).await?.ok_or_else(not_found)?;
        Ok(Self::status_body(&record))
    }

    pub async fn cancel(&self, id: &str, owner: &str) -> Result<Value, ApiError> {
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
            Cancel::Too(status) => Err(ApiError::new(
                ErrorKind::Conflict,
                format!("Only queued requests can be canceled; this one is {status}."),
            )
            .detail("status", status)),
            Cancel::NotFound => Err(not_found()),
        }
    }

    pub async fn webhook_secret(&self, owner: &str) -> Result<String, ApiError> {
        Ok(self
            .store
            .webhook_secret(owner, &webhooks::new_secret, self.clock.now_ms())
            .await?)
    }

    pub async fn queue_depth(&self) -> Result<i64, ApiError> {
        Ok(self.store.queue_depth().await?)
    }

    fn delivery_for(&self, record: &RequestRecord) -> Option<NewDelivery> {
        record.webhook_url.as_ref().map(|url| NewDelivery {
            id: ids::new_id("msg"),
            url: url.clone(),
            payload: Self::status_body(record).to_string(),
        })
    }

    async fn remove_body(&self, id: &str) {
        if let Some(key) = Self::body_key(id)
            && let Err(e) = self.blobs.delete(&key).await
        {
            // Only space is lost: the finished request never reads its body again.
            tracing::warn!(request_id = %id, error = %e, "request body not removed");
        }
    }

    /// Claims and runs one request through `router`. `false` when there was none.
    pub async fn run_once(&self, router: &Router) -> Result<bool, ApiError> {
        let lease = self.config.lease();
        let Some(job) = self
            .store
            .claim(self.clock.now_ms(), lease.as_millis() as i64)
            .await?
        else {
            return Ok(false);
        };
        let outcome = if job.attempts > i64::from(self.config.max_attempts) {
            Err(ApiError::new(
                ErrorKind::ServerError,
                "The request could not be completed: the workers running it stopped repeatedly.",
            )
            .detail("attempts", job.attempts - 1)
            .body(&job.id))
        } else {
            self.execute(&job, router)
                .await
                .map_err(|e| e.body(&job.id))
                .and_then(|r| r)
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
            self.remove_body(&job.id).await;
            tracing::info!(request_id = %job.id, status, attempt = job.attempts, "async request finished");
        } else {
            tracing::warn!(request_id = %job.id, attempt = job.attempts, "async request was taken over; outcome dropped");
        }
        Ok(true)
    }

    /// Replays the stored request through the routes, keeping the lease alive meanwhile.
    /// The inner result is the route's own answer: its body, or its error body.
    async fn execute(
        &self,
        job: &RequestRecord,
        router: &Router,
    ) -> Result<Result<Value, Value>, ApiError> {
        let key =
            Self::body_key(&job.id).ok_or_else(|| ApiError::internal("malformed request id"))?;
        let body = self
            .blobs
            .get(&key)
            .await?
            .ok_or_else(|| ApiError::internal(format!("request body {key} is missing")))?;
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(&job.path)
            .header(header::CONTENT_TYPE, &job.content_type)
            .body(Body::from(body))
            .map_err(ApiError::internal)?;
        request.extensions_mut().insert(RequestId(job.id.clone()));
        request.extensions_mut().insert(Caller {
            key_id: job.owner.clone(),
            tier: job.tier.clone(),
        });
        let lease = self.config.lease();
        let heartbeat = async {
            loop {
                tokio::time::sleep(lease / 3).await;
                let until = self.clock.now_ms() + lease.as_millis() as i64;
                if !matches!(
                    self.store.renew(&job.id, job.attempts, until).await,
                    Ok(true)
                ) {
                    break;
                }
            }
            std::future::pending::<()>().await
        };
        let run = router.clone().oneshot(request);
        let response = tokio::select! {
            response = run => response.map_err(|e| ApiError::internal(format!("{e:?}")))?,
            () = heartbeat => return Err(ApiError::internal("lease lost")),
        };
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .map_err(ApiError::internal)?;
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        // Error bodies are already in the contract's shape, with this request's id.
        Ok(if status.is_success() {
            Ok(body)
        } else {
            Err(body)
        })
    }

    /// Sends one due webhook. `false` when none was due.
    pub async fn deliver_once(&self) -> Result<bool, ApiError> {
        let wh = &self.config.webhooks;
        let Some(d) = self
            .store
            .claim_delivery(self.clock.now_ms(), (wh.timeout() * 2).as_millis() as i64)
            .await?
        else {
            return Ok(false);
        };
        let secret = self.webhook_secret(&d.owner).await?;
        let attempt = match webhooks::check(&d.url, wh.allow_private).await {
            Ok(target) => {
                webhooks::send(
                    &target,
                    &d.id,
                    self.clock.now_ms() / 1000,
                    &d.payload,
                    &secret,
                    wh.timeout(),
                )
                .await
            }
            // Re-checked at send time: a host that now resolves inside is refused.
            Err(_) => webhooks::Attempt::Gone,
        };
        let (http, status, next) = match attempt {
            webhooks::Attempt::Delivered(code) => (Some(code), "delivered", None),
            webhooks::Attempt::Gone => (Some(410), "failed", None),
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

    pub async fn pending_deliveries(&self) -> Result<i64, ApiError> {
        Ok(self.store.pending_deliveries().await?)
    }

    /// Starts the request workers and the webhook sender; they stop when `stop` flips.
    pub fn spawn(
        self: &Arc<Self>,
        router: Router,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let mut tasks = Vec::new();
        for _ in 0..self.config.workers {
            let (jobs, router, mut stop) = (self.clone(), router.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                while !*stop.borrow() {
                    let worked = jobs.run_once(&router).await.unwrap_or_else(|e| {
                        tracing::warn!(error = %e, "request worker");
                        false
                    });
                    if worked {
                        continue;
                    }
                    tokio::select! {
                        () = jobs.wake.notified() => {}
                        () = tokio::time::sleep(jobs.config.poll()) => {}
                        _ = stop.changed() => break,
                    }
                }
            }));
        }
        let (jobs, mut stop) = (self.clone(), stop);
        tasks.push(tokio::spawn(async move {
            while !*stop.borrow() {
                let worked = jobs.deliver_once().await.unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "webhook sender");
                    false
                });
                if worked {
                    continue;
                }
                tokio::select! {
                    () = jobs.deliveries.notified() => {}
                    () = tokio::time::sleep(jobs.config.poll()) => {}
                    _ = stop.changed() => break,
                }
            }
        }));
        tasks
    }
}
