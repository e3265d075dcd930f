//! Per-item outcomes and the counts shown for a batch.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::store::batches::BatchRecord;

/// One item's outcome. `status` is `pending` or `running` while the batch is open, then
/// `succeeded` (with `image_ids`), `blocked` or `no_image` (with the contract's error for
/// that item), `failed` (with its error), or `cancelled` / `expired` (never run).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemOutcome {
    pub index: usize,
    pub status: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
}

impl ItemOutcome {
    pub fn new(index: usize, status: &str) -> Self {
        Self {
            index,
            status: status.to_owned(),
            image_ids: Vec::new(),
            error: None,
        }
    }
}

/// Every item of the batch: recorded outcomes once it has ended, else its open state.
pub fn items(b: &BatchRecord) -> Vec<ItemOutcome> {
    let recorded = b
        .items
        .as_deref()
        .and_then(|s| serde_json::from_str::<Vec<ItemOutcome>>(s).ok())
        .filter(|items| !items.is_empty());
    recorded.unwrap_or_else(|| {
        let status = match b.state.as_str() {
            "queued" => "pending",
            "running" => "running",
            other => other,
        };
        (0..b.item_count.max(0) as usize)
            .map(|i| ItemOutcome::new(i, status))
            .collect()
    })
}

pub fn counts(b: &BatchRecord, outcomes: Option<&[ItemOutcome]>) -> Value {
    let mut counts = json!({
        "total": b.item_count,
        "pending": 0, "succeeded": 0, "blocked": 0, "no_image": 0, "failed": 0,
        "cancelled": 0, "expired": 0,
    });
    let recorded = outcomes.filter(|o| !o.is_empty());
    match recorded {
        Some(outcomes) => {
            for o in outcomes {
                if let Some(n) = counts.get_mut(&o.status).and_then(|v| v.as_i64()) {
                    counts[&o.status] = json!(n + 1);
                }
            }
        }
        None if b.finished_at_ms.is_none() => counts["pending"] = json!(b.item_count),
        None => counts[&b.state] = json!(b.item_count),
    }
    counts
}
