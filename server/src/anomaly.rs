//! Online anomaly detection over the server's own signals: search latency, the share of
//! server-side errors, and encoder queue depth. Each signal keeps an exponentially
//! weighted mean and mean absolute deviation; a window whose robust z-score
//! (x − mean) / (1.4826 · MAD) stays above the threshold for `fire_after` windows (and
//! above an absolute floor) raises an alert; `clear_after` calm windows resolve it.
//! Alerts are logged, kept for `agentdb alerts`, and POSTed to a webhook if configured.
//! The baseline learns only from calm windows, so a long incident does not become the
//! new normal.

use crate::metrics::Metrics;
use agentdb_orchestrator::bus::{Audience, Bus, Topic};
use agentdb_retrieval::Encoders;
use parking_lot::Mutex;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Alert {
    pub id: u64,
    pub signal: String,
    /// "firing" or "resolved".
    pub state: String,
    pub started_unix_ms: u64,
    pub resolved_unix_ms: u64,
    /// The value that fired it, and the baseline it was compared with.
    pub value: f64,
    pub baseline: f64,
    pub z: f64,
}

#[derive(Debug, Clone, Copy)]
pub struct DetectorConfig {
    pub alpha: f64,
    pub z_threshold: f64,
    pub fire_after: u32,
    pub clear_after: u32,
    /// Windows used to learn a baseline before anything can fire.
    pub warmup: u32,
}

/// One signal's detector.
#[derive(Debug, Clone)]
pub struct Detector {
    cfg: DetectorConfig,
    /// Values below this never fire (e.g. 5 ms of latency).
    floor: f64,
    mean: f64,
    mad: f64,
    seen: u32,
    hot: u32,
    calm: u32,
    pub firing: bool,
    pub last_z: f64,
}

pub enum Transition {
    None,
    Fire,
    Resolve,
}

impl Detector {
    pub fn new(cfg: DetectorConfig, floor: f64) -> Self {
        Detector { cfg, floor, mean: 0.0, mad: 0.0, seen: 0, hot: 0, calm: 0, firing: false, last_z: 0.0 }
    }

    pub fn baseline(&self) -> f64 {
        self.mean
    }

    pub fn update(&mut self, x: f64) -> Transition {
        if self.seen == 0 {
            self.mean = x;
        }
        // A floor under the deviation keeps a perfectly flat baseline from making
        // every tiny wobble infinite.
        let scale = (1.4826 * self.mad).max(self.floor * 0.05).max(1e-9);
        let z = (x - self.mean) / scale;
        self.last_z = z;
        let anomalous = self.seen >= self.cfg.warmup && z >= self.cfg.z_threshold && x >= self.floor;
        if anomalous {
            self.hot += 1;
            self.calm = 0;
        } else {
            self.hot = 0;
            self.calm += 1;
            self.mad = (1.0 - self.cfg.alpha) * self.mad + self.cfg.alpha * (x - self.mean).abs();
            self.mean = (1.0 - self.cfg.alpha) * self.mean + self.cfg.alpha * x;
            self.seen += 1;
        }
        if !self.firing && self.hot >= self.cfg.fire_after {
            self.firing = true;
            return Transition::Fire;
        }
        if self.firing && self.calm >= self.cfg.clear_after {
            self.firing = false;
            return Transition::Resolve;
        }
        Transition::None
    }
}

pub struct AlertManager {
    pub alerts: Mutex<VecDeque<Alert>>,
    next_id: Mutex<u64>,
    webhook: Option<String>,
    bus: Option<Arc<Bus>>,
}

const KEEP: usize = 200;

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl AlertManager {
    /// Alerts posted to `webhook` and published on `bus` (topic `alerts`), when given.
    pub fn new(webhook: Option<String>, bus: Option<Arc<Bus>>) -> Self {
        AlertManager { alerts: Mutex::new(VecDeque::new()), next_id: Mutex::new(1), webhook, bus }
    }

    pub fn list(&self) -> Vec<Alert> {
        self.alerts.lock().iter().cloned().collect()
    }

    fn transition(&self, signal: &str, t: Transition, d: &Detector, value: f64) {
        let alert = match t {
            Transition::None => return,
            Transition::Fire => {
                let mut id = self.next_id.lock();
                let a = Alert {
                    id: *id,
                    signal: signal.into(),
                    state: "firing".into(),
                    started_unix_ms: now_ms(),
                    resolved_unix_ms: 0,
                    value,
                    baseline: d.baseline(),
                    z: d.last_z,
                };
                *id += 1;
                tracing::warn!(alert = a.id, signal, value, baseline = a.baseline, z = a.z, "ALERT firing");
                let mut q = self.alerts.lock();
                if q.len() == KEEP {
                    q.pop_front();
                }
                q.push_back(a.clone());
                a
            }
            Transition::Resolve => {
                let mut q = self.alerts.lock();
                let Some(a) = q.iter_mut().rev().find(|a| a.signal == signal && a.state == "firing") else { return };
                a.state = "resolved".into();
                a.resolved_unix_ms = now_ms();
                tracing::info!(alert = a.id, signal, "alert resolved");
                a.clone()
            }
        };
        // Server-wide signals (latency, error share, encoder queues): no collection's data.
        if let Some(bus) = &self.bus {
            let kind = format!("alert.{}", alert.state);
            let data = serde_json::to_value(&alert).unwrap_or_default();
            bus.publish_to(Topic::Alerts, &kind, &alert.signal, data, Audience::Everyone);
        }
        if let Some(url) = self.webhook.clone() {
            tokio::spawn(async move {
                if let Err(e) = post_json(&url, &serde_json::to_string(&alert).unwrap_or_default()).await {
                    tracing::warn!(webhook = %url, error = %e, "alert webhook failed");
                }
            });
        }
    }
}

/// Minimal HTTP/1.1 POST for `http://host:port/path` webhooks.
async fn post_json(url: &str, body: &str) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest =
        url.strip_prefix("http://").ok_or_else(|| std::io::Error::other("only http:// webhooks are supported"))?;
    let (host, path) = rest.split_once('/').map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let mut s = tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(host))
        .await
        .map_err(std::io::Error::other)??;
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await?;
    let mut buf = [0u8; 64];
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await;
    Ok(())
}

/// Sample the metrics every `every` and feed the detectors.
pub fn start(
    metrics: Arc<Metrics>,
    encoders: Arc<Encoders>,
    mgr: Arc<AlertManager>,
    cfg: DetectorConfig,
    every: Duration,
) {
    tokio::spawn(async move {
        let mut latency = Detector::new(cfg, 5.0); // ms
        let mut errors = Detector::new(cfg, 0.05); // share of requests
        let mut queue = Detector::new(cfg, 64.0); // inputs waiting
        let (mut c0, mut s0) = metrics.latency_totals("/agentdb.v1.Items/Search");
        let (mut a0, mut e0) = metrics.error_totals();
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let (c1, s1) = metrics.latency_totals("/agentdb.v1.Items/Search");
            if c1 > c0 {
                let mean_ms = (s1 - s0) / (c1 - c0) as f64 * 1000.0;
                let t = latency.update(mean_ms);
                mgr.transition("search_latency_ms", t, &latency, mean_ms);
            }
            (c0, s0) = (c1, s1);
            let (a1, e1) = metrics.error_totals();
            if a1 > a0 {
                let ratio = (e1 - e0) as f64 / (a1 - a0) as f64;
                let t = errors.update(ratio);
                mgr.transition("error_ratio", t, &errors, ratio);
            }
            (a0, e0) = (a1, e1);
            if let Some(t) = encoders.loaded().and_then(|e| e.text.as_ref()) {
                let depth = t.batcher.stats.queued.load(Ordering::Relaxed) as f64;
                let tr = queue.update(depth);
                mgr.transition("encoder_queue_depth", tr, &queue, depth);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_on_a_sustained_jump_and_clears_after() {
        let cfg = DetectorConfig { alpha: 0.1, z_threshold: 6.0, fire_after: 3, clear_after: 5, warmup: 10 };
        let mut d = Detector::new(cfg, 5.0);
        let mut fired = 0;
        let mut resolved = 0;
        let noise = [1.0, -0.5, 0.3, -0.8, 0.6];
        let mut feed = |d: &mut Detector, x: f64| match d.update(x) {
            Transition::Fire => fired += 1,
            Transition::Resolve => resolved += 1,
            Transition::None => {}
        };
        for i in 0..40 {
            feed(&mut d, 10.0 + noise[i % 5]);
        }
        assert!(!d.firing);
        feed(&mut d, 40.0); // one spike does not fire
        feed(&mut d, 10.0);
        assert!(!d.firing);
        for _ in 0..3 {
            feed(&mut d, 120.0);
        }
        assert!(d.firing && (d.baseline() - 10.0).abs() < 2.0, "the incident did not move the baseline");
        for n in noise {
            feed(&mut d, 10.0 + n);
        }
        assert!(!d.firing);
        assert_eq!((fired, resolved), (1, 1));
    }
}
