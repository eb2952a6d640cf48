//! The operator's own autoscaler. Not a HorizontalPodAutoscaler: an HPA lowers a
//! StatefulSet's replicas at once and the highest pod stops holding shard replicas that
//! were never handed off; here a scale-in drains the node first (rollout.rs), one node
//! at a time, and only then shrinks the StatefulSet.
//!
//! Signals, from each pod's /metrics scraped by the operator: requests per second per
//! node (`agentdb_grpc_requests_total`), p99 latency (from the merged
//! `agentdb_grpc_request_duration_seconds` buckets) and CPU (`process_cpu_seconds_total`
//! over the requested cores). The load ratio is the largest observed/target over the
//! targets set.
//!
//! Hysteresis: scale out only after the ratio stayed above 1.1 for
//! `scaleOutStabilizationSeconds`, to `ceil(n * ratio)` nodes; scale in only after the
//! ratio stayed low enough for `scaleInStabilizationSeconds` that one node fewer still
//! runs below 0.8 of the target, one node at a time, and never within the scale-in
//! window of the last scaling. Between the two bands nothing changes.

use crate::crd::{AutoscalerStatus, AutoscalingSpec};
use std::collections::BTreeMap;

/// Above this ratio the cluster is under pressure to grow.
pub const SCALE_OUT_RATIO: f64 = 1.1;
/// After removing one node the ratio must stay below this.
pub const SCALE_IN_AFTER_RATIO: f64 = 0.8;

/// One sample of the signals, per node on average (None: not measured).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Load {
    pub qps_per_node: Option<f64>,
    pub p99_ms: Option<f64>,
    pub cpu_percent: Option<f64>,
}

/// The largest observed/target ratio over the targets that are set and measured.
pub fn ratio(spec: &AutoscalingSpec, load: &Load) -> Option<f64> {
    let pairs = [
        (load.qps_per_node, spec.target_qps_per_node),
        (load.p99_ms, spec.target_p99_ms),
        (load.cpu_percent, spec.target_cpu_percent.map(f64::from)),
    ];
    pairs
        .iter()
        .filter_map(|(o, t)| match (o, t) {
            (Some(o), Some(t)) if *t > 0.0 && o.is_finite() => Some(o / t),
            _ => None,
        })
        .reduce(f64::max)
}

/// The autoscaler's next state for a cluster of `current` nodes at time `now` (unix
/// seconds), given its previous state.
pub fn decide(
    spec: &AutoscalingSpec,
    current: i32,
    load: &Load,
    prev: Option<&AutoscalerStatus>,
    now: i64,
) -> AutoscalerStatus {
    let (min, max) = (spec.min_replicas.max(1), spec.max_replicas.max(spec.min_replicas.max(1)));
    let current = current.max(1);
    let mut st = prev.cloned().unwrap_or_default();
    st.qps_per_node = load.qps_per_node;
    st.p99_ms = load.p99_ms;
    st.cpu_percent = load.cpu_percent;
    if st.desired_replicas <= 0 {
        st.desired_replicas = current.clamp(min, max);
    }
    // Bounds changed under us: follow them at once.
    if current < min || current > max {
        st.desired_replicas = current.clamp(min, max);
        st.reason = format!("outside the bounds {min}..{max}");
        st.pressure = 0;
        st.pressure_since = None;
        return st;
    }
    let Some(r) = ratio(spec, load) else {
        st.reason = "no load measured yet".into();
        return st;
    };
    let since = |st: &AutoscalerStatus| st.pressure_since.as_deref().and_then(|s| s.parse::<i64>().ok()).unwrap_or(now);
    let after_one_fewer = if current > 1 { r * current as f64 / (current - 1) as f64 } else { f64::INFINITY };
    let last_scale = st.last_scale_time.as_deref().and_then(|s| s.parse::<i64>().ok());
    if r > SCALE_OUT_RATIO && current < max {
        if st.pressure != 1 {
            st.pressure = 1;
            st.pressure_since = Some(now.to_string());
        }
        let held = now - since(&st);
        if held >= spec.scale_out_stabilization_seconds {
            let want = ((current as f64 * r).ceil() as i32).max(current + 1).min(max);
            st.desired_replicas = want;
            st.last_scale_time = Some(now.to_string());
            st.reason = format!("load {r:.2}x target for {held}s: {current} -> {want} nodes");
            st.pressure = 0;
            st.pressure_since = None;
        } else {
            st.reason = format!("load {r:.2}x target for {held}s of {}s", spec.scale_out_stabilization_seconds);
        }
    } else if after_one_fewer < SCALE_IN_AFTER_RATIO && current > min {
        if st.pressure != -1 {
            st.pressure = -1;
            st.pressure_since = Some(now.to_string());
        }
        let held = now - since(&st);
        let cooled = last_scale.is_none_or(|t| now - t >= spec.scale_in_stabilization_seconds);
        if held >= spec.scale_in_stabilization_seconds && cooled {
            st.desired_replicas = current - 1;
            st.last_scale_time = Some(now.to_string());
            st.reason = format!("load {r:.2}x target for {held}s: {current} -> {} nodes", current - 1);
            st.pressure = 0;
            st.pressure_since = None;
        } else {
            st.reason = format!("load {r:.2}x target, low for {held}s of {}s", spec.scale_in_stabilization_seconds);
        }
    } else {
        st.desired_replicas = current;
        st.pressure = 0;
        st.pressure_since = None;
        st.reason = format!("load {r:.2}x target: within the band");
    }
    st
}

/// The counters the autoscaler reads from one pod's /metrics text.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scrape {
    pub requests: f64,
    pub cpu_seconds: f64,
    /// Latency histogram over every method: upper bound (seconds) -> cumulative count.
    pub buckets: BTreeMap<u64, f64>,
}

/// Parse the Prometheus text the server writes (only the series the autoscaler uses).
pub fn parse_metrics(text: &str) -> Scrape {
    let mut s = Scrape::default();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some((series, value)) = line.rsplit_once(' ') else { continue };
        let Ok(v) = value.trim().parse::<f64>() else { continue };
        if series.starts_with("agentdb_grpc_requests_total") {
            s.requests += v;
        } else if series == "process_cpu_seconds_total" {
            s.cpu_seconds = v;
        } else if series.starts_with("agentdb_grpc_request_duration_seconds_bucket") {
            let le = series.split("le=\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or("");
            let key =
                if le == "+Inf" { u64::MAX } else { le.parse::<f64>().map(|b| (b * 1e9) as u64).unwrap_or(u64::MAX) };
            *s.buckets.entry(key).or_default() += v;
        }
    }
    s
}

/// The load between two scrapes of each pod (`dt` seconds apart), per node on average.
pub fn load_between(before: &[Scrape], after: &[Scrape], dt: f64, requested_cores: f64) -> Load {
    if before.is_empty() || before.len() != after.len() || dt <= 0.0 {
        return Load::default();
    }
    let n = after.len() as f64;
    let req: f64 = after.iter().zip(before).map(|(a, b)| (a.requests - b.requests).max(0.0)).sum();
    let cpu: f64 = after.iter().zip(before).map(|(a, b)| (a.cpu_seconds - b.cpu_seconds).max(0.0)).sum();
    let mut hist: BTreeMap<u64, f64> = BTreeMap::new();
    for (a, b) in after.iter().zip(before) {
        for (le, c) in &a.buckets {
            *hist.entry(*le).or_default() += (c - b.buckets.get(le).copied().unwrap_or(0.0)).max(0.0);
        }
    }
    let total = hist.get(&u64::MAX).copied().unwrap_or(0.0);
    let p99 = if total > 0.0 {
        hist.iter().find(|(_, c)| **c >= 0.99 * total).map(|(le, _)| {
            if *le == u64::MAX {
                f64::INFINITY
            } else {
                *le as f64 / 1e6
            }
        })
    } else {
        None
    };
    Load {
        qps_per_node: Some(req / dt / n),
        p99_ms: p99.filter(|p| p.is_finite()),
        cpu_percent: Some(cpu / dt / n / requested_cores.max(0.001) * 100.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> AutoscalingSpec {
        AutoscalingSpec {
            min_replicas: 2,
            max_replicas: 6,
            target_qps_per_node: Some(100.0),
            target_p99_ms: None,
            target_cpu_percent: Some(70),
            scale_out_stabilization_seconds: 60,
            scale_in_stabilization_seconds: 300,
        }
    }
    fn qps(q: f64) -> Load {
        Load { qps_per_node: Some(q), p99_ms: None, cpu_percent: Some(10.0) }
    }

    #[test]
    fn scales_out_after_the_window_to_the_needed_size() {
        let s = spec();
        let st = decide(&s, 3, &qps(200.0), None, 1000);
        assert_eq!((st.desired_replicas, st.pressure), (3, 1), "{}", st.reason);
        let st = decide(&s, 3, &qps(200.0), Some(&st), 1030);
        assert_eq!(st.desired_replicas, 3, "30 s is inside the 60 s window");
        let st = decide(&s, 3, &qps(200.0), Some(&st), 1060);
        assert_eq!(st.desired_replicas, 6, "3 nodes at 2x -> 6: {}", st.reason);
        // Capped at max.
        let st = decide(&s, 3, &qps(900.0), None, 0);
        let st = decide(&s, 3, &qps(900.0), Some(&st), 61);
        assert_eq!(st.desired_replicas, 6);
    }

    #[test]
    fn a_spike_shorter_than_the_window_changes_nothing() {
        let s = spec();
        let st = decide(&s, 3, &qps(200.0), None, 0);
        let st = decide(&s, 3, &qps(90.0), Some(&st), 30);
        assert_eq!((st.desired_replicas, st.pressure, st.pressure_since.clone()), (3, 0, None));
        let st = decide(&s, 3, &qps(200.0), Some(&st), 59);
        let st = decide(&s, 3, &qps(200.0), Some(&st), 100);
        assert_eq!(st.desired_replicas, 3, "the window restarted at 59 s");
    }

    #[test]
    fn scales_in_one_node_at_a_time_with_hysteresis() {
        let s = spec();
        // 4 nodes at 0.5x: 3 nodes would run at 0.67x < 0.8: low.
        let st = decide(&s, 4, &qps(50.0), None, 0);
        assert_eq!(st.pressure, -1);
        let st = decide(&s, 4, &qps(50.0), Some(&st), 299);
        assert_eq!(st.desired_replicas, 4);
        let st = decide(&s, 4, &qps(50.0), Some(&st), 300);
        assert_eq!(st.desired_replicas, 3, "{}", st.reason);
        // The next node only after another full window (cool-down from the last scaling).
        let st = decide(&s, 3, &qps(40.0), Some(&st), 301);
        let st = decide(&s, 3, &qps(40.0), Some(&st), 599);
        assert_eq!(st.desired_replicas, 3);
        let st = decide(&s, 3, &qps(40.0), Some(&st), 601);
        assert_eq!(st.desired_replicas, 2);
        // Never below min.
        let st = decide(&s, 2, &qps(1.0), Some(&st), 10_000);
        let st = decide(&s, 2, &qps(1.0), Some(&st), 20_000);
        assert_eq!(st.desired_replicas, 2);
        // 0.7x on 4 nodes would be 0.93x on 3: stays (the dead band prevents flapping).
        let st = decide(&s, 4, &qps(70.0), None, 0);
        let st = decide(&s, 4, &qps(70.0), Some(&st), 10_000);
        assert_eq!((st.desired_replicas, st.pressure), (4, 0));
    }

    #[test]
    fn the_largest_ratio_of_the_targets_wins() {
        let s = spec();
        let l = Load { qps_per_node: Some(50.0), p99_ms: Some(1.0), cpu_percent: Some(140.0) };
        assert_eq!(ratio(&s, &l), Some(2.0));
        assert_eq!(ratio(&s, &Load::default()), None);
    }

    #[test]
    fn load_from_two_scrapes() {
        let text = |req: u64, cpu: f64, fast: u64, slow: u64| {
            format!(
                "# HELP x\nagentdb_grpc_requests_total{{method=\"Search\",code=\"OK\"}} {req}\n\
                 agentdb_grpc_requests_total{{method=\"Upsert\",code=\"OK\"}} 0\nprocess_cpu_seconds_total {cpu}\n\
                 agentdb_grpc_request_duration_seconds_bucket{{method=\"Search\",le=\"0.001\"}} {fast}\n\
                 agentdb_grpc_request_duration_seconds_bucket{{method=\"Search\",le=\"0.1\"}} {}\n\
                 agentdb_grpc_request_duration_seconds_bucket{{method=\"Search\",le=\"+Inf\"}} {}\n",
                fast + slow,
                fast + slow
            )
        };
        let a = vec![parse_metrics(&text(100, 1.0, 100, 0)), parse_metrics(&text(0, 0.0, 0, 0))];
        let b = vec![parse_metrics(&text(1100, 6.0, 1090, 10)), parse_metrics(&text(1000, 5.0, 990, 10))];
        let l = load_between(&a, &b, 10.0, 1.0);
        assert_eq!(l.qps_per_node, Some(100.0));
        assert_eq!(l.cpu_percent, Some(50.0));
        // 1980 of 2000 within 1 ms is exactly 99 %.
        assert_eq!(l.p99_ms, Some(1.0));
    }
}
