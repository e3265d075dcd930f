//! The Batch API's price: Google bills every image model at half its standard price
//! through it (docs/batches.md).

use super::Prices;

pub const BATCH_PRICE_FACTOR: f64 = 0.5;

/// Usage priced at the batch rate is recorded under the model's name with this suffix,
/// so `/usage` can show it apart (`"rate": "batch"`).
pub const BATCH_USAGE_SUFFIX: &str = ":batch";

impl Prices {
    /// The model's prices through the Batch API.
    pub fn batch(self) -> Self {
        self.scaled(BATCH_PRICE_FACTOR)
    }
}
