//! Reading request parameters: both ProtoJSON spellings, parts, files, messages.

use super::errors::*;
use super::model::*;
use base64::Engine as _;
use serde_json::{Map, Value};

/// A string or whole-number parameter, in either ProtoJSON spelling (`contextId` or
/// `context_id`): the skills' own readers.
pub(super) use agentdb_orchestrator::skills::{str_param, usize_param};

/// `historyLength`: absent, or an integer >= 0 (INVALID_PARAMS otherwise).
pub(super) fn history_length_param(p: &Map<String, Value>) -> Result<Option<usize>, RpcError> {
    match super::protojson::int_param(p, "historyLength").map_err(RpcError::params)? {
        None => Ok(None),
        Some(n) if n < 0 => Err(RpcError::params(format!("historyLength must be 0 or more, got {n}"))),
        Some(n) => Ok(Some(n as usize)),
    }
}

pub(super) fn task_id_param(p: &Map<String, Value>) -> Result<String, RpcError> {
    // 1.0 sends `id`; some 0.3 clients sent `name: "tasks/<id>"`.
    str_param(p, "id")
        .map(str::to_string)
        .or_else(|| str_param(p, "name").map(|n| n.trim_start_matches("tasks/").to_string()))
        .ok_or_else(|| RpcError::params("params.id (the task id) is required"))
}

pub(super) fn decode_b64(s: &str) -> Result<Vec<u8>, RpcError> {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE};
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    STANDARD
        .decode(&s)
        .or_else(|_| URL_SAFE.decode(&s))
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(s.trim_end_matches('=')))
        .map_err(|e| RpcError::params(format!("file part: invalid base64: {e}")))
}

/// A file given by URI: only `data:` URIs, never a network fetch.
pub(super) fn decode_data_uri(uri: &str) -> Result<(String, Vec<u8>), RpcError> {
    let Some(rest) = uri.strip_prefix("data:") else {
        return Err(RpcError::params(
            "file part: only inline bytes or data: URIs are accepted (AgentDB does not fetch URLs)",
        ));
    };
    let (meta, payload) = rest.split_once(',').ok_or_else(|| RpcError::params("file part: malformed data: URI"))?;
    let (mime, b64) = match meta.strip_suffix(";base64") {
        Some(m) => (m, true),
        None => (meta, false),
    };
    let mime = if mime.is_empty() { "text/plain" } else { mime.split(';').next().unwrap_or("text/plain") };
    let bytes = if b64 { decode_b64(payload)? } else { percent_decode(payload) };
    Ok((mime.to_string(), bytes))
}

pub(super) fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// One part, in either dialect: 1.0 `{text}` / `{raw|url, filename, mediaType}` /
/// `{data}`; 0.3 `{kind: text|file|data, ...}` with `file: {bytes|uri, name, mimeType}`.
pub(super) fn parse_part(v: &Value) -> Result<Part, RpcError> {
    let o = v.as_object().ok_or_else(|| RpcError::params("each part must be an object"))?;
    if let Some(t) = o.get("text").and_then(Value::as_str) {
        return Ok(Part::Text(t.to_string()));
    }
    if let Some(d) = o.get("data") {
        return Ok(Part::Data(d.clone()));
    }
    let file = o.get("file").and_then(Value::as_object).unwrap_or(o);
    let name = ["filename", "name"].iter().find_map(|k| file.get(*k).and_then(Value::as_str)).unwrap_or("");
    let mime = ["mediaType", "mimeType"].iter().find_map(|k| file.get(*k).and_then(Value::as_str)).unwrap_or("");
    let (mime, bytes) = if let Some(raw) = ["raw", "bytes"].iter().find_map(|k| file.get(*k).and_then(Value::as_str)) {
        (mime.to_string(), decode_b64(raw)?)
    } else if let Some(uri) = ["url", "uri"].iter().find_map(|k| file.get(*k).and_then(Value::as_str)) {
        let (m, b) = decode_data_uri(uri)?;
        (if mime.is_empty() { m } else { mime.to_string() }, b)
    } else {
        let kind = o.get("kind").and_then(Value::as_str).unwrap_or("?");
        return Err(RpcError::params(format!("unsupported part (kind '{kind}'): expected text, file or data")));
    };
    let mime = if mime.is_empty() { "application/octet-stream".to_string() } else { mime };
    Ok(Part::File { name: name.to_string(), mime, bytes })
}

/// The message of a send request: id, context, optional task, parts.
pub(super) struct Incoming {
    pub(super) message_id: String,
    pub(super) context_id: Option<String>,
    pub(super) task_id: Option<String>,
    pub(super) parts: Vec<Part>,
}

pub(super) fn parse_message(params: &Map<String, Value>) -> Result<Incoming, RpcError> {
    let m = params
        .get("message")
        .and_then(Value::as_object)
        .ok_or_else(|| RpcError::params("params.message (an object) is required"))?;
    let parts = m
        .get("parts")
        .and_then(Value::as_array)
        .ok_or_else(|| RpcError::params("message.parts (an array) is required"))?
        .iter()
        .map(parse_part)
        .collect::<Result<Vec<_>, _>>()?;
    if parts.is_empty() {
        return Err(RpcError::params("message.parts is empty"));
    }
    // The spec requires the role: ROLE_USER / ROLE_AGENT (1.0) or user / agent (0.3).
    match str_param(m, "role") {
        Some("ROLE_USER" | "ROLE_AGENT" | "user" | "agent") => {}
        Some(r) => return Err(RpcError::params(format!("message.role '{r}' is not a role (ROLE_USER or ROLE_AGENT)"))),
        None => return Err(RpcError::params("message.role is required (ROLE_USER or ROLE_AGENT)")),
    }
    // The spec makes messageId required (the client's id for deduplication and replies).
    let message_id = str_param(m, "messageId")
        .ok_or_else(|| RpcError::params("message.messageId is required (a non-empty string)"))?
        .to_string();
    Ok(Incoming {
        message_id,
        context_id: str_param(m, "contextId").map(str::to_string),
        task_id: str_param(m, "taskId").map(str::to_string),
        parts,
    })
}

/// Gather a job from parts. Routing: a data part's `skill` decides; otherwise text
/// starting with `remember:` means remember, a file part alone means ingest, and any
/// other text means recall.
pub(super) fn job_from_parts(parts: &[Part]) -> Job {
    let mut job = Job::default();
    let mut texts = Vec::new();
    for p in parts {
        match p {
            Part::Text(t) => texts.push(t.clone()),
            Part::Data(Value::Object(m)) => job.params.extend(m.clone()),
            Part::Data(other) => {
                job.params.insert("value".into(), other.clone());
            }
            Part::File { name, mime, bytes } => job.files.push((name.clone(), mime.clone(), bytes.clone())),
        }
    }
    job.text = texts.join("\n");
    job.skill = str_param(&job.params, "skill").map(|s| s.to_ascii_lowercase());
    if job.skill.is_none() {
        let t = job.text.trim_start();
        job.skill = Some(
            if t.len() >= 9 && t[..9].eq_ignore_ascii_case("remember:") {
                job.text = t[9..].trim().to_string();
                "remember"
            } else if t.is_empty() && !job.files.is_empty() {
                "ingest"
            } else {
                "recall"
            }
            .to_string(),
        );
    }
    job
}

/// A continuation: the new message's fields fill in or replace the waiting request's.
pub(super) fn merge_job(mut old: Job, new: Job, new_parts: &[Part]) -> Job {
    let explicit_skill = new_parts.iter().any(|p| matches!(p, Part::Data(Value::Object(m)) if m.contains_key("skill")));
    if explicit_skill {
        old.skill = new.skill;
    }
    old.params.extend(new.params);
    if !new.text.trim().is_empty() {
        old.text = new.text;
    }
    if !new.files.is_empty() {
        old.files = new.files;
    }
    old
}
