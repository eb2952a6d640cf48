//! AgentDB orchestration: agents as tenants, workflows, the event bus, the A2A protocol
//! and security policy. Filled by the orchestration and security issues; the server
//! currently talks to the engine directly.
