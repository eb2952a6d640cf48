//! `agentdb agent|queue|events`: the agent registry, queues, standing queries and the
//! event bus from the command line (gRPC clients of a running server).

use agentdb_proto::v1;

use clap::{Args, Subcommand};

#[derive(Subcommand)]
pub enum AgentCmd {
    /// Register an agent (or update the card of a registered one).
    Register {
        name: String,
        #[arg(long, default_value = "")]
        description: String,
        #[arg(long = "agent-version", default_value = "")]
        version: String,
        /// A skill ID[:NAME[:DESCRIPTION]] (repeatable).
        #[arg(long = "skill")]
        skills: Vec<String>,
        /// A capability, e.g. streaming (repeatable).
        #[arg(long = "capability")]
        capabilities: Vec<String>,
        #[arg(long, default_value = "")]
        endpoint: String,
        /// Heartbeat timeout in ms (0 = the server's orchestration.heartbeat_timeout_ms).
        #[arg(long, default_value_t = 0)]
        heartbeat_timeout_ms: u64,
        /// Memory collection space NAME:DIM[:METRIC[:INDEX]] (repeatable; default: the installed encoders' spaces).
        #[arg(long = "memory-space")]
        memory_spaces: Vec<String>,
        /// Do not create a memory collection.
        #[arg(long)]
        no_memory: bool,
        #[arg(long)]
        json: bool,
    },
    /// List agents.
    List {
        /// Only agents in this state.
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Show one agent.
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Activate a registered or suspended agent.
    Activate {
        name: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Suspend an active agent.
    Suspend {
        name: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Retire an agent (final).
    Retire {
        name: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Send a heartbeat (the first one activates a registered agent).
    Heartbeat { name: String },
    /// Create a standing query: every item later written to COLLECTION that matches
    /// publishes a `standing_query` event (id: AGENT.NAME).
    Watch {
        agent: String,
        name: String,
        collection: String,
        /// Query text, embedded once by the space's text encoder.
        #[arg(long, conflicts_with = "vector", required_unless_present = "vector")]
        text: Option<String>,
        /// Query vector as a JSON array, e.g. '[0.1, 0.2]'.
        #[arg(long)]
        vector: Option<String>,
        /// The space to match in (default: the first text space for --text, the only
        /// space or the first of the vector's dimension for --vector).
        #[arg(long, default_value = "")]
        space: String,
        /// Payload filter expression, as `search --filter`.
        #[arg(long, default_value = "")]
        filter: String,
        /// Lowest similarity (cosine, ip) or largest squared distance (l2) that matches.
        #[arg(long, allow_negative_numbers = true)]
        threshold: f32,
        #[arg(long)]
        json: bool,
    },
    /// List standing queries (of AGENT, or all).
    Watches {
        agent: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Delete a standing query by id (AGENT.NAME).
    Unwatch { id: String },
}

#[derive(Subcommand)]
pub enum QueueCmd {
    /// Create a queue (and NAME.dlq when --max-attempts > 0).
    Create {
        name: String,
        /// Deliveries before a message moves to NAME.dlq (0 = never; default: the server's).
        #[arg(long)]
        max_attempts: Option<u32>,
        #[arg(long, default_value_t = 0)]
        visibility_timeout_ms: u64,
        #[arg(long, default_value_t = 0)]
        max_messages: u64,
    },
    /// Send a message (BODY as UTF-8 text).
    Send {
        queue: String,
        body: String,
        /// Attribute KEY=VALUE (repeatable).
        #[arg(long = "attr")]
        attributes: Vec<String>,
    },
    /// Receive messages: one JSON line each, with the receipt to ack.
    Receive {
        queue: String,
        #[arg(long, default_value_t = 1)]
        max: u32,
        #[arg(long, default_value_t = 0)]
        visibility_timeout_ms: u64,
        /// Wait up to this long for a message.
        #[arg(long, default_value_t = 0)]
        wait_ms: u64,
    },
    /// Acknowledge a received message.
    Ack { queue: String, receipt: String },
    /// Queue statistics (all queues without NAME).
    Stats {
        name: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
pub struct EventsArgs {
    /// Topic to follow (repeatable; default all).
    #[arg(long = "topic")]
    topics: Vec<String>,
    /// Start at this offset (default: only new events).
    #[arg(long = "from")]
    from: Option<u64>,
    /// Exit after this many events.
    #[arg(long)]
    limit: Option<u64>,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

pub enum Cli {
    Agent(AgentCmd),
    Queue(QueueCmd),
    Events(EventsArgs),
}

fn agent_json(a: &v1::AgentInfo) -> serde_json::Value {
    let c = a.card.clone().unwrap_or_default();
    serde_json::json!({
        "name": c.name, "description": c.description, "version": c.version, "endpoint": c.endpoint,
        "skills": c.skills.iter().map(|s| serde_json::json!({"id": s.id, "name": s.name, "description": s.description, "tags": s.tags})).collect::<Vec<_>>(),
        "capabilities": c.capabilities, "state": a.state, "healthy": a.healthy,
        "registered_unix_ms": a.registered_unix_ms, "updated_unix_ms": a.updated_unix_ms,
        "last_heartbeat_unix_ms": a.last_heartbeat_unix_ms, "heartbeat_timeout_ms": a.heartbeat_timeout_ms,
        "memory_collection": a.memory_collection,
    })
}

fn print_agent(a: &v1::AgentInfo, json: bool) {
    if json {
        println!("{}", agent_json(a));
    } else {
        let c = a.card.clone().unwrap_or_default();
        println!(
            "{}\t{}\t{}\tversion={}\tmemory={}\tendpoint={}",
            c.name,
            a.state,
            if a.healthy { "healthy" } else { "UNHEALTHY" },
            c.version,
            if a.memory_collection.is_empty() { "-" } else { &a.memory_collection },
            c.endpoint
        );
    }
}

fn print_standing(q: &v1::StandingQuery, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::json!({
                "id": q.id, "agent": q.agent, "name": q.name, "collection": q.collection, "space": q.space,
                "metric": q.metric, "dim": q.dim, "text": q.text, "filter": q.filter, "threshold": q.threshold,
                "created_unix_ms": q.created_unix_ms,
            })
        );
    } else {
        println!(
            "{}\t{}\tspace={}\t{}\tthreshold={}\tfilter={}\t{}",
            q.id,
            q.collection,
            q.space,
            q.metric,
            q.threshold,
            if q.filter.is_empty() { "-" } else { &q.filter },
            if q.text.is_empty() { format!("vector[{}]", q.dim) } else { format!("text={:?}", q.text) }
        );
    }
}

fn queue_json(q: &v1::QueueStats) -> serde_json::Value {
    serde_json::json!({
        "name": q.name, "messages": q.messages, "ready": q.ready, "in_flight": q.in_flight,
        "max_attempts": q.max_attempts, "visibility_timeout_ms": q.visibility_timeout_ms,
        "max_messages": q.max_messages, "dead_letter_queue": q.dead_letter_queue,
        "oldest_sent_unix_ms": q.oldest_sent_unix_ms, "created_unix_ms": q.created_unix_ms,
    })
}

pub fn cli(server: &str, cmd: Cli) -> anyhow::Result<()> {
    use crate::client::status_err;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        let ch = crate::client::connect(server).await?;
        match cmd {
            Cli::Agent(c) => {
                let mut sq = v1::standing_queries_client::StandingQueriesClient::new(ch.clone());
                let mut a = v1::agents_client::AgentsClient::new(ch);
                match c {
                    AgentCmd::Register {
                        name,
                        description,
                        version,
                        skills,
                        capabilities,
                        endpoint,
                        heartbeat_timeout_ms,
                        memory_spaces,
                        no_memory,
                        json,
                    } => {
                        let skills = skills
                            .iter()
                            .map(|s| {
                                let mut p = s.splitn(3, ':');
                                let id = p.next().unwrap_or_default().to_string();
                                let name = p.next().map(str::to_string).unwrap_or_else(|| id.clone());
                                let description = p.next().unwrap_or_default().to_string();
                                v1::AgentSkill { id, name, description, tags: vec![] }
                            })
                            .collect();
                        let memory_spaces = memory_spaces.iter().map(|s| parse_space(s)).collect::<Result<_, _>>()?;
                        let r = a
                            .register(v1::RegisterAgentRequest {
                                card: Some(v1::AgentCard { name, description, version, skills, capabilities, endpoint }),
                                heartbeat_timeout_ms,
                                memory_spaces,
                                no_memory,
                            })
                            .await
                            .map_err(status_err)?
                            .into_inner();
                        let info = r.agent.unwrap_or_default();
                        if json {
                            let mut v = agent_json(&info);
                            v["created"] = r.created.into();
                            println!("{v}");
                        } else {
                            print!("{} ", if r.created { "registered" } else { "updated" });
                            print_agent(&info, false);
                        }
                    }
                    AgentCmd::List { state, json } => {
                        let r = a
                            .list(v1::ListAgentsRequest { state: state.unwrap_or_default() })
                            .await
                            .map_err(status_err)?;
                        for ag in &r.into_inner().agents {
                            print_agent(ag, json);
                        }
                    }
                    AgentCmd::Show { name, json } => {
                        let r = a.get(v1::GetAgentRequest { name }).await.map_err(status_err)?.into_inner();
                        let info = r.agent.unwrap_or_default();
                        if json {
                            println!("{}", agent_json(&info));
                        } else {
                            println!("{}", serde_json::to_string_pretty(&agent_json(&info))?);
                        }
                    }
                    AgentCmd::Activate { name, reason } => set_state(&mut a, name, "active", reason).await?,
                    AgentCmd::Suspend { name, reason } => set_state(&mut a, name, "suspended", reason).await?,
                    AgentCmd::Retire { name, reason } => set_state(&mut a, name, "retired", reason).await?,
                    AgentCmd::Heartbeat { name } => {
                        let r = a.heartbeat(v1::AgentHeartbeatRequest { name }).await.map_err(status_err)?;
                        print_agent(&r.into_inner().agent.unwrap_or_default(), false);
                    }
                    AgentCmd::Watch { agent, name, collection, text, vector, space, filter, threshold, json } => {
                        use v1::create_standing_query_request::Query;
                        let query = match (text, vector) {
                            (Some(t), _) => Query::Text(t),
                            (None, Some(v)) => Query::Vector(v1::Vector {
                                values: serde_json::from_str(&v)
                                    .map_err(|e| anyhow::anyhow!("--vector wants a JSON array of numbers: {e}"))?,
                                ..Default::default()
                            }),
                            (None, None) => anyhow::bail!("give --text or --vector"),
                        };
                        let r = sq
                            .create(v1::CreateStandingQueryRequest {
                                agent,
                                name,
                                collection,
                                space,
                                query: Some(query),
                                filter,
                                threshold,
                            })
                            .await
                            .map_err(status_err)?
                            .into_inner();
                        print_standing(&r.query.unwrap_or_default(), json);
                    }
                    AgentCmd::Watches { agent, json } => {
                        let r = sq
                            .list(v1::ListStandingQueriesRequest { agent: agent.unwrap_or_default() })
                            .await
                            .map_err(status_err)?
                            .into_inner();
                        for q in &r.queries {
                            print_standing(q, json);
                        }
                        if r.dropped_evaluations > 0 {
                            eprintln!("{} write batches were not evaluated (queue full)", r.dropped_evaluations);
                        }
                    }
                    AgentCmd::Unwatch { id } => {
                        let r = sq.delete(v1::DeleteStandingQueryRequest { id }).await.map_err(status_err)?;
                        println!("deleted standing query {}", r.into_inner().query.unwrap_or_default().id);
                    }
                }
            }
            Cli::Queue(c) => {
                let mut q = v1::queues_client::QueuesClient::new(ch);
                match c {
                    QueueCmd::Create { name, max_attempts, visibility_timeout_ms, max_messages } => {
                        let r = q
                            .create(v1::CreateQueueRequest { name, max_attempts, visibility_timeout_ms, max_messages })
                            .await
                            .map_err(status_err)?
                            .into_inner();
                        let s = r.queue.unwrap_or_default();
                        println!(
                            "{} queue {} (max_attempts {}, visibility_timeout_ms {}{})",
                            if r.created { "created" } else { "exists:" },
                            s.name,
                            s.max_attempts,
                            s.visibility_timeout_ms,
                            if s.dead_letter_queue.is_empty() {
                                String::new()
                            } else {
                                format!(", dead letters to {}", s.dead_letter_queue)
                            }
                        );
                    }
                    QueueCmd::Send { queue, body, attributes } => {
                        let mut attrs = std::collections::HashMap::new();
                        for a in attributes {
                            let (k, v) = a.split_once('=').ok_or_else(|| anyhow::anyhow!("--attr wants KEY=VALUE"))?;
                            attrs.insert(k.to_string(), v.to_string());
                        }
                        let r = q
                            .send(v1::SendMessageRequest { queue, body: body.into_bytes(), attributes: attrs })
                            .await
                            .map_err(status_err)?;
                        println!("{}", r.into_inner().id);
                    }
                    QueueCmd::Receive { queue, max, visibility_timeout_ms, wait_ms } => {
                        let r = q
                            .receive(v1::ReceiveMessagesRequest {
                                queue,
                                max_messages: max,
                                visibility_timeout_ms,
                                wait_ms,
                            })
                            .await
                            .map_err(status_err)?;
                        for m in r.into_inner().messages {
                            println!(
                                "{}",
                                serde_json::json!({"id": m.id, "body": String::from_utf8_lossy(&m.body), "attempt": m.attempt,
                                    "receipt": m.receipt, "attributes": m.attributes, "sent_unix_ms": m.sent_unix_ms,
                                    "invisible_until_unix_ms": m.invisible_until_unix_ms})
                            );
                        }
                    }
                    QueueCmd::Ack { queue, receipt } => {
                        q.ack(v1::AckMessageRequest { queue, receipt: receipt.clone() }).await.map_err(status_err)?;
                        println!("acked {receipt}");
                    }
                    QueueCmd::Stats { name, json } => {
                        let r = q
                            .stats(v1::QueueStatsRequest { name: name.unwrap_or_default() })
                            .await
                            .map_err(status_err)?;
                        for s in r.into_inner().queues {
                            if json {
                                println!("{}", queue_json(&s));
                            } else {
                                println!(
                                    "{}\tmessages={}\tready={}\tin_flight={}\tmax_attempts={}\tvisibility_timeout_ms={}",
                                    s.name, s.messages, s.ready, s.in_flight, s.max_attempts, s.visibility_timeout_ms
                                );
                            }
                        }
                    }
                }
            }
            Cli::Events(a) => {
                let mut e = v1::events_client::EventsClient::new(ch);
                let mut stream = e
                    .subscribe(v1::SubscribeRequest { topics: a.topics, from_offset: a.from })
                    .await
                    .map_err(status_err)?
                    .into_inner();
                let mut n = 0;
                while a.limit.is_none_or(|l| n < l) {
                    let Some(m) = stream.message().await.map_err(status_err)? else { break };
                    match m.msg {
                        Some(v1::subscribe_response::Msg::Event(ev)) => {
                            n += 1;
                            if a.json {
                                let data: serde_json::Value =
                                    serde_json::from_str(&ev.data_json).unwrap_or(serde_json::Value::Null);
                                println!(
                                    "{}",
                                    serde_json::json!({"offset": ev.offset, "topic": ev.topic, "kind": ev.kind,
                                        "subject": ev.subject, "data": data, "unix_ms": ev.unix_ms})
                                );
                            } else {
                                println!("{}\t{}\t{}\t{}\t{}", ev.offset, ev.topic, ev.kind, ev.subject, ev.data_json);
                            }
                        }
                        Some(v1::subscribe_response::Msg::Lagged(l)) => {
                            if a.json {
                                println!(
                                    "{}",
                                    serde_json::json!({"lagged": {"requested_offset": l.requested_offset,
                                        "first_available_offset": l.first_available_offset}})
                                );
                            } else {
                                eprintln!(
                                    "lagged: events from offset {} are gone; continuing at {}",
                                    l.requested_offset, l.first_available_offset
                                );
                            }
                        }
                        None => {}
                    }
                }
            }
        }
        Ok(())
    })
}

async fn set_state(
    a: &mut v1::agents_client::AgentsClient<crate::client::Ch>,
    name: String,
    state: &str,
    reason: String,
) -> anyhow::Result<()> {
    let r = a
        .set_state(v1::SetAgentStateRequest { name, state: state.into(), reason })
        .await
        .map_err(crate::client::status_err)?;
    print_agent(&r.into_inner().agent.unwrap_or_default(), false);
    Ok(())
}

/// NAME:DIM[:METRIC[:INDEX]], as `agentdb collection create --space`.
fn parse_space(s: &str) -> anyhow::Result<v1::SpaceSpec> {
    let p: Vec<&str> = s.splitn(4, ':').collect();
    if p.len() < 2 {
        anyhow::bail!("--memory-space wants NAME:DIM[:METRIC[:INDEX]], got '{s}'");
    }
    let metric = agentdb_engine::Metric::parse(p.get(2).copied().unwrap_or("cosine"))?;
    Ok(v1::SpaceSpec {
        name: p[0].to_string(),
        dim: p[1].parse().map_err(|_| anyhow::anyhow!("bad dimension in '{s}'"))?,
        metric: agentdb_proto::convert::metric_to_wire(metric) as i32,
        index: p.get(3).copied().unwrap_or(agentdb_engine::DEFAULT_INDEX).to_string(),
        ..Default::default()
    })
}
