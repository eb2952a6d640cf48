//! An in-memory Kubernetes API server for the reconcile tests: a tower Service that the
//! kube client talks to as it would to a real one (the paths, verbs, content types and
//! Status errors of the Kubernetes REST API), plus what the cluster's own controllers
//! would do around the operator: the garbage collector (owner references, finalizers)
//! and the StatefulSet controller and kubelet (pods and volume claims per ordinal,
//! revisions, readiness, OnDelete updates).

#![allow(dead_code)]

use base64::Engine;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

/// (path prefix such as `api/v1` or `apis/apps/v1`, namespace, plural, name)
pub type Key = (String, String, String, String);

#[derive(Default)]
pub struct State {
    pub objects: BTreeMap<Key, Value>,
    rv: u64,
    uid: u64,
    /// Every write, as `VERB plural/name` (and `/status`).
    pub log: Vec<String>,
    /// Resources the server does not serve (a CRD that is not installed).
    pub missing: BTreeSet<String>,
    /// Pods the kubelet reports failing (CrashLoopBackOff).
    pub failing: BTreeSet<String>,
    /// Pods the kubelet reports not ready.
    pub unready: BTreeSet<String>,
    /// Pods created in the last step: not ready until the next (they are starting).
    starting: BTreeSet<String>,
}

#[derive(Clone, Default)]
pub struct Fake(pub Arc<Mutex<State>>);

fn status(code: u16, reason: &str, message: String) -> (u16, Value) {
    (
        code,
        json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code }),
    )
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).to_string()
}

fn merge(target: &mut Value, patch: &Value) {
    if let Value::Object(p) = patch {
        if !target.is_object() {
            *target = json!({});
        }
        let t = target.as_object_mut().unwrap();
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    } else {
        *target = patch.clone();
    }
}

fn matches_selector(obj: &Value, selector: &str) -> bool {
    selector.split(',').filter(|s| !s.is_empty()).all(|term| {
        let (k, v) = term.split_once('=').unwrap_or((term, ""));
        obj["metadata"]["labels"][k].as_str() == Some(v)
    })
}

impl State {
    fn next_rv(&mut self) -> String {
        self.rv += 1;
        self.rv.to_string()
    }

    fn stamp_new(&mut self, obj: &mut Value, ns: &str, name: &str) {
        self.uid += 1;
        let rv = self.next_rv();
        let m = &mut obj["metadata"];
        m["name"] = json!(name);
        m["namespace"] = json!(ns);
        m["uid"] = json!(format!("uid-{}", self.uid));
        m["resourceVersion"] = json!(rv);
        m["generation"] = json!(1);
        m["creationTimestamp"] = json!("2026-12-07T00:00:00Z");
        // Secrets: stringData is write-only, stored base64 in data.
        if let Some(sd) = obj.get("stringData").cloned() {
            if let Value::Object(sd) = sd {
                for (k, v) in sd {
                    obj["data"][k] = json!(base64::engine::general_purpose::STANDARD.encode(v.as_str().unwrap_or("")));
                }
            }
            obj.as_object_mut().unwrap().remove("stringData");
        }
    }

    /// Remove an object and, like the garbage collector, everything it owns.
    pub fn remove(&mut self, key: &Key) {
        let Some(obj) = self.objects.remove(key) else { return };
        let uid = obj["metadata"]["uid"].as_str().unwrap_or("").to_string();
        let owned: Vec<Key> = self
            .objects
            .iter()
            .filter(|(_, o)| {
                o["metadata"]["ownerReferences"]
                    .as_array()
                    .is_some_and(|refs| refs.iter().any(|r| r["uid"].as_str() == Some(&uid)))
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in owned {
            self.delete(&k);
        }
    }

    /// DELETE: with finalizers only marked; otherwise removed.
    pub fn delete(&mut self, key: &Key) -> Option<Value> {
        let obj = self.objects.get_mut(key)?;
        if obj["metadata"]["finalizers"].as_array().is_some_and(|f| !f.is_empty()) {
            obj["metadata"]["deletionTimestamp"] = json!("2026-12-07T01:00:00Z");
            let out = obj.clone();
            let rv = self.next_rv();
            self.objects.get_mut(key).unwrap()["metadata"]["resourceVersion"] = json!(rv);
            return Some(out);
        }
        let out = obj.clone();
        self.remove(key);
        Some(out)
    }

    fn handle(&mut self, method: &str, path: &str, query: &str, ctype: &str, body: &[u8]) -> (u16, Value) {
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        let (prefix, rest) = match parts.first() {
            Some(&"api") if parts.len() >= 2 => (format!("api/{}", parts[1]), &parts[2..]),
            Some(&"apis") if parts.len() >= 3 => (format!("apis/{}/{}", parts[1], parts[2]), &parts[3..]),
            _ => return status(404, "NotFound", format!("no route {path}")),
        };
        let (ns, plural, name, sub) = match rest {
            ["namespaces", ns, plural, tail @ ..] => (
                ns.to_string(),
                plural.to_string(),
                tail.first().map(|s| s.to_string()),
                tail.get(1).map(|s| s.to_string()),
            ),
            [plural] => (String::new(), plural.to_string(), None, None),
            _ => return status(404, "NotFound", format!("no route {path}")),
        };
        if self.missing.contains(&plural) {
            return status(404, "NotFound", format!("the server could not find the requested resource ({plural})"));
        }
        let q: BTreeMap<String, String> = query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), percent_decode(v)))
            .collect();
        let body: Value =
            if body.is_empty() { Value::Null } else { serde_json::from_slice(body).unwrap_or(Value::Null) };
        match (method, name) {
            ("GET", None) => {
                let sel = q.get("labelSelector").cloned().unwrap_or_default();
                let items: Vec<Value> = self
                    .objects
                    .iter()
                    .filter(|((p, n, pl, _), o)| {
                        p == &prefix && (ns.is_empty() || n == &ns) && pl == &plural && matches_selector(o, &sel)
                    })
                    .map(|(_, o)| o.clone())
                    .collect();
                (
                    200,
                    json!({ "kind": "List", "apiVersion": "v1", "metadata": { "resourceVersion": self.rv.to_string() }, "items": items }),
                )
            }
            ("GET", Some(n)) => match self.objects.get(&(prefix, ns, plural.clone(), n.clone())) {
                Some(o) => (200, o.clone()),
                None => status(404, "NotFound", format!("{plural} \"{n}\" not found")),
            },
            ("POST", None) => {
                let n = body["metadata"]["name"].as_str().unwrap_or("").to_string();
                let key = (prefix, ns.clone(), plural.clone(), n.clone());
                if self.objects.contains_key(&key) {
                    return status(409, "AlreadyExists", format!("{plural} \"{n}\" already exists"));
                }
                let mut obj = body;
                self.stamp_new(&mut obj, &ns, &n);
                self.log.push(format!("CREATE {plural}/{n}"));
                self.objects.insert(key, obj.clone());
                (201, obj)
            }
            ("PATCH", Some(n)) => {
                let key = (prefix, ns.clone(), plural.clone(), n.clone());
                let is_status = sub.as_deref() == Some("status");
                if ctype.starts_with("application/apply-patch") {
                    match self.objects.get(&key).cloned() {
                        None => {
                            let mut obj = body;
                            self.stamp_new(&mut obj, &ns, &n);
                            self.log.push(format!("CREATE {plural}/{n}"));
                            self.objects.insert(key, obj.clone());
                            (201, obj)
                        }
                        Some(mut obj) => {
                            // The fields the operator applies are the operator's: replaced.
                            let before = obj.clone();
                            for (k, v) in body.as_object().cloned().unwrap_or_default() {
                                if k == "metadata" {
                                    for mk in ["labels", "annotations", "ownerReferences"] {
                                        if let Some(x) = v.get(mk) {
                                            obj["metadata"][mk] = x.clone();
                                        }
                                    }
                                } else if k != "status" {
                                    obj[k.as_str()] = v;
                                }
                            }
                            if obj != before {
                                if obj.get("spec") != before.get("spec") {
                                    let g = obj["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
                                    obj["metadata"]["generation"] = json!(g);
                                }
                                obj["metadata"]["resourceVersion"] = json!(self.next_rv());
                                self.log.push(format!("UPDATE {plural}/{n}"));
                            }
                            self.objects.insert(key, obj.clone());
                            (200, obj)
                        }
                    }
                } else {
                    let Some(mut obj) = self.objects.get(&key).cloned() else {
                        return status(404, "NotFound", format!("{plural} \"{n}\" not found"));
                    };
                    if is_status {
                        merge(&mut obj["status"], &body["status"]);
                        self.log.push(format!("STATUS {plural}/{n}"));
                    } else {
                        let spec_before = obj.get("spec").cloned();
                        merge(&mut obj, &body);
                        if obj.get("spec").cloned() != spec_before {
                            let g = obj["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
                            obj["metadata"]["generation"] = json!(g);
                        }
                        self.log.push(format!("PATCH {plural}/{n}"));
                    }
                    obj["metadata"]["resourceVersion"] = json!(self.next_rv());
                    let gone = obj["metadata"].get("deletionTimestamp").is_some()
                        && obj["metadata"]["finalizers"].as_array().is_none_or(|f| f.is_empty());
                    self.objects.insert(key.clone(), obj.clone());
                    if gone {
                        self.remove(&key);
                    }
                    (200, obj)
                }
            }
            ("DELETE", Some(n)) => {
                let key = (prefix, ns, plural.clone(), n.clone());
                self.log.push(format!("DELETE {plural}/{n}"));
                match self.delete(&key) {
                    Some(o) => (200, o),
                    None => status(404, "NotFound", format!("{plural} \"{n}\" not found")),
                }
            }
            _ => status(405, "MethodNotAllowed", format!("{method} {path}")),
        }
    }

    pub fn get(&self, prefix: &str, ns: &str, plural: &str, name: &str) -> Option<Value> {
        self.objects.get(&(prefix.into(), ns.into(), plural.into(), name.into())).cloned()
    }

    pub fn names(&self, prefix: &str, ns: &str, plural: &str) -> Vec<String> {
        self.objects
            .keys()
            .filter(|(p, n, pl, _)| p == prefix && n == ns && pl == plural)
            .map(|(_, _, _, name)| name.clone())
            .collect()
    }

    /// The StatefulSet controller and the kubelet, one step: pods and claims for every
    /// ordinal below `replicas` (new pods at the update revision; existing pods keep theirs,
    /// as with OnDelete), pods above it removed, readiness and status reported.
    pub fn kubelet(&mut self) {
        // Pods started in the previous step are up now.
        self.starting.clear();
        let stss: Vec<(Key, Value)> = self
            .objects
            .iter()
            .filter(|((p, _, pl, _), _)| p == "apis/apps/v1" && pl == "statefulsets")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for ((_, ns, _, name), sts) in stss {
            let template = sts["spec"]["template"].to_string();
            let rev = format!("{name}-{:x}", fnv(&template));
            let replicas = sts["spec"]["replicas"].as_i64().unwrap_or(1);
            let labels = sts["spec"]["template"]["metadata"]["labels"].clone();
            for i in 0..replicas {
                let pod = format!("{name}-{i}");
                let key: Key = ("api/v1".into(), ns.clone(), "pods".into(), pod.clone());
                if !self.objects.contains_key(&key) {
                    let mut l = labels.clone();
                    l["controller-revision-hash"] = json!(rev);
                    l["statefulset.kubernetes.io/pod-name"] = json!(pod);
                    let owner = json!([{ "apiVersion": "apps/v1", "kind": "StatefulSet", "name": name,
                        "uid": sts["metadata"]["uid"].clone(), "controller": true }]);
                    let mut obj = json!({ "apiVersion": "v1", "kind": "Pod", "metadata": { "labels": l, "ownerReferences": owner },
                        "spec": sts["spec"]["template"]["spec"].clone() });
                    self.stamp_new(&mut obj, &ns, &pod);
                    self.objects.insert(key, obj);
                    self.starting.insert(pod.clone());
                }
                for vct in sts["spec"]["volumeClaimTemplates"].as_array().cloned().unwrap_or_default() {
                    let claim = format!("{}-{name}-{i}", vct["metadata"]["name"].as_str().unwrap_or("data"));
                    let key: Key = ("api/v1".into(), ns.clone(), "persistentvolumeclaims".into(), claim.clone());
                    if !self.objects.contains_key(&key) {
                        let mut obj = json!({ "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                            "metadata": { "labels": vct["metadata"]["labels"].clone() }, "spec": vct["spec"].clone() });
                        self.stamp_new(&mut obj, &ns, &claim);
                        self.objects.insert(key, obj);
                    }
                }
            }
            // Scale-in: pods at or above `replicas` go (their claims stay).
            let prefix = format!("{name}-");
            let extra: Vec<Key> = self
                .objects
                .keys()
                .filter(|(p, n, pl, pod)| {
                    p == "api/v1"
                        && n == &ns
                        && pl == "pods"
                        && pod.strip_prefix(&prefix).and_then(|o| o.parse::<i64>().ok()).is_some_and(|o| o >= replicas)
                })
                .cloned()
                .collect();
            for k in extra {
                self.remove(&k);
            }
            let mut ready = 0;
            let mut pods = 0;
            for i in 0..replicas {
                let pod = format!("{name}-{i}");
                let failing = self.failing.contains(&pod);
                let unready = self.unready.contains(&pod) || self.starting.contains(&pod);
                if let Some(p) = self.objects.get_mut(&("api/v1".into(), ns.clone(), "pods".into(), pod.clone())) {
                    pods += 1;
                    let ok = !failing && !unready;
                    ready += i64::from(ok);
                    p["status"] = json!({
                        "phase": "Running",
                        "conditions": [{ "type": "Ready", "status": if ok { "True" } else { "False" } }],
                        "containerStatuses": [{
                            "name": "agentdb", "ready": ok, "restartCount": if failing { 5 } else { 0 }, "image": "x", "imageID": "x",
                            "state": if failing { json!({ "waiting": { "reason": "CrashLoopBackOff", "message": "back-off 5m0s restarting failed container" } }) }
                                     else { json!({ "running": {} }) },
                        }],
                    });
                }
            }
            let key: Key = ("apis/apps/v1".into(), ns.clone(), "statefulsets".into(), name.clone());
            let o = self.objects.get_mut(&key).unwrap();
            o["status"] = json!({ "replicas": pods, "readyReplicas": ready, "updateRevision": rev, "observedGeneration": o["metadata"]["generation"] });
        }
    }
}

pub fn fnv(s: &str) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.as_bytes() {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

impl tower::Service<Request<kube::client::Body>> for Fake {
    type Response = Response<Full<Bytes>>;
    type Error = std::convert::Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<kube::client::Body>) -> Self::Future {
        let state = self.0.clone();
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let bytes = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            let ctype =
                parts.headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
            let (code, out) = state.lock().unwrap().handle(
                parts.method.as_str(),
                parts.uri.path(),
                parts.uri.query().unwrap_or(""),
                &ctype,
                &bytes,
            );
            Ok(Response::builder()
                .status(StatusCode::from_u16(code).unwrap())
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::from(out.to_string())))
                .unwrap())
        })
    }
}
