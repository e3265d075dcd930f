//! Every task the server starts is tracked here, so that a graceful stop can wait for it
//! and knows when it is done: one [`TaskTracker`] and two cancellation tokens per
//! running app.
//!
//! - `stop` fires at the shutdown signal: take no new work (accept no connection, claim
//!   no queued async request, start no sweep), finish what runs.
//! - `abandon` fires at the drain deadline: what still runs gives up (a worker hands its
//!   async request back to the queue, a connection is closed).
//!
//! Work spawned while a request is handled (a paid upstream call that must outlive a
//! client that left, an idempotent run storing its result) goes through [`spawn`], which
//! finds the app's `Tasks` in a task-local set by the connection and the workers. The
//! alternative, threading a handle through every handler and the generation pipeline,
//! would touch every signature for something the handlers do not otherwise care about.
//!
//! Spawned work outlives whoever awaits it (a client that disconnects must not cancel a
//! paid upstream call), except inside [`Tasks::attached`]: an async request's worker that
//! loses its lease drops its run, and the upstream call it spawned must stop with it
//! before another worker can claim the request and call again.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::task::{JoinError, JoinHandle};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Clone, Default)]
pub struct Tasks {
    pub stop: CancellationToken,
    pub abandon: CancellationToken,
    tracker: TaskTracker,
}

#[derive(Clone)]
struct Scope {
    tasks: Tasks,
    /// Spawned work is aborted when its handle is dropped, and tracked here too so that
    /// its owner can wait until the abort has taken effect.
    attached: Option<TaskTracker>,
}

tokio::task_local! {
    static CURRENT: Scope;
}

/// The work spawned by an attached future: after that future is dropped, waiting on
/// this returns once every task it spawned has ended (an aborted one ends at its next
/// await point).
pub struct Settled(TaskTracker);

impl Settled {
    pub async fn wait(self) {
        self.0.close();
        self.0.wait().await;
    }
}

/// A spawned task's handle: awaiting it gives the task's output (or how it failed).
pub struct Spawned<T> {
    handle: JoinHandle<T>,
    abort_on_drop: bool,
}

impl<T> Spawned<T> {
    pub fn abort(&self) {
        self.handle.abort();
    }
}

impl<T> Future for Spawned<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.handle).poll(cx)
    }
}

impl<T> Drop for Spawned<T> {
    fn drop(&mut self) {
        if self.abort_on_drop {
            self.handle.abort();
        }
    }
}

impl Tasks {
    pub fn new() -> Self {
        Self::default()
    }

    /// Spawns `task`, tracked; whatever it spawns through [`spawn`] is tracked too.
    pub fn spawn<F>(&self, task: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let scope = Scope {
            tasks: self.clone(),
            attached: None,
        };
        self.tracker.spawn(CURRENT.scope(scope, task))
    }

    /// Runs `future` so that what it spawns through [`spawn`] is tracked here and is
    /// aborted when `future` is dropped unfinished. [`Settled`] tells when the aborted
    /// work has really stopped.
    pub fn attached<F: Future>(
        &self,
        future: F,
    ) -> (impl Future<Output = F::Output> + use<F>, Settled) {
        let spawned = TaskTracker::new();
        let scope = Scope {
            tasks: self.clone(),
            attached: Some(spawned.clone()),
        };
        (CURRENT.scope(scope, future), Settled(spawned))
    }

    /// Tasks still running.
    pub fn len(&self) -> usize {
        self.tracker.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tracker.is_empty()
    }

    /// Waits until every tracked task has ended, or `deadline` passes (`false`).
    pub async fn wait(&self, deadline: Duration) -> bool {
        self.tracker.close();
        tokio::time::timeout(deadline, self.tracker.wait())
            .await
            .is_ok()
    }
}

/// Spawns `task` on the running app's tracker. Outside a served app (unit tests calling
/// the pipeline directly) there is nothing to drain, and it runs as a plain task.
pub fn spawn<F>(task: F) -> Spawned<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match CURRENT.try_with(Scope::clone) {
        Ok(scope) => {
            let tracker = scope.tasks.tracker.clone();
            match scope.attached.clone() {
                Some(attached) => Spawned {
                    handle: tracker.spawn(attached.track_future(CURRENT.scope(scope, task))),
                    abort_on_drop: true,
                },
                None => Spawned {
                    handle: tracker.spawn(CURRENT.scope(scope, task)),
                    abort_on_drop: false,
                },
            }
        }
        Err(_) => Spawned {
            handle: tokio::spawn(task),
            abort_on_drop: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_spawned_inside_a_tracked_task_is_waited_for() {
        let tasks = Tasks::new();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tasks.spawn(async move {
            // Spawned from inside: found through the task-local, not passed along.
            spawn(async move {
                let _ = rx.await;
            });
        });
        assert!(
            !tasks.wait(Duration::from_millis(50)).await,
            "the inner task runs"
        );
        assert_eq!(tasks.len(), 1);
        tx.send(()).unwrap();
        assert!(tasks.wait(Duration::from_secs(10)).await);
        assert!(tasks.is_empty());
    }

    #[tokio::test]
    async fn detached_work_outlives_its_caller_and_attached_work_does_not() {
        for attached in [false, true] {
            let tasks = Tasks::new();
            let (started_tx, started) = tokio::sync::oneshot::channel::<()>();
            let (finish, finish_rx) = tokio::sync::oneshot::channel::<()>();
            let caller = async move {
                spawn(async move {
                    let _ = started_tx.send(());
                    let _ = finish_rx.await;
                })
                .await
            };
            let (caller, settled) = if attached {
                let (caller, settled) = tasks.attached(caller);
                (tasks.spawn(caller), Some(settled))
            } else {
                (tasks.spawn(caller), None)
            };
            started.await.unwrap();
            // The caller goes away (a client that left, a worker that lost its lease).
            caller.abort();
            let _ = caller.await;
            if let Some(settled) = settled {
                settled.wait().await;
                assert!(finish.send(()).is_err(), "the inner task was aborted");
                assert!(tasks.wait(Duration::from_secs(10)).await);
            } else {
                assert!(finish.send(()).is_ok(), "the inner task still runs");
                assert!(tasks.wait(Duration::from_secs(10)).await);
            }
        }
    }
}
