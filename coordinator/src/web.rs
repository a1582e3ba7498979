//! The web console: static assets compiled into the binary and served under `/` with
//! strict security headers. Nothing is loaded from anywhere else; the pages call `/v1`
//! with the API key the person signed in with (kept in `sessionStorage`, sent as a
//! Bearer header), so the API's own role checks apply to everything the console does.

use axum::extract::Path;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// Scripts, styles and connections from this origin only; no inline code, no framing.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; connect-src 'self'; form-action 'none'; base-uri 'none'; \
frame-ancestors 'none'";

/// One embedded file: name under `/console/`, content type, bytes.
struct Asset {
    name: &'static str,
    mime: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $mime:expr) => {
        Asset {
            name: $name,
            mime: $mime,
            body: include_bytes!(concat!("../web/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of the console (the page itself is served at `/`).
const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("icon.svg", "image/svg+xml"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("dom.js", JS),
    asset!("overview.js", JS),
    asset!("segment.js", JS),
    asset!("matrix.js", JS),
    asset!("topology.js", JS),
    asset!("policy_editor.js", JS),
    asset!("actions.js", JS),
    asset!("flows.js", JS),
    asset!("audit.js", JS),
];

/// The console's routes: `/` and `/console/{file}`; no credential needed to load them.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { serve("index.html") }))
        .route(
            "/console/{file}",
            get(|Path(file): Path<String>| async move { serve(&file) }),
        )
}

fn serve(name: &str) -> Response {
    let Some(a) = ASSETS.iter().find(|a| a.name == name) else {
        return with_headers((StatusCode::NOT_FOUND, "no such console file\n").into_response());
    };
    let mut resp = with_headers(a.body.into_response());
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(a.mime));
    resp
}

fn with_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    resp
}

/// Total size of the embedded assets in bytes.
#[cfg(test)]
fn total_size() -> usize {
    ASSETS.iter().map(|a| a.body.len()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_stay_small_and_load_nothing_from_elsewhere() {
        assert!(
            total_size() < 256 * 1024,
            "console assets: {} bytes",
            total_size()
        );
        for a in ASSETS {
            // The SVG namespace is a name, not something loaded.
            let text = String::from_utf8_lossy(a.body).replace("http://www.w3.org/2000/svg", "");
            for bad in ["http://", "https://", "@import", "innerHTML", "eval("] {
                assert!(!text.contains(bad), "{} contains {bad:?}", a.name);
            }
        }
    }

    #[test]
    fn the_page_has_no_inline_script() {
        let page = String::from_utf8_lossy(ASSETS[0].body);
        for (i, _) in page.match_indices("<script") {
            let tag = &page[i..page[i..].find('>').map_or(page.len(), |e| i + e)];
            assert!(tag.contains("src="), "inline script: {tag}");
        }
        assert!(!page.contains(" style="), "inline style attribute");
        let handler = page
            .split(|c: char| c.is_whitespace())
            .any(|w| w.starts_with("on") && w.contains('='));
        assert!(!handler, "inline event handler");
    }
}
