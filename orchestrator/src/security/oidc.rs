//! OIDC / JWT bearer tokens, verified against the identity provider's JWKS.
//!
//! A token is accepted only when all of these hold, checked in this order:
//!
//! 1. its header names an algorithm on the allow-list (`none` and the HMAC family
//!    `HS*` can never be on it: an HMAC "verified" with a public key as the secret lets
//!    anyone who knows the public key forge tokens, the RS/HS confusion attack), and
//!    declares no `crit` extension;
//! 2. its `kid` names a key in the JWKS (an unknown `kid` makes the verifier re-read
//!    the JWKS, at most once per `jwks_refresh`, so rotated keys are picked up without
//!    letting random `kid`s hammer the identity provider);
//! 3. that key's type and curve fit the algorithm (RSA for `RS*`/`PS*`, P-256 for
//!    `ES256`, P-384 for `ES384`, Ed25519 for `EdDSA`), and its own `alg`, if any, is
//!    the token's;
//! 4. the signature verifies with that key;
//! 5. `exp` (required) has not passed and `nbf` (if present) has, both with `leeway`,
//!    `iss` (required) is the configured issuer and `aud` (required) names one of the
//!    configured audiences;
//! 6. the claims map to a principal: a subject, a role, optional collection scopes and
//!    an optional row filter (see [`OidcSettings`]).
//!
//! Header fields that point at keys elsewhere (`jku`, `x5u`, `jwk`, `x5c`) are ignored:
//! keys come only from the configured JWKS file or URL.

use super::{AuthMethod, Error, Principal, Role};
use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Validation};
use parking_lot::{Mutex, RwLock};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest JWKS document read from a file or URL.
const MAX_JWKS_BYTES: u64 = 1 << 20;
/// Largest token accepted (a JWT with a few dozen claims is ~1-2 KiB).
const MAX_TOKEN_BYTES: usize = 16 << 10;
/// Smallest RSA modulus accepted in a JWKS.
const MIN_RSA_BITS: usize = 2048;

/// What the verifier checks and how claims become a [`Principal`].
#[derive(Debug, Clone)]
pub struct OidcSettings {
    /// Expected `iss`, exactly (e.g. `https://login.example.com/realms/acme`).
    pub issuer: String,
    /// Accepted `aud` values; the token's `aud` must contain at least one.
    pub audience: Vec<String>,
    /// A JWKS JSON document on disk.
    pub jwks_file: Option<PathBuf>,
    /// A JWKS JSON document at an `http(s)://` URL (the provider's `jwks_uri`).
    pub jwks_url: Option<String>,
    /// Least time between two re-reads of the JWKS triggered by unknown `kid`s.
    pub jwks_refresh: Duration,
    /// The JWKS is re-read on the next token once it is this old (so keys the
    /// provider removed stop being trusted).
    pub jwks_max_age: Duration,
    /// Timeout for fetching `jwks_url`.
    pub http_timeout: Duration,
    /// Accepted `alg` values (see [`parse_algorithms`]).
    pub algorithms: Vec<Algorithm>,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    pub leeway_secs: u64,
    /// Claim holding the principal's identifier (`sub`); the principal id is `oidc:<it>`.
    pub principal_claim: String,
    /// Claim holding the role: `reader`, `writer` or `admin`, or a list of strings of
    /// which the highest role counts.
    pub role_claim: String,
    /// Role for tokens without `role_claim`; `None` refuses them.
    pub default_role: Option<Role>,
    /// Roles the claim may name: the built-ins and the configuration's custom roles.
    pub roles: std::sync::Arc<super::RoleTable>,
    /// Claim listing the collections the principal may touch (absent = all).
    pub collections_claim: String,
    /// Claim holding a row-level filter expression (e.g. `tenant = "acme"`), ANDed into
    /// everything the principal reads, writes or deletes, exactly like an API key's.
    pub row_filter_claim: Option<String>,
    /// `amr` values that prove a multi-factor login.
    pub mfa_amr_values: Vec<String>,
    /// `acr` values that prove a multi-factor login.
    pub mfa_acr_values: Vec<String>,
}

impl OidcSettings {
    /// Settings with the documented defaults for everything but issuer, audience and JWKS.
    pub fn new(issuer: &str, audience: Vec<String>) -> OidcSettings {
        OidcSettings {
            issuer: issuer.to_string(),
            audience,
            jwks_file: None,
            jwks_url: None,
            jwks_refresh: Duration::from_secs(30),
            jwks_max_age: Duration::from_secs(600),
            http_timeout: Duration::from_secs(5),
            algorithms: vec![Algorithm::RS256, Algorithm::ES256],
            leeway_secs: 60,
            principal_claim: "sub".into(),
            role_claim: "agentdb_role".into(),
            default_role: None,
            roles: Default::default(),
            collections_claim: "agentdb_collections".into(),
            row_filter_claim: None,
            mfa_amr_values: vec!["mfa".into(), "otp".into(), "hwk".into()],
            mfa_acr_values: Vec::new(),
        }
    }
}

/// Parse an algorithm allow-list. `none` and every HMAC algorithm are refused: the
/// verifier holds only public keys, and accepting HMAC is what makes the RS/HS
/// confusion attack possible.
pub fn parse_algorithms(names: &[String]) -> Result<Vec<Algorithm>, Error> {
    let mut out = Vec::new();
    for raw in names.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        if raw.eq_ignore_ascii_case("none") {
            return Err(Error::Invalid("algorithm 'none' (unsigned tokens) is never accepted".into()));
        }
        if raw.len() >= 2 && raw[..2].eq_ignore_ascii_case("HS") {
            return Err(Error::Invalid(format!(
                "algorithm '{raw}' is never accepted: HMAC needs a shared secret, and verifying it with a \
                 public key lets anyone forge tokens (RS/HS confusion); use RS*, PS*, ES256, ES384 or EdDSA"
            )));
        }
        let alg = Algorithm::from_str(raw).map_err(|_| {
            Error::Invalid(format!(
                "unknown algorithm '{raw}' (RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA)"
            ))
        })?;
        if !out.contains(&alg) {
            out.push(alg);
        }
    }
    if out.is_empty() {
        return Err(Error::Invalid("the OIDC algorithm allow-list is empty".into()));
    }
    Ok(out)
}

struct CachedKey {
    jwk: Jwk,
    key: DecodingKey,
}

#[derive(Default)]
struct KeyCache {
    keys: HashMap<String, Arc<CachedKey>>,
    loaded: Option<Instant>,
}

/// Verifies bearer tokens; cheap to share (`Arc`) between requests.
pub struct OidcVerifier {
    settings: OidcSettings,
    cache: RwLock<KeyCache>,
    /// When the JWKS was last (re)read or tried; held while reading, so concurrent
    /// requests with unknown `kid`s cause one read, not one each.
    last_attempt: Mutex<Option<Instant>>,
    agent: Option<ureq::Agent>,
}

impl std::fmt::Debug for OidcVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcVerifier")
            .field("issuer", &self.settings.issuer)
            .field("audience", &self.settings.audience)
            .field("kids", &self.key_ids())
            .finish()
    }
}

fn unauthenticated(why: impl Into<String>) -> Error {
    Error::Unauthenticated(why.into())
}

impl OidcVerifier {
    /// Check the settings and load the JWKS. A JWKS file that cannot be read, or holds
    /// no usable key, is an error; a JWKS URL that cannot be fetched now is logged and
    /// retried on the first token (the provider may start after us).
    pub fn new(settings: OidcSettings) -> Result<OidcVerifier, Error> {
        if settings.issuer.trim().is_empty() {
            return Err(Error::Invalid("OIDC needs an issuer (security.oidc.issuer)".into()));
        }
        if settings.audience.iter().all(|a| a.trim().is_empty()) {
            return Err(Error::Invalid("OIDC needs an audience (security.oidc.audience)".into()));
        }
        if settings.jwks_file.is_none() && settings.jwks_url.is_none() {
            return Err(Error::Invalid(
                "OIDC needs signing keys: set security.oidc.jwks_file or security.oidc.jwks_url".into(),
            ));
        }
        if settings.algorithms.is_empty() {
            return Err(Error::Invalid("the OIDC algorithm allow-list is empty".into()));
        }
        if let Some(a) = settings.algorithms.iter().find(|a| a.family() == AlgorithmFamily::Hmac) {
            return Err(Error::Invalid(format!("algorithm {a:?} is never accepted (RS/HS confusion)")));
        }
        if settings.principal_claim.is_empty() || settings.role_claim.is_empty() {
            return Err(Error::Invalid("security.oidc.principal_claim and role_claim must not be empty".into()));
        }
        let agent = match &settings.jwks_url {
            Some(u) => {
                if !(u.starts_with("https://") || u.starts_with("http://")) {
                    return Err(Error::Invalid(format!("security.oidc.jwks_url must be an http(s) URL, got '{u}'")));
                }
                if u.starts_with("http://") {
                    tracing::warn!(url = %u, "the JWKS is fetched over plain http: anyone on the path can swap the signing keys");
                }
                let cfg = ureq::Agent::config_builder().timeout_global(Some(settings.http_timeout)).build();
                Some(cfg.new_agent())
            }
            None => None,
        };
        let v = OidcVerifier { settings, cache: RwLock::default(), last_attempt: Mutex::new(None), agent };
        match v.load() {
            Ok(keys) => v.install(keys),
            Err(e) if v.settings.jwks_file.is_some() => return Err(Error::Invalid(e)),
            Err(e) => tracing::warn!(error = %e, "cannot load the OIDC JWKS yet; tokens are refused until it loads"),
        }
        *v.last_attempt.lock() = Some(Instant::now());
        Ok(v)
    }

    pub fn settings(&self) -> &OidcSettings {
        &self.settings
    }

    /// Key ids currently trusted.
    pub fn key_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.cache.read().keys.keys().cloned().collect();
        ids.sort();
        ids
    }

    fn install(&self, keys: HashMap<String, Arc<CachedKey>>) {
        let mut c = self.cache.write();
        tracing::info!(keys = keys.len(), kids = ?keys.keys().collect::<Vec<_>>(), "OIDC signing keys loaded");
        c.keys = keys;
        c.loaded = Some(Instant::now());
    }

    /// Read every configured JWKS source; any failure fails the whole read, so a
    /// half-fetched set never replaces a good one.
    fn load(&self) -> Result<HashMap<String, Arc<CachedKey>>, String> {
        let mut keys = HashMap::new();
        if let Some(path) = &self.settings.jwks_file {
            use std::io::Read;
            let f = std::fs::File::open(path).map_err(|e| format!("JWKS file {}: {e}", path.display()))?;
            let mut text = String::new();
            f.take(MAX_JWKS_BYTES)
                .read_to_string(&mut text)
                .map_err(|e| format!("JWKS file {}: {e}", path.display()))?;
            parse_jwks(&text, &mut keys).map_err(|e| format!("JWKS file {}: {e}", path.display()))?;
        }
        if let (Some(url), Some(agent)) = (&self.settings.jwks_url, &self.agent) {
            let text = agent
                .get(url)
                .header("accept", "application/json")
                .call()
                .and_then(|mut r| r.body_mut().with_config().limit(MAX_JWKS_BYTES).read_to_string())
                .map_err(|e| format!("JWKS URL {url}: {e}"))?;
            parse_jwks(&text, &mut keys).map_err(|e| format!("JWKS URL {url}: {e}"))?;
        }
        if keys.is_empty() {
            return Err("the JWKS holds no usable signing key".into());
        }
        Ok(keys)
    }

    /// Re-read the JWKS unless that was tried less than `jwks_refresh` ago.
    fn refresh(&self, why: &str) {
        let mut last = self.last_attempt.lock();
        if last.is_some_and(|t| t.elapsed() < self.settings.jwks_refresh) {
            return;
        }
        *last = Some(Instant::now());
        tracing::debug!(reason = why, "re-reading the OIDC JWKS");
        match self.load() {
            Ok(keys) => self.install(keys),
            Err(e) => tracing::warn!(error = %e, "cannot re-read the OIDC JWKS; keeping the keys already loaded"),
        }
    }

    fn key(&self, kid: &str) -> Option<Arc<CachedKey>> {
        let (hit, stale) = {
            let c = self.cache.read();
            let stale = c.loaded.is_none_or(|t| t.elapsed() >= self.settings.jwks_max_age);
            (c.keys.get(kid).cloned(), stale)
        };
        if hit.is_some() && !stale {
            return hit;
        }
        self.refresh(if stale { "cache expired" } else { "unknown kid" });
        self.cache.read().keys.get(kid).cloned()
    }

    /// Verify `token` and map its claims to a principal. Errors are
    /// [`Error::Unauthenticated`] with the reason (never the token).
    pub fn verify(&self, token: &str) -> Result<Principal, Error> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(unauthenticated(format!("token larger than {MAX_TOKEN_BYTES} bytes")));
        }
        let header = token_header(token)?;
        let alg_name = match header.get("alg") {
            Some(Value::String(s)) => s.clone(),
            _ => return Err(unauthenticated("malformed token: the header has no algorithm (alg)")),
        };
        let alg = Algorithm::from_str(&alg_name)
            .ok()
            .filter(|a| self.settings.algorithms.contains(a))
            .ok_or_else(|| unauthenticated(format!("algorithm {alg_name} not allowed")))?;
        if header.contains_key("crit") {
            return Err(unauthenticated("token declares critical header extensions (crit), which are not supported"));
        }
        let kid = match header.get("kid") {
            Some(Value::String(s)) if !s.is_empty() => s.as_str(),
            _ => return Err(unauthenticated("token header has no key id (kid)")),
        };
        let key = self.key(kid).ok_or_else(|| {
            if self.cache.read().keys.is_empty() {
                unauthenticated("no signing keys: the JWKS could not be loaded yet")
            } else {
                unauthenticated(format!("unknown key id '{kid}'"))
            }
        })?;
        if !key_fits(&key.jwk, alg) {
            return Err(unauthenticated(format!("algorithm {alg_name} does not match the type of key '{kid}'")));
        }
        let mut v = Validation::new(alg);
        v.leeway = self.settings.leeway_secs;
        v.validate_exp = true;
        v.validate_nbf = true;
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
        v.set_issuer(&[self.settings.issuer.as_str()]);
        v.set_audience(&self.settings.audience);
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &v).map_err(|e| {
            unauthenticated(match e.kind() {
                ErrorKind::InvalidSignature => "signature invalid".to_string(),
                ErrorKind::ExpiredSignature => "token expired".to_string(),
                ErrorKind::ImmatureSignature => "token not yet valid (nbf is in the future)".to_string(),
                ErrorKind::InvalidAudience => "wrong audience".to_string(),
                ErrorKind::InvalidIssuer => "wrong issuer".to_string(),
                ErrorKind::MissingRequiredClaim(c) => format!("token has no '{c}' claim"),
                ErrorKind::InvalidClaimFormat(c) => format!("malformed '{c}' claim"),
                ErrorKind::InvalidAlgorithm => format!("algorithm {alg_name} does not match key '{kid}'"),
                _ => format!("malformed token: {e}"),
            })
        })?;
        self.principal(&data.claims)
    }

    fn principal(&self, claims: &Map<String, Value>) -> Result<Principal, Error> {
        let s = &self.settings;
        let subject = match claim(claims, &s.principal_claim) {
            Some(Value::String(v)) if !v.is_empty() => v.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => return Err(unauthenticated(format!("token has no '{}' claim", s.principal_claim))),
        };
        if subject.len() > 256 || subject.chars().any(char::is_control) {
            return Err(unauthenticated(format!("claim '{}' is not a usable identifier", s.principal_claim)));
        }
        let role = match claim(claims, &s.role_claim) {
            None | Some(Value::Null) => s.default_role.clone().ok_or_else(|| {
                unauthenticated(format!("token has no '{}' claim (reader, writer or admin)", s.role_claim))
            })?,
            Some(Value::String(r)) => {
                s.roles.resolve(r).map_err(|e| unauthenticated(format!("claim '{}': {e}", s.role_claim)))?
            }
            Some(Value::Array(list)) => list
                .iter()
                .filter_map(|v| v.as_str().and_then(|r| s.roles.resolve(r).ok()))
                .reduce(|a: Role, b| if b.rank() > a.rank() { b } else { a })
                .or_else(|| s.default_role.clone())
                .ok_or_else(|| {
                    unauthenticated(format!("claim '{}' names no role (reader, writer or admin)", s.role_claim))
                })?,
            Some(_) => return Err(unauthenticated(format!("claim '{}' must be a string or a list", s.role_claim))),
        };
        let collections = match claim(claims, &s.collections_claim) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(c)) => vec![c.clone()],
            Some(Value::Array(list)) => {
                let names: Option<Vec<String>> = list.iter().map(|v| v.as_str().map(str::to_string)).collect();
                let names = names.ok_or_else(|| {
                    unauthenticated(format!("claim '{}' must be a list of collection names", s.collections_claim))
                })?;
                if names.is_empty() {
                    // Empty would otherwise mean "every collection".
                    return Err(unauthenticated(format!(
                        "claim '{}' is an empty list: the token grants no collection",
                        s.collections_claim
                    )));
                }
                names
            }
            Some(_) => {
                return Err(unauthenticated(format!(
                    "claim '{}' must be a list of collection names",
                    s.collections_claim
                )))
            }
        };
        for c in &collections {
            agentdb_engine::types::validate_name("collection", c)
                .map_err(|e| unauthenticated(format!("claim '{}': {e}", s.collections_claim)))?;
        }
        let row_filter = match s.row_filter_claim.as_deref().and_then(|name| claim(claims, name).map(|v| (name, v))) {
            None | Some((_, Value::Null)) => None,
            Some((name, Value::String(f))) if !f.trim().is_empty() => {
                agentdb_engine::filter::parse(f)
                    .map_err(|e| unauthenticated(format!("claim '{name}' is not a valid filter: {e}")))?;
                Some(f.clone())
            }
            Some((name, _)) => return Err(unauthenticated(format!("claim '{name}' must be a filter expression"))),
        };
        let amr_mfa = match claims.get("amr") {
            Some(Value::Array(list)) => {
                list.iter().filter_map(Value::as_str).any(|m| s.mfa_amr_values.iter().any(|w| w == m))
            }
            _ => false,
        };
        let acr_mfa =
            claims.get("acr").and_then(Value::as_str).is_some_and(|a| s.mfa_acr_values.iter().any(|w| w == a));
        let name = ["name", "preferred_username", "email"]
            .iter()
            .find_map(|c| claims.get(*c).and_then(Value::as_str))
            .unwrap_or(&subject)
            .chars()
            .filter(|c| !c.is_control())
            .take(128)
            .collect();
        Ok(Principal {
            id: format!("oidc:{subject}"),
            name,
            role,
            collections,
            row_filter,
            auth: AuthMethod::Oidc { issuer: s.issuer.clone() },
            mfa: amr_mfa || acr_mfa,
        })
    }
}

/// A claim by exact name, or else by a dotted path into nested objects
/// (`realm_access.role`); exact names win, since URL-style claim names contain dots.
fn claim<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    if let Some(v) = claims.get(name) {
        return Some(v);
    }
    let mut parts = name.split('.');
    let mut cur = claims.get(parts.next()?)?;
    for p in parts {
        cur = cur.as_object()?.get(p)?;
    }
    Some(cur)
}

/// The decoded (unverified) JOSE header, read only to choose the algorithm and key.
fn token_header(token: &str) -> Result<Map<String, Value>, Error> {
    let malformed = || unauthenticated("malformed token: expected a JWT (header.payload.signature)");
    let mut parts = token.split('.');
    let (Some(h), Some(_), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(malformed());
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(h).map_err(|_| malformed())?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(malformed()),
    }
}

/// Whether `jwk` may verify `alg`: the key type and curve fit the algorithm, and the
/// key's own `alg`, when it has one, is this algorithm.
fn key_fits(jwk: &Jwk, alg: Algorithm) -> bool {
    if jwk.common.key_algorithm.is_some_and(|ka| ka != alg.into()) {
        return false;
    }
    match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => alg.family() == AlgorithmFamily::Rsa,
        AlgorithmParameters::EllipticCurve(p) => {
            matches!((&p.curve, alg), (EllipticCurve::P256, Algorithm::ES256) | (EllipticCurve::P384, Algorithm::ES384))
        }
        AlgorithmParameters::OctetKeyPair(p) => p.curve == EllipticCurve::Ed25519 && alg == Algorithm::EdDSA,
        _ => false,
    }
}

/// Add the usable signature keys of a JWKS document to `out`. Keys without a `kid`,
/// encryption keys, symmetric keys, short RSA keys and key types we cannot verify
/// with are skipped (and logged); a document that is not a JWKS is an error.
fn parse_jwks(text: &str, out: &mut HashMap<String, Arc<CachedKey>>) -> Result<(), String> {
    let doc: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let Some(keys) = doc.get("keys").and_then(Value::as_array) else {
        return Err("not a JWKS: no \"keys\" list".into());
    };
    for (i, raw) in keys.iter().enumerate() {
        let kid = raw.get("kid").and_then(Value::as_str).unwrap_or_default().to_string();
        let skip = |why: &str| tracing::warn!(index = i, kid = %kid, "skipping JWKS key: {why}");
        if kid.is_empty() {
            skip("no kid");
            continue;
        }
        if raw.get("kty").and_then(Value::as_str) == Some("oct") {
            skip("symmetric keys are never trusted");
            continue;
        }
        let jwk: Jwk = match serde_json::from_value(raw.clone()) {
            Ok(j) => j,
            Err(e) => {
                skip(&format!("unsupported key: {e}"));
                continue;
            }
        };
        if matches!(&jwk.common.public_key_use, Some(u) if *u != PublicKeyUse::Signature) {
            skip("not a signature key (use != sig)");
            continue;
        }
        match &jwk.algorithm {
            AlgorithmParameters::RSA(p) => {
                let n = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(p.n.trim_end_matches('='));
                let bits = n.map(|n| n.iter().skip_while(|b| **b == 0).count() * 8).unwrap_or(0);
                if bits < MIN_RSA_BITS {
                    skip(&format!("RSA modulus of {bits} bits is shorter than {MIN_RSA_BITS}"));
                    continue;
                }
            }
            AlgorithmParameters::EllipticCurve(p) if matches!(p.curve, EllipticCurve::P256 | EllipticCurve::P384) => {}
            AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {}
            _ => {
                skip("unsupported key type or curve");
                continue;
            }
        }
        match DecodingKey::from_jwk(&jwk) {
            Ok(key) => {
                out.entry(kid).or_insert_with(|| Arc::new(CachedKey { jwk, key }));
            }
            Err(e) => skip(&format!("unusable key: {e}")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_and_none_are_never_allowed() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(parse_algorithms(&s(&["RS256", "ES256"])).unwrap(), vec![Algorithm::RS256, Algorithm::ES256]);
        assert!(parse_algorithms(&s(&["RS256", "HS256"])).unwrap_err().to_string().contains("RS/HS confusion"));
        assert!(parse_algorithms(&s(&["hs512"])).is_err());
        assert!(parse_algorithms(&s(&["none"])).unwrap_err().to_string().contains("never accepted"));
        assert!(parse_algorithms(&s(&["RS999"])).unwrap_err().to_string().contains("unknown algorithm"));
        assert!(parse_algorithms(&s(&[])).is_err());
    }

    #[test]
    fn headers_and_claims() {
        assert!(token_header("a.b").is_err());
        assert!(token_header("!!.b.c").is_err());
        let h = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
        assert_eq!(token_header(&format!("{h}.e30.")).unwrap()["alg"], "none");
        let claims: Map<String, Value> =
            serde_json::from_str(r#"{"https://x.io/role":"admin","realm":{"role":"reader"}}"#).unwrap();
        assert_eq!(claim(&claims, "https://x.io/role").unwrap(), "admin");
        assert_eq!(claim(&claims, "realm.role").unwrap(), "reader");
        assert!(claim(&claims, "realm.nope").is_none());
    }

    #[test]
    fn jwks_parsing_skips_what_it_cannot_trust() {
        let mut out = HashMap::new();
        let doc = r#"{"keys":[
            {"kty":"oct","kid":"sym","k":"c2VjcmV0"},
            {"kty":"RSA","kid":"short","n":"AQAB","e":"AQAB"},
            {"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty":"EC","kid":"enc","use":"enc","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty":"EC","kid":"ec1","use":"sig","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}
        ]}"#;
        parse_jwks(doc, &mut out).unwrap();
        assert_eq!(out.keys().collect::<Vec<_>>(), vec!["ec1"]);
        let ec = &out["ec1"].jwk;
        assert!(key_fits(ec, Algorithm::ES256));
        assert!(!key_fits(ec, Algorithm::ES384) && !key_fits(ec, Algorithm::RS256));
        assert!(parse_jwks("{}", &mut out).is_err());
        assert!(parse_jwks("nope", &mut out).is_err());
    }

    #[test]
    fn role_claims_may_name_custom_roles() {
        use crate::security::{Action, CustomRole, Grant, RoleTable};
        let mut s = OidcSettings::new("https://idp", vec!["agentdb".into()]);
        s.jwks_url = Some("http://127.0.0.1:1/jwks".into());
        s.roles = std::sync::Arc::new(
            RoleTable::new(vec![CustomRole {
                name: "tenant".into(),
                grants: vec![Grant::new(vec![Action::Write], vec!["t*".into()]).unwrap()],
                storage_quota_bytes: None,
                storage_quota_items: None,
            }])
            .unwrap(),
        );
        let v = OidcVerifier::new(s).unwrap();
        let claims = |role: Value| -> Map<String, Value> {
            serde_json::from_value(serde_json::json!({"sub": "u1", "agentdb_role": role})).unwrap()
        };
        assert_eq!(v.principal(&claims("tenant".into())).unwrap().role.as_str(), "tenant");
        assert_eq!(v.principal(&claims(serde_json::json!(["tenant", "writer"]))).unwrap().role, Role::Writer);
        assert_eq!(v.principal(&claims(serde_json::json!(["nope", "tenant"]))).unwrap().role.as_str(), "tenant");
        let e = v.principal(&claims("nope".into())).unwrap_err().to_string();
        assert!(e.contains("unknown role 'nope'"), "{e}");
    }

    #[test]
    fn an_unreachable_jwks_url_is_retried_not_fatal() {
        let mut s = OidcSettings::new("https://idp", vec!["agentdb".into()]);
        s.jwks_url = Some("http://127.0.0.1:1/jwks".into());
        s.http_timeout = Duration::from_millis(500);
        let v = OidcVerifier::new(s).unwrap();
        let h = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","kid":"k"}"#);
        let err = v.verify(&format!("{h}.e30.c2ln")).unwrap_err().to_string();
        assert!(err.contains("no signing keys"), "{err}");
        let h = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","kid":"k"}"#);
        assert_eq!(v.verify(&format!("{h}.e30.c2ln")).unwrap_err().to_string(), "algorithm HS256 not allowed");
    }

    #[test]
    fn settings_are_checked() {
        let mut s = OidcSettings::new("https://idp", vec!["agentdb".into()]);
        assert!(OidcVerifier::new(s.clone()).unwrap_err().to_string().contains("jwks_file or"));
        s.jwks_url = Some("ftp://idp/keys".into());
        assert!(OidcVerifier::new(s.clone()).unwrap_err().to_string().contains("http(s) URL"));
        s.jwks_url = None;
        s.jwks_file = Some("/nonexistent/jwks.json".into());
        assert!(OidcVerifier::new(s.clone()).unwrap_err().to_string().contains("/nonexistent/jwks.json"));
        s.algorithms = vec![Algorithm::HS256];
        assert!(OidcVerifier::new(s).unwrap_err().to_string().contains("never accepted"));
    }
}
