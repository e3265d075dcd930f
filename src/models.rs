//! The model table (contract §8): the names users send, the upstream ids they map to,
//! what each model accepts, and its published prices (gemini-upstream.md §5, §6).
//! Retired names stay accepted and are routed to a configured successor.

use std::collections::HashMap;

use serde::Deserialize;

use crate::error::ApiError;

const RATIOS_10: &[&str] = &[
    "1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9",
];
const RATIOS_14: &[&str] = &[
    "1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9", "1:4", "4:1", "1:8",
    "8:1",
];

/// USD per million tokens, by kind (gemini-upstream.md §6.1, paid tier).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct Prices {
    pub input: f64,
    pub text_output: f64,
    pub image_output: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModelEntry {
    pub name: String,
    pub upstream_id: String,
    pub aspect_ratios: Vec<String>,
    /// Empty when the model takes no `imageSize` (it is then never sent).
    pub image_sizes: Vec<String>,
    pub prices: Prices,
    pub retirement: Option<Retirement>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Retirement {
    /// ISO date the name stopped working upstream.
    pub shut_down: String,
    pub successor: String,
}

/// A model override or addition from the configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelOverride {
    pub name: String,
    pub upstream_id: Option<String>,
    pub aspect_ratios: Option<Vec<String>>,
    pub image_sizes: Option<Vec<String>>,
    pub prices: Option<Prices>,
    /// Setting a successor retires the name.
    pub successor: Option<String>,
    pub shut_down: Option<String>,
}

/// The model a request will actually use.
#[derive(Debug, Clone)]
pub struct ResolvedModel {
    pub entry: ModelEntry,
    /// The retired name the client asked for, when it was substituted.
    pub substituted: Option<(String, Retirement)>,
}

#[derive(Debug, Clone)]
pub struct ModelTable {
    entries: HashMap<String, ModelEntry>,
}

fn active(name: &str, ratios: &[&str], sizes: &[&str], prices: Prices) -> ModelEntry {
    ModelEntry {
        name: name.into(),
        upstream_id: name.into(),
        aspect_ratios: ratios.iter().map(|s| s.to_string()).collect(),
        image_sizes: sizes.iter().map(|s| s.to_string()).collect(),
        prices,
        retirement: None,
    }
}

fn retired(name: &str, shut_down: &str, successor: &str) -> ModelEntry {
    ModelEntry {
        name: name.into(),
        upstream_id: name.into(),
        aspect_ratios: Vec::new(),
        image_sizes: Vec::new(),
        prices: Prices {
            input: 0.0,
            text_output: 0.0,
            image_output: 0.0,
        },
        retirement: Some(Retirement {
            shut_down: shut_down.into(),
            successor: successor.into(),
        }),
    }
}

impl ModelTable {
    pub fn embedded() -> Self {
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
        let entries = [
            active(
                "gemini-3.1-flash-image",
                RATIOS_14,
                &["512", "1K", "2K", "4K"],
                flash,
            ),
            active("gemini-3-pro-image", RATIOS_10, &["1K", "2K", "4K"], pro),
            active("gemini-3.1-flash-lite-image", RATIOS_10, &["1K"], lite),
            retired(
                "gemini-2.5-flash-image-preview",
                "2026-01-15",
                "gemini-3.1-flash-image",
            ),
            retired(
                "gemini-2.5-flash-image",
                "2026-10-02",
                "gemini-3.1-flash-image",
            ),
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
        ];
        Self {
            entries: entries.into_iter().map(|e| (e.name.clone(), e)).collect(),
        }
    }

    /// The embedded table with the configuration's overrides applied, checked so that
    /// every retired name leads to an active model.
    pub fn with_overrides(overrides: &[ModelOverride]) -> Result<Self, String> {
        let mut table = Self::embedded();
        for o in overrides {
            let entry = table
                .entries
                .entry(o.name.clone())
                .or_insert_with(|| active(&o.name, RATIOS_10, &[], table_default_prices()));
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
            if let Some(successor) = &o.successor {
                entry.retirement = Some(Retirement {
                    shut_down: o.shut_down.clone().unwrap_or_default(),
                    successor: successor.clone(),
                });
            }
        }
        for name in table.entries.keys() {
            table
                .resolve(name)
                .map_err(|e| format!("model table: {}", e.message))?;
        }
        Ok(table)
    }

    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.entries.keys().cloned().collect();
        names.sort();
        names
    }

    /// Maps a requested name to the model that will serve it.
    pub fn resolve(&self, requested: &str) -> Result<ResolvedModel, ApiError> {
        let unknown = || {
            ApiError::invalid(
                "model",
                format!("Unknown model '{requested}'. Known models are listed in details."),
            )
            .detail("known_models", self.names())
        };
        let bare = requested.strip_prefix("models/").unwrap_or(requested);
        let mut entry = self.entries.get(bare).ok_or_else(unknown)?;
        let mut substituted = None;
        // A bounded walk: a successor may itself have been retired since.
        for _ in 0..self.entries.len() {
            let Some(retirement) = &entry.retirement else {
                return Ok(ResolvedModel {
                    entry: entry.clone(),
                    substituted,
                });
            };
            if substituted.is_none() {
                substituted = Some((bare.to_owned(), retirement.clone()));
            }
            entry = self
                .entries
                .get(&retirement.successor)
                .ok_or_else(|| ApiError::internal("retired model has no valid successor"))?;
        }
        Err(ApiError::internal("model successors form a cycle"))
    }
}

fn table_default_prices() -> Prices {
    Prices {
        input: 0.0,
        text_output: 0.0,
        image_output: 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guides_retired_model_routes_to_its_successor() {
        let table = ModelTable::embedded();
        let resolved = table.resolve("gemini-2.5-flash-image-preview").unwrap();
        assert_eq!(resolved.entry.upstream_id, "gemini-3.1-flash-image");
        let (from, retirement) = resolved.substituted.unwrap();
        assert_eq!(from, "gemini-2.5-flash-image-preview");
        assert_eq!(retirement.shut_down, "2026-01-15");
    }

    #[test]
    fn unknown_models_list_the_known_ones() {
        let err = ModelTable::embedded().resolve("dall-e-3").unwrap_err();
        assert_eq!(err.details["field"], "model");
        let known = err.details["known_models"].as_array().unwrap();
        assert!(known.iter().any(|m| m == "gemini-3-pro-image"));
    }

    #[test]
    fn a_configured_successor_is_honoured_and_cycles_are_refused() {
        let table = ModelTable::with_overrides(&[ModelOverride {
            name: "gemini-2.5-flash-image".into(),
            successor: Some("gemini-3-pro-image".into()),
            ..Default::default()
        }])
        .unwrap();
        let resolved = table.resolve("gemini-2.5-flash-image").unwrap();
        assert_eq!(resolved.entry.upstream_id, "gemini-3-pro-image");

        let cycle = ModelTable::with_overrides(&[ModelOverride {
            name: "gemini-3-pro-image".into(),
            successor: Some("gemini-3-pro-image-preview".into()),
            ..Default::default()
        }]);
        assert!(cycle.is_err());
    }
}
