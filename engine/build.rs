//! Compiles `src/hnsw_shim.cpp` (per-call HNSW parameters and run-time-dispatched SIMD
//! distances, see the file) against the headers of the FAISS that `faiss-sys` builds
//! and links statically.
//!
//! faiss-sys exports no include directory, so the headers are found in its source: the
//! version pinned in the workspace's Cargo.lock, under `$CARGO_HOME/registry/src/*/`
//! (or a `vendor/` directory), unless `AGENTDB_FAISS_INCLUDE` names a directory that
//! holds `faiss/IndexHNSW.h`.

use std::path::{Path, PathBuf};

fn faiss_sys_version(manifest: &Path) -> Option<String> {
    let lock = std::fs::read_to_string(manifest.join("../Cargo.lock")).ok()?;
    let mut lines = lock.lines();
    while let Some(l) = lines.next() {
        if l.trim() == "name = \"faiss-sys\"" {
            let v = lines.next()?.trim();
            return v.strip_prefix("version = \"")?.strip_suffix('"').map(str::to_string);
        }
    }
    None
}

fn has_headers(dir: &Path) -> bool {
    dir.join("faiss/IndexHNSW.h").is_file()
}

fn find_include(manifest: &Path) -> Result<PathBuf, String> {
    if let Ok(dir) = std::env::var("AGENTDB_FAISS_INCLUDE") {
        let dir = PathBuf::from(dir);
        return if has_headers(&dir) {
            Ok(dir)
        } else {
            Err(format!("AGENTDB_FAISS_INCLUDE={} has no faiss/IndexHNSW.h", dir.display()))
        };
    }
    let version = faiss_sys_version(manifest).ok_or("faiss-sys is not in the workspace's Cargo.lock")?;
    let crate_dir = format!("faiss-sys-{version}");
    let mut tried = Vec::new();
    // `cargo vendor` layouts first, then the registry cache.
    for v in [manifest.join("../vendor/faiss-sys"), manifest.join(format!("../vendor/{crate_dir}"))] {
        tried.push(v.join("faiss"));
    }
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    if let Some(home) = cargo_home {
        if let Ok(rd) = std::fs::read_dir(home.join("registry/src")) {
            for e in rd.flatten() {
                tried.push(e.path().join(&crate_dir).join("faiss"));
            }
        }
    }
    tried.iter().find(|d| has_headers(d)).cloned().ok_or_else(|| {
        format!(
            "FAISS headers of {crate_dir} not found (tried {}); set AGENTDB_FAISS_INCLUDE",
            tried.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        )
    })
}

fn main() {
    println!("cargo:rerun-if-changed=src/hnsw_shim.cpp");
    println!("cargo:rerun-if-changed=src/hnsw_f16.h");
    println!("cargo:rerun-if-env-changed=AGENTDB_FAISS_INCLUDE");
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let include = find_include(&manifest).unwrap_or_else(|e| panic!("{e}"));
    cc::Build::new()
        .cpp(true)
        .file("src/hnsw_shim.cpp")
        .include(&include)
        .flag("-std=c++17")
        .flag("-O3")
        .warnings(false)
        .compile("agentdb_hnsw_shim");
}
