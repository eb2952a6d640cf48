//! The web console at `/ui` on the HTTP listener: static assets compiled into the
//! binary (`server/ui/`, embedded by `build.rs`; nothing fetched at run time), or read
//! from `ui.dir` on each request when that is set (working on the console without
//! rebuilding). Every response carries a strict Content-Security-Policy: scripts,
//! styles and fonts from this origin only, no inline script or style attribute, images
//! and media also from `blob:` (the console shows fetched media through object URLs),
//! API calls to this origin only, no framing. The console signs in with an API key or
//! an OIDC token kept in the tab's sessionStorage and sent as a bearer header; it never
//! goes into a URL. See docs/UI.md.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

mod assets {
    include!(concat!(env!("OUT_DIR"), "/ui_assets.rs"));
}

pub const PATH: &str = "/ui";

pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; \
     media-src 'self' blob:; connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).as_deref() {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("woff2") => "font/woff2",
        Some("txt") | Some("md") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// A console path (`""` = the index) as a relative file path, or `None` when it tries
/// to leave the console's folder.
fn relative(path: &str) -> Option<PathBuf> {
    let path = if path.is_empty() || path.ends_with('/') { format!("{path}index.html") } else { path.to_string() };
    let p = PathBuf::from(&path);
    p.components().all(|c| matches!(c, Component::Normal(_))).then_some(p)
}

fn secure(mut r: Response, cache: bool) -> Response {
    let h = r.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    // The page is small and changes with the binary: revalidate rather than serve a stale one.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(if cache { "no-cache" } else { "no-store" }));
    r
}

fn not_found(path: &str) -> Response {
    secure((StatusCode::NOT_FOUND, format!("no console file '{path}'\n")).into_response(), false)
}

/// Serves the console from the embedded assets or from `dir`.
#[derive(Clone)]
pub struct Console {
    dir: Option<Arc<PathBuf>>,
}

impl Console {
    pub fn new(dir: &str) -> anyhow::Result<Console> {
        if dir.trim().is_empty() {
            if !assets::ASSETS.iter().any(|(p, _)| *p == "index.html") {
                tracing::warn!("this binary was built without the web console (server/ui/index.html)");
            }
            return Ok(Console { dir: None });
        }
        let d = Path::new(dir);
        anyhow::ensure!(d.join("index.html").is_file(), "ui.dir '{dir}' has no index.html");
        Ok(Console { dir: Some(Arc::new(d.to_path_buf())) })
    }

    async fn serve(&self, path: &str) -> Response {
        let Some(rel) = relative(path) else { return not_found(path) };
        let name = rel.to_string_lossy().replace('\\', "/");
        let bytes: Option<Vec<u8>> = match &self.dir {
            Some(d) => tokio::fs::read(d.join(&rel)).await.ok(),
            None => assets::ASSETS.iter().find(|(p, _)| *p == name).map(|(_, b)| b.to_vec()),
        };
        match bytes {
            Some(b) => secure(([(header::CONTENT_TYPE, content_type(&name))], b).into_response(), true),
            None => not_found(path),
        }
    }

    pub fn router(self) -> axum::Router {
        use axum::extract::Path as P;
        use axum::routing::get;
        let (a, b, c) = (self.clone(), self.clone(), self);
        axum::Router::new()
            .route("/", get(|| async { axum::response::Redirect::temporary("/ui/") }))
            .route(PATH, get(move || async move { a.serve("").await }))
            .route("/ui/", get(move || async move { b.serve("").await }))
            .route("/ui/{*path}", get(move |P(path): P<String>| async move { c.serve(&path).await }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_console() {
        assert_eq!(relative("").unwrap(), PathBuf::from("index.html"));
        assert_eq!(relative("js/app.js").unwrap(), PathBuf::from("js/app.js"));
        assert_eq!(relative("views/").unwrap(), PathBuf::from("views/index.html"));
        for bad in ["../Cargo.toml", "js/../../x", "/etc/passwd", "./x"] {
            assert!(relative(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn the_console_is_embedded_with_its_index() {
        assert!(assets::ASSETS.iter().any(|(p, b)| *p == "index.html" && !b.is_empty()));
        assert_eq!(content_type("app.js"), "text/javascript; charset=utf-8");
        assert!(CSP.contains("script-src 'self'") && !CSP.contains("unsafe-inline"));
    }
}
