//! The web console: its assets and headers, the small read routes it needs (`/v1/whoami`,
//! `/v1/presence`, the policy matrix and its preview), and the browser suite
//! (`tests/browser/console_test.py`: Playwright driving Debian's chromium) against a real
//! coordinator over HTTPS.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::Env;
use reqwest::Method;
use segwire_proto::access::{CreateApiKey, Role};
use segwire_testkit::skip::{require, skip, Need};

async fn viewer_key(env: &Env) -> String {
    env.admin()
        .create_api_key(&CreateApiKey {
            role: Role::Viewer,
            segments: None,
            ttl_seconds: None,
            description: Some("console viewer".into()),
        })
        .await
        .unwrap()
        .key
}

#[tokio::test(flavor = "multi_thread")]
async fn the_page_and_its_files_carry_strict_headers_and_need_no_key() {
    let env = Env::start();
    for (path, mime) in [
        ("/", "text/html"),
        ("/console/app.js", "text/javascript"),
        ("/console/style.css", "text/css"),
    ] {
        let resp = env
            .raw
            .get(format!("{}{path}", env.url))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        let h = resp.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{csp}"
        );
        assert!(
            csp.contains("frame-ancestors 'none'") && csp.contains("connect-src 'self'"),
            "{csp}"
        );
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert!(
            h["content-type"].to_str().unwrap().starts_with(mime),
            "{path}"
        );
        assert!(h.get("set-cookie").is_none());
    }
    let resp = env
        .raw
        .get(format!("{}/console/nope.js", env.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let (s, _) = env.raw(Method::GET, "/v1/nope", None, None).await;
    assert_eq!(s, 404, "the API's fallback still answers unknown /v1 paths");
}

#[tokio::test(flavor = "multi_thread")]
async fn whoami_tells_the_role_and_refuses_no_key() {
    let env = Env::start();
    let (s, body) = env
        .raw(Method::GET, "/v1/whoami", Some(&env.key), None)
        .await;
    assert_eq!(s, 200, "{body}");
    let w: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(w["role"], "admin");
    assert!(w["segments"].is_null());
    let viewer = viewer_key(&env).await;
    let (_, body) = env
        .raw(Method::GET, "/v1/whoami", Some(&viewer), None)
        .await;
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["role"],
        "viewer"
    );
    let (s, body) = env
        .raw(Method::GET, "/v1/whoami", Some("swk_x.y"), None)
        .await;
    assert_eq!((s.as_u16(), body.as_str()), (401, ""));
    let (s, body) = env
        .raw(Method::GET, "/v1/presence", Some(&viewer), None)
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body, r#"{"online":[]}"#);
}

#[tokio::test(flavor = "multi_thread")]
async fn matrix_of_the_policy_in_force_and_of_a_draft() {
    let env = Env::start();
    env.segment("web", "100.64.1.0/24").await;
    let token = env.token(&["web"], 1).await;
    let (_, node) = env.enroll(&token, "host-a").await;
    for (name, app) in [("web-1", "web"), ("db-1", "db")] {
        let mut req = common::attach_req("web", &format!("netns:{name}"));
        req.name = Some(name.into());
        req.labels = [(String::from("app"), String::from(app))].into();
        node.attach(&req).await.unwrap();
    }
    let policy = r#"{"default":"deny","rules":[{"name":"w","from":{"labels":{"app":"web"}},"to":{"labels":{"app":"db"}},"ports":["tcp/5432"]}]}"#;
    let (s, body) = env
        .raw(
            Method::PUT,
            "/v1/segments/web/policy",
            Some(&env.key),
            Some(policy),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let viewer = viewer_key(&env).await;
    let (s, body) = env
        .raw(
            Method::GET,
            "/v1/segments/web/policy/matrix",
            Some(&viewer),
            None,
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let m: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(m["members"], serde_json::json!(["web-1", "db-1"]));
    assert_eq!(m["cells"][0][1]["ports"], serde_json::json!(["tcp/5432"]));
    assert_eq!(m["cells"][1][0]["ports"], serde_json::json!([]));

    // A draft: previewed, not saved, and not audited (a query, like policy/check).
    let audit_before = env
        .raw(Method::GET, "/v1/audit", Some(&env.key), None)
        .await
        .1;
    let draft = r#"{"default":"allow","rules":[]}"#;
    let (s, body) = env
        .raw(
            Method::POST,
            "/v1/segments/web/policy/matrix",
            Some(&viewer),
            Some(draft),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let m: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(m["cells"][1][0]["by_default"], true);
    let (_, shown) = env
        .raw(Method::GET, "/v1/segments/web/policy", Some(&env.key), None)
        .await;
    assert!(shown.contains("\"deny\""), "the draft was saved: {shown}");
    let audit_after = env
        .raw(Method::GET, "/v1/audit", Some(&env.key), None)
        .await
        .1;
    assert_eq!(audit_before, audit_after, "a preview wrote an audit record");

    // A bad draft gets the same message PUT would give.
    let bad =
        r#"{"default":"deny","rules":[{"name":"x","from":"*","to":"*","ports":["tcp/99999"]}]}"#;
    let (s, preview) = env
        .raw(
            Method::POST,
            "/v1/segments/web/policy/matrix",
            Some(&viewer),
            Some(bad),
        )
        .await;
    let (s2, put) = env
        .raw(
            Method::PUT,
            "/v1/segments/web/policy",
            Some(&env.key),
            Some(bad),
        )
        .await;
    assert_eq!((s.as_u16(), s2.as_u16()), (400, 400));
    assert_eq!(preview, put);
    assert!(preview.contains("tcp/99999"), "{preview}");
    let (s, _) = env
        .raw(
            Method::GET,
            "/v1/segments/nope/policy/matrix",
            Some(&viewer),
            None,
        )
        .await;
    assert_eq!(s, 404);
}

/// Whether chromium and Playwright are here; a skip is visible, and a failure under CI
/// (see `segwire_testkit::skip`).
fn browser_ready(test: &str) -> bool {
    if !require(test, &[Need::Program("chromium"), Need::Program("python3")]) {
        return false;
    }
    let probe = Command::new("python3")
        .args(["-c", "import playwright.sync_api"])
        .output();
    if probe.is_ok_and(|o| o.status.success()) {
        return true;
    }
    let reason = "needs the Python package playwright (pip install playwright; .ci/run does)";
    assert!(
        std::env::var_os("CI").is_none(),
        "{test} cannot run on this CI machine: {reason}"
    );
    skip(test, reason);
    false
}

#[test]
fn console_in_a_real_browser() {
    if !browser_ready("console_in_a_real_browser") {
        return;
    }
    // host-a polls once while the suite seeds its data and must still count as online
    // when the browser looks, however slow a loaded machine makes the steps between.
    let env = Env::start_with("info", &["--node-offline-after", "10m"]);
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console");
    let _ = std::fs::remove_dir_all(&out);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/console_test.py");
    let ca = env.dir.path().join("data/ca.crt");
    let status = Command::new("python3")
        .arg(&script)
        .args([&env.url, &env.key])
        .arg(&ca)
        .arg(&out)
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
        .env("PLAYWRIGHT_BROWSERS_PATH", "0")
        .status()
        .expect("python3 runs");
    assert!(
        status.success(),
        "the browser suite failed (see its output above)"
    );
    for page in [
        "signin",
        "overview",
        "segment",
        "flows",
        "audit",
        "segment-viewer",
    ] {
        assert!(
            out.join(format!("{page}.png")).exists(),
            "no screenshot of {page}"
        );
    }
    if let Some(docs) = std::env::var_os("SEGWIRE_UPDATE_CONSOLE_DOCS") {
        let docs = Path::new(&docs);
        std::fs::create_dir_all(docs).unwrap();
        for e in std::fs::read_dir(&out).unwrap() {
            let p = e.unwrap().path();
            std::fs::copy(&p, docs.join(p.file_name().unwrap())).unwrap();
        }
    }
}
