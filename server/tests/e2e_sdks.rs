//! The Python, TypeScript and Go SDKs (sdk/*) against the real binary: each SDK's own
//! suite (sdk/LANG/run_tests.sh), which starts this build's `agentdb` (AGENTDB_BIN) and
//! runs every client method, the README quick start and the generated-code freshness
//! check. One at a time: each starts its own servers.

mod common;

use std::sync::Mutex;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn run_sdk(lang: &str) {
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let script = root.join("sdk").join(lang).join("run_tests.sh");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .current_dir(root)
        .env("AGENTDB_BIN", common::BIN)
        .env_remove("AGENTDB_URL")
        .env_remove("AGENTDB_API_KEY")
        .output()
        .expect("run the SDK's tests");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{lang} SDK tests failed:\n{text}");
    println!("{text}");
}

#[test]
fn python_sdk() {
    run_sdk("python");
}

#[test]
fn typescript_sdk() {
    run_sdk("typescript");
}

#[test]
fn go_sdk() {
    run_sdk("go");
}
