//! `agentdb workflow`: apply, list, show, run, follow and cancel workflows from the
//! command line (a gRPC client of a running server).

use agentdb_orchestrator::now_ms;
use agentdb_orchestrator::time::fmt_ms;
use agentdb_proto::v1;
use serde_json::{json, Map, Value};
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Subcommand, Debug)]
pub enum WorkflowCmd {
    /// Validate and store a definition (a new version when it changed).
    Apply {
        /// The YAML file.
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// The workflows (latest versions).
    List {
        #[arg(long)]
        json: bool,
    },
    /// One workflow's definition.
    Show {
        name: String,
        /// A version (default: the latest).
        #[arg(long, default_value_t = 0)]
        version: u32,
        #[arg(long)]
        json: bool,
    },
    /// Delete a workflow (every version; its runs stay until pruned).
    Delete { name: String },
    /// Start a run.
    Run {
        name: String,
        /// An input, KEY=VALUE (VALUE is JSON when it parses as JSON, else a string); repeatable.
        #[arg(long = "input", short = 'i')]
        inputs: Vec<String>,
        /// A version (default: the latest).
        #[arg(long, default_value_t = 0)]
        version: u32,
        /// Whose fair share the run counts against (default: the definition's agent).
        #[arg(long, default_value = "")]
        agent: String,
        #[arg(long, allow_hyphen_values = true)]
        priority: Option<i32>,
        /// Wait for the run to end and print its status (exit code 1 unless it succeeded).
        #[arg(long)]
        wait: bool,
        #[arg(long)]
        json: bool,
    },
    /// A run's state, steps, attempts and errors.
    Status {
        run: String,
        /// Follow until the run ends.
        #[arg(long)]
        wait: bool,
        #[arg(long)]
        json: bool,
    },
    /// Recent runs (newest first).
    Runs {
        /// Only this workflow's.
        workflow: Option<String>,
        #[arg(long, default_value = "")]
        state: String,
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// Cancel a queued or running run.
    Cancel {
        run: String,
        #[arg(long)]
        json: bool,
    },
}

fn info_json(w: &v1::WorkflowInfo) -> Value {
    json!({
        "name": w.name, "version": w.version, "versions": w.versions, "description": w.description,
        "sha256": w.sha256, "applied_unix_ms": w.applied_unix_ms, "applied_by": w.applied_by,
        "triggers": w.triggers, "steps": w.steps,
    })
}

pub fn run_json(r: &v1::WorkflowRun) -> Value {
    let parse = |s: &str| serde_json::from_str::<Value>(s).unwrap_or(Value::Null);
    json!({
        "id": r.id, "workflow": r.workflow, "version": r.version, "state": r.state, "agent": r.agent,
        "priority": r.priority, "inputs": parse(&r.inputs_json), "trigger": parse(&r.trigger_json),
        "principal": r.principal, "error": r.error, "created_unix_ms": r.created_unix_ms,
        "started_unix_ms": r.started_unix_ms, "finished_unix_ms": r.finished_unix_ms,
        "steps": r.steps.iter().map(|s| json!({
            "id": s.id, "kind": s.kind, "state": s.state, "attempts": s.attempts, "error": s.error,
            "attempt_errors": s.attempt_errors, "output": parse(&s.output_json),
            "started_unix_ms": s.started_unix_ms, "finished_unix_ms": s.finished_unix_ms,
            "next_attempt_unix_ms": s.next_attempt_unix_ms,
        })).collect::<Vec<_>>(),
    })
}

fn print_run(r: &v1::WorkflowRun, json: bool) {
    if json {
        println!("{}", run_json(r));
        return;
    }
    let took = if r.finished_unix_ms > 0 && r.started_unix_ms > 0 {
        format!(" in {}", fmt_ms(r.finished_unix_ms - r.started_unix_ms))
    } else {
        String::new()
    };
    println!(
        "run {}  {} v{}  {}{took}  (agent {}, priority {})",
        r.id, r.workflow, r.version, r.state, r.agent, r.priority
    );
    if !r.error.is_empty() {
        println!("  error: {}", r.error);
    }
    for s in &r.steps {
        let mut line = format!("  {:<20} {:<11} {:<10} attempts {}", s.id, s.kind, s.state, s.attempts);
        if s.next_attempt_unix_ms > 0 {
            let wait = s.next_attempt_unix_ms.saturating_sub(now_ms());
            line.push_str(&format!("  next attempt in {}", fmt_ms(wait)));
        }
        println!("{line}");
        for e in &s.attempt_errors {
            println!("      {e}");
        }
    }
}

pub fn cli(server: &str, cmd: WorkflowCmd) -> anyhow::Result<()> {
    use crate::client::status_err;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        let ch = crate::client::connect(server).await?;
        let mut c = v1::workflows_client::WorkflowsClient::new(ch);
        match cmd {
            WorkflowCmd::Apply { file, json } => {
                let yaml = std::fs::read_to_string(&file)
                    .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
                let r = c.apply(v1::ApplyWorkflowRequest { yaml }).await.map_err(status_err)?.into_inner();
                let w = r.workflow.unwrap_or_default();
                if json {
                    let mut v = info_json(&w);
                    v["changed"] = json!(r.changed);
                    println!("{v}");
                } else if r.changed {
                    println!("workflow {} version {} applied ({} steps)", w.name, w.version, w.steps.len());
                } else {
                    println!("workflow {} unchanged (version {})", w.name, w.version);
                }
            }
            WorkflowCmd::List { json } => {
                let r = c.list(v1::ListWorkflowsRequest {}).await.map_err(status_err)?.into_inner();
                for w in &r.workflows {
                    if json {
                        println!("{}", info_json(w));
                    } else {
                        println!(
                            "{:<24} v{:<4} {} steps  {}",
                            w.name,
                            w.version,
                            w.steps.len(),
                            if w.triggers.is_empty() { "manual".to_string() } else { w.triggers.join("; ") }
                        );
                    }
                }
            }
            WorkflowCmd::Show { name, version, json } => {
                let r = c.get(v1::GetWorkflowRequest { name, version }).await.map_err(status_err)?.into_inner();
                let w = r.workflow.unwrap_or_default();
                if json {
                    let mut v = info_json(&w);
                    v["yaml"] = json!(w.yaml);
                    println!("{v}");
                } else {
                    println!("# {} version {} of {} (applied by {})", w.name, w.version, w.versions, w.applied_by);
                    print!("{}", w.yaml);
                }
            }
            WorkflowCmd::Delete { name } => {
                c.delete(v1::DeleteWorkflowRequest { name: name.clone() }).await.map_err(status_err)?;
                println!("workflow {name} deleted");
            }
            WorkflowCmd::Run { name, inputs, version, agent, priority, wait, json } => {
                let mut m = Map::new();
                for kv in inputs {
                    let (k, v) =
                        kv.split_once('=').ok_or_else(|| anyhow::anyhow!("--input takes KEY=VALUE, got '{kv}'"))?;
                    m.insert(k.to_string(), serde_json::from_str(v).unwrap_or_else(|_| json!(v)));
                }
                let r = c
                    .run(v1::RunWorkflowRequest {
                        name,
                        version,
                        inputs_json: Value::Object(m).to_string(),
                        agent,
                        priority,
                    })
                    .await
                    .map_err(status_err)?
                    .into_inner();
                let run = r.run.unwrap_or_default();
                if !wait {
                    if json {
                        println!("{}", run_json(&run));
                    } else {
                        println!("run {} of {} v{} {}", run.id, run.workflow, run.version, run.state);
                    }
                    return Ok(());
                }
                let done = follow(&mut c, &run.id).await?;
                print_run(&done, json);
                if done.state != "succeeded" {
                    std::process::exit(1);
                }
            }
            WorkflowCmd::Status { run, wait, json } => {
                let r = if wait {
                    follow(&mut c, &run).await?
                } else {
                    c.get_run(v1::GetWorkflowRunRequest { id: run })
                        .await
                        .map_err(status_err)?
                        .into_inner()
                        .run
                        .unwrap_or_default()
                };
                print_run(&r, json);
            }
            WorkflowCmd::Runs { workflow, state, limit, json } => {
                let r = c
                    .list_runs(v1::ListWorkflowRunsRequest { workflow: workflow.unwrap_or_default(), state, limit })
                    .await
                    .map_err(status_err)?
                    .into_inner();
                for run in &r.runs {
                    if json {
                        println!("{}", run_json(run));
                    } else {
                        println!(
                            "{}  {:<20} v{:<3} {:<10} {}",
                            run.id, run.workflow, run.version, run.state, run.error
                        );
                    }
                }
            }
            WorkflowCmd::Cancel { run, json } => {
                let r = c.cancel(v1::CancelWorkflowRunRequest { id: run }).await.map_err(status_err)?.into_inner();
                let run = r.run.unwrap_or_default();
                if json {
                    println!("{}", run_json(&run));
                } else {
                    println!("run {} {}", run.id, if run.state == "canceled" { "canceled" } else { "canceling" });
                }
            }
        }
        Ok(())
    })
}

/// Poll a run until it ends.
async fn follow(
    c: &mut v1::workflows_client::WorkflowsClient<crate::client::Ch>,
    id: &str,
) -> anyhow::Result<v1::WorkflowRun> {
    loop {
        let r = c
            .get_run(v1::GetWorkflowRunRequest { id: id.to_string() })
            .await
            .map_err(crate::client::status_err)?
            .into_inner()
            .run
            .unwrap_or_default();
        if matches!(r.state.as_str(), "succeeded" | "failed" | "canceled") {
            return Ok(r);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
