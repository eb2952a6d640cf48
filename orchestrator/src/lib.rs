//! AgentDB orchestration and policy: who may do what (API keys, roles, the audit
//! log), and later agents, workflows, the event bus and A2A (orchestration issue).
//! Transport-free: the server extracts credentials and calls in here.

pub mod security;
