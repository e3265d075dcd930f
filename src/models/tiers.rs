//! Google's service tiers (`serviceTier`): `flex` costs about half and may be shed,
//! `priority` about 75–100 % more (docs/models.md), `standard` is what a request gets
//! when it names none. Key tiers may be held to, or kept from, some of them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::generation::GenerationError;

/// The `thinking_level` values a model may take (Google's `thinkingLevel`, lower case).
pub const THINKING_LEVELS: [&str; 3] = ["minimal", "medium", "high"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceTier {
    Flex,
    Standard,
    Priority,
}

impl ServiceTier {
    pub const ALL: [ServiceTier; 3] = [Self::Flex, Self::Standard, Self::Priority];

    /// The wire value, lower case as google-genai sends it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Flex => "flex",
            Self::Standard => "standard",
            Self::Priority => "priority",
        }
    }

    pub fn parse(value: &str) -> Result<Self, GenerationError> {
        let v = value.trim().to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == v)
            .ok_or_else(|| {
                let shown: String = value.chars().take(40).collect();
                GenerationError::invalid(
                    "service_tier",
                    format!("Unknown service tier '{shown}'. Use flex, standard or priority."),
                )
                .detail("allowed", Self::ALL.map(Self::as_str).to_vec())
            })
    }
}

/// Price factors against the standard prices. Google's optimisation guide gives flex as
/// −50 % and priority as "+75–100 %"; the upper bound is used so that reported cost never
/// falls short of the bill.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TierMultipliers {
    pub flex: f64,
    pub standard: f64,
    pub priority: f64,
}

impl Default for TierMultipliers {
    fn default() -> Self {
        Self {
            flex: 0.5,
            standard: 1.0,
            priority: 2.0,
        }
    }
}

impl TierMultipliers {
    pub fn of(&self, tier: ServiceTier) -> f64 {
        match tier {
            ServiceTier::Flex => self.flex,
            ServiceTier::Standard => self.standard,
            ServiceTier::Priority => self.priority,
        }
    }
}

/// `[registry.service_tiers.KEY_TIER]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TierRule {
    /// The service tiers this key tier may ask for; unset: all.
    pub allowed: Option<Vec<ServiceTier>>,
    /// Every request of this key tier runs on this service tier, whatever it asks.
    pub force: Option<ServiceTier>,
}

/// What each key tier may use, checked once at start.
#[derive(Debug, Clone, Default)]
pub struct TierPolicy(BTreeMap<String, TierRule>);

impl TierPolicy {
    /// Refuses rules for key tiers that do not exist and forced tiers that are not allowed.
    pub fn new(rules: &BTreeMap<String, TierRule>, key_tiers: &[String]) -> Result<Self, String> {
        for (name, rule) in rules {
            if !key_tiers.contains(name) {
                return Err(format!(
                    "[registry.service_tiers.{name}]: there is no key tier {name:?} (key tiers: {}); \
                     add [tiers.{name}] or fix the name",
                    key_tiers.join(", ")
                ));
            }
            if let (Some(force), Some(allowed)) = (rule.force, &rule.allowed)
                && !allowed.contains(&force)
            {
                return Err(format!(
                    "[registry.service_tiers.{name}]: force = {:?} is not in allowed",
                    force.as_str()
                ));
            }
        }
        Ok(Self(rules.clone()))
    }

    /// The tier a request of `key_tier` runs on: the forced one, else what it asked for
    /// if allowed (`None`: the upstream's default, standard).
    pub fn apply(
        &self,
        key_tier: &str,
        requested: Option<ServiceTier>,
    ) -> Result<Option<ServiceTier>, GenerationError> {
        let Some(rule) = self.0.get(key_tier) else {
            return Ok(requested);
        };
        if let Some(force) = rule.force {
            return Ok(Some(force));
        }
        let asked = requested.unwrap_or(ServiceTier::Standard);
        match &rule.allowed {
            Some(allowed) if !allowed.contains(&asked) => Err(GenerationError::invalid(
                "service_tier",
                format!(
                    "Keys of this tier may not use the '{}' service tier.",
                    asked.as_str()
                ),
            )
            .detail(
                "allowed",
                allowed.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
            )),
            _ => Ok(requested),
        }
    }

    /// The tiers `key_tier` may use and the one it is held to, for `GET /models`.
    pub fn for_key_tier(&self, key_tier: &str) -> (Vec<ServiceTier>, Option<ServiceTier>) {
        match self.0.get(key_tier) {
            Some(rule) => match rule.force {
                Some(force) => (vec![force], Some(force)),
                None => (
                    rule.allowed.clone().unwrap_or(ServiceTier::ALL.to_vec()),
                    None,
                ),
            },
            None => (ServiceTier::ALL.to_vec(), None),
        }
    }
}
