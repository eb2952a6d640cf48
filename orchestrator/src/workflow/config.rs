//! The `[workflows]` section of the server's configuration.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::PathBuf;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkflowsConfig {
    /// Runs executing at once; the rest wait in the fair queue.
    pub max_concurrent_runs: usize,
    /// Runs waiting at most; more are refused (RESOURCE_EXHAUSTED).
    pub max_queued_runs: usize,
    /// Finished runs kept for `workflow status` (the oldest are deleted).
    pub keep_finished_runs: usize,
    /// Folders on the server that `ingest` steps and A2A folder ingests may read files
    /// from (empty: `path` is refused). A list, or one comma-separated string (`--set`).
    #[serde(deserialize_with = "path_list")]
    pub ingest_dirs: Vec<PathBuf>,
    /// How often a `call_agent` step polls the agent's task.
    pub a2a_poll_interval_ms: u64,
    /// Weight per agent in the fair queue (default 1): an agent with weight 3 gets three
    /// run slots for each one of an agent with weight 1 when both have runs waiting.
    pub agent_weights: HashMap<String, u32>,
    /// The bearer token `call_agent` sends to an agent, per agent name: `env:VAR` (an
    /// environment variable of the server) or `file:/path` (its first line). Agents not
    /// named here are called without credentials.
    pub agent_credentials: HashMap<String, String>,
}

impl Default for WorkflowsConfig {
    fn default() -> Self {
        WorkflowsConfig {
            max_concurrent_runs: 8,
            max_queued_runs: 10_000,
            keep_finished_runs: 1000,
            ingest_dirs: Vec::new(),
            a2a_poll_interval_ms: 250,
            agent_weights: HashMap::new(),
            agent_credentials: HashMap::new(),
        }
    }
}

/// A list of paths, given as an array or as one comma-separated string (what `--set
/// key=a,b` and environment variables produce).
fn path_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<PathBuf>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<PathBuf>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => s.split(',').map(str::trim).filter(|p| !p.is_empty()).map(PathBuf::from).collect(),
        OneOrMany::Many(v) => v,
    })
}
