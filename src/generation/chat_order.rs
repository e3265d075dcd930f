//! Chat messages run in the order they were accepted, sync or async, on any instance
//! (docs/async.md, "Chat messages run in order"). Each message's request row holds its
//! place in its session (`store::session_order`): an async message's row is its queued
//! request, which workers do not claim before the earlier messages have finished; a
//! synchronous message takes a row of its own when it is accepted and waits here, for a
//! bounded time, before it runs.

use std::sync::Arc;
use std::time::Duration;

use crate::caller::RequestContext;
use crate::clock::Clock;
use crate::generation::GenerationError;
use crate::store::requests::{RequestRecord, RequestStore};
use crate::store::session_order::SYNC;

/// How long a synchronous message's place is held without a renewal: long enough that a
/// slow database does not lose it, short enough that a crashed instance's message holds
/// up its session only briefly.
const HOLD: Duration = Duration::from_secs(30);
/// How often a waiting message looks again; the earlier message's end is seen this late.
const POLL: Duration = Duration::from_millis(200);

pub struct ChatOrder {
    requests: Arc<RequestStore>,
    clock: Arc<dyn Clock>,
    /// The longest a message waits for earlier ones (`sessions.order_wait_secs`).
    wait: Duration,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl ChatOrder {
    pub fn new(requests: Arc<RequestStore>, clock: Arc<dyn Clock>, wait: Duration) -> Self {
        Self {
            requests,
            clock,
            wait,
        }
    }

    /// Takes the next place of `session_id` for the synchronous message `ctx` is running,
    /// held for [`HOLD`]; [`ChatOrder::in_turn`] renews it and gives it up.
    pub async fn take_place(
        &self,
        ctx: &RequestContext,
        session_id: &str,
    ) -> Result<(), GenerationError> {
        let now = self.clock.now_ms();
        let record = RequestRecord {
            id: ctx.request_id.clone(),
            owner: ctx.caller.key_id.clone(),
            tier: ctx.caller.tier.clone(),
            path: "/chat/{session_id}/message".into(),
            content_type: String::new(),
            body_ref: String::new(),
            webhook_url: None,
            status: SYNC.into(),
            attempts: 0,
            result: None,
            error: None,
            created_at_ms: now,
            finished_at_ms: None,
        };
        let until = now.saturating_add(ms(HOLD));
        Ok(self
            .requests
            .insert_message(&record, session_id, Some(until))
            .await?)
    }

    /// Unfinished messages of a session (for the acceptance bound and the history view).
    pub async fn pending(&self, session_id: &str) -> Result<i64, GenerationError> {
        Ok(self
            .requests
            .pending_messages(session_id, self.clock.now_ms())
            .await?)
    }

    /// Runs `turn` once every message accepted before request `id` has finished, keeping
    /// a synchronous message's place held meanwhile and giving it up afterwards. Past
    /// the wait bound the message is refused (409 `conflict`) without running.
    pub async fn in_turn<T>(
        &self,
        id: &str,
        turn: impl Future<Output = Result<T, GenerationError>>,
    ) -> Result<T, GenerationError> {
        let run = async {
            self.wait_for_turn(id).await?;
            turn.await
        };
        let outcome = tokio::select! {
            outcome = run => outcome,
            never = self.keep_held(id) => match never {},
        };
        // An async message's row is its request, finished by the worker; only a
        // synchronous message's row goes here.
        if let Err(e) = self.requests.leave_message(id).await {
            tracing::warn!(request_id = %id, error = %e, "chat message place not given up; it lapses");
        }
        outcome
    }

    async fn wait_for_turn(&self, id: &str) -> Result<(), GenerationError> {
        let deadline = tokio::time::Instant::now() + self.wait;
        loop {
            let earlier = self
                .requests
                .earlier_messages(id, self.clock.now_ms())
                .await?;
            if earlier == 0 {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                let pending = GenerationError::Conflict {
                    message: "Earlier messages of this chat session are still being answered; \
                              send this one again once they have finished."
                        .into(),
                    details: Default::default(),
                    retry_after_secs: Some(POLL.as_secs().max(1)),
                };
                return Err(pending
                    .detail("reason", "earlier_messages_pending")
                    .detail("pending_messages", earlier)
                    .detail("waited_seconds", self.wait.as_secs_f64()));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Renews a synchronous message's hold until dropped; an async message has no hold
    /// (its worker's lease keeps it), so this then only waits.
    async fn keep_held(&self, id: &str) -> std::convert::Infallible {
        loop {
            tokio::time::sleep(HOLD / 3).await;
            let until = self.clock.now_ms().saturating_add(ms(HOLD));
            match self.requests.hold_message(id, until).await {
                Ok(true) => {}
                Ok(false) => std::future::pending::<()>().await,
                // The next renewal may get through; the hold lasts HOLD meanwhile.
                Err(e) => {
                    tracing::warn!(request_id = %id, error = %e, "chat message hold not renewed")
                }
            }
        }
    }
}
