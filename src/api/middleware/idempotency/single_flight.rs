//! One runner at a time per (API key, idempotency key) within this process, so that
//! identical requests arriving together make one upstream call: the second waits for
//! the first, then finds its stored result.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

type Cell = Arc<tokio::sync::Mutex<()>>;

/// One lock per (API key, idempotency key) while a request with them runs.
#[derive(Default)]
pub struct SingleFlight {
    cells: Arc<Mutex<HashMap<String, Cell>>>,
}

/// Holding a slot means no other request with the same keys is running. Dropping it
/// (also when a waiting client goes away) lets the next one in and forgets idle cells.
pub struct Slot {
    cells: Arc<Mutex<HashMap<String, Cell>>>,
    name: String,
    cell: Cell,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl SingleFlight {
    pub async fn enter(&self, name: String) -> Slot {
        let cell = {
            let mut cells = self.cells.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(cells.entry(name.clone()).or_default())
        };
        let mut slot = Slot {
            cells: Arc::clone(&self.cells),
            name,
            cell,
            guard: None,
        };
        slot.guard = Some(Arc::clone(&slot.cell).lock_owned().await);
        slot
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.guard.take();
        let mut cells = self.cells.lock().unwrap_or_else(PoisonError::into_inner);
        // Clones are only made under this lock: the map's and ours means nobody waits.
        if Arc::strong_count(&self.cell) == 2 {
            cells.remove(&self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_second_holder_waits_for_the_first_and_idle_cells_are_forgotten() {
        let flight = SingleFlight::default();
        let first = flight.enter("k".into()).await;
        let wait = std::time::Duration::from_millis(20);
        let gave_up = tokio::time::timeout(wait, flight.enter("k".into())).await;
        assert!(
            gave_up.is_err(),
            "the second request waits while the first runs"
        );
        drop(first);
        let second = tokio::time::timeout(wait, flight.enter("k".into())).await;
        assert!(second.is_ok(), "and gets in once the first is done");
        drop(second);
        assert!(flight.cells.lock().unwrap().is_empty());
    }
}
