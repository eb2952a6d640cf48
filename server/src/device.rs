//! Device selection: `--device auto|cpu|cuda:N` (config key `device`). `auto` takes GPU
//! 0 when the binary was built with the `cuda` feature and a GPU is usable, and says in
//! the log which device it chose and, if it fell back to the CPU, why. An explicit
//! `cuda:N` that cannot be honoured refuses to start.
//!
//! What runs on the chosen GPU in this build: the exact top-k kernels
//! (`agentdb bench gpu`). The engine's searches and the encoders still run on the CPU;
//! see docs/PERFORMANCE.md and the GPU issue.

use anyhow::{bail, Result};

#[derive(Debug, Clone)]
pub struct Device {
    /// `cpu` or `cuda:N (name, memory)`: what `status` reports.
    pub label: String,
}

impl Device {
    fn cpu() -> Device {
        Device { label: "cpu".into() }
    }
}

pub fn select(spec: &str) -> Result<Device> {
    let spec = spec.trim();
    match spec {
        "cpu" => {
            tracing::info!(device = "cpu", "device: CPU (requested)");
            Ok(Device::cpu())
        }
        "auto" | "" => match probe(0) {
            Ok(d) => {
                tracing::info!(device = %d.label, "device: GPU found and selected");
                Ok(d)
            }
            Err(why) => {
                tracing::info!(device = "cpu", reason = %why, "device: running on the CPU ({why})");
                Ok(Device::cpu())
            }
        },
        other => {
            let Some(n) = other.strip_prefix("cuda:").and_then(|n| n.parse::<usize>().ok()) else {
                bail!("device '{other}' is not one of auto, cpu, cuda:N");
            };
            match probe(n) {
                Ok(d) => {
                    tracing::info!(device = %d.label, "device: GPU selected");
                    Ok(d)
                }
                Err(why) => bail!("device cuda:{n} was requested but cannot be used: {why}"),
            }
        }
    }
}

#[cfg(feature = "cuda")]
fn probe(n: usize) -> std::result::Result<Device, String> {
    let i = agentdb_kernels::gpu::probe(n)?;
    Ok(Device { label: format!("cuda:{n} ({}, {} MiB)", i.name, i.total_bytes >> 20) })
}

#[cfg(not(feature = "cuda"))]
fn probe(_n: usize) -> std::result::Result<Device, String> {
    Err("this binary was built without the `cuda` feature (make build FEATURES=cuda)".into())
}
