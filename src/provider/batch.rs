//! The upstream's Batch API as a provider capability: many generations submitted as one
//! job, run within a day at half the price, their results collected when it ends. The
//! Gemini client speaks Google's wire format (`gemini/batch.rs`); the offline provider
//! runs batches locally ([`OfflineBatches`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::models::ResolvedModel;
use crate::provider::offline::OfflineProvider;
use crate::provider::{Generated, ImageProvider as _, ProviderError, ProviderRequest};

/// One item of a batch: the key its result comes back under, and what to generate.
#[derive(Debug, Clone)]
pub struct BatchItem {
    pub key: String,
    pub request: ProviderRequest,
}

/// Where an upstream batch stands (Google's `BATCH_STATE_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamState {
    Pending,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    /// Still pending or running after about 48 hours; nothing was generated.
    Expired,
    /// The upstream does not know the batch: the offline renderer, after the process that
    /// ran it ended. It is run again from its durable items.
    Forgotten,
}

impl UpstreamState {
    pub fn is_done(self) -> bool {
        !matches!(self, Self::Pending | Self::Running | Self::Forgotten)
    }
}

#[derive(Debug, Clone)]
pub struct UpstreamBatch {
    pub state: UpstreamState,
    /// Why a failed batch failed, as the upstream said.
    pub error: Option<String>,
}

/// The result of one item, under its key.
pub type ItemResult = (String, Result<Generated, ProviderError>);

#[async_trait]
pub trait BatchProvider: Send + Sync + 'static {
    /// Submits the items as one upstream batch of `model`; returns its upstream name.
    async fn create(
        &self,
        model: &str,
        display_name: &str,
        items: Vec<BatchItem>,
    ) -> Result<String, ProviderError>;
    async fn get(&self, name: &str) -> Result<UpstreamBatch, ProviderError>;
    /// The upstream name of a batch created as `display_name`, if the upstream has one:
    /// a worker that takes over a batch it may have created without learning its name
    /// adopts it rather than paying for a second copy.
    async fn find(&self, display_name: &str) -> Result<Option<String>, ProviderError>;
    /// The per-item results of a batch of `model` that has ended (downloaded from the
    /// upstream).
    async fn results(
        &self,
        name: &str,
        model: &ResolvedModel,
    ) -> Result<Vec<ItemResult>, ProviderError>;
    async fn cancel(&self, name: &str) -> Result<(), ProviderError>;
}

/// Batches run by the offline renderer after `delay` (half of it pending, half running),
/// so the states can be watched. Kept in memory: a batch this process did not create is
/// [`UpstreamState::Forgotten`], and the gateway runs it again from its stored items.
pub struct OfflineBatches {
    delay: Duration,
    batches: Mutex<HashMap<String, OfflineBatch>>,
}

struct OfflineBatch {
    display_name: String,
    started: Instant,
    items: Vec<BatchItem>,
    cancelled: bool,
}

impl OfflineBatches {
    pub fn new(delay: Duration) -> Self {
        Self {
            delay,
            batches: Mutex::default(),
        }
    }

    fn with<T>(
        &self,
        name: &str,
        f: impl FnOnce(&mut OfflineBatch) -> T,
    ) -> Result<T, ProviderError> {
        let mut batches = self
            .batches
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        batches.get_mut(name).map(f).ok_or_else(|| lost(name))
    }
}

fn lost(name: &str) -> ProviderError {
    ProviderError::Rejected {
        message: format!("{name} is unknown: offline batches do not outlive a restart"),
    }
}

fn forgotten() -> UpstreamBatch {
    UpstreamBatch {
        state: UpstreamState::Forgotten,
        error: None,
    }
}

#[async_trait]
impl BatchProvider for OfflineBatches {
    async fn create(
        &self,
        _model: &str,
        display_name: &str,
        items: Vec<BatchItem>,
    ) -> Result<String, ProviderError> {
        let name = format!(
            "batches/offline-{}",
            ulid::Ulid::new().to_string().to_lowercase()
        );
        let batch = OfflineBatch {
            display_name: display_name.to_owned(),
            started: Instant::now(),
            items,
            cancelled: false,
        };
        self.batches
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(name.clone(), batch);
        Ok(name)
    }

    async fn get(&self, name: &str) -> Result<UpstreamBatch, ProviderError> {
        let delay = self.delay;
        let known = self
            .batches
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .contains_key(name);
        if !known {
            return Ok(forgotten());
        }
        let state = self.with(name, |b| {
            let elapsed = b.started.elapsed();
            if b.cancelled {
                UpstreamState::Cancelled
            } else if elapsed >= delay {
                UpstreamState::Succeeded
            } else if elapsed >= delay / 2 {
                UpstreamState::Running
            } else {
                UpstreamState::Pending
            }
        })?;
        Ok(UpstreamBatch { state, error: None })
    }

    async fn results(
        &self,
        name: &str,
        _model: &ResolvedModel,
    ) -> Result<Vec<ItemResult>, ProviderError> {
        let items = self.with(name, |b| {
            if b.cancelled {
                Vec::new()
            } else {
                b.items.clone()
            }
        })?;
        let mut results = Vec::with_capacity(items.len());
        for item in items {
            results.push((item.key, OfflineProvider.generate(item.request).await));
        }
        self.batches
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(name);
        Ok(results)
    }

    async fn find(&self, display_name: &str) -> Result<Option<String>, ProviderError> {
        let batches = self
            .batches
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Ok(batches
            .iter()
            .find(|(_, b)| b.display_name == display_name)
            .map(|(name, _)| name.clone()))
    }

    async fn cancel(&self, name: &str) -> Result<(), ProviderError> {
        // A forgotten batch has nothing left to cancel; its worker ends it cancelled.
        let _ = self.with(name, |b| b.cancelled = true);
        Ok(())
    }
}
