//! `agentdb-operator`: `run` (the controllers), `crd` (the CRD YAML), `render` (what an
//! AgentCluster or AgentIngestJob becomes, for review and offline validation).

use agentdb_operator::crd::{AgentCluster, AgentIngestJob};
use agentdb_operator::reconcile::{self, Ctx, GrpcAgents};
use agentdb_operator::{ingest, render};
use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use kube::api::Api;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{watcher, Controller};
use kube::Client;
use std::sync::Arc;

#[derive(Parser)]
#[command(name = "agentdb-operator", version, about = "Kubernetes operator for AgentDB")]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the AgentCluster and AgentIngestJob controllers (in-cluster or ~/.kube/config).
    Run {
        /// Watch only this namespace (default: all; env AGENTDB_OPERATOR_NAMESPACE).
        #[arg(long, env = "AGENTDB_OPERATOR_NAMESPACE", default_value = "")]
        namespace: String,
        /// Health endpoints (/healthz, /readyz).
        #[arg(long, default_value = "0.0.0.0:8080")]
        health: String,
    },
    /// Print the CustomResourceDefinitions (deploy/crds/agentdb.io.yaml).
    Crd,
    /// Print the objects the operator makes for the AgentCluster (and AgentIngestJob)
    /// documents in a YAML file; Secrets are shown without their generated values.
    Render {
        #[arg(short = 'f', long)]
        file: std::path::PathBuf,
    },
}

fn main() -> Result<()> {
    let args = Args::parse();
    match args.cmd {
        Cmd::Crd => {
            print!("{}", agentdb_operator::crd::crd_yaml());
            Ok(())
        }
        Cmd::Render { file } => {
            let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            print!("{}", render_file(&text)?);
            Ok(())
        }
        Cmd::Run { namespace, health } => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
                )
                .init();
            tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(run(namespace, health))
        }
    }
}

/// Render every AgentCluster (and AgentIngestJob, against the cluster it names) in a
/// multi-document YAML text.
fn render_file(text: &str) -> Result<String> {
    use serde::Deserialize;
    let mut clusters = Vec::new();
    let mut jobs = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let v = serde_json::Value::deserialize(doc)?;
        if v.is_null() {
            continue;
        }
        match v["kind"].as_str() {
            Some("AgentCluster") => {
                clusters.push(serde_json::from_value::<AgentCluster>(v).context("an AgentCluster")?)
            }
            Some("AgentIngestJob") => {
                jobs.push(serde_json::from_value::<AgentIngestJob>(v).context("an AgentIngestJob")?)
            }
            other => anyhow::bail!("expected AgentCluster or AgentIngestJob documents, found {other:?}"),
        }
    }
    let mut out = String::new();
    for ac in &clusters {
        let mut ac = ac.clone();
        ac.metadata.uid.get_or_insert_with(|| "00000000-0000-0000-0000-000000000000".into());
        out.push_str(&render::to_yaml(&render::render(&ac)));
        for (name, what) in [
            (render::admin_secret(&render::name(&ac)), "admin key"),
            (render::encryption_secret(&render::name(&ac)), "master key"),
        ] {
            out.push_str(&format!(
                "---\n# generated once by the operator ({what}); never rewritten\napiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {}\ntype: Opaque\n",
                render::namespace(&ac)
            ));
        }
    }
    for j in &jobs {
        let ac = clusters
            .iter()
            .find(|c| c.metadata.name.as_deref() == Some(j.spec.cluster.as_str()))
            .with_context(|| format!("AgentIngestJob names cluster '{}', which is not in the file", j.spec.cluster))?;
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&ingest::render_job(j, ac))?);
    }
    Ok(out)
}

async fn run(namespace: String, health: String) -> Result<()> {
    let client = Client::try_default().await.context("connecting to the Kubernetes API")?;
    tokio::spawn(health_server(health));
    let ns = (!namespace.is_empty()).then_some(namespace);
    fn api<K>(c: &Client, ns: &Option<String>) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        match ns {
            Some(n) => Api::namespaced(c.clone(), n),
            None => Api::all(c.clone()),
        }
    }
    let ctx = Arc::new(Ctx::new(client.clone(), GrpcAgents));
    let managed = watcher::Config::default().labels(&format!("app.kubernetes.io/managed-by={}", render::MANAGER));
    let clusters = Controller::new(api::<AgentCluster>(&client, &ns), watcher::Config::default())
        .owns(api::<StatefulSet>(&client, &ns), managed.clone())
        .owns(api::<Service>(&client, &ns), managed.clone())
        .owns(api::<ConfigMap>(&client, &ns), managed.clone())
        // Pods belong to the StatefulSet; their readiness drives the rollout.
        .watches(
            api::<Pod>(&client, &ns),
            watcher::Config::default().labels("app.kubernetes.io/name=agentdb"),
            |p: Pod| {
                let name = p.metadata.labels.as_ref()?.get("app.kubernetes.io/instance")?.clone();
                Some(ObjectRef::<AgentCluster>::new(&name).within(p.metadata.namespace.as_deref()?))
            },
        )
        .shutdown_on_signal()
        .run(reconcile::reconcile, reconcile::error_policy, ctx.clone())
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "AgentCluster controller");
            }
        });
    let jobs = Controller::new(api::<AgentIngestJob>(&client, &ns), watcher::Config::default())
        .owns(api::<Job>(&client, &ns), managed)
        .shutdown_on_signal()
        .run(
            ingest::reconcile,
            |_, e, _| {
                tracing::warn!(error = %e, "AgentIngestJob reconcile failed; retrying in 10 s");
                kube::runtime::controller::Action::requeue(std::time::Duration::from_secs(10))
            },
            ctx,
        )
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "AgentIngestJob controller");
            }
        });
    tracing::info!("agentdb-operator running");
    futures::join!(clusters, jobs);
    Ok(())
}

/// /healthz and /readyz for the operator's own pod.
async fn health_server(addr: String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = match tokio::net::TcpListener::bind(&addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(addr = %addr, error = %e, "cannot serve health endpoints");
            return;
        }
    };
    loop {
        let Ok((mut s, _)) = l.accept().await else { continue };
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok").await;
        });
    }
}
