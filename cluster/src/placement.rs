//! The leader's placement of shard replicas (a pure function of what it sees, so it is
//! tested without NATS): "catch up, then switch", dead replicas replaced at once, one
//! rebalancing move (drain or uneven load) at a time.

use crate::wire::{Assignment, CollectionMeta, FORMAT};
use std::collections::{BTreeMap, HashMap};

/// What the leader knows when it places replicas.
pub(crate) struct PlaceInput<'a> {
    pub(crate) collections: &'a BTreeMap<String, CollectionMeta>,
    pub(crate) assign: &'a BTreeMap<(String, u32), Assignment>,
    /// Live nodes (by heartbeat).
    pub(crate) live: &'a [String],
    /// Nodes being drained: they take no new replica and hand theirs off.
    pub(crate) draining: &'a [String],
    /// Whether node N has applied shard S of C up to the stream's end.
    pub(crate) caught_up: &'a dyn Fn(&str, u32, &str) -> bool,
}

/// The leader's placement: the assignments to write. Every shard keeps `replicas` live
/// nodes; a replica is added "catching up" and the one it replaces (a dead node's, a
/// draining node's, or the most loaded node's when the load is uneven) is dropped only
/// once it has caught up. One rebalancing move at a time across the cluster; replacing
/// a dead node does not wait.
pub(crate) fn placement(inp: &PlaceInput<'_>) -> Vec<(String, Assignment)> {
    let eligible: Vec<&String> = inp.live.iter().filter(|n| !inp.draining.contains(n)).collect();
    if inp.live.is_empty() {
        return Vec::new();
    }
    let mut load: HashMap<String, usize> = inp.live.iter().map(|n| (n.clone(), 0)).collect();
    for a in inp.assign.values() {
        for n in &a.nodes {
            if let Some(l) = load.get_mut(n) {
                *l += 1;
            }
        }
    }
    let pick = |load: &HashMap<String, usize>, exclude: &[String]| -> Option<String> {
        eligible
            .iter()
            .filter(|n| !exclude.contains(n))
            .min_by_key(|n| (load.get(n.as_str()).copied().unwrap_or(0), n.to_string()))
            .map(|n| n.to_string())
    };
    let mut plans = Vec::new();
    let mut moving = false;
    for (name, m) in inp.collections {
        for shard in 0..m.shards {
            let key = (name.clone(), shard);
            let cur = inp.assign.get(&key).cloned().unwrap_or_default();
            let mut a = cur.clone();
            a.format = FORMAT;
            // 1. Replicas catching up: a dead one is dropped; one that has caught up
            //    becomes a full replica, and the replica it replaces goes.
            let mut switched = false;
            for t in cur.catching_up.clone() {
                if !inp.live.contains(&t) {
                    a.nodes.retain(|n| *n != t);
                    a.catching_up.retain(|n| *n != t);
                } else if (inp.caught_up)(name, shard, &t) {
                    a.catching_up.retain(|n| *n != t);
                    switched = true;
                }
            }
            // Only full replicas count here: a replica catching up for a move sits beside
            // the one it replaces (nodes = replicas + 1) until it has caught up.
            let full = |a: &Assignment| a.nodes.iter().filter(|n| !a.catching_up.contains(n)).count();
            if switched || full(&a) > m.replicas as usize {
                while full(&a) > m.replicas as usize {
                    // Drop: a draining node, else a dead one, else the most loaded.
                    let victim = a
                        .nodes
                        .iter()
                        .filter(|n| !a.catching_up.contains(n))
                        .max_by_key(|n| {
                            let d = inp.draining.contains(n);
                            let dead = !inp.live.contains(n);
                            (d, dead, load.get(n.as_str()).copied().unwrap_or(0), (*n).clone())
                        })
                        .cloned();
                    let Some(v) = victim else { break };
                    a.nodes.retain(|n| *n != v);
                    if let Some(l) = load.get_mut(&v) {
                        *l = l.saturating_sub(1);
                    }
                }
            }
            if !a.catching_up.is_empty() {
                moving = true;
            }
            // 2. Dead replicas are replaced at once (their copy is gone anyway).
            let dead: Vec<String> = a.nodes.iter().filter(|n| !inp.live.contains(n)).cloned().collect();
            for d in dead {
                let Some(t) = pick(&load, &a.nodes) else { break };
                a.nodes.retain(|n| *n != d);
                a.nodes.push(t.clone());
                a.catching_up.push(t.clone());
                *load.entry(t).or_default() += 1;
            }
            // Too few replicas (a new collection, fewer nodes than replicas before).
            while a.nodes.len() < m.replicas as usize {
                let Some(t) = pick(&load, &a.nodes) else { break };
                a.nodes.push(t.clone());
                if !cur.nodes.is_empty() {
                    a.catching_up.push(t.clone());
                }
                *load.entry(t).or_default() += 1;
            }
            if a != cur {
                plans.push((format!("assign.{name}.{shard}"), a));
            }
        }
    }
    if moving || !plans.is_empty() {
        return plans;
    }
    // 3. One move: a replica off a draining node, else off the most loaded node onto the
    //    least loaded one when they differ by two or more.
    let mut best: Option<((String, u32), String)> = None;
    'outer: for (name, m) in inp.collections {
        for shard in 0..m.shards {
            let a = inp.assign.get(&(name.clone(), shard)).cloned().unwrap_or_default();
            if a.nodes.iter().any(|n| inp.draining.contains(n)) {
                if let Some(t) = pick(&load, &a.nodes) {
                    best = Some(((name.clone(), shard), t));
                    break 'outer;
                }
            }
        }
    }
    if best.is_none() {
        let (min, max) = match (
            eligible.iter().min_by_key(|n| (load.get(n.as_str()).copied().unwrap_or(0), n.to_string())),
            eligible.iter().max_by_key(|n| (load.get(n.as_str()).copied().unwrap_or(0), n.to_string())),
        ) {
            (Some(a), Some(b)) => (a.to_string(), b.to_string()),
            _ => return plans,
        };
        if load[&max] >= load[&min] + 2 {
            'find: for (name, m) in inp.collections {
                for shard in 0..m.shards {
                    let a = inp.assign.get(&(name.clone(), shard)).cloned().unwrap_or_default();
                    if a.nodes.contains(&max) && !a.nodes.contains(&min) {
                        best = Some(((name.clone(), shard), min.clone()));
                        break 'find;
                    }
                }
            }
        }
    }
    if let Some(((name, shard), t)) = best {
        let mut a = inp.assign.get(&(name.clone(), shard)).cloned().unwrap_or_default();
        a.format = FORMAT;
        a.nodes.push(t.clone());
        a.catching_up.push(t);
        plans.push((format!("assign.{name}.{shard}"), a));
    }
    plans
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentdb_engine::CollectionSpec;

    fn apply(assign: &mut BTreeMap<(String, u32), Assignment>, plans: Vec<(String, Assignment)>) {
        for (key, a) in plans {
            let shard: u32 = key.rsplit('.').next().unwrap().parse().unwrap();
            assign.insert(("c".to_string(), shard), a);
        }
    }

    fn loads(assign: &BTreeMap<(String, u32), Assignment>) -> BTreeMap<String, usize> {
        let mut l = BTreeMap::new();
        for a in assign.values() {
            for n in &a.nodes {
                *l.entry(n.clone()).or_default() += 1;
            }
        }
        l
    }

    #[test]
    fn placement_spreads_replaces_drains_and_rebalances_catching_up_first() {
        let cols: BTreeMap<String, CollectionMeta> = [(
            "c".to_string(),
            CollectionMeta {
                format: FORMAT,
                spec: CollectionSpec { name: "c".into(), ..Default::default() },
                shards: 3,
                replicas: 2,
                stream_replicas: 1,
            },
        )]
        .into();
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let yes = |_: &str, _: u32, _: &str| true;
        let no = |_: &str, _: u32, _: &str| false;
        let mut assign = BTreeMap::new();
        let place =
            |assign: &BTreeMap<_, _>, live: &[String], draining: &[String], cu: &dyn Fn(&str, u32, &str) -> bool| {
                placement(&PlaceInput { collections: &cols, assign, live, draining, caught_up: cu })
            };
        // A new collection: 6 replicas over 3 nodes, 2 each, none catching up.
        let abc = names(&["a", "b", "c"]);
        let p = place(&assign, &abc, &[], &no);
        assert_eq!(p.len(), 3);
        apply(&mut assign, p);
        assert!(loads(&assign).values().all(|l| *l == 2), "{assign:?}");
        assert!(assign.values().all(|a| a.catching_up.is_empty() && a.nodes.len() == 2));
        assert!(place(&assign, &abc, &[], &yes).is_empty(), "stable");

        // c dies: its replicas are replaced at once by nodes that catch up, then full.
        let ab = names(&["a", "b"]);
        let p = place(&assign, &ab, &[], &no);
        apply(&mut assign, p);
        assert!(assign.values().all(|a| !a.nodes.contains(&"c".to_string())), "{assign:?}");
        assert!(assign.values().any(|a| !a.catching_up.is_empty()));
        assert!(place(&assign, &ab, &[], &no).is_empty(), "waits while they catch up");
        let p = place(&assign, &ab, &[], &yes);
        apply(&mut assign, p);
        assert!(assign.values().all(|a| a.catching_up.is_empty() && a.nodes.len() == 2), "{assign:?}");

        // d joins: one move at a time onto it (catch up, then switch) until even.
        let abd = names(&["a", "b", "d"]);
        for _ in 0..10 {
            let p = place(&assign, &abd, &[], &yes);
            if p.is_empty() {
                break;
            }
            apply(&mut assign, p);
        }
        let l = loads(&assign);
        assert_eq!(l.get("d").copied().unwrap_or(0), 2, "{l:?}");
        assert!(assign.values().all(|a| a.catching_up.is_empty() && a.nodes.len() == 2));

        // Draining a: its replicas move off, each only once its successor caught up.
        let drain = names(&["a"]);
        let p = place(&assign, &abd, &drain, &no);
        assert_eq!(p.len(), 1, "one move at a time");
        apply(&mut assign, p);
        let moving = assign.values().find(|a| !a.catching_up.is_empty()).unwrap().clone();
        assert!(
            moving.nodes.contains(&"a".to_string()) && moving.nodes.len() == 3,
            "a stays until the switch: {moving:?}"
        );
        assert!(place(&assign, &abd, &drain, &no).is_empty(), "a stays while its successor catches up");
        for _ in 0..20 {
            let p = place(&assign, &abd, &drain, &yes);
            if p.is_empty() {
                break;
            }
            apply(&mut assign, p);
        }
        assert!(assign.values().all(|a| !a.nodes.contains(&"a".to_string()) && a.nodes.len() == 2), "{assign:?}");
        assert!(place(&assign, &[], &[], &yes).is_empty());
    }
}
