//! `App::build(config)` assembles the service and binds its listener (port 0 in tests);
//! `App::run(shutdown)` serves until the shutdown future resolves, then drains.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::middleware::access::Access;
use crate::api::middleware::origin::PublicOrigin;
use crate::api::routes::files::UrlSigner;
use crate::api::{self, AppState};
use crate::batches::Batches;
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, ProviderChoice, ServerConfig};
use crate::generation::Generator;
use crate::generation::chat::ChatService;
use crate::generation::execute::Executor;
use crate::generation::pixels::PixelBudget;
use crate::generation::work::WorkEnv;
use crate::imaging::IntakeLimits;
use crate::jobs::Jobs;
use crate::limits::Limiters;
use crate::models::ModelTable;
use crate::monitoring::{MeteredUsage, Metrics, Monitoring, Readiness};
use crate::provider::ImageProvider;
use crate::provider::gemini::GeminiProvider;
use crate::provider::offline::OfflineProvider;
use crate::provider::routing::Routed;
use crate::server;
use crate::store::Storage;
use crate::tasks::Tasks;

pub struct App {
    listener: TcpListener,
    router: axum::Router,
    jobs: Arc<Jobs>,
    batches: Arc<Batches>,
    addr: SocketAddr,
    chat: Arc<ChatService>,
    models: Arc<ModelTable>,
    /// `registry.refresh_secs`.
    models_refresh: Option<std::time::Duration>,
    server: ServerConfig,
}

/// After the drain deadline: how long the hand-back of unfinished async requests (one
/// database write each) may take before the process exits regardless.
const HAND_BACK: std::time::Duration = std::time::Duration::from_secs(5);

/// How often expired chat sessions are deleted.
const SESSION_SWEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(300);

impl App {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        Self::build_with_clock(config, Arc::new(SystemClock)).await
    }

    /// As [`App::build`], with time injected (tests move a manual clock).
    pub async fn build_with_clock(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        // reqwest is built without a default TLS provider; ring is the one we ship.
        let _ = rustls::crypto::ring::default_provider().install_default();

        config.check_shared_storage()?;
        let key_tiers: Vec<String> = config
            .tiers
            .names()
            .into_iter()
            .map(str::to_owned)
            .collect();
        let models = ModelTable::with_overrides(&config.models)
            .and_then(|m| m.with_registry_config(&config.registry, &key_tiers))
            .map_err(anyhow::Error::msg)?;
        models
            .resolve(&config.default_model)
            .map_err(|e| anyhow::anyhow!("default_model: {e}"))?;
        tokio::fs::create_dir_all(&config.data_dir)
            .await
            .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
        let storage = Storage::open(&config).await.context("opening storage")?;
        let limiters = Limiters::open(&config)
            .await
            .context("connecting to Redis (redis_url)")?;
        let images = storage.images.clone();
        let metrics = Arc::new(Metrics::default());
        let gemini: Option<Arc<GeminiProvider>> =
            match (config.effective_provider(), &config.google_api_key) {
                (ProviderChoice::Gemini, Some(key)) => Some(Arc::new(
                    GeminiProvider::new(&config.gemini, key.clone())
                        .context("building the Gemini client")?
                        .with_metrics(metrics.clone()),
                )),
                (ProviderChoice::Gemini, None) => {
                    anyhow::bail!("the gemini provider needs GOOGLE_API_KEY")
                }
                _ => None,
            };
        let models = Arc::new(match &gemini {
            Some(g) => models.listing_from(g.clone()),
            None => models,
        });
        let provider: Arc<dyn ImageProvider> = match &gemini {
            Some(g) => g.clone(),
            None => Arc::new(OfflineProvider),
        };
        // Retired and overloaded models are routed around here, for every surface.
        let provider: Arc<dyn ImageProvider> = Arc::new(Routed::new(provider, models.clone()));
        let listener = TcpListener::bind((config.host.as_str(), config.port))
            .await
            .with_context(|| format!("binding {}:{}", config.host, config.port))?;
        let addr = listener.local_addr()?;

        tracing::info!(
            address = %addr,
            provider = provider.name(),
            storage = %storage.description,
            limits = %limiters.description,
            default_model = %config.default_model,
            models = %models.names().join(", "),
            google_api_key = if config.google_api_key.is_some() { "configured (redacted)" } else { "not set" },
            "imagegate starting"
        );
        if provider.name() == "offline" {
            tracing::warn!(
                "offline provider: no real model is called; images are rendered locally and labelled \"model\": \"offline\""
            );
        } else {
            tracing::info!(base_url = %config.gemini.base_url, api_version = %config.gemini.api_version, deadline_secs = config.gemini.deadline_secs, "gemini upstream");
        }

        let shared_limits = limiters.shared.clone();
        let access = Access::new(&config, &storage, limiters, clock.clone());
        let readiness = Readiness::new(
            storage.database.clone(),
            storage.blobs.clone(),
            provider.name(),
            gemini.clone(),
            shared_limits,
            metrics.clone(),
            &config.readiness,
        );
        let usage = MeteredUsage::new(metrics.clone(), access.usage_sink());
        let monitoring = Arc::new(Monitoring::new(metrics, readiness, clock.clone()));
        let generator = Generator::new(provider, images.clone())
            .with_usage_sink(Arc::new(usage))
            .with_spending(crate::generation::spend::Spending::new(
                storage.keys.clone(),
                clock.clone(),
            ))
            .with_tier_policy(models.tier_policy().clone());
        let chat = Arc::new(ChatService::new(
            storage.sessions.clone(),
            images.clone(),
            generator.clone(),
            models.clone(),
            clock.clone(),
            config.sessions.clone(),
            config.default_model.clone(),
            crate::generation::chat_order::ChatOrder::new(
                storage.requests.clone(),
                clock.clone(),
                config.sessions.order_wait(),
            ),
        ));
        let executor = Arc::new(
            Executor::new(
                WorkEnv {
                    models: models.clone(),
                    default_model: config.default_model.clone(),
                    max_prompt_chars: config.limits.max_prompt_chars,
                    intake: IntakeLimits {
                        max_file_bytes: config.limits.max_file_bytes,
                        max_pixels: config.limits.max_input_pixels,
                        max_edge: config.limits.max_input_edge,
                    },
                },
                PixelBudget::new(
                    config.limits.max_decoded_bytes,
                    std::time::Duration::from_secs(config.limits.decode_wait_secs),
                ),
                generator.clone(),
                chat.clone(),
                access.concurrency.clone(),
                access.tiers.clone(),
            )
            .with_gemini(
                gemini
                    .clone()
                    .map(|g| g as Arc<dyn crate::provider::native::NativeUpstream>),
            ),
        );
        let legacy = Arc::new(api::routes::jobs::LegacyBodies {
            max_file_bytes: config.limits.max_file_bytes,
            limits: api::extract::form::BodyLimits {
                max_body_bytes: config.limits.max_multipart_bytes,
            },
        });
        let jobs = Arc::new(
            Jobs::new(
                storage.requests.clone(),
                storage.blobs.clone(),
                clock.clone(),
                config.jobs.clone(),
                executor.clone(),
                legacy,
            )
            .with_outcomes(monitoring.clone())
            .with_keys(storage.keys.clone()),
        );
        let batch_provider: Arc<dyn crate::provider::batch::BatchProvider> = match &gemini {
            Some(g) => Arc::new(crate::provider::gemini::batch::GeminiBatches::new(
                g.clone(),
                config.batches.inline_limit_bytes,
            )),
            None => Arc::new(crate::provider::batch::OfflineBatches::new(
                std::time::Duration::from_millis(config.batches.offline_delay_ms),
            )),
        };
        let batches = Arc::new(Batches::new(
            storage.batches.clone(),
            storage.blobs.clone(),
            images.clone(),
            batch_provider,
            generator.clone(),
            executor.env.clone(),
            clock.clone(),
            config.batches.clone(),
        ));
        let url_signer = UrlSigner::shared(storage.requests.as_ref(), clock.now_ms())
            .await
            .context("the URL signing secret")?;
        let state = AppState {
            generator,
            models: models.clone(),
            chat: chat.clone(),
            images,
            limits: config.limits.clone(),
            default_model: config.default_model.clone(),
            clock,
            access,
            url_signer,
            origin: PublicOrigin::from_config(&config)?,
            gemini,
            monitoring,
            jobs: jobs.clone(),
            batches: batches.clone(),
            executor,
        };
        Ok(Self {
            listener,
            router: api::router(state),
            jobs,
            batches,
            addr,
            chat,
            models,
            models_refresh: config.registry.refresh_interval(),
            server: config.server.clone(),
        })
    }

    /// The async work queue, for tests that drive a worker directly (`run_once`).
    pub fn jobs(&self) -> Arc<Jobs> {
        self.jobs.clone()
    }

    /// The batch worker's steps, for tests that drive it directly (`run_once`).
    pub fn batches(&self) -> Arc<Batches> {
        self.batches.clone()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The model registry, for tests that refresh it directly.
    pub fn models(&self) -> Arc<ModelTable> {
        self.models.clone()
    }

    /// Serves until `shutdown` resolves, then drains.
    ///
    /// Shutdown order:
    /// 1. At the signal (`stop`): no new connection is accepted, idle connections close,
    ///    workers claim no queued async request, the session sweeper ends.
    /// 2. Up to the drain deadline (`server.drain_secs`), everything in progress runs to
    ///    its end: requests on open connections, their detached upstream calls and
    ///    idempotent runs (whose result is stored even if the client left), async
    ///    requests in a worker's hands, a webhook attempt.
    /// 3. At the deadline (`abandon`): connections still open are closed, and async
    ///    requests still running are canceled and handed back to the queue, for this or
    ///    another instance to run again.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let tasks = Tasks::new();
        tasks.spawn(sweep_sessions(self.chat.clone(), tasks.stop.clone()));
        // Upstream's model list, asked at once and then every `registry.refresh_secs`.
        let (models, every, stop) = (self.models.clone(), self.models_refresh, tasks.stop.clone());
        tasks.spawn(async move { models.keep_refreshed(every, stop).await });
        self.jobs.spawn(&tasks);
        self.batches.spawn(&tasks);
        let signal = async {
            shutdown.await;
            tracing::info!(
                drain_secs = self.server.drain_secs,
                "shutdown signal received; finishing work in progress"
            );
            tasks.stop.cancel();
        };
        tokio::join!(
            server::serve(self.listener, self.router, &self.server, &tasks),
            signal
        );
        if !tasks.wait(self.server.drain()).await {
            tracing::warn!(
                still_running = tasks.len(),
                "drain deadline passed; closing connections and handing unfinished async requests back"
            );
            tasks.abandon.cancel();
            if !tasks.wait(HAND_BACK).await {
                tracing::warn!(still_running = tasks.len(), "tasks abandoned at exit");
            }
        }
        Ok(())
    }
}

/// Deletes expired chat sessions now and then (they are already invisible once expired).
async fn sweep_sessions(chat: Arc<ChatService>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(SESSION_SWEEP_INTERVAL);
    loop {
        tokio::select! {
            _ = tick.tick() => match chat.sweep_expired().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(sessions = n, "expired chat sessions deleted"),
                Err(e) => tracing::warn!(error = %e, "session sweep failed"),
            },
            () = stop.cancelled() => break,
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}
