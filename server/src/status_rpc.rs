//! `agentdb.v1.Server/Status`: memory, disk, collections, rates and a growth forecast.
//! A sampler records totals every few seconds; rates come from the last minute and the
//! growth trend from a least-squares line over the last hour.

use agentdb_engine::Database;
use agentdb_proto::v1;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::{Request, Response, Status};

#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    searches: u64,
    upserted: u64,
    data_bytes: u64,
}

pub struct StatusService {
    pub alerts: Arc<crate::anomaly::AlertManager>,
    pub fault_delay_ms: Option<Arc<std::sync::atomic::AtomicU64>>,
    db: Arc<Database>,
    security: Arc<crate::security::Security>,
    started: Instant,
    samples: Arc<Mutex<VecDeque<Sample>>>,
    /// The device `--device` resolved to.
    device: String,
}

const SAMPLE_EVERY: Duration = Duration::from_secs(5);
const KEEP: usize = 720; // one hour

fn sample(db: &Database) -> Sample {
    let cols = db.collections();
    let (mut searches, mut upserted) = (0, 0);
    for c in &cols {
        let s = c.stats.snapshot();
        searches += s.searches;
        upserted += s.upserted;
    }
    let data_bytes = db.list().iter().map(|i| i.disk_bytes).sum();
    Sample { at: Instant::now(), searches, upserted, data_bytes }
}

/// Least-squares slope of bytes over seconds.
pub fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    if sxx == 0.0 {
        0.0
    } else {
        sxy / sxx
    }
}

impl StatusService {
    pub fn start(
        db: Arc<Database>,
        security: Arc<crate::security::Security>,
        alerts: Arc<crate::anomaly::AlertManager>,
        fault_delay_ms: Option<Arc<std::sync::atomic::AtomicU64>>,
        device: String,
    ) -> StatusService {
        let samples = Arc::new(Mutex::new(VecDeque::with_capacity(KEEP)));
        let (s2, db2) = (samples.clone(), Arc::downgrade(&db));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SAMPLE_EVERY);
            loop {
                tick.tick().await;
                let Some(db) = db2.upgrade() else { return };
                let s = tokio::task::spawn_blocking(move || sample(&db)).await;
                if let Ok(s) = s {
                    let mut q = s2.lock();
                    if q.len() == KEEP {
                        q.pop_front();
                    }
                    q.push_back(s);
                }
            }
        });
        StatusService { alerts, fault_delay_ms, db, security, started: Instant::now(), samples, device }
    }
}

fn disk(path: &std::path::Path) -> (u64, u64) {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else { return (0, 0) };
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return (0, 0);
    }
    let f = st.f_frsize as u64;
    (st.f_bavail as u64 * f, st.f_blocks as u64 * f)
}

#[tonic::async_trait]
impl v1::server_server::Server for StatusService {
    async fn alerts(&self, _req: Request<v1::AlertsRequest>) -> Result<Response<v1::AlertsResponse>, Status> {
        let alerts = self
            .alerts
            .list()
            .into_iter()
            .map(|a| v1::AlertInfo {
                id: a.id,
                signal: a.signal,
                state: a.state,
                started_unix_ms: a.started_unix_ms,
                resolved_unix_ms: a.resolved_unix_ms,
                value: a.value,
                baseline: a.baseline,
                z: a.z,
            })
            .collect();
        Ok(Response::new(v1::AlertsResponse { alerts }))
    }

    async fn inject_fault(
        &self,
        req: Request<v1::InjectFaultRequest>,
    ) -> Result<Response<v1::InjectFaultResponse>, Status> {
        let p = req.extensions().get::<agentdb_orchestrator::security::Principal>().cloned();
        self.security.authorize(p.as_ref(), agentdb_orchestrator::security::Action::Admin, "", "InjectFault")?;
        let f = self.fault_delay_ms.as_ref().ok_or_else(|| {
            Status::failed_precondition("fault injection is off (debug.allow_fault_injection = false)")
        })?;
        let ms = req.into_inner().search_delay_ms;
        f.store(ms as u64, std::sync::atomic::Ordering::Relaxed);
        tracing::warn!(search_delay_ms = ms, "fault injection: search delay set");
        Ok(Response::new(v1::InjectFaultResponse {}))
    }

    async fn set_log_level(
        &self,
        req: Request<v1::SetLogLevelRequest>,
    ) -> Result<Response<v1::SetLogLevelResponse>, Status> {
        let p = req.extensions().get::<agentdb_orchestrator::security::Principal>().cloned();
        self.security.authorize(p.as_ref(), agentdb_orchestrator::security::Action::Admin, "", "SetLogLevel")?;
        let spec = req.into_inner().filter;
        let previous = crate::telemetry::set_log_level(spec.trim()).map_err(Status::invalid_argument)?;
        Ok(Response::new(v1::SetLogLevelResponse { previous }))
    }

    async fn status(&self, req: Request<v1::StatusRequest>) -> Result<Response<v1::StatusResponse>, Status> {
        let p = req.extensions().get::<agentdb_orchestrator::security::Principal>().cloned();
        if self.security.auth_enabled() && !p.as_ref().is_some_and(|p| p.sees_everything()) {
            return self.scoped_status(p.as_ref()).await;
        }
        let db = self.db.clone();
        let now =
            tokio::task::spawn_blocking(move || sample(&db)).await.map_err(|e| Status::internal(e.to_string()))?;
        let hist: Vec<Sample> = self.samples.lock().iter().copied().collect();
        // Rates over the last minute (or what we have).
        let base = hist
            .iter()
            .rev()
            .find(|s| now.at.duration_since(s.at) >= Duration::from_secs(60))
            .or(hist.first())
            .copied();
        let (qps, ups) = match base {
            Some(b) if now.at > b.at => {
                let dt = now.at.duration_since(b.at).as_secs_f64();
                (
                    (now.searches - b.searches.min(now.searches)) as f64 / dt,
                    (now.upserted - b.upserted.min(now.upserted)) as f64 / dt,
                )
            }
            _ => (0.0, 0.0),
        };
        let t0 = hist.first().map_or(now.at, |s| s.at);
        let mut pts: Vec<(f64, f64)> =
            hist.iter().map(|s| (s.at.duration_since(t0).as_secs_f64(), s.data_bytes as f64)).collect();
        pts.push((now.at.duration_since(t0).as_secs_f64(), now.data_bytes as f64));
        let per_day = slope(&pts) * 86_400.0;
        let (free, total) = disk(self.db.dir());
        let days = if per_day > 0.0 { free as f64 / per_day } else { -1.0 };
        Ok(Response::new(v1::StatusResponse {
            version: env!("CARGO_PKG_VERSION").into(),
            uptime_seconds: self.started.elapsed().as_secs_f64(),
            rss_bytes: crate::metrics::process_stats().rss_bytes,
            data_dir: self.db.dir().display().to_string(),
            data_bytes: now.data_bytes,
            disk_free_bytes: free,
            disk_total_bytes: total,
            collections: self.db.list().into_iter().map(agentdb_proto::convert::info_to_wire).collect(),
            queries_per_second: qps,
            upserts_per_second: ups,
            growth_bytes_per_day: per_day,
            days_until_disk_full: days,
            device: self.device.clone(),
            damaged: self
                .db
                .damaged()
                .into_iter()
                .map(|(name, reason)| v1::DamagedCollection { name, reason })
                .collect(),
        }))
    }
}

impl StatusService {
    /// Status for a principal that does not see everything: the collections it may read
    /// (counted under its row policy, if it has one), their bytes, and the process's own
    /// figures; no data-directory path, no server-wide rates or disk forecast (they sum
    /// other collections' activity).
    async fn scoped_status(
        &self,
        p: Option<&agentdb_orchestrator::security::Principal>,
    ) -> Result<Response<v1::StatusResponse>, Status> {
        let p = p.cloned();
        let (db, security) = (self.db.clone(), self.security.clone());
        let collections = tokio::task::spawn_blocking(move || security.visible_collections(&db, p.as_ref()))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(crate::status::to_status)?;
        let collections: Vec<v1::CollectionInfo> =
            collections.into_iter().map(agentdb_proto::convert::info_to_wire).collect();
        Ok(Response::new(v1::StatusResponse {
            version: env!("CARGO_PKG_VERSION").into(),
            uptime_seconds: self.started.elapsed().as_secs_f64(),
            rss_bytes: crate::metrics::process_stats().rss_bytes,
            data_dir: String::new(),
            data_bytes: collections.iter().map(|c| c.disk_bytes).sum(),
            disk_free_bytes: 0,
            disk_total_bytes: 0,
            collections,
            queries_per_second: 0.0,
            upserts_per_second: 0.0,
            growth_bytes_per_day: 0.0,
            days_until_disk_full: -1.0,
            device: self.device.clone(),
            damaged: Vec::new(),
        }))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn slope_of_a_line() {
        let pts: Vec<(f64, f64)> = (0..10).map(|i| (i as f64, 100.0 + 3.0 * i as f64)).collect();
        assert!((super::slope(&pts) - 3.0).abs() < 1e-9);
        assert_eq!(super::slope(&pts[..1]), 0.0);
    }
}
