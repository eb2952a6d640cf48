//! Reading every live item of a collection in one pass, for small internal
//! collections (the orchestrator's agent registry and message queues) that are
//! loaded into memory when the server starts.

use crate::collection::Collection;
use crate::error::Result;

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
}
