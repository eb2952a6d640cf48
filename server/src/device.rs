//! Device selection: `--device auto|cpu|cuda:N` (config key `device`). `auto` takes GPU
//! 0 when the binary was built with the `cuda` feature and a GPU is usable, and says in
//! the log which device it chose and, if it fell back to the CPU, why. An explicit
//! `cuda:N` that cannot be honoured refuses to start.
//!
//! What runs on the chosen GPU: exact search of sealed segments of `Flat` spaces (and
//! of exact searches), through the engine's `GpuAccelerator`, the text encoder and the
//! image classifier (`[gpu]` settings). ANN indexes (HNSW, IVF), Whisper, the VAD and
//! CLIP run on the CPU; see docs/GPU.md.

use anyhow::{bail, Result};

#[derive(Debug, Clone)]
pub struct Device {
    /// `cpu` or `cuda:N (name, memory)`: what `status` reports.
    pub label: String,
    /// The GPU's ordinal; `None` on the CPU.
    pub ordinal: Option<usize>,
    /// Whether the user named this GPU (then a GPU that cannot be used stops the start).
    pub explicit: bool,
}

impl Device {
    fn cpu() -> Device {
        Device { label: "cpu".into(), ordinal: None, explicit: false }
    }

    /// The engine's exact-search accelerator on this device (`None` on the CPU). A GPU
    /// chosen by `auto` that fails here falls back to the CPU, saying why.
    pub fn accelerator(
        &mut self,
        gpu: &crate::config::GpuConfig,
    ) -> Result<Option<std::sync::Arc<dyn agentdb_engine::accel::ExactAccelerator>>> {
        let Some(n) = self.ordinal else { return Ok(None) };
        match make_accelerator(n, gpu) {
            Ok(a) => Ok(Some(a)),
            Err(why) if !self.explicit => {
                tracing::warn!(device = "cpu", reason = %why, "device: GPU search unavailable, running on the CPU ({why})");
                *self = Device::cpu();
                Ok(None)
            }
            Err(why) => bail!("device cuda:{n} was requested but GPU search cannot start: {why}"),
        }
    }
}

fn make_accelerator(
    n: usize,
    gpu: &crate::config::GpuConfig,
) -> std::result::Result<std::sync::Arc<dyn agentdb_engine::accel::ExactAccelerator>, String> {
    use agentdb_engine::accel::{GpuAccelerator, GpuAcceleratorConfig};
    let cfg = GpuAcceleratorConfig {
        ordinal: n,
        precision: agentdb_kernels::gpu::Precision::parse(&gpu.precision)?,
        memory_fraction: gpu.memory_fraction,
        min_rows: gpu.min_rows,
    };
    Ok(std::sync::Arc::new(GpuAccelerator::new(cfg)?))
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
                Ok(mut d) => {
                    tracing::info!(device = %d.label, "device: GPU selected");
                    d.explicit = true;
                    Ok(d)
                }
                Err(why) => bail!("device cuda:{n} was requested but cannot be used: {why}"),
            }
        }
    }
}

fn probe(n: usize) -> std::result::Result<Device, String> {
    let i = agentdb_kernels::gpu::probe(n)?;
    Ok(Device {
        label: format!("cuda:{n} ({}, {} MiB)", i.name, i.total_bytes >> 20),
        ordinal: Some(n),
        explicit: false,
    })
}
