//! The content keys the writers of this process are writing, so that a new row another
//! writer's page is inserting is merged instead of COPYed into a unique violation.

/// Hashed with foldhash (SipHash showed in profiles).
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// The content keys (hashed) of the pages this sink's writers are writing. Two writers'
/// pages often share a key: an update follows its post within a few pages. A new row's
/// COPY into `content` meeting a key another writer's page has just inserted would wait for
/// that page and then fail, and the whole page would be merged again; so an absent row
/// whose key is in another page being written is merged from the start. A hash collision
/// only merges a row that could have been copied. Keys of writers in other processes are
/// not here: their rare collisions take the fallback ([`PgWriter::write`]).
#[derive(Debug, Default)]
pub(super) struct InFlight(std::sync::Mutex<HashMap<u64, u32>>);

impl InFlight {
    /// Registers a page's keys until the returned guard drops (after its commit, or its
    /// failure), and tells which of them another page being written holds *now*. That must
    /// be decided before the first phase asks the store: a page that leaves later committed
    /// before the question, and the store answers for it; a page that enters later sees
    /// this one's keys.
    pub(super) fn enter<'a>(&'a self, keys: &'a [u64]) -> (InFlightPage<'a>, Vec<bool>) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let shared = keys
            .iter()
            .map(|k| {
                let n = map.entry(*k).or_default();
                *n += 1;
                *n > 1
            })
            .collect();
        (InFlightPage { set: self, keys }, shared)
    }
}

/// A page's keys in [`InFlight`], removed on drop.
pub(super) struct InFlightPage<'a> {
    pub(super) set: &'a InFlight,
    pub(super) keys: &'a [u64],
}

impl Drop for InFlightPage<'_> {
    fn drop(&mut self) {
        let mut map = self.set.0.lock().unwrap_or_else(|e| e.into_inner());
        for k in self.keys {
            if let Some(n) = map.get_mut(k) {
                *n -= 1;
                if *n == 0 {
                    map.remove(k);
                }
            }
        }
    }
}
