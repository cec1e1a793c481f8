//! `/status` and `/status/data` over real HTTP on 127.0.0.1, on axum, on actix-web and on the
//! admin listener; and the page itself in a real headless Chromium (Debian's `chromium`, driven
//! through `chromedriver`) loading it from the demo: what it renders, against `/stats` and
//! `/health`; a dependency that goes away and comes back; the token rules; a server that stops
//! answering. Screenshots go to `<target>/vitalsign-artifacts/status-*.png` on every run.
#![cfg(feature = "status")]

#[path = "../examples/demo/actix_app.rs"]
#[allow(dead_code)]
mod actix_app;
#[path = "../examples/demo/app.rs"]
#[allow(dead_code)]
mod app;
mod common;
#[path = "common/demo.rs"]
mod demo;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::browser::{artifacts_dir, Browser};
use common::*;
use demo::{Ctx, Framework, BOTH};
use serde_json::{json, Value};
use vitalsign::endpoint::{Endpoint, Endpoints};

fn options(dependency: Option<SocketAddr>, token: Option<&str>) -> app::HealthOptions {
    app::HealthOptions {
        dependency: dependency.map(|a| a.to_string()),
        check_interval: Duration::from_millis(100),
        token: token.map(str::to_owned),
    }
}

/// The demo on `framework`, with windows of 500 ms so that charts fill in seconds.
async fn start(framework: Framework, options: &app::HealthOptions) -> Ctx {
    let builder = app::monitor_builder_with(options)
        .unwrap()
        .collection_interval(Duration::from_millis(500));
    demo::start(framework, builder).await
}

async fn get_json(url: &str, token: Option<&str>) -> (u16, Value) {
    let mut request = client().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// What the rendered page shows, read from its DOM (text as displayed, visibility).
const PAGE_STATE: &str = r#"
var q = function (s) { return document.querySelector(s); };
var shown = function (e) { return !!e && e.getClientRects().length > 0; };
var tiles = {};
document.querySelectorAll('[data-tile]').forEach(function (t) {
  tiles[t.getAttribute('data-tile')] = {value: t.querySelector('.value').textContent, detail: t.querySelector('.detail').textContent, shown: shown(t)};
});
var charts = {};
document.querySelectorAll('polyline[data-series]').forEach(function (p) {
  var ys = p.getAttribute('points').trim().split(/\s+/).map(function (xy) { return +xy.split(',')[1]; });
  var c = charts[p.getAttribute('data-series')] || {points: 0, low: Infinity, high: -Infinity};
  c.points += ys.length; c.low = Math.min(c.low, Math.min.apply(null, ys)); c.high = Math.max(c.high, Math.max.apply(null, ys));
  charts[p.getAttribute('data-series')] = c;
});
return {
  level: q('#level .word').textContent,
  components: Array.from(document.querySelectorAll('#components tbody tr')).map(function (tr) {
    return {name: tr.getAttribute('data-component'), level: tr.querySelector('.badge .word').textContent, shown: shown(tr)};
  }),
  tiles: tiles,
  charts: charts,
  routes: Array.from(document.querySelectorAll('#routes tbody tr')).map(function (tr) { return tr.textContent; }),
  refreshes: +q('#refreshes').textContent,
  stale: shown(q('#stale')) ? q('#stale').textContent : null,
  details: shown(q('#details')),
  summary: shown(q('#summary')) ? q('#summary').textContent : null,
  auth: shown(q('#auth')),
  tokenError: shown(q('#token-error')) ? q('#token-error').textContent : null,
  marker: window.__vitalsignTestMarker || null,
  width: document.documentElement.scrollWidth
};
"#;

async fn state(browser: &Browser) -> Value {
    browser.run(PAGE_STATE, json!([])).await
}

/// The first number in `text` (`"12.50 ms"`, `"42 in total"`).
fn number(text: &Value) -> f64 {
    let text = text.as_str().unwrap_or_default();
    let start = text
        .find(|c: char| c.is_ascii_digit() || c == '-')
        .unwrap_or_else(|| panic!("no number in {text:?}"));
    let rest = &text[start..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
        .unwrap_or(rest.len());
    rest[..end].parse().unwrap()
}

/// Whether the page's tiles show the figures of `stats` (a `/stats` document), to the
/// precision they are printed with; the mismatches otherwise.
fn tiles_match(tiles: &Value, stats: &Value) -> Result<(), String> {
    let mut wrong = Vec::new();
    let mut check = |what: &str, shown: f64, want: f64, precision: f64| {
        if (shown - want).abs() > precision {
            wrong.push(format!("{what}: page {shown}, /stats {want}"));
        }
    };
    let ms_precision = |v: f64| if v < 10.0 { 0.0051 } else { 0.051 };
    let fives: f64 = stats["requests"]["status_codes"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(code, _)| code.starts_with('5'))
        .map(|(_, n)| n.as_f64().unwrap())
        .sum();
    let total = stats["requests"]["total"].as_f64().unwrap();
    check(
        "requests total",
        number(&tiles["requests"]["detail"]),
        total,
        0.0,
    );
    check("5xx total", number(&tiles["errors"]["detail"]), fives, 0.0);
    let avg = stats["response_times"]["avg_in_millis"].as_f64().unwrap();
    check(
        "avg since start",
        number(&tiles["response-avg"]["detail"]),
        avg,
        ms_precision(avg),
    );
    let max = stats["response_times"]["max_in_millis"].as_f64().unwrap();
    check(
        "max since start",
        number(&tiles["response-max"]["detail"]),
        max,
        ms_precision(max),
    );
    let in_flight = stats["concurrent_connections"].as_f64().unwrap();
    check(
        "in flight",
        number(&tiles["in-flight"]["value"]),
        in_flight,
        0.0,
    );
    let disconnects = stats["requests"]["disconnects"].as_f64().unwrap();
    check(
        "disconnects",
        number(&tiles["disconnects"]["value"]),
        disconnects,
        0.0,
    );
    let load = stats["os"]["load"]["1m"].as_f64().unwrap();
    check("load 1m", number(&tiles["load"]["value"]), load, 0.0051);
    let cpus = stats["os"]["cpus"].as_f64().unwrap();
    let cpu_detail = tiles["cpu"]["detail"].as_str().unwrap_or_default();
    if !cpu_detail.contains(&format!("{cpus} CPUs")) {
        wrong.push(format!("cpus: page {cpu_detail:?}, /stats {cpus}"));
    }
    // Resident memory moves between two readings: the same order of magnitude.
    let rss = stats["process"]["memory"]["resident_set_size_in_bytes"]
        .as_f64()
        .unwrap()
        / 1048576.0;
    let shown_rss = number(&tiles["memory"]["value"]);
    if !(shown_rss > rss / 2.0 && shown_rss < rss * 2.0) {
        wrong.push(format!("memory: page {shown_rss} MiB, /stats {rss} MiB"));
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(wrong.join("; "))
    }
}

/// Console entries at level SEVERE (errors), except those `allowed` says are expected.
fn errors(entries: &[Value], allowed: impl Fn(&str) -> bool) -> Vec<String> {
    entries
        .iter()
        .filter(|e| e["level"] == "SEVERE")
        .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
        .filter(|m| !allowed(m))
        .collect()
}

/// Every URL the page loaded (itself and its resources): all on `base`.
async fn assert_only_the_server(browser: &Browser, base: &str) -> Vec<String> {
    let urls = browser
        .run(
            "return [location.href].concat(performance.getEntriesByType('navigation').map(function (e) { return e.name; }), performance.getEntriesByType('resource').map(function (e) { return e.name; }));",
            json!([]),
        )
        .await;
    let urls: Vec<String> = urls
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap().to_owned())
        .collect();
    for url in &urls {
        assert!(
            url.starts_with(&format!("{base}/")),
            "{url} is not on {base}"
        );
    }
    urls
}

/// Sends the demo a mix of requests, over half of them 5xx (the `http` rule degrades), until
/// told to stop.
fn traffic(base: String, stop: Arc<AtomicBool>) -> Vec<tokio::task::JoinHandle<u64>> {
    (0..2u64)
        .map(|worker| {
            let base = base.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let client = client();
                let mut sent = 0u64;
                let mut i = worker;
                while !stop.load(Ordering::Relaxed) {
                    let slow = format!("/slow?ms={}", 5 + (i % 7) * 15);
                    let user = format!("/users/{i}");
                    for path in [&*user, &*slow, "/error", "/error", "/error"] {
                        let _ = client.get(format!("{base}{path}")).send().await;
                        sent += 1;
                    }
                    i += 2;
                    // A rate that rises and falls, for charts with a shape.
                    let pause = 15 + (i / 2 % 16).abs_diff(8) * 8;
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                }
                sent
            })
        })
        .collect()
}

/// Waits until the page shows `component` (and the overall level) as `level`; returns the
/// page's state then.
async fn page_shows(browser: &Browser, component: &str, level: &str, overall: &str) -> Value {
    let script = format!(
        "var row = document.querySelector('#components tbody tr[data-component=\"{component}\"]'); \
         return row && row.querySelector('.badge .word').textContent === '{level}' && \
         document.querySelector('#level .word').textContent === '{overall}';"
    );
    browser
        .wait_for(
            &format!("the page shows {component} {level}, overall {overall}"),
            Duration::from_secs(30),
            &script,
        )
        .await;
    state(browser).await
}

/// Waits until `/health` (with `token`) says `component` is `level`; the page's refresh count
/// at that moment.
async fn server_says(ctx: &Ctx, browser: &Browser, component: &str, level: &str) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, health) = get_json(&ctx.server.url("/health"), None).await;
        if health["status"]["statuses"][component]["level"] == level {
            return state(browser).await["refreshes"].as_f64().unwrap();
        }
        assert!(Instant::now() < deadline, "/health: {health}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The page on the demo, on `framework`: level, components, tiles against `/stats`, charts and
/// routes after traffic (with `http` degraded), no foreign request, no console error,
/// screenshots; a dependency that goes away shows within two refreshes without a reload and
/// recovers; a server that stops answering is said to.
async fn the_page_on_the_demo(framework: Framework) {
    let mut dependency = Dependency::start().await;
    let ctx = start(framework, &options(Some(dependency.addr), None)).await;
    let Some(browser) = Browser::start().await else {
        return;
    };
    let base = ctx.server.base.clone();
    browser.goto(&ctx.server.url("/status")).await;
    browser
        .wait_for(
            "the page shows its level and components",
            Duration::from_secs(30),
            "return document.querySelector('#level .word').textContent === 'available' && \
             document.querySelectorAll('#components tbody tr').length > 0;",
        )
        .await;
    // No reload from here on: the marker would be gone.
    browser
        .run(
            "window.__vitalsignTestMarker = 'kept'; return null;",
            json!([]),
        )
        .await;
    let (_, health) = get_json(&ctx.server.url("/health"), None).await;
    let page = state(&browser).await;
    let mut names: Vec<&str> = health["status"]["statuses"]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| &**k)
        .collect();
    names.sort_unstable();
    let rows = page["components"].as_array().unwrap();
    let shown: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(shown, names, "{framework:?}: one row per component");
    for row in rows {
        assert_eq!(row["shown"], true, "{row}");
        let name = row["name"].as_str().unwrap();
        assert_eq!(
            row["level"], health["status"]["statuses"][name]["level"],
            "{name}"
        );
    }
    assert_eq!(page["summary"], health["status"]["overall"]["summary"]);

    // Traffic, over half of it 5xx: `http` degrades, charts and routes fill.
    let stop = Arc::new(AtomicBool::new(false));
    let workers = traffic(base.clone(), stop.clone());
    let degraded = page_shows(&browser, "http", "degraded", "degraded").await;
    assert_eq!(degraded["marker"], "kept");
    let charted = browser
        .wait_for(
            "the charts show the traffic",
            Duration::from_secs(30),
            "var ok = function (k, n) { var p = document.querySelectorAll('polyline[data-series=\"' + k + '\"]'); \
               var count = 0, low = Infinity, high = -Infinity; p.forEach(function (l) { l.getAttribute('points').trim().split(/\\s+/).forEach(function (xy) { var y = +xy.split(',')[1]; count++; low = Math.min(low, y); high = Math.max(high, y); }); }); \
               return count >= n && high > low; }; \
             return ok('requests', 30) && ok('errors', 30) && ok('p99', 20) && ok('p50', 20) && \
               document.querySelectorAll('#routes tbody tr').length >= 3;",
        )
        .await;
    assert_eq!(charted, true);
    let page = state(&browser).await;
    let routes = page["routes"].as_array().unwrap();
    for route in ["GET /error", "GET /users/{id}", "GET /slow"] {
        assert!(
            routes.iter().any(|r| r.as_str().unwrap().contains(route)),
            "{route} in {routes:?}"
        );
    }
    // The screenshots: light and dark, 1280 px and 360 px wide, while `http` is degraded.
    let dir = artifacts_dir();
    let name = format!("{framework:?}").to_lowercase();
    for (width, mobile, scheme, suffix) in [
        (1280, false, "light", ""),
        (1280, false, "dark", "-dark"),
        (360, true, "light", "-360"),
        (360, true, "dark", "-360-dark"),
    ] {
        browser.emulate(width, mobile, scheme).await;
        // Charts are drawn for the width: wait for a refresh at this size.
        let seen = state(&browser).await["refreshes"].as_f64().unwrap();
        browser
            .wait_for(
                "a refresh at the new size",
                Duration::from_secs(20),
                &format!("return +document.querySelector('#refreshes').textContent > {seen};"),
            )
            .await;
        let page = state(&browser).await;
        assert!(
            page["width"].as_f64().unwrap() <= f64::from(width),
            "{framework:?} {width} px: the page is {} px wide",
            page["width"]
        );
        for (key, tile) in page["tiles"].as_object().unwrap() {
            assert_eq!(tile["shown"], true, "{key} at {width} px");
        }
        let path = dir.join(format!("status-{name}{suffix}.png"));
        let bytes = browser.screenshot(&path).await;
        assert!(bytes > 10_000, "{}: {bytes} bytes", path.display());
        eprintln!("screenshot: {} ({bytes} bytes)", path.display());
    }
    browser.emulate(1280, false, "light").await;
    stop.store(true, Ordering::Relaxed);
    let mut sent = 0;
    for worker in workers {
        sent += worker.await.unwrap();
    }
    all_recorded(&ctx.monitor, "the traffic is recorded").await;

    // The tiles show the figures of /stats (the cumulative ones are stable once traffic stops).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, stats) = get_json(&ctx.server.url("/stats"), None).await;
        assert_eq!(stats["requests"]["total"].as_u64(), Some(sent));
        let page = state(&browser).await;
        match tiles_match(&page["tiles"], &stats) {
            Ok(()) => break,
            Err(wrong) => assert!(Instant::now() < deadline, "{framework:?}: {wrong}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let urls = assert_only_the_server(&browser, &base).await;
    assert!(
        urls.iter().any(|u| u.ends_with("/status/data")),
        "the page read its data: {urls:?}"
    );
    let console = browser.console().await;
    assert_eq!(
        errors(&console, |_| false),
        Vec::<String>::new(),
        "{framework:?}"
    );

    // The dependency goes away: the page says so within two refreshes, without a reload.
    dependency.stop().await;
    let known = server_says(&ctx, &browser, "dependency", "unavailable").await;
    let page = page_shows(&browser, "dependency", "unavailable", "unavailable").await;
    let refreshes = page["refreshes"].as_f64().unwrap();
    assert!(
        refreshes <= known + 2.0,
        "{framework:?}: shown after refresh {refreshes}, the server knew at {known}"
    );
    eprintln!(
        "{framework:?}: dependency down shown {} refresh(es) after /health said so",
        refreshes - known
    );
    assert_eq!(page["marker"], "kept", "no reload");
    // It comes back.
    dependency.restart().await;
    let known = server_says(&ctx, &browser, "dependency", "available").await;
    let script =
        "var row = document.querySelector('#components tbody tr[data-component=\"dependency\"]'); \
                  return row.querySelector('.badge .word').textContent === 'available' && \
                  document.querySelector('#level .word').textContent !== 'unavailable';";
    browser
        .wait_for(
            "the page shows the recovery",
            Duration::from_secs(30),
            script,
        )
        .await;
    let page = state(&browser).await;
    assert!(page["refreshes"].as_f64().unwrap() <= known + 2.0, "{page}");
    eprintln!(
        "{framework:?}: recovery shown {} refresh(es) after /health said so",
        page["refreshes"].as_f64().unwrap() - known
    );
    assert_eq!(page["marker"], "kept", "no reload");
    assert_eq!(
        errors(&browser.console().await, |_| false),
        Vec::<String>::new()
    );
    // The annotations list: the monitor's start, and the dependency's level changes (stream
    // `health`), newest first.
    let listed = browser
        .wait_for(
            "the page lists the dependency's health events",
            Duration::from_secs(30),
            "var rows = Array.from(document.querySelectorAll('#annotations tbody tr')).map(function (tr) { return tr.textContent; }); \
             return rows.some(function (r) { return r.indexOf('dependency: unavailable -> available') >= 0; }) && rows;",
        )
        .await;
    let rows: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(
        rows[0].starts_with("health") && rows[0].contains("dependency: unavailable -> available"),
        "{framework:?}: newest first: {rows:?}"
    );
    assert!(
        rows.iter()
            .any(|r| r.starts_with("health") && r.contains("dependency: available -> unavailable")),
        "{rows:?}"
    );
    assert!(
        rows.iter()
            .any(|r| r.starts_with("lifecycle") && r.contains("started")),
        "{rows:?}"
    );

    // The server stops answering: the page says so, and keeps the last level it knew.
    let last_level = page["level"].clone();
    drop(ctx);
    let stale = browser
        .wait_for(
            "the page says the server stopped answering",
            Duration::from_secs(30),
            "var s = document.querySelector('#stale'); return s.getClientRects().length > 0 && s.textContent;",
        )
        .await;
    assert!(
        stale.as_str().unwrap().contains("stopped answering"),
        "{stale}"
    );
    eprintln!("{framework:?}: {}", stale.as_str().unwrap());
    let page = state(&browser).await;
    assert_eq!(page["level"], last_level);
    assert_eq!(page["marker"], "kept", "no reload");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_in_chromium_on_axum() {
    the_page_on_the_demo(Framework::Axum).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_in_chromium_on_actix() {
    the_page_on_the_demo(Framework::Actix).await;
}

/// With a token: the anonymous page shows the overall level only; a wrong token is said to be
/// wrong; the right one, typed into the field, shows everything, and is kept in the tab's
/// `sessionStorage`, never in a URL.
async fn the_page_with_a_token(framework: Framework) {
    const TOKEN: &str = "s3cret-Token";
    let ctx = start(framework, &options(None, Some(TOKEN))).await;
    let Some(browser) = Browser::start().await else {
        return;
    };
    browser.goto(&ctx.server.url("/status")).await;
    browser
        .wait_for(
            "the anonymous page",
            Duration::from_secs(30),
            "return document.querySelector('#level .word').textContent === 'available' && \
             document.querySelector('#auth').getClientRects().length > 0;",
        )
        .await;
    let page = state(&browser).await;
    assert_eq!(page["details"], false, "{page}");
    assert_eq!(page["summary"], Value::Null, "{page}");
    assert!(page["components"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["shown"] == false));
    assert!(page["tiles"].as_object().unwrap().is_empty(), "{page}");

    browser.type_into("#token", "not-the-token").await;
    browser.click("#token-submit").await;
    let said = browser
        .wait_for(
            "the page says the token is wrong",
            Duration::from_secs(30),
            "var e = document.querySelector('#token-error'); return e.getClientRects().length > 0 && e.textContent;",
        )
        .await;
    assert!(said.as_str().unwrap().contains("wrong"), "{said}");
    let page = state(&browser).await;
    assert_eq!(
        (&page["details"], &page["level"]),
        (&json!(false), &json!("available"))
    );
    let kept = browser
        .run(
            "return sessionStorage.getItem('vitalsign-token');",
            json!([]),
        )
        .await;
    assert_eq!(kept, Value::Null, "a wrong token is not kept");

    browser.type_into("#token", TOKEN).await;
    browser.click("#token-submit").await;
    browser
        .wait_for(
            "the details after the token",
            Duration::from_secs(30),
            "return document.querySelector('#details').getClientRects().length > 0 && \
             document.querySelectorAll('#components tbody tr').length > 0 && \
             document.querySelectorAll('[data-tile]').length >= 10;",
        )
        .await;
    let page = state(&browser).await;
    assert_eq!(
        (&page["tokenError"], &page["auth"]),
        (&Value::Null, &json!(false))
    );
    let (_, health) = get_json(&ctx.server.url("/health"), Some(TOKEN)).await;
    assert_eq!(
        page["components"].as_array().unwrap().len(),
        health["status"]["statuses"].as_object().unwrap().len()
    );
    let kept = browser
        .run(
            "return sessionStorage.getItem('vitalsign-token');",
            json!([]),
        )
        .await;
    assert_eq!(kept, TOKEN);
    // Never in a URL.
    let urls = assert_only_the_server(&browser, &ctx.server.base).await;
    assert!(urls.iter().all(|u| !u.contains(TOKEN)), "{urls:?}");
    // The tab keeps it: a reload shows the details again.
    browser.goto(&ctx.server.url("/status")).await;
    browser
        .wait_for(
            "the details after a reload",
            Duration::from_secs(30),
            "return document.querySelector('#details').getClientRects().length > 0;",
        )
        .await;
    // The one console error is the 401 answer to the wrong token.
    let console = browser.console().await;
    assert_eq!(
        errors(&console, |m| m.contains("status/data") && m.contains("401")),
        Vec::<String>::new()
    );
    let path = artifacts_dir().join(format!("status-{framework:?}-token.png").to_lowercase());
    browser.screenshot(&path).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_with_a_token_in_chromium_on_both_frameworks() {
    for framework in BOTH {
        the_page_with_a_token(framework).await;
    }
}

/// Both routers and the admin listener serve the page (self-contained HTML with its security
/// headers, GET and HEAD) and its data, at the paths the `Endpoints` builder chose; the page
/// finds its data relative to itself; neither is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_its_data_on_both_frameworks_and_the_admin_listener() {
    use vitalsign::admin::ServeAdmin;
    for framework in BOTH {
        let builder = app::monitor_builder().unwrap().endpoints(
            Endpoints::new()
                .prefix("/ops")
                .path(Endpoint::StatusData, "/status.json"),
        );
        let ctx = demo::start(framework, builder).await;
        let admin = ctx.monitor.serve_admin("127.0.0.1:0").await.unwrap();
        let admin_base = format!("http://{}", admin.local_addr());
        for base in [ctx.server.base.clone(), admin_base] {
            let response = client()
                .get(format!("{base}/ops/status"))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{framework:?} {base}");
            let headers = response.headers().clone();
            assert_eq!(headers["content-type"], "text/html; charset=utf-8");
            assert_eq!(headers["cache-control"], "no-store");
            let csp = headers["content-security-policy"].to_str().unwrap();
            assert!(csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"));
            let html = response.text().await.unwrap();
            assert!(html.len() < 100 * 1024, "{} bytes", html.len());
            assert!(html.contains(r#"<meta name="vitalsign-data" content="status.json">"#));
            let head = client()
                .head(format!("{base}/ops/status"))
                .send()
                .await
                .unwrap();
            assert_eq!(head.status(), 200);
            let (status, data) = get_json(&format!("{base}/ops/status.json"), None).await;
            assert_eq!(status, 200, "{data}");
            assert_eq!(
                (&data["format"], &data["name"]),
                (&json!(1), &json!(app::SERVICE))
            );
            assert!(data["history"]["time"].is_array() && data["stats"]["process"].is_object());
            let (status, _) = get_json(&format!("{base}/ops/status/data"), None).await;
            assert_eq!(status, 404, "moved");
        }
        let (_, stats) = get_json(&ctx.server.url("/ops/stats"), None).await;
        // Only the request to the moved path, an application 404, is recorded.
        assert_eq!(
            stats["requests"]["status_codes"],
            json!({ "404": 1 }),
            "{framework:?}: the endpoints are not recorded"
        );
        admin.stop().await.unwrap();
    }
}
