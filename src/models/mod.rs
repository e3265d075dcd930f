//! The model registry (docs/models.md): the names users send, the upstream ids they map
//! to, what each model accepts, its published prices (docs/upstream.md#models-and-limits,
//! docs/upstream.md#prices), and where a request goes when its model is retired or
//! overloaded.
//!
//! The embedded table is the source of prices and capabilities; the configuration's
//! `[[models]]` entries change or add to it and keep the last word; what upstream lists
//! (see [`registry`]) retires table models it no longer serves.

mod batch;
pub mod registry;
pub mod tiers;

pub use batch::{BATCH_PRICE_FACTOR, BATCH_USAGE_SUFFIX};

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use serde::Deserialize;

use crate::generation::GenerationError;
pub use registry::{ModelLister, RegistryConfig, UpstreamModel};
pub use tiers::{ServiceTier, TierMultipliers, TierPolicy};

const RATIOS_10: &[&str] = &[
    "1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9",
];
const RATIOS_14: &[&str] = &[
    "1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9", "1:4", "4:1", "1:8",
    "8:1",
];
/// Gemini 3 image models take up to 14 reference images
/// (docs/upstream.md#models-and-limits).
const GEMINI_3_MAX_IMAGES: usize = 14;

/// Google's input limit of its Gemini 3 Pro and Lite image models; 3.1 Flash Image and
/// its successor take twice as much (docs/upstream.md#models-and-limits). A budget's
/// worst case counts every input token a model accepts.
const GEMINI_IMAGE_INPUT_TOKENS: u64 = 65_536;
const GEMINI_FLASH_INPUT_TOKENS: u64 = 131_072;
/// Image output tokens by size: the largest any table model reports at that size
/// (2.5 Flash Image 1290 at its one size; 3.1 Flash 747 at 512, 1680 at 2K; 4K is the
/// ~3780 Nano Banana 2.1's published 4K price implies). A budget reserves these, so a
/// reservation never falls short of an image's real output.
const OUTPUT_TOKENS: &[(&str, u64)] = &[
    ("", 1290),
    ("512", 747),
    ("1K", 1290),
    ("2K", 1680),
    ("4K", 3780),
];

/// USD per million tokens, by kind (docs/upstream.md#prices, paid tier).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Prices {
    pub input: f64,
    pub text_output: f64,
    pub image_output: f64,
}

impl Prices {
    pub fn scaled(self, factor: f64) -> Self {
        Self {
            input: self.input * factor,
            text_output: self.text_output * factor,
            image_output: self.image_output * factor,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModelEntry {
    pub name: String,
    pub upstream_id: String,
    pub aspect_ratios: Vec<String>,
    /// Empty when the model takes no `imageSize` (it is then never sent).
    pub image_sizes: Vec<String>,
    pub prices: Prices,
    /// Price factors of the service tiers against `prices` (standard).
    pub tier_multipliers: TierMultipliers,
    /// `thinking_level` values the model takes, lower case; empty: it takes none.
    pub thinking_levels: Vec<String>,
    pub max_input_images: usize,
    /// The most input tokens a call can send (Google's input limit); with the output
    /// below, the worst case a key's budget reserves before a call (docs/keys.md).
    pub max_input_tokens: u64,
    /// Image output tokens of one image, by `image_size` ("" when none is sent).
    pub output_tokens: std::collections::BTreeMap<String, u64>,
    /// Models tried in order when this one stays overloaded and fallback is allowed.
    pub fallback: Vec<String>,
    pub lifecycle: Lifecycle,
    /// Declared by the operator as active: upstream's model list cannot retire it.
    pub pinned: bool,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Lifecycle {
    /// ISO date upstream announced the deprecation; the model still serves.
    pub deprecated: Option<String>,
    /// ISO date the model stopped serving; set, the table itself retires the model.
    pub shut_down: Option<String>,
    /// Where requests go once the model is retired (declared or observed).
    pub successor: Option<String>,
}

/// A model override or addition from the configuration file.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelOverride {
    pub name: String,
    pub upstream_id: Option<String>,
    pub aspect_ratios: Option<Vec<String>>,
    pub image_sizes: Option<Vec<String>>,
    pub prices: Option<Prices>,
    pub tier_multipliers: Option<TierMultipliers>,
    pub thinking_levels: Option<Vec<String>>,
    pub max_input_images: Option<usize>,
    pub max_input_tokens: Option<u64>,
    pub output_tokens: Option<std::collections::BTreeMap<String, u64>>,
    pub fallback: Option<Vec<String>>,
    /// Where requests go once the model is retired.
    pub successor: Option<String>,
    pub deprecated: Option<String>,
    /// Retires the model as of this date (a successor is then required).
    pub shut_down: Option<String>,
    /// `true` keeps the model active whatever upstream lists or answers; `false`
    /// retires it now (a successor is then required).
    pub active: Option<bool>,
}

/// Why a request was served by another model than the one it named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The named model is retired (by the table, the operator, or upstream).
    Retired,
    /// The named model stayed overloaded and the request allowed fallback.
    Overloaded,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Retired => "retired",
            Self::Overloaded => "overloaded",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Substitution {
    /// The model that served instead.
    pub successor: String,
    pub reason: Reason,
    /// ISO date the named model stopped serving, when known.
    pub shut_down: Option<String>,
}

/// The model a request will actually use.
#[derive(Debug, Clone)]
pub struct ResolvedModel {
    pub entry: ModelEntry,
    /// The name the client asked for, when another model serves it.
    pub substituted: Option<(String, Substitution)>,
}

/// The registry: the merged table plus what upstream was last seen to serve.
pub struct ModelTable {
    entries: HashMap<String, ModelEntry>,
    live: RwLock<registry::Live>,
    lister: Option<Arc<dyn ModelLister>>,
    /// `registry.fallback`: whether requests that do not say may fall back.
    fallback_by_default: bool,
    /// Which service tiers each key tier may use.
    tier_policy: TierPolicy,
    /// Counts finished refreshes, so that a caller can wait for one.
    refreshes: tokio::sync::watch::Sender<u64>,
}

fn active(name: &str, ratios: &[&str], sizes: &[&str], prices: Prices) -> ModelEntry {
    ModelEntry {
        name: name.into(),
        upstream_id: name.into(),
        aspect_ratios: ratios.iter().map(|s| s.to_string()).collect(),
        image_sizes: sizes.iter().map(|s| s.to_string()).collect(),
        prices,
        tier_multipliers: TierMultipliers::default(),
        thinking_levels: Vec::new(),
        max_input_images: GEMINI_3_MAX_IMAGES,
        max_input_tokens: GEMINI_IMAGE_INPUT_TOKENS,
        output_tokens: OUTPUT_TOKENS
            .iter()
            .map(|(size, n)| ((*size).to_owned(), *n))
            .collect(),
        fallback: Vec::new(),
        lifecycle: Lifecycle::default(),
        pinned: false,
    }
}

fn retired(name: &str, shut_down: &str, successor: &str) -> ModelEntry {
    let mut entry = active(name, &[], &[], Prices::scaled(NO_PRICES, 0.0));
    entry.max_input_images = 0;
    entry.lifecycle = Lifecycle {
        deprecated: None,
        shut_down: Some(shut_down.into()),
        successor: Some(successor.into()),
    };
    entry
}

const NO_PRICES: Prices = Prices {
    input: 0.0,
    text_output: 0.0,
    image_output: 0.0,
};

fn levels(values: &[&str]) -> Vec<String> {
    values.iter().map(|s| s.to_string()).collect()
}

/// The model requests use when they name none, and the successor of the last default.
pub const DEFAULT_MODEL: &str = "gemini-nano-banana-2.1";

fn embedded_entries() -> Vec<ModelEntry> {
    let flash = Prices {
        input: 0.50,
        text_output: 3.00,
        image_output: 60.0,
    };
    let pro = Prices {
        input: 2.00,
        text_output: 12.00,
        image_output: 120.0,
    };
    let lite = Prices {
        input: 0.25,
        text_output: 1.50,
        image_output: 30.0,
    };
    // Google's changelog of 2026-10-06: generally available, the default for new projects.
    let nano_banana_21 = Prices {
        input: 1.50,
        text_output: 7.50,
        image_output: 30.0,
    };
    let mut banana = active(
        DEFAULT_MODEL,
        RATIOS_14,
        &["1K", "2K", "4K"],
        nano_banana_21,
    );
    // Which levels it takes, and its default, are not published; these are offered
    // (docs/upstream.md#thinking-levels).
    banana.thinking_levels = levels(&["minimal", "medium", "high"]);
    banana.max_input_tokens = GEMINI_FLASH_INPUT_TOKENS;
    let mut flash_31 = active(
        "gemini-3.1-flash-image",
        RATIOS_14,
        &["512", "1K", "2K", "4K"],
        flash,
    );
    flash_31.thinking_levels = levels(&["minimal", "high"]);
    flash_31.max_input_tokens = GEMINI_FLASH_INPUT_TOKENS;
    // Deprecated on 2026-10-06 in favour of Nano Banana 2.1; it serves until upstream
    // stops listing it or answers 404 for it.
    flash_31.lifecycle = Lifecycle {
        deprecated: Some("2026-10-06".into()),
        shut_down: None,
        successor: Some(DEFAULT_MODEL.into()),
    };
    // Pro thinks always and takes no level; overloaded Pro falls back to Nano Banana 2.1.
    let mut pro_3 = active("gemini-3-pro-image", RATIOS_10, &["1K", "2K", "4K"], pro);
    pro_3.fallback = vec![DEFAULT_MODEL.into()];
    let mut lite_31 = active("gemini-3.1-flash-lite-image", RATIOS_10, &["1K"], lite);
    lite_31.thinking_levels = levels(&["minimal", "high"]);
    lite_31.lifecycle.successor = Some(DEFAULT_MODEL.into());
    vec![
        banana,
        flash_31,
        pro_3,
        lite_31,
        retired(
            "gemini-2.5-flash-image-preview",
            "2026-01-15",
            DEFAULT_MODEL,
        ),
        retired("gemini-2.5-flash-image", "2026-10-02", DEFAULT_MODEL),
        retired(
            "gemini-3-pro-image-preview",
            "2026-06-25",
            "gemini-3-pro-image",
        ),
        retired(
            "gemini-3.1-flash-image-preview",
            "2026-06-25",
            "gemini-3.1-flash-image",
        ),
    ]
}

impl ModelEntry {
    /// The most one call can cost at `prices` (the serving tier's): every input token
    /// the model takes, plus one image of the largest output for `size` (the largest
    /// of any size for a size the table does not list), in micro-dollars rounded up.
    pub fn worst_case_micro(&self, size: Option<&str>, prices: Prices) -> i64 {
        let largest = || self.output_tokens.values().copied().max().unwrap_or(0);
        let output = self
            .output_tokens
            .get(size.unwrap_or(""))
            .copied()
            .unwrap_or_else(largest);
        let usd = self.max_input_tokens as f64 * prices.input + output as f64 * prices.image_output;
        // Prices are per million tokens: `usd` is already in micro-dollars.
        usd.ceil() as i64
    }
}

impl ModelTable {
    pub fn embedded() -> Self {
        Self::from_entries(embedded_entries())
    }

    fn from_entries(entries: Vec<ModelEntry>) -> Self {
        Self {
            entries: entries.into_iter().map(|e| (e.name.clone(), e)).collect(),
            live: RwLock::default(),
            lister: None,
            fallback_by_default: false,
            tier_policy: TierPolicy::default(),
            refreshes: tokio::sync::watch::Sender::new(0),
        }
    }

    /// The routing settings of `[registry]`; `key_tiers` are the configured key tiers.
    pub fn with_registry_config(
        mut self,
        config: &RegistryConfig,
        key_tiers: &[String],
    ) -> Result<Self, String> {
        self.fallback_by_default = config.fallback;
        self.tier_policy = TierPolicy::new(&config.service_tiers, key_tiers)?;
        Ok(self)
    }

    pub fn fallback_by_default(&self) -> bool {
        self.fallback_by_default
    }

    pub fn tier_policy(&self) -> &TierPolicy {
        &self.tier_policy
    }

    /// The embedded table with the configuration's overrides applied, checked so that
    /// every retired name leads to an active model and every fallback names a model.
    pub fn with_overrides(overrides: &[ModelOverride]) -> Result<Self, String> {
        let mut entries: HashMap<String, ModelEntry> = embedded_entries()
            .into_iter()
            .map(|e| (e.name.clone(), e))
            .collect();
        for o in overrides {
            if !entries.contains_key(&o.name) {
                // A model the build does not know (released after it): what it costs
                // must be declared, or its usage would be reported as free.
                let prices = o.prices.ok_or_else(|| {
                    format!(
                        "[[models]] {:?} is not in the embedded table: declare its prices \
                         (prices = {{ input = …, text_output = …, image_output = … }})",
                        o.name
                    )
                })?;
                entries.insert(o.name.clone(), active(&o.name, RATIOS_10, &[], prices));
            }
            let Some(entry) = entries.get_mut(&o.name) else {
                continue;
            };
            apply(entry, o);
        }
        let table = Self::from_entries(entries.into_values().collect());
        table.check()?;
        Ok(table)
    }

    fn check(&self) -> Result<(), String> {
        for entry in self.entries.values() {
            self.resolve(&entry.name)
                .map_err(|e| format!("model table: {}: {}", entry.name, e))?;
            for next in &entry.fallback {
                if !self.entries.contains_key(next) {
                    return Err(format!(
                        "model table: the fallback {next:?} of {:?} is not a known model",
                        entry.name
                    ));
                }
            }
            for level in &entry.thinking_levels {
                if !tiers::THINKING_LEVELS.contains(&level.as_str()) {
                    return Err(format!(
                        "model table: thinking level {level:?} of {:?} is not one of {}",
                        entry.name,
                        tiers::THINKING_LEVELS.join(", ")
                    ));
                }
            }
        }
        Ok(())
    }

    /// Lets [`ModelTable::refresh`] ask upstream which models exist.
    pub fn listing_from(mut self, lister: Arc<dyn ModelLister>) -> Self {
        self.lister = Some(lister);
        self
    }

    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.entries.keys().cloned().collect();
        names.sort();
        names
    }

    pub fn entry(&self, name: &str) -> Option<&ModelEntry> {
        self.entries
            .get(name.strip_prefix("models/").unwrap_or(name))
    }

    /// Maps a requested name to the model that will serve it.
    pub fn resolve(&self, requested: &str) -> Result<ResolvedModel, GenerationError> {
        let unknown = || {
            GenerationError::invalid(
                "model",
                format!("Unknown model '{requested}'. Known models are listed in details."),
            )
            .detail("known_models", self.names())
        };
        let bare = requested.strip_prefix("models/").unwrap_or(requested);
        let mut entry = self.entries.get(bare).ok_or_else(unknown)?;
        let mut substituted: Option<(String, Substitution)> = None;
        let live = registry::read(&self.live);
        // A bounded walk: a successor may itself have been retired since.
        for _ in 0..=self.entries.len() {
            let Some(shut_down) = live.retirement(entry) else {
                if let Some((_, s)) = &mut substituted {
                    s.successor = entry.name.clone();
                }
                return Ok(ResolvedModel {
                    entry: entry.clone(),
                    substituted,
                });
            };
            let Some(successor) = &entry.lifecycle.successor else {
                return Err(GenerationError::invalid(
                    "model",
                    format!(
                        "The model '{}' is retired and has no successor.",
                        entry.name
                    ),
                )
                .detail("known_models", self.names()));
            };
            if substituted.is_none() {
                substituted = Some((
                    bare.to_owned(),
                    Substitution {
                        successor: successor.clone(),
                        reason: Reason::Retired,
                        shut_down,
                    },
                ));
            }
            entry = self.entries.get(successor).ok_or_else(|| {
                GenerationError::internal(format!(
                    "the successor {successor:?} is not a known model"
                ))
            })?;
        }
        Err(GenerationError::internal("model successors form a cycle"))
    }
}

impl std::fmt::Debug for ModelTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelTable")
            .field("models", &self.names())
            .field("lists_upstream", &self.lister.is_some())
            .finish_non_exhaustive()
    }
}

fn apply(entry: &mut ModelEntry, o: &ModelOverride) {
    if let Some(v) = &o.upstream_id {
        entry.upstream_id = v.clone();
    }
    if let Some(v) = &o.aspect_ratios {
        entry.aspect_ratios = v.clone();
    }
    if let Some(v) = &o.image_sizes {
        entry.image_sizes = v.clone();
    }
    if let Some(v) = o.prices {
        entry.prices = v;
    }
    if let Some(v) = o.tier_multipliers {
        entry.tier_multipliers = v;
    }
    if let Some(v) = &o.thinking_levels {
        entry.thinking_levels = v.iter().map(|l| l.to_ascii_lowercase()).collect();
    }
    if let Some(v) = o.max_input_images {
        entry.max_input_images = v;
    }
    if let Some(v) = o.max_input_tokens {
        entry.max_input_tokens = v;
    }
    if let Some(v) = &o.output_tokens {
        entry.output_tokens = v.clone();
    }
    if let Some(v) = &o.fallback {
        entry.fallback = v.clone();
    }
    if let Some(v) = &o.successor {
        entry.lifecycle.successor = Some(v.clone());
    }
    if let Some(v) = &o.deprecated {
        entry.lifecycle.deprecated = Some(v.clone());
    }
    if let Some(v) = &o.shut_down {
        entry.lifecycle.shut_down = Some(v.clone());
    }
    match o.active {
        Some(true) => {
            entry.pinned = true;
            entry.lifecycle.shut_down = None;
        }
        Some(false) => {
            entry.pinned = false;
            if entry.lifecycle.shut_down.is_none() {
                entry.lifecycle.shut_down = Some(String::new());
            }
        }
        None => {}
    }
    // Before this, setting a successor alone retired the name; it still does.
    if o.successor.is_some()
        && o.active.is_none()
        && o.deprecated.is_none()
        && entry.lifecycle.shut_down.is_none()
    {
        entry.lifecycle.shut_down = Some(String::new());
    }
}

#[cfg(test)]
mod tests;
