//! The agent registry: agent cards, lifecycle states, heartbeats and health.
//!
//! Agents are records of the internal collection `_agents` (id = agent name, payload =
//! card + state), so registrations and state changes are WAL-logged like any write.
//! Heartbeats are kept in memory only (one fsync per heartbeat would be costly and
//! they carry no state worth keeping): after a restart every agent counts as having
//! just sent one, so it gets a full timeout before it can be reported unhealthy.

use crate::bus::{Bus, Topic};
use crate::{Error, Result};
use agentdb_engine::Database;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

pub const COLLECTION: &str = "_agents";
/// Longest agent name: `agent_<name>_memory` must stay a valid collection name.
pub const MAX_NAME_LEN: usize = 100;

/// The per-agent memory collection (names may not contain '.', so `agent_<name>_memory`).
pub fn memory_collection(agent: &str) -> String {
    format!("agent_{agent}_memory")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentState {
    Registered,
    Active,
    Suspended,
    Retired,
}

impl AgentState {
    pub fn as_str(self) -> &'static str {
        match self {
            AgentState::Registered => "registered",
            AgentState::Active => "active",
            AgentState::Suspended => "suspended",
            AgentState::Retired => "retired",
        }
    }

    pub fn parse(s: &str) -> Result<AgentState> {
        match s {
            "registered" => Ok(AgentState::Registered),
            "active" => Ok(AgentState::Active),
            "suspended" => Ok(AgentState::Suspended),
            "retired" => Ok(AgentState::Retired),
            other => {
                Err(Error::Invalid(format!("unknown agent state '{other}' (registered, active, suspended or retired)")))
            }
        }
    }

    /// The lifecycle: registered → active ⇄ suspended, and any of them → retired
    /// (terminal).
    pub fn can_move_to(self, to: AgentState) -> bool {
        use AgentState::*;
        matches!(
            (self, to),
            (Registered, Active)
                | (Active, Suspended)
                | (Suspended, Active)
                | (Registered | Active | Suspended, Retired)
        )
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Skill {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// What an agent says about itself (modelled on the A2A agent card).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentCard {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub skills: Vec<Skill>,
    #[serde(default)]
    pub capabilities: Vec<String>,
    #[serde(default)]
    pub endpoint: String,
}

/// The durable part of an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentRecord {
    pub card: AgentCard,
    pub state: AgentState,
    pub registered_unix_ms: u64,
    pub updated_unix_ms: u64,
    /// Missing heartbeats for this long makes an active agent unhealthy.
    pub heartbeat_timeout_ms: u64,
    /// The agent's memory collection ("" = none).
    #[serde(default)]
    pub memory_collection: String,
}

/// An agent as reported: the record plus in-memory liveness.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentInfo {
    #[serde(flatten)]
    pub record: AgentRecord,
    pub healthy: bool,
    pub last_heartbeat_unix_ms: u64,
}

struct Agent {
    record: AgentRecord,
    last_heartbeat_ms: u64,
    healthy: bool,
}

impl Agent {
    fn info(&self) -> AgentInfo {
        AgentInfo { record: self.record.clone(), healthy: self.healthy, last_heartbeat_unix_ms: self.last_heartbeat_ms }
    }
}

pub struct Registry {
    col: crate::Internal,
    bus: Arc<Bus>,
    default_timeout_ms: u64,
    agents: Mutex<BTreeMap<String, Agent>>,
}

pub fn validate_agent_name(name: &str) -> Result<()> {
    if name.len() > MAX_NAME_LEN {
        return Err(Error::Invalid(format!("agent name must be at most {MAX_NAME_LEN} characters")));
    }
    agentdb_engine::types::validate_name("agent", name).map_err(|e| Error::Invalid(e.to_string()))
}

impl Registry {
    /// Load every agent from `_agents` (creating it on first use).
    pub fn open(db: Arc<Database>, bus: Arc<Bus>, default_timeout_ms: u64) -> Result<Registry> {
        let col = crate::Internal::open(db, COLLECTION);
        let now = crate::now_ms();
        let mut agents = BTreeMap::new();
        for (id, payload) in col.scan()? {
            let record: AgentRecord = serde_json::from_value(payload)
                .map_err(|e| Error::Invalid(format!("agent record '{id}' is unreadable: {e}")))?;
            agents.insert(id, Agent { record, last_heartbeat_ms: now, healthy: true });
        }
        tracing::info!(agents = agents.len(), "agent registry loaded");
        Ok(Registry { col, bus, default_timeout_ms: default_timeout_ms.max(1), agents: Mutex::new(agents) })
    }

    fn persist(&self, r: &AgentRecord) -> Result<()> {
        let payload = serde_json::to_value(r).expect("serialisable");
        self.col.upsert(vec![crate::record(r.card.name.clone(), payload)])?;
        Ok(())
    }

    /// Register an agent, or update the card of one already registered (keeping its
    /// state). Returns the agent and whether it is new. A retired agent's name is not
    /// reused (FAILED_PRECONDITION).
    pub fn register(
        &self,
        card: AgentCard,
        heartbeat_timeout_ms: u64,
        memory_collection: String,
    ) -> Result<(AgentInfo, bool)> {
        validate_agent_name(&card.name)?;
        let now = crate::now_ms();
        let timeout = if heartbeat_timeout_ms == 0 { self.default_timeout_ms } else { heartbeat_timeout_ms };
        let mut agents = self.agents.lock();
        if let Some(a) = agents.get_mut(&card.name) {
            if a.record.state == AgentState::Retired {
                return Err(Error::FailedPrecondition(format!(
                    "agent '{}' is retired; a retired agent's name is not reused",
                    card.name
                )));
            }
            let mut r = a.record.clone();
            r.card = card;
            r.heartbeat_timeout_ms = timeout;
            r.updated_unix_ms = now;
            if !memory_collection.is_empty() {
                r.memory_collection = memory_collection;
            }
            self.persist(&r)?;
            a.record = r;
            let info = a.info();
            drop(agents);
            self.bus.publish(
                Topic::AgentLifecycle,
                "agent.updated",
                &info.record.card.name,
                serde_json::json!({ "state": info.record.state.as_str(), "version": info.record.card.version }),
            );
            return Ok((info, false));
        }
        let record = AgentRecord {
            card,
            state: AgentState::Registered,
            registered_unix_ms: now,
            updated_unix_ms: now,
            heartbeat_timeout_ms: timeout,
            memory_collection,
        };
        self.persist(&record)?;
        let name = record.card.name.clone();
        let a = Agent { record, last_heartbeat_ms: now, healthy: true };
        let info = a.info();
        agents.insert(name.clone(), a);
        drop(agents);
        self.bus.publish(
            Topic::AgentLifecycle,
            "agent.registered",
            &name,
            serde_json::json!({ "state": "registered", "version": info.record.card.version, "memory_collection": info.record.memory_collection }),
        );
        Ok((info, true))
    }

    pub fn get(&self, name: &str) -> Result<AgentInfo> {
        self.agents
            .lock()
            .get(name)
            .map(Agent::info)
            .ok_or_else(|| Error::NotFound(format!("agent '{name}' not found")))
    }

    /// Every agent, optionally only those in `state`.
    pub fn list(&self, state: Option<AgentState>) -> Vec<AgentInfo> {
        self.agents.lock().values().filter(|a| state.is_none_or(|s| a.record.state == s)).map(Agent::info).collect()
    }

    /// Move an agent to `to`; an illegal move is FAILED_PRECONDITION naming both states.
    pub fn transition(&self, name: &str, to: AgentState, reason: &str) -> Result<AgentInfo> {
        let mut agents = self.agents.lock();
        let a = agents.get_mut(name).ok_or_else(|| Error::NotFound(format!("agent '{name}' not found")))?;
        let from = a.record.state;
        if !from.can_move_to(to) {
            return Err(Error::FailedPrecondition(format!(
                "agent '{name}' cannot go from {} to {}",
                from.as_str(),
                to.as_str()
            )));
        }
        let mut r = a.record.clone();
        r.state = to;
        r.updated_unix_ms = crate::now_ms();
        self.persist(&r)?;
        a.record = r;
        if to == AgentState::Active {
            // Re-activation starts a fresh heartbeat window.
            a.last_heartbeat_ms = crate::now_ms();
            a.healthy = true;
        }
        let info = a.info();
        drop(agents);
        self.bus.publish(
            Topic::AgentLifecycle,
            "agent.state_changed",
            name,
            serde_json::json!({ "from": from.as_str(), "to": to.as_str(), "reason": reason }),
        );
        Ok(info)
    }

    /// Record a heartbeat. A registered agent becomes active on its first heartbeat; an
    /// unhealthy one becomes healthy again (an `agent_health` event). Retired agents
    /// cannot heartbeat (FAILED_PRECONDITION).
    pub fn heartbeat(&self, name: &str) -> Result<AgentInfo> {
        let now = crate::now_ms();
        let state = {
            let mut agents = self.agents.lock();
            let a = agents.get_mut(name).ok_or_else(|| Error::NotFound(format!("agent '{name}' not found")))?;
            if a.record.state == AgentState::Retired {
                return Err(Error::FailedPrecondition(format!("agent '{name}' is retired and cannot heartbeat")));
            }
            a.last_heartbeat_ms = now;
            let recovered = !a.healthy;
            a.healthy = true;
            if recovered {
                self.bus.publish(
                    Topic::AgentHealth,
                    "agent.healthy",
                    name,
                    serde_json::json!({ "healthy": true, "last_heartbeat_unix_ms": now }),
                );
            }
            a.record.state
        };
        if state == AgentState::Registered {
            // First heartbeat: registered → active (racing callers may both try; one wins).
            match self.transition(name, AgentState::Active, "first heartbeat") {
                Ok(info) => return Ok(info),
                Err(Error::FailedPrecondition(_)) => {}
                Err(e) => return Err(e),
            }
        }
        self.get(name)
    }

    /// Mark active agents whose last heartbeat is older than their timeout as
    /// unhealthy, publishing one `agent_health` event each. Returns how many changed.
    pub fn check_health(&self, now: u64) -> usize {
        let mut agents = self.agents.lock();
        let mut n = 0;
        for (name, a) in agents.iter_mut() {
            if a.record.state != AgentState::Active || !a.healthy {
                continue;
            }
            let silent = now.saturating_sub(a.last_heartbeat_ms);
            if silent > a.record.heartbeat_timeout_ms {
                a.healthy = false;
                n += 1;
                tracing::warn!(agent = %name, silent_ms = silent, "agent missed its heartbeats: unhealthy");
                self.bus.publish(
                    Topic::AgentHealth,
                    "agent.unhealthy",
                    name,
                    serde_json::json!({
                        "healthy": false,
                        "last_heartbeat_unix_ms": a.last_heartbeat_ms,
                        "silent_ms": silent,
                        "heartbeat_timeout_ms": a.record.heartbeat_timeout_ms,
                    }),
                );
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::Read;

    fn card(name: &str) -> AgentCard {
        AgentCard {
            name: name.into(),
            description: "test agent".into(),
            version: "1.0".into(),
            skills: vec![Skill { id: "s".into(), name: "search".into(), ..Default::default() }],
            capabilities: vec!["streaming".into()],
            endpoint: "http://127.0.0.1:9".into(),
        }
    }

    fn kinds(bus: &Bus, topic: Topic) -> Vec<String> {
        match bus.read(&[topic], 0, 1000) {
            Read::Events(v) => v.iter().map(|e| e.kind.clone()).collect(),
            Read::Lagged { .. } => panic!("lagged"),
        }
    }

    #[test]
    fn lifecycle_transitions() {
        use AgentState::*;
        let all = [Registered, Active, Suspended, Retired];
        let allowed: Vec<(AgentState, AgentState)> =
            all.iter().flat_map(|a| all.iter().map(move |b| (*a, *b))).filter(|(a, b)| a.can_move_to(*b)).collect();
        assert_eq!(
            allowed,
            vec![
                (Registered, Active),
                (Registered, Retired),
                (Active, Suspended),
                (Active, Retired),
                (Suspended, Active),
                (Suspended, Retired)
            ]
        );
        for s in all {
            assert_eq!(AgentState::parse(s.as_str()).unwrap(), s);
        }
    }

    #[test]
    fn register_heartbeat_health_and_transitions() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path(), Default::default()).unwrap();
        let bus = Arc::new(Bus::new(100));
        let reg = Registry::open(db.clone(), bus.clone(), 1000).unwrap();
        let (info, created) = reg.register(card("a1"), 0, memory_collection("a1")).unwrap();
        assert!(created);
        assert_eq!((info.record.state, info.record.heartbeat_timeout_ms), (AgentState::Registered, 1000));
        assert_eq!(info.record.memory_collection, "agent_a1_memory");
        assert!(matches!(reg.register(card("bad.name"), 0, String::new()), Err(Error::Invalid(_))));
        // Registered agents are not health-checked; the first heartbeat activates.
        assert_eq!(reg.check_health(crate::now_ms() + 10_000), 0);
        assert_eq!(reg.heartbeat("a1").unwrap().record.state, AgentState::Active);
        let t = crate::now_ms();
        assert_eq!(reg.check_health(t + 500), 0);
        assert_eq!(reg.check_health(t + 5_000), 1);
        assert!(!reg.get("a1").unwrap().healthy);
        assert_eq!(reg.check_health(t + 6_000), 0, "one event per transition");
        assert!(reg.heartbeat("a1").unwrap().healthy);
        assert_eq!(kinds(&bus, Topic::AgentHealth), vec!["agent.unhealthy", "agent.healthy"]);
        // Lifecycle: suspend, illegal suspend again, retire, nothing after retired.
        reg.transition("a1", AgentState::Suspended, "test").unwrap();
        match reg.transition("a1", AgentState::Suspended, "again") {
            Err(Error::FailedPrecondition(m)) => assert!(m.contains("suspended to suspended"), "{m}"),
            other => panic!("{other:?}"),
        }
        reg.transition("a1", AgentState::Retired, "done").unwrap();
        match reg.transition("a1", AgentState::Active, "revive") {
            Err(Error::FailedPrecondition(m)) => assert!(m.contains("from retired to active"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(reg.heartbeat("a1"), Err(Error::FailedPrecondition(_))));
        assert!(matches!(reg.register(card("a1"), 0, String::new()), Err(Error::FailedPrecondition(_))));
        assert!(matches!(reg.heartbeat("nobody"), Err(Error::NotFound(_))));
        assert_eq!(
            kinds(&bus, Topic::AgentLifecycle),
            vec!["agent.registered", "agent.state_changed", "agent.state_changed", "agent.state_changed"]
        );
    }

    #[test]
    fn agents_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = Database::open(dir.path(), Default::default()).unwrap();
            let reg = Registry::open(db.clone(), Arc::new(Bus::new(10)), 1000).unwrap();
            reg.register(card("a"), 0, String::new()).unwrap();
            reg.register(card("b"), 5000, String::new()).unwrap();
            reg.transition("b", AgentState::Retired, "").unwrap();
            let mut c2 = card("a");
            c2.version = "2.0".into();
            assert!(!reg.register(c2, 0, String::new()).unwrap().1, "re-registering updates");
        }
        let db = Database::open(dir.path(), Default::default()).unwrap();
        let reg = Registry::open(db.clone(), Arc::new(Bus::new(10)), 1000).unwrap();
        let a = reg.get("a").unwrap();
        assert_eq!((a.record.state, a.record.card.version.as_str()), (AgentState::Registered, "2.0"));
        assert_eq!(a.record.card.skills[0].name, "search");
        let b = reg.get("b").unwrap();
        assert_eq!((b.record.state, b.record.heartbeat_timeout_ms), (AgentState::Retired, 5000));
        assert_eq!(reg.list(Some(AgentState::Retired)).len(), 1);
    }
}
