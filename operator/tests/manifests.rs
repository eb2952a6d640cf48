//! The CRDs checked in (deploy/crds/ and the Helm chart's copy) are the ones the Rust
//! types generate, and everything the operator renders — and the Helm chart in both
//! modes — validates offline against the Kubernetes OpenAPI schemas
//! (deploy/validate.sh: kubernetes-validate, helm template, the CRD schemas).

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

#[test]
fn checked_in_crds_are_generated_from_the_types() {
    let generated = agentdb_operator::crd::crd_yaml();
    for p in ["deploy/crds/agentdb.io.yaml", "deploy/helm/agentdb/crds/agentdb.io.yaml"] {
        let on_disk = std::fs::read_to_string(root().join(p)).unwrap_or_default();
        assert!(
            on_disk == generated,
            "{p} is stale: regenerate with `cargo run --release -p agentdb-operator -- crd > {p}`"
        );
    }
    // The CRD carries the schema Kubernetes validates resources against.
    assert!(generated.contains("openAPIV3Schema"));
    assert!(generated.contains("kind: AgentCluster") && generated.contains("kind: AgentIngestJob"));
    assert!(generated.contains("subresources:") && generated.contains("status: {}"));
}

#[test]
fn rendered_operator_output_and_helm_chart_validate_offline() {
    let out = Command::new(env!("CARGO_BIN_EXE_agentdb-operator"))
        .args(["render", "-f"])
        .arg(root().join("deploy/examples/agentcluster.yaml"))
        .output()
        .expect("run agentdb-operator render");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let dir = tempfile_dir();
    let rendered = dir.join("rendered.yaml");
    std::fs::write(&rendered, &out.stdout).unwrap();
    // Also a minimal cluster with an external NATS and everything optional off.
    let minimal = dir.join("minimal.yaml");
    std::fs::write(
        &minimal,
        "apiVersion: agentdb.io/v1\nkind: AgentCluster\nmetadata: { name: small, namespace: default }\n\
         spec:\n  replicas: 1\n  version: \"0.1.0\"\n  nats: { url: \"nats://nats.default.svc:4222\" }\n\
         \x20 security: { rbac: false, networkPolicy: false, podSecurityPolicy: false, auth: false, encryption: false }\n",
    )
    .unwrap();
    let out2 =
        Command::new(env!("CARGO_BIN_EXE_agentdb-operator")).args(["render", "-f"]).arg(&minimal).output().unwrap();
    assert!(out2.status.success(), "{}", String::from_utf8_lossy(&out2.stderr));
    let rendered2 = dir.join("rendered-minimal.yaml");
    std::fs::write(&rendered2, &out2.stdout).unwrap();
    let v = Command::new("bash")
        .arg(root().join("deploy/validate.sh"))
        .arg(&rendered)
        .arg(&rendered2)
        .arg(root().join("deploy/examples/agentcluster.yaml"))
        .output()
        .expect("run deploy/validate.sh");
    let text = format!("{}{}", String::from_utf8_lossy(&v.stdout), String::from_utf8_lossy(&v.stderr));
    assert!(v.status.success(), "validation failed:\n{text}");
    for kind in [
        "StatefulSet/production-cluster",
        "NetworkPolicy/production-cluster-server",
        "PodDisruptionBudget/production-cluster",
        "AgentCluster/production-cluster",
        "AgentIngestJob/product-photos",
    ] {
        assert!(text.contains(kind), "{kind} was validated:\n{text}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempfile_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("agentdb-operator-test-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The images' Dockerfiles (deploy/Dockerfile: the CPU server and operator;
/// Dockerfile.cuda) pass hadolint with the repository's .hadolint.yaml. They cannot be
/// built here (no container engine), so this is what checks them.
#[test]
fn dockerfiles_pass_hadolint() {
    let home = std::env::var("HOME").unwrap_or_default();
    let hadolint = format!("{home}/.cache/agentdb/k8s-venv/bin/hadolint");
    assert!(Path::new(&hadolint).exists(), "hadolint missing at {hadolint}: run .ci/setup.sh");
    let out = Command::new(&hadolint)
        .arg("--config")
        .arg(root().join(".hadolint.yaml"))
        .arg("--no-color")
        .arg(root().join("deploy/Dockerfile"))
        .arg(root().join("Dockerfile.cuda"))
        .output()
        .expect("run hadolint");
    assert!(
        out.status.success(),
        "hadolint:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The images run as the uid the restricted pods use.
    for f in ["deploy/Dockerfile", "Dockerfile.cuda"] {
        let text = std::fs::read_to_string(root().join(f)).unwrap();
        assert!(text.contains("--uid 10001") && text.contains("USER 10001:10001"), "{f} runs as uid 10001");
    }
}
