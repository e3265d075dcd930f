//! Spending limits per key (docs/keys.md): before each upstream call the call's worst
//! case is reserved against the key's day and month, atomically in the database; after
//! it the reservation is settled to what the call really cost.

use std::sync::Arc;

use crate::auth::GOOGLE_KEY_ID;
use crate::caller::RequestContext;
use crate::clock::Clock;
use crate::generation::GenerationError;
use crate::models::{ModelEntry, Prices};
use crate::provider::ServedAs;
use crate::store::keys::{KeyRecord, KeyStore, Spend, SpendPeriod};

/// Successive rotations followed to find where a key's budget is: more than a key
/// rotated again within its predecessor's grace period ever needs.
const MAX_ROTATIONS: usize = 8;

#[derive(Clone)]
pub struct Spending {
    keys: Arc<KeyStore>,
    clock: Arc<dyn Clock>,
}

/// A reserved worst case, to settle once the call's real cost is known.
#[derive(Debug)]
pub struct Reservation {
    key_id: String,
    period: SpendPeriod,
    micro: i64,
}

fn usd(micro: i64) -> f64 {
    micro as f64 / 1e6
}

impl Spending {
    pub fn new(keys: Arc<KeyStore>, clock: Arc<dyn Clock>) -> Self {
        Self { keys, clock }
    }

    fn period(&self) -> (SpendPeriod, time::OffsetDateTime) {
        let now = time::OffsetDateTime::from_unix_timestamp_nanos(
            i128::from(self.clock.now_ms()) * 1_000_000,
        )
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        let day = now.date();
        let period = SpendPeriod {
            day: day.to_string(),
            month: format!("{:04}-{:02}", day.year(), u8::from(day.month())),
        };
        (period, now)
    }

    /// Checks the key may use the model, then reserves the call's worst case. `None`
    /// when nothing is tracked (the server's own Google key, or a key no longer stored).
    pub async fn reserve(
        &self,
        ctx: &RequestContext,
        served: &ServedAs,
        size: Option<&str>,
    ) -> Result<Option<Reservation>, GenerationError> {
        let key_id = &ctx.caller.key_id;
        if key_id == GOOGLE_KEY_ID {
            return Ok(None);
        }
        // Read from the key's row, not the request's caller: work run later by an async
        // worker is held to the key's settings as they are when it runs.
        let Some(key) = self.keys.get(key_id).await? else {
            return Ok(None);
        };
        let requested = served
            .model
            .substituted
            .as_ref()
            .map_or(&served.model.entry.name, |(name, _)| name);
        if !key.settings.allows_model(requested) {
            return Err(forbidden_model(requested, &key.settings.models));
        }
        let micro = served
            .model
            .entry
            .worst_case_micro(size, served.prices())
            .max(0)
            .saturating_add(worst_thinking_micro(
                &served.model.entry,
                size,
                served.prices(),
            ));
        let (period, now) = self.period();
        let mut holder = self.holder(key).await?;
        // A refusal may be the holder's rotation between the read and the reservation
        // (its row then refuses); the successor is tried, a bounded number of times.
        for _ in 0..MAX_ROTATIONS {
            if self.keys.reserve(&holder.key_id, &period, micro).await? {
                return Ok(Some(Reservation {
                    key_id: holder.key_id,
                    period,
                    micro,
                }));
            }
            match self.keys.get(&holder.key_id).await? {
                Some(fresh) if fresh.rotated_to.is_some() => holder = self.holder(fresh).await?,
                _ => break,
            }
        }
        let spend = self
            .keys
            .spend(&holder.key_id, &period)
            .await?
            .unwrap_or_default();
        Err(exceeded(spend, micro, now))
    }

    /// The key whose row holds `key`'s budget: `key` itself, or — once rotated — its
    /// newest successor, which took over what was spent (`KeyStore::hand_over`).
    async fn holder(&self, key: KeyRecord) -> Result<KeyRecord, GenerationError> {
        let mut holder = key;
        for _ in 0..MAX_ROTATIONS {
            let Some(next) = holder.rotated_to.as_deref() else {
                break;
            };
            match self.keys.get(next).await? {
                Some(successor) => holder = successor,
                None => break,
            }
        }
        Ok(holder)
    }

    async fn holder_id(&self, key_id: &str) -> Result<String, GenerationError> {
        Ok(match self.keys.get(key_id).await? {
            Some(key) => self.holder(key).await?.key_id,
            None => key_id.to_owned(),
        })
    }

    /// Replaces the reservation by the real cost. A failure is logged: the call was made
    /// and answered, and the reservation (the larger amount) stays counted.
    pub async fn settle(&self, reservation: Reservation, cost_usd: f64) {
        let real = (cost_usd * 1e6).round() as i64;
        let delta = real - reservation.micro;
        if delta == 0 {
            return;
        }
        // Settled where the budget is now: a rotation during the call carried the
        // reservation over to the successor.
        let holder = self
            .holder_id(&reservation.key_id)
            .await
            .unwrap_or_else(|_| reservation.key_id.clone());
        if let Err(e) = self.keys.settle(&holder, &reservation.period, delta).await {
            tracing::warn!(error = %e, key_id = %reservation.key_id, "could not settle a budget reservation");
        }
    }

    /// For work whose cost is reserved ahead of its calls, in the same transaction as the
    /// work is stored (a batch's items, at submission): the key's settings and the UTC
    /// day and month to reserve in. `None` when nothing is tracked, as in [`Self::reserve`].
    pub async fn held_ahead(
        &self,
        key_id: &str,
    ) -> Result<Option<(crate::auth::settings::KeySettings, SpendPeriod)>, GenerationError> {
        if key_id == GOOGLE_KEY_ID {
            return Ok(None);
        }
        let Some(key) = self.keys.get(key_id).await? else {
            return Ok(None);
        };
        Ok(Some((key.settings, self.period().0)))
    }

    /// The refusal of `micro` reserved ahead ([`Self::held_ahead`]) that did not fit.
    pub async fn refusal(&self, key_id: &str, micro: i64) -> GenerationError {
        let (period, now) = self.period();
        match self.keys.spend(key_id, &period).await {
            Ok(spend) => exceeded(spend.unwrap_or_default(), micro, now),
            Err(e) => e.into(),
        }
    }

    /// What is left of the key's tightest limit, in dollars; `None` without limits.
    pub async fn remaining_usd(&self, key_id: &str) -> Option<f64> {
        let (period, _) = self.period();
        let holder = self.holder_id(key_id).await.ok()?;
        let spend = self.keys.spend(&holder, &period).await.ok()??;
        remaining(&spend).map(usd)
    }

    /// The key's limits, spend and resets, for `GET /keys/me`.
    pub async fn report(&self, key_id: &str) -> Result<serde_json::Value, GenerationError> {
        let (period, now) = self.period();
        let holder = self.holder_id(key_id).await?;
        let spend = self.keys.spend(&holder, &period).await?.unwrap_or_default();
        Ok(report(&spend, now))
    }
}

/// The most output tokens one call produces, thoughts included: Google's
/// `outputTokenLimit` for its image models (gemini-upstream.md §3.6).
pub const MAX_OUTPUT_TOKENS: u64 = 32_768;

/// The most a call's thoughts can cost: a model that takes a thinking level thinks on
/// every call (at the level sent, or its default one), and its thoughts can fill every
/// output token its image leaves; they are billed at the text output price (§6.1).
/// Models that do not think reserve nothing for it.
pub fn worst_thinking_micro(entry: &ModelEntry, size: Option<&str>, prices: Prices) -> i64 {
    if entry.thinking_levels.is_empty() {
        return 0;
    }
    let largest = || entry.output_tokens.values().copied().max().unwrap_or(0);
    let image = entry
        .output_tokens
        .get(size.unwrap_or(""))
        .copied()
        .unwrap_or_else(largest);
    let thoughts = MAX_OUTPUT_TOKENS.saturating_sub(image);
    // Prices are per million tokens: the product is in micro-dollars; rounded up.
    (thoughts as f64 * prices.text_output).ceil().max(0.0) as i64
}

fn remaining(spend: &Spend) -> Option<i64> {
    let day = spend.limits.daily_micro.map(|l| l - spend.day_micro);
    let month = spend.limits.monthly_micro.map(|l| l - spend.month_micro);
    match (day, month) {
        (Some(d), Some(m)) => Some(d.min(m).max(0)),
        (Some(x), None) | (None, Some(x)) => Some(x.max(0)),
        (None, None) => None,
    }
}

fn next_day(now: time::OffsetDateTime) -> time::OffsetDateTime {
    now.date()
        .next_day()
        .unwrap_or(now.date())
        .midnight()
        .assume_utc()
}

fn next_month(now: time::OffsetDateTime) -> time::OffsetDateTime {
    let d = now.date();
    let (y, m) = if d.month() == time::Month::December {
        (d.year() + 1, time::Month::January)
    } else {
        (d.year(), d.month().next())
    };
    time::Date::from_calendar_date(y, m, 1)
        .unwrap_or(d)
        .midnight()
        .assume_utc()
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn report(spend: &Spend, now: time::OffsetDateTime) -> serde_json::Value {
    let period = |limit: Option<i64>, spent: i64, resets: time::OffsetDateTime| {
        limit.map(|l| {
            serde_json::json!({
                "limit_usd": usd(l),
                "spent_usd": usd(spent),
                "remaining_usd": usd((l - spent).max(0)),
                "resets_at": rfc3339(resets),
            })
        })
    };
    serde_json::json!({
        "daily": period(spend.limits.daily_micro, spend.day_micro, next_day(now)),
        "monthly": period(spend.limits.monthly_micro, spend.month_micro, next_month(now)),
        "remaining_usd": remaining(spend).map(usd),
    })
}

/// The refusal of a call whose worst case does not fit: the limit that is short, what
/// was spent (reservations of calls in flight included) and when it resets.
fn exceeded(spend: Spend, micro: i64, now: time::OffsetDateTime) -> GenerationError {
    let daily_short = spend
        .limits
        .daily_micro
        .is_some_and(|l| spend.day_micro + micro > l);
    let (period, limit, spent, resets) = if daily_short {
        (
            "daily",
            spend.limits.daily_micro.unwrap_or(0),
            spend.day_micro,
            next_day(now),
        )
    } else {
        (
            "monthly",
            spend.limits.monthly_micro.unwrap_or(0),
            spend.month_micro,
            next_month(now),
        )
    };
    GenerationError::BudgetExceeded {
        period,
        limit_usd: usd(limit),
        spent_usd: usd(spent),
        reserved_usd: usd(micro),
        resets_at: rfc3339(resets),
    }
}

pub fn forbidden_model(model: &str, allowed: &Option<Vec<String>>) -> GenerationError {
    GenerationError::ModelForbidden {
        model: model.to_owned(),
        allowed: allowed.clone().unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_reset_at_the_next_utc_midnight_and_first_of_month() {
        let at = |y, m, d| {
            time::Date::from_calendar_date(y, m, d)
                .unwrap()
                .with_hms(23, 59, 0)
                .unwrap()
                .assume_utc()
        };
        let t = at(2026, time::Month::December, 31);
        assert_eq!(rfc3339(next_day(t)), "2027-01-01T00:00:00Z");
        assert_eq!(rfc3339(next_month(t)), "2027-01-01T00:00:00Z");
        let t = at(2026, time::Month::February, 10);
        assert_eq!(rfc3339(next_month(t)), "2026-03-01T00:00:00Z");
    }

    #[test]
    fn a_thinking_model_reserves_every_output_token_its_image_leaves_at_the_text_price() {
        let table = crate::models::ModelTable::embedded();
        let prices = Prices {
            input: 0.0,
            text_output: 2.0,
            image_output: 0.0,
        };
        let banana = table.resolve("gemini-nano-banana-2.1").unwrap().entry;
        // 1K images are 1290 tokens: 32768 - 1290 = 31478 thought tokens at $2/M.
        assert_eq!(worst_thinking_micro(&banana, Some("1K"), prices), 62_956);
        let pro = table.resolve("gemini-3-pro-image").unwrap().entry;
        assert!(pro.thinking_levels.is_empty());
        assert_eq!(worst_thinking_micro(&pro, Some("1K"), prices), 0);
    }

    #[test]
    fn what_is_left_is_the_tightest_limit_and_never_negative() {
        let spend = Spend {
            limits: crate::auth::settings::SpendLimits {
                daily_micro: Some(100),
                monthly_micro: Some(1000),
            },
            day_micro: 130,
            month_micro: 500,
        };
        assert_eq!(remaining(&spend), Some(0));
        assert_eq!(remaining(&Spend::default()), None);
    }
}
