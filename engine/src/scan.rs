//! Reading a collection's items without a query: every live item in one pass (small
//! internal collections loaded at start), and paging through items in id order
//! (`scroll`, for browsing a collection and for exports).

use std::collections::BinaryHeap;

use crate::collection::Collection;
use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::types::StoredItem;

/// The most items one scroll page may return.
pub const MAX_SCROLL_LIMIT: usize = 1_000;

impl Collection {
    /// Every live item as `(id, payload)`, vectors left out. Holds the state read lock
    /// for the whole pass: meant for small collections, not for user data.
    pub fn scan_payloads(&self) -> Result<Vec<(String, serde_json::Value)>> {
        self.check_open()?;
        let st = self.state.read();
        let mut out = Vec::with_capacity(st.locations.len());
        for src in st.sources() {
            let allowed = src.allowed(None);
            for row in 0..src.rows() {
                if allowed.as_ref().is_none_or(|b| b.get(row)) {
                    out.push((src.ids()[row].clone(), src.payloads()[row].clone()));
                }
            }
        }
        Ok(out)
    }

    /// One page of live items in id order: the first `limit` (1 to [`MAX_SCROLL_LIMIT`])
    /// whose id is greater than `after` ("" = from the start) and which match `filter`.
    /// Returns the items and the id to pass as `after` for the next page (`None` when
    /// this page reached the end). One pass over the matching rows, keeping the `limit`
    /// smallest ids (O(n log limit)); pages stay consistent under concurrent writes in
    /// the sense that an id is never returned twice and an item present for the whole
    /// scroll is returned once.
    pub fn scroll(
        &self,
        filter: Option<&Filter>,
        after: &str,
        limit: usize,
        with_vectors: bool,
    ) -> Result<(Vec<StoredItem>, Option<String>)> {
        self.check_open()?;
        if limit == 0 || limit > MAX_SCROLL_LIMIT {
            return Err(Error::InvalidArgument(format!(
                "scroll limit must be between 1 and {MAX_SCROLL_LIMIT}, got {limit}"
            )));
        }
        let st = self.state.read();
        // A max-heap of the smallest `limit + 1` ids seen (one extra tells whether more follow).
        let mut heap: BinaryHeap<&str> = BinaryHeap::with_capacity(limit + 2);
        let sources = st.sources();
        for src in &sources {
            let allowed = src.allowed(filter);
            for (row, id) in src.ids().iter().enumerate() {
                if id.as_str() <= after || !allowed.as_ref().is_none_or(|b| b.get(row)) {
                    continue;
                }
                // A row is live when the id's location is this row (rows replaced later
                // are marked deleted, but check the map as the single truth).
                if st.locations.get(id) != Some(&(src.id(), row as u32)) {
                    continue;
                }
                if heap.len() <= limit {
                    heap.push(id);
                } else if heap.peek().is_some_and(|top| id.as_str() < *top) {
                    heap.pop();
                    heap.push(id);
                }
            }
        }
        let mut ids: Vec<String> = heap.into_sorted_vec().into_iter().map(String::from).collect();
        let more = ids.len() > limit;
        ids.truncate(limit);
        drop(sources);
        drop(st);
        let items = self.get(&ids, with_vectors)?;
        let next = if more { ids.last().cloned() } else { None };
        Ok((items, next))
    }
}
