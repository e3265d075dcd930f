//! The listener: hyper's HTTP/1 connection with a timer, so its header-read timeout and
//! header size limit apply (`axum::serve` runs hyper without a timer, and then a client
//! sending one header byte every few seconds keeps its connection for good), a bounded
//! number of connections, a keep-alive idle limit and a per-frame request-body timeout
//! (tower-http). docs/operations.md lists the defaults.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use http_body_util::BodyExt as _;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;
use tower::ServiceExt as _;
use tower_http::timeout::RequestBodyTimeoutLayer;

use crate::config::ServerConfig;
use crate::tasks::Tasks;

/// Accepts connections until `tasks.stop` fires; each is served on a tracked task.
///
/// A permit is taken before `accept`: past `max_connections`, further clients wait in
/// the kernel's listen backlog (and are served as soon as a connection closes) instead
/// of costing a file descriptor each.
pub async fn serve(listener: TcpListener, router: Router, config: &ServerConfig, tasks: &Tasks) {
    let permits = Arc::new(Semaphore::new(config.max_connections));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout())
        .max_header_size(config.max_header_bytes);
    let http = Arc::new(http);
    let router = tower::ServiceBuilder::new()
        .layer(RequestBodyTimeoutLayer::new(config.body_idle_timeout()))
        .service(router);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = tasks.stop.cancelled() => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors (EMFILE) or an aborted handshake: wait a
                    // little instead of spinning on the error.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = tasks.stop.cancelled() => break,
        };
        // TCP_NODELAY: a response goes out in several writes (its images are chunks of
        // their own), and Nagle's algorithm would hold the last small one until the
        // client's delayed ACK, 40 ms later.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        let (http, router, tasks_for_conn) = (http.clone(), router.clone(), tasks.clone());
        let idle = config.keep_alive_idle();
        tasks.spawn(async move {
            connection(tcp, peer, &http, router, idle, &tasks_for_conn).await;
            drop(permit);
        });
    }
}

type Service = tower_http::timeout::RequestBodyTimeout<Router>;

/// Serves one connection until it ends, idles past `idle`, or the app stops.
async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    http: &http1::Builder,
    router: Service,
    idle: Duration,
    tasks: &Tasks,
) {
    let activity = Arc::new(Activity::new());
    let watched = Watched {
        inner: tcp,
        activity: activity.clone(),
    };
    let requests = activity.clone();
    let service = tower::service_fn(move |mut request: Request<hyper::body::Incoming>| {
        // The peer's address: forwarded headers are believed from trusted proxies only
        // (`api::middleware::origin`).
        request.extensions_mut().insert(ConnectInfo(peer));
        let guard = requests.begin();
        let call = router.clone().oneshot(request);
        async move {
            let response = call.await?;
            // The request counts as in progress until its response body is sent.
            Ok::<_, std::convert::Infallible>(response.map(move |body| {
                Body::new(body.map_frame(move |frame| {
                    let _in_progress = &guard;
                    frame
                }))
            }))
        }
    });
    let conn = http.serve_connection(TokioIo::new(watched), TowerToHyperService::new(service));
    tokio::pin!(conn);
    let mut closing = false;
    loop {
        tokio::select! {
            served = conn.as_mut() => {
                if let Err(e) = served {
                    tracing::debug!(error = %e, "connection ended");
                }
                return;
            }
            () = activity.idle_for(idle), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            () = tasks.stop.cancelled(), if !closing => {
                // Finishes the request in progress, then closes; an idle one closes now.
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            () = tasks.abandon.cancelled() => return,
        }
    }
}

/// When a connection last did something, and how many of its requests are in progress.
struct Activity {
    started: Instant,
    /// Milliseconds after `started` of the last byte received or request finished.
    last_ms: AtomicU64,
    in_progress: AtomicUsize,
    changed: Notify,
}

struct InProgress(Arc<Activity>);

impl Drop for InProgress {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_progress.fetch_sub(1, Ordering::AcqRel);
        self.0.changed.notify_waiters();
    }
}

impl Activity {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            last_ms: AtomicU64::new(0),
            in_progress: AtomicUsize::new(0),
            changed: Notify::new(),
        }
    }

    fn touch(&self) {
        let now = self.started.elapsed().as_millis() as u64;
        self.last_ms.fetch_max(now, Ordering::AcqRel);
    }

    fn begin(self: &Arc<Self>) -> InProgress {
        self.in_progress.fetch_add(1, Ordering::AcqRel);
        self.changed.notify_waiters();
        InProgress(self.clone())
    }

    /// Resolves once no request has been in progress and nothing was received for `limit`.
    /// A request being handled (an image call can take a minute) never counts as idle.
    async fn idle_for(&self, limit: Duration) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.in_progress.load(Ordering::Acquire) > 0 {
                changed.await;
                continue;
            }
            let last = Duration::from_millis(self.last_ms.load(Ordering::Acquire));
            let at = self.started + last + limit;
            if Instant::now() >= at {
                return;
            }
            tokio::select! {
                () = tokio::time::sleep_until(at) => {}
                () = changed => {}
            }
        }
    }
}

/// The connection's stream, noting when bytes arrive.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
