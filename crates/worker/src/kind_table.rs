//! A worker's copy of a per-kind table in Postgres (`kind_caps`, `kind_rate_limits`): read on
//! every delivery, so a look-up is a shared read lock and a map probe; replaced whole by the
//! periodic refresh.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock, RwLockReadGuard};

/// Kind → value, as last read; cheap to clone, shared between clones.
#[derive(Debug)]
pub struct KindTable<V> {
    rows: Arc<RwLock<BTreeMap<String, V>>>,
}

impl<V> Clone for KindTable<V> {
    fn clone(&self) -> Self {
        KindTable {
            rows: Arc::clone(&self.rows),
        }
    }
}

impl<V> Default for KindTable<V> {
    fn default() -> Self {
        KindTable::with(BTreeMap::new())
    }
}

impl<V: Copy> KindTable<V> {
    /// The value of `kind`, if the table has a row for it.
    pub fn get(&self, kind: &str) -> Option<V> {
        self.read().get(kind).copied()
    }
}

impl<V> KindTable<V> {
    /// A table holding `rows`.
    pub fn with(rows: BTreeMap<String, V>) -> Self {
        KindTable {
            rows: Arc::new(RwLock::new(rows)),
        }
    }

    /// Whether no kind has a row.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// Replaces every row (a refresh read the whole table).
    pub fn replace(&self, rows: BTreeMap<String, V>) {
        // A writer that panicked left a whole map behind (the write is one assignment).
        *self
            .rows
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = rows;
    }

    fn read(&self) -> RwLockReadGuard<'_, BTreeMap<String, V>> {
        self.rows
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
