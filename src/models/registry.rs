//! What upstream serves, as last seen: the model list it answers (asked at start and
//! every `registry.refresh_secs`) and the models it answered 404 for. A table model that
//! upstream stops listing, or answers 404 for, is retired and routed to its successor;
//! models the operator declared `active = true` are left alone (docs/models.md).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{PoisonError, RwLock, RwLockReadGuard};
use std::time::Duration;

use serde::Deserialize;

use super::tiers::TierRule;
use super::{ModelEntry, ModelTable};

/// A model as upstream lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamModel {
    /// The bare id, without `models/`.
    pub id: String,
    pub display_name: Option<String>,
}

/// Asks upstream which models exist (all pages).
#[async_trait::async_trait]
pub trait ModelLister: Send + Sync + 'static {
    async fn list_models(&self) -> Result<Vec<UpstreamModel>, String>;
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistryConfig {
    /// Seconds between refreshes of upstream's model list (gemini provider); 0 asks
    /// only at start.
    pub refresh_secs: u64,
    /// Whether a request that does not say (`"fallback"`) falls back when its model
    /// stays overloaded.
    pub fallback: bool,
    /// Per key tier (`[registry.service_tiers.free]`): the service tiers its keys may
    /// use, and one they are held to.
    pub service_tiers: BTreeMap<String, TierRule>,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            // Google retires image models a few times a year, with weeks of notice;
            // hourly notices a shutdown the same day, and a 404 is noticed at once anyway.
            refresh_secs: 3600,
            fallback: false,
            service_tiers: BTreeMap::new(),
        }
    }
}

impl RegistryConfig {
    pub fn refresh_interval(&self) -> Option<Duration> {
        (self.refresh_secs > 0).then(|| Duration::from_secs(self.refresh_secs))
    }
}

#[derive(Debug, Default)]
pub(super) struct Live {
    /// Upstream ids at the last successful refresh; `None` before the first.
    listed: Option<HashSet<String>>,
    /// ISO date of the last successful refresh.
    refreshed: Option<String>,
    /// Models upstream answered 404 for, with the date it did.
    gone: HashMap<String, String>,
    /// Listed upstream but not in the table: what `[[models]]` could enable.
    not_in_table: Vec<UpstreamModel>,
}

pub(super) fn read(live: &RwLock<Live>) -> RwLockReadGuard<'_, Live> {
    // Updates replace whole values and cannot panic half-way: a poisoned lock is sound.
    live.read().unwrap_or_else(PoisonError::into_inner)
}

impl Live {
    /// `Some(date it stopped serving, if known)` when `entry` no longer serves.
    pub(super) fn retirement(&self, entry: &ModelEntry) -> Option<Option<String>> {
        if let Some(date) = &entry.lifecycle.shut_down {
            return Some((!date.is_empty()).then(|| date.clone()));
        }
        if entry.pinned {
            return None;
        }
        if let Some(date) = self.gone.get(&entry.name) {
            return Some(Some(date.clone()));
        }
        match &self.listed {
            Some(listed) if !listed.contains(&entry.upstream_id) => Some(self.refreshed.clone()),
            _ => None,
        }
    }
}

/// How a model stands, for `GET /models`.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    Active,
    Deprecated {
        since: String,
    },
    Retired {
        shut_down: Option<String>,
        /// The model that serves requests for it (end of the successor chain).
        served_by: Option<String>,
    },
}

fn today() -> String {
    time::OffsetDateTime::now_utc().date().to_string()
}

impl ModelTable {
    /// Asks upstream for its model list and retires table models it no longer lists.
    /// Without a lister (offline provider) there is nothing to ask. Returns how many
    /// models upstream listed.
    pub async fn refresh(&self) -> Result<usize, String> {
        let result = self.refresh_once().await;
        self.refreshes.send_modify(|n| *n += 1);
        result
    }

    /// Resolves once `count` refreshes (successful or not) have finished since start.
    pub async fn refreshed(&self, count: u64) {
        let mut rx = self.refreshes.subscribe();
        // The sender lives as long as `self`, so this ends only when the count is reached.
        let _ = rx.wait_for(|n| *n >= count).await;
    }

    async fn refresh_once(&self) -> Result<usize, String> {
        let Some(lister) = &self.lister else {
            return Ok(0);
        };
        let models = lister.list_models().await?;
        // An empty list is an upstream fault, not the retirement of every model.
        if models.is_empty() {
            return Err("upstream listed no models".into());
        }
        let count = models.len();
        let listed: HashSet<String> = models.iter().map(|m| m.id.clone()).collect();
        let known: HashSet<&str> = self
            .entries
            .values()
            .map(|e| e.upstream_id.as_str())
            .collect();
        let not_in_table = models
            .into_iter()
            .filter(|m| !known.contains(m.id.as_str()))
            .collect();
        let before = self.retired_names();
        {
            let mut live = self.live.write().unwrap_or_else(PoisonError::into_inner);
            live.listed = Some(listed);
            live.refreshed = Some(today());
            live.not_in_table = not_in_table;
        }
        for name in self.retired_names().difference(&before) {
            tracing::warn!(model = %name, "upstream no longer lists this model; requests for it go to its successor");
        }
        Ok(count)
    }

    /// Upstream answered 404 for `name`: retire it now (unless the operator pinned it).
    /// Returns whether it is now retired.
    pub fn mark_retired(&self, name: &str) -> bool {
        let Some(entry) = self.entries.get(name) else {
            return false;
        };
        if entry.pinned {
            return false;
        }
        let mut live = self.live.write().unwrap_or_else(PoisonError::into_inner);
        if !live.gone.contains_key(name) {
            tracing::warn!(model = %name, "upstream answered 404 for this model; it is retired and requests go to its successor");
            live.gone.insert(name.to_owned(), today());
        }
        true
    }

    fn retired_names(&self) -> HashSet<String> {
        let live = read(&self.live);
        self.entries
            .values()
            .filter(|e| live.retirement(e).is_some())
            .map(|e| e.name.clone())
            .collect()
    }

    pub fn status(&self, name: &str) -> Option<Status> {
        let entry = self.entries.get(name)?;
        let retirement = read(&self.live).retirement(entry);
        Some(match (retirement, &entry.lifecycle.deprecated) {
            (Some(shut_down), _) => Status::Retired {
                shut_down,
                served_by: self.resolve(name).ok().map(|r| r.entry.name),
            },
            (None, Some(since)) => Status::Deprecated {
                since: since.clone(),
            },
            (None, None) => Status::Active,
        })
    }

    /// Date of the last successful refresh, and the models upstream listed that the
    /// table lacks.
    pub fn upstream_view(&self) -> (Option<String>, Vec<UpstreamModel>) {
        let live = read(&self.live);
        (live.refreshed.clone(), live.not_in_table.clone())
    }

    /// Refreshes at once, then every `every` until `stop` fires; failures are logged
    /// and the last good list is kept. A refresh in flight at `stop` is dropped: it is
    /// only a GET, not worth holding the drain for.
    pub async fn keep_refreshed(
        &self,
        every: Option<Duration>,
        stop: tokio_util::sync::CancellationToken,
    ) {
        if self.lister.is_none() {
            return;
        }
        loop {
            let refreshed = tokio::select! {
                refreshed = self.refresh() => refreshed,
                () = stop.cancelled() => return,
            };
            match refreshed {
                Ok(count) => tracing::debug!(models = count, "upstream model list refreshed"),
                Err(e) => tracing::warn!(error = %e, "could not refresh upstream's model list"),
            }
            let Some(every) = every else { return };
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = stop.cancelled() => return,
            }
        }
    }
}
