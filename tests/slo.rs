//! Service-level objectives, tested like code on real servers:
//! - the generated rule file passes `promtool check rules` with no finding;
//! - `promtool test rules` runs fixture series generated here from the same objectives: a fast
//!   burn pages, a slow burn over three days opens a ticket, a five-minute spike that stops does
//!   not page, traffic under the low-traffic guard does not alert, a latency objective fires on
//!   slow requests of its routes only;
//! - end to end, on both frameworks: a real Prometheus scrapes the demo every second with the
//!   rules loaded (windows shortened by the objectives' test-only time scale) and sends alerts
//!   to a real Alertmanager, which posts them to a webhook served by this test. Errors make the
//!   page arrive; stopping them resolves it. Then every panel query of the generated dashboard
//!   returns data from that Prometheus, and every metric the rules and the dashboard name is
//!   on the demo's `/metrics`.
#![cfg(all(feature = "axum", feature = "prometheus"))]

#[path = "../examples/demo/actix_app.rs"]
#[allow(dead_code)]
mod actix_app;
#[path = "../examples/demo/app.rs"]
#[allow(dead_code)]
mod app;
mod common;
#[path = "common/demo.rs"]
mod demo;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::processes::{query, start_alertmanager, start_prometheus, Daemon, TempDir};
use common::*;
use demo::Framework;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vitalsign::{Monitor, MonitorBuilder};
use vitalsign_core::Objective;

/// Runs promtool with `args` in `dir`: whether it succeeded, and everything it printed.
fn promtool(dir: &Path, args: &[&str]) -> Option<(bool, String)> {
    if !require(&PROMTOOL) {
        return None;
    }
    let out = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some((out.status.success(), text))
}

fn demo_monitor(configure: impl FnOnce(MonitorBuilder) -> MonitorBuilder, scale: u32) -> Monitor {
    app::with_objectives(configure(app::monitor_builder().unwrap()), scale)
        .build()
        .unwrap()
}

#[test]
fn the_rules_pass_promtool_check_rules_with_no_finding() {
    type Configure = fn(MonitorBuilder) -> MonitorBuilder;
    let variants: [(&str, Configure, u32); 3] = [
        ("plain", |b| b, 1),
        ("time-scaled", |b| b, 60),
        (
            "namespace and global labels",
            |b| {
                b.namespace("shop")
                    .global_label("region", "eu \"west\"")
                    .global_label("tier", r"a\b")
            },
            1,
        ),
    ];
    for (what, configure, scale) in variants {
        let monitor = demo_monitor(configure, scale);
        let dir = TempDir::new("rules");
        dir.write("rules.yml", &monitor.prometheus_rules());
        let Some((ok, out)) = promtool(dir.path(), &["check", "rules", "rules.yml"]) else {
            return;
        };
        // Two objectives of 15 rules each: 2 rates, 7 window ratios, the period ratio, the
        // remaining budget, 4 alerts. Nothing else printed: no warning, no lint finding.
        assert!(ok, "{what}: {out}");
        assert_eq!(
            out.trim(),
            "Checking rules.yml\n  SUCCESS: 30 rules found",
            "{what}"
        );
    }
    // A monitor without objectives gives a file Prometheus loads too.
    let monitor = Monitor::builder("none").build().unwrap();
    let dir = TempDir::new("rules");
    dir.write("rules.yml", &monitor.prometheus_rules());
    let (ok, out) = promtool(dir.path(), &["check", "rules", "rules.yml"]).unwrap();
    assert!(ok && out.contains("SUCCESS: 0 rules found"), "{out}");
}

/// One alert rule of a generated rule file, read back from its text.
#[derive(Debug, Default, Clone)]
struct AlertRule {
    slo: String,
    severity: String,
    window: String,
    summary: String,
    description: String,
}

/// The value of `key: "…"` on a line (the generator writes every scalar as a JSON string).
fn quoted(line: &str, key: &str) -> Option<String> {
    let rest = line.trim_start().strip_prefix(key)?.strip_prefix(": ")?;
    serde_json::from_str(rest).ok()
}

/// The alert rules of a rule file, in order.
fn alert_rules(rules: &str) -> Vec<AlertRule> {
    let mut alerts: Vec<AlertRule> = Vec::new();
    let mut in_alert = false;
    for line in rules.lines() {
        let item = line.trim_start();
        if item.starts_with("- alert:") {
            alerts.push(AlertRule::default());
            in_alert = true;
        } else if item.starts_with("- ") {
            // A recording rule or another group.
            in_alert = false;
        }
        let Some(alert) = alerts.last_mut().filter(|_| in_alert) else {
            continue;
        };
        for (key, field) in [
            ("slo", &mut alert.slo),
            ("severity", &mut alert.severity),
            ("window", &mut alert.window),
            ("summary", &mut alert.summary),
            ("description", &mut alert.description),
        ] {
            if let Some(value) = quoted(line, key) {
                *field = value;
            }
        }
    }
    alerts
}

/// The expression blocks of a rule file (`expr: |-` and its indented lines).
fn expressions(rules: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut lines = rules.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim_start() == "expr: |-" {
            let indent = line.len() - line.trim_start().len() + 2;
            let mut expr = String::new();
            while let Some(next) = lines.peek() {
                if next.len() - next.trim_start().len() < indent {
                    break;
                }
                expr.push_str(next.trim());
                expr.push('\n');
                lines.next();
            }
            out.push(expr);
        }
    }
    out
}

/// The names the rule file records.
fn recorded_names(rules: &str) -> BTreeSet<String> {
    rules
        .lines()
        .filter_map(|line| quoted(line.trim_start().strip_prefix("- ")?, "record"))
        .collect()
}

/// The metric names a PromQL expression reads: identifiers that are not functions,
/// aggregations, keywords, label names (in `{…}` or in `by (…)` / `on (…)`), strings or
/// durations.
fn metric_names(expr: &str) -> BTreeSet<String> {
    // Aggregations may take their `by (…)` before their argument: `max by (x) (…)`.
    const KEYWORDS: &[&str] = &[
        "by",
        "on",
        "and",
        "or",
        "unless",
        "without",
        "ignoring",
        "bool",
        "offset",
        "group_left",
        "group_right",
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
    ];
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    let mut last_word = String::new();
    while i < chars.len() {
        let c = chars[i];
        if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
        } else if c == '{' || c == '[' {
            let close = if c == '{' { '}' } else { ']' };
            while i < chars.len() && chars[i] != close {
                if chars[i] == '"' {
                    i += 1;
                    while i < chars.len() && chars[i] != '"' {
                        i += if chars[i] == '\\' { 2 } else { 1 };
                    }
                }
                i += 1;
            }
            i += 1;
        } else if c == '(' && ["by", "on", "without", "ignoring"].contains(&last_word.as_str()) {
            while i < chars.len() && chars[i] != ')' {
                i += 1;
            }
            i += 1;
            last_word.clear();
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || "_:".contains(chars[i])) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut j = i;
            while j < chars.len() && chars[j] == ' ' {
                j += 1;
            }
            let is_call = j < chars.len() && chars[j] == '(';
            if !is_call && !KEYWORDS.contains(&word.as_str()) {
                names.insert(word.clone());
            }
            last_word = word;
        } else if c.is_ascii_digit() || c == '.' {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else {
            if !c.is_whitespace() {
                last_word.clear();
            }
            i += 1;
        }
    }
    names
}

#[test]
fn the_metric_name_reader_skips_labels_functions_and_keywords() {
    let names = metric_names(
        r#"histogram_quantile(0.9, sum by (http_route, le) (rate(a_bucket{x="y{z}",le=~"1|2"}[5m])))
/ on (job) b:c:d{slo="x"} > 14.4 * (1 - 0.999) and ignoring (q) c_total or vector(1)
+ max by (component) (health)"#,
    );
    let want: BTreeSet<String> = ["a_bucket", "b:c:d", "c_total", "health"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(names, want);
}

/// The families of an exposition, with the sample names a histogram family adds.
fn exported_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let mut parts = rest.split(' ');
        let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
            continue;
        };
        names.insert(name.to_owned());
        if kind == "histogram" || kind == "summary" {
            for suffix in ["_bucket", "_count", "_sum"] {
                names.insert(format!("{name}{suffix}"));
            }
        }
    }
    names
}

// ---- promtool test rules ----

/// Labels every fixture series of the availability and latency scenarios carries.
const USERS: &str = r#"job="shop",http_request_method="GET",http_route="/users/{id}""#;

/// One `promtool test rules` test case.
struct Case {
    name: &'static str,
    /// (series selector, values in promtool's expanding notation), one sample a minute.
    series: Vec<(String, String)>,
    /// (eval time in minutes, alerts expected to fire then: (slo, window))
    alerts: Vec<(u32, Vec<(&'static str, &'static str)>)>,
    /// (eval time in minutes, expression, labels, value)
    values: Vec<(u32, String, String, f64)>,
}

fn count(labels: &str, values: &str) -> (String, String) {
    (
        format!("http_server_request_duration_seconds_count{{{labels},http_response_status_code=\"200\"}}"),
        values.to_owned(),
    )
}

fn fast(labels: &str, values: &str) -> (String, String) {
    (
        format!("http_server_request_duration_seconds_bucket{{{labels},http_response_status_code=\"200\",le=\"0.25\"}}"),
        values.to_owned(),
    )
}

fn errors(labels: &str, values: &str) -> (String, String) {
    (
        format!(
            "http_server_errors_total{{{labels},http_response_status_code=\"500\",error_code=\"1\"}}"
        ),
        values.to_owned(),
    )
}

/// The test file for `cases`, rules evaluated every `evaluation` minutes, with the expected
/// alerts' annotations taken from `rules`.
fn test_file(rules: &[AlertRule], evaluation: u32, cases: &[Case]) -> String {
    let json = |s: &str| serde_json::Value::from(s).to_string();
    let mut out =
        format!("rule_files:\n  - rules.yml\nevaluation_interval: {evaluation}m\ntests:\n");
    for case in cases {
        out.push_str(&format!(
            "  - name: {}\n    interval: 1m\n    input_series:\n",
            json(case.name)
        ));
        for (series, values) in &case.series {
            out.push_str(&format!(
                "      - series: {}\n        values: {}\n",
                json(series),
                json(values)
            ));
        }
        if !case.alerts.is_empty() {
            out.push_str("    alert_rule_test:\n");
        }
        for (minute, firing) in &case.alerts {
            out.push_str(&format!(
                "      - eval_time: {minute}m\n        alertname: ErrorBudgetBurn\n        exp_alerts:"
            ));
            if firing.is_empty() {
                out.push_str(" []\n");
                continue;
            }
            out.push('\n');
            for (slo, window) in firing {
                let rule = rules
                    .iter()
                    .find(|r| r.slo == *slo && r.window == *window)
                    .unwrap_or_else(|| panic!("no alert rule {slo} {window} in {rules:?}"));
                out.push_str(&format!(
                    "          - exp_labels:\n              job: shop\n              slo: {}\n              severity: {}\n              window: {}\n            exp_annotations:\n              summary: {}\n              description: {}\n",
                    json(slo),
                    json(&rule.severity),
                    json(window),
                    json(&rule.summary),
                    json(&rule.description)
                ));
            }
        }
        if !case.values.is_empty() {
            out.push_str("    promql_expr_test:\n");
        }
        for (minute, expr, labels, value) in &case.values {
            out.push_str(&format!(
                "      - expr: {}\n        eval_time: {minute}m\n        exp_samples:\n          - labels: {}\n            value: {value}\n",
                json(expr),
                json(labels)
            ));
        }
    }
    out
}

const AVAILABILITY: &str = "shop-availability";
const LATENCY: &str = "shop-latency";

/// The fixtures, evaluated every 5 minutes: one sample a minute, and 25 hours of history
/// before each event, so that the 1-day window is diluted by clean traffic and the 3-day
/// window reads what there is (a rate over a range longer than the data covers the data).
/// promtool's cost grows with the square of the history (three days of it, evaluated every
/// minute, took minutes here).
fn cases() -> Vec<Case> {
    let busy = "0+1000x1600"; // 1000 requests a minute
    vec![
        Case {
            // 2% errors for 65 minutes (budget 0.1%: a burn of 20, over 14.4) after three clean
            // days: the fast page, and nothing else (the longer windows are still diluted).
            name: "a fast burn pages (14.4x over 1h and 5m)",
            series: vec![
                count(USERS, busy),
                fast(USERS, busy),
                errors(USERS, "0x1499 0+20x100"),
            ],
            alerts: vec![(1495, vec![]), (1565, vec![(AVAILABILITY, "1h/5m")])],
            values: vec![],
        },
        Case {
            // 10% errors for 5 minutes, then none: the 5-minute window alone is far over every
            // threshold, but no long window follows it: no alert during or after the spike.
            name: "a five-minute spike that stops does not page",
            series: vec![
                count(USERS, busy),
                fast(USERS, busy),
                errors(USERS, "0x1499 0+100x5 500x95"),
            ],
            alerts: vec![(1505, vec![]), (1510, vec![]), (1515, vec![])],
            values: vec![],
        },
        Case {
            // 3 requests an hour, one of them failed: every window's error ratio is far over
            // its threshold, but no long window holds 3 bad requests.
            name: "one failed request of a quiet service does not alert",
            series: vec![
                count(USERS, "0+0.05x1600"),
                fast(USERS, "0+0.05x1600"),
                errors(USERS, "0x1497 1x102"),
            ],
            alerts: vec![(1500, vec![]), (1505, vec![]), (1530, vec![])],
            values: vec![],
        },
        Case {
            // The same quiet service failing half its requests for two hours: enough bad
            // requests in every long window, so every alert fires.
            name: "a quiet service that keeps failing alerts",
            series: vec![
                count(USERS, "0+0.2x1600"),
                fast(USERS, "0+0.2x1600"),
                errors(USERS, "0x1479 0+0.1x120"),
            ],
            alerts: vec![(
                1595,
                vec![
                    (AVAILABILITY, "1h/5m"),
                    (AVAILABILITY, "6h/30m"),
                    (AVAILABILITY, "1d/2h"),
                    (AVAILABILITY, "3d/6h"),
                ],
            )],
            values: vec![],
        },
        Case {
            // 20% of /users/{id} slower than 250 ms for 65 minutes (budget 1%: a burn of 20);
            // /export, outside the objective, is always slow and changes nothing.
            name: "slow requests of the objective's routes fire the latency objective",
            series: vec![
                count(USERS, busy),
                fast(USERS, "0+1000x1499 1499800+800x100"),
                count(
                    r#"job="shop",http_request_method="GET",http_route="/export""#,
                    busy,
                ),
                fast(
                    r#"job="shop",http_request_method="GET",http_route="/export""#,
                    "0x1600",
                ),
            ],
            alerts: vec![(1495, vec![]), (1565, vec![(LATENCY, "1h/5m")])],
            values: vec![],
        },
        Case {
            // Every request fast, none failed: no alert, and the whole budget is left.
            name: "fast and successful requests do not alert",
            series: vec![count(USERS, busy), fast(USERS, busy)],
            alerts: vec![(1565, vec![])],
            values: vec![(
                1565,
                format!("slo:error_budget:remaining{{slo=\"{LATENCY}\"}}"),
                format!("slo:error_budget:remaining{{job=\"shop\", slo=\"{LATENCY}\"}}"),
                1.0,
            )],
        },
    ]
}

/// The fixture that needs three days: 0.15% errors from the start (a burn of 1.5) opens the
/// slow ticket only, and half more than the whole budget is spent. Evaluated every 10 minutes
/// (the 5-minute rates still see five samples each).
fn slow_cases() -> Vec<Case> {
    vec![Case {
        name: "a slow burn over three days opens a ticket (1x over 3d and 6h)",
        series: vec![
            count(USERS, "0+1000x4400"),
            fast(USERS, "0+1000x4400"),
            errors(USERS, "0+1.5x4400"),
        ],
        alerts: vec![(4330, vec![(AVAILABILITY, "3d/6h")])],
        values: vec![(
            4330,
            format!("round(slo:error_budget:remaining{{slo=\"{AVAILABILITY}\"}}, 0.001)"),
            format!("{{job=\"shop\", slo=\"{AVAILABILITY}\"}}"),
            -0.5,
        )],
    }]
}

#[test]
fn promtool_test_rules_on_fixtures_generated_from_the_objectives() {
    let monitor = Monitor::builder("shop")
        .objective("shop-availability", Objective::availability(0.999))
        .objective(
            "shop-latency",
            Objective::latency(Duration::from_millis(250), 0.99).routes(["/users/{id}"]),
        )
        .build()
        .unwrap();
    let rules = monitor.prometheus_rules();
    let alerts = alert_rules(&rules);
    assert_eq!(alerts.len(), 8, "{alerts:?}");
    let dir = TempDir::new("promtool-test");
    dir.write("rules.yml", &rules);
    let tests = test_file(&alerts, 5, &cases());
    let slow = test_file(&alerts, 10, &slow_cases());
    dir.write("tests.yml", &tests);
    dir.write("slow.yml", &slow);
    let Some((ok, out)) = promtool(dir.path(), &["test", "rules", "tests.yml", "slow.yml"]) else {
        return;
    };
    assert!(ok, "{out}\n--- tests.yml:\n{tests}\n--- slow.yml:\n{slow}");
    assert_eq!(out.matches("SUCCESS").count(), 2, "{out}");
}

// ---- end to end: Prometheus, Alertmanager, a webhook ----

/// Windows divided by 60: the fast page looks at 1 minute and 5 seconds.
const TIME_SCALE: u32 = 60;
/// The fast page's window label under that scale.
const FAST_PAGE_WINDOW: &str = "1m/5s";

/// The webhook Alertmanager posts to: every notification's body, in order.
type Notifications = Arc<Mutex<Vec<Value>>>;

async fn webhook() -> (Server, Notifications) {
    let store: Notifications = Arc::default();
    let kept = store.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let kept = kept.clone();
            async move {
                kept.lock().unwrap().push(body);
                "ok"
            }
        }),
    );
    (Server::start(app).await, store)
}

/// The notified alerts of `job`'s fast page, with their status (`firing`, `resolved`).
fn fast_page_statuses(store: &Notifications, job: &str) -> Vec<(String, Value)> {
    store
        .lock()
        .unwrap()
        .iter()
        .flat_map(|n| n["alerts"].as_array().cloned().unwrap_or_default())
        .filter(|a| {
            let l = &a["labels"];
            l["alertname"] == "ErrorBudgetBurn"
                && l["slo"] == app::AVAILABILITY_OBJECTIVE
                && l["severity"] == "page"
                && l["window"] == FAST_PAGE_WINDOW
                && l["job"] == job
        })
        .map(|a| (a["status"].as_str().unwrap_or_default().to_owned(), a))
        .collect()
}

fn job(framework: Framework) -> &'static str {
    match framework {
        Framework::Axum => JOBS[0],
        Framework::Actix => JOBS[1],
    }
}

/// Sends `path` to every demo, `per_second` times a second each, until `done` says so or
/// `deadline` passes; returns the time it took.
async fn drive_until(
    demos: &[demo::Ctx],
    path: &str,
    per_second: u32,
    deadline: Duration,
    mut done: impl FnMut() -> bool,
) -> Result<Duration, Duration> {
    let start = tokio::time::Instant::now();
    let pause = Duration::from_secs(1) / per_second;
    while !done() {
        if start.elapsed() > deadline {
            return Err(start.elapsed());
        }
        for ctx in demos {
            ctx.server.get(path).await;
        }
        tokio::time::sleep(pause).await;
    }
    Ok(start.elapsed())
}

/// The scrape jobs of the two demos.
const JOBS: [&str; 2] = ["axum", "actix"];

/// Sends `path` to both demos until Alertmanager has notified both jobs' fast page with
/// `status` (at most 90 s); the time it took.
async fn page_reaches(
    demos: &[demo::Ctx],
    store: &Notifications,
    path: &str,
    per_second: u32,
    status: &str,
) -> Duration {
    drive_until(demos, path, per_second, Duration::from_secs(90), || {
        JOBS.iter().all(|j| {
            fast_page_statuses(store, j)
                .iter()
                .any(|(s, _)| s == status)
        })
    })
    .await
    .unwrap_or_else(|waited| {
        panic!(
            "no {status} fast page for both jobs after {waited:?} of {path}; notifications: {:?}",
            store.lock().unwrap()
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_reach_alertmanager_and_every_dashboard_panel_has_data_on_both_frameworks() {
    let (hook, store) = webhook().await;
    let mut demos = Vec::new();
    for framework in demo::BOTH {
        let builder = app::with_objectives(app::monitor_builder().unwrap(), TIME_SCALE);
        demos.push(demo::start(framework, builder).await);
    }
    // One configuration, one rule file: the same on both frameworks.
    let rules = demos[0].monitor.prometheus_rules();
    assert_eq!(rules, demos[1].monitor.prometheus_rules());
    let Some(alertmanager) = start_alertmanager(&format!(
        "route:\n  receiver: hook\n  group_by: [alertname, job, slo, severity, window]\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: '{}/hook'\n        send_resolved: true\n",
        hook.base
    )) else {
        return;
    };
    let scrape_configs: String = demos
        .iter()
        .map(|ctx| {
            format!(
                "  - job_name: {}\n    static_configs:\n      - targets: ['{}']\n",
                job(ctx.framework),
                ctx.server.addr
            )
        })
        .collect();
    let Some(prometheus) = start_prometheus(
        &format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n  evaluation_interval: 1s\nrule_files:\n  - rules.yml\nalerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['{}']\nscrape_configs:\n{scrape_configs}",
            alertmanager.base.trim_start_matches("http://")
        ),
        &[("rules.yml", &rules)],
    ) else {
        return;
    };
    alertmanager
        .wait_ready("/-/ready", Duration::from_secs(30))
        .await;
    prometheus
        .wait_ready("/-/ready", Duration::from_secs(30))
        .await;
    // The rules loaded, every group healthy.
    let groups = prometheus.get_json("/api/v1/rules").await;
    assert_eq!(
        groups["data"]["groups"].as_array().map(Vec::len),
        Some(2),
        "{groups}"
    );

    // Healthy traffic first (the windows fill), then errors until both pages arrive.
    drive_until(&demos, "/users/1", 10, Duration::from_secs(3), || false)
        .await
        .unwrap_err();
    let fired = page_reaches(&demos, &store, "/error", 20, "firing").await;
    for j in JOBS {
        let statuses = fast_page_statuses(&store, j);
        let (_, alert) = statuses.iter().find(|(s, _)| s == "firing").unwrap();
        let summary = alert["annotations"]["summary"].as_str().unwrap();
        assert!(
            summary.contains(app::AVAILABILITY_OBJECTIVE) && summary.contains("14.4x"),
            "{alert}"
        );
        assert!(
            alert["annotations"]["description"]
                .as_str()
                .unwrap()
                .contains("2% of the 12h error budget is spent in 1m"),
            "{alert}"
        );
    }
    eprintln!("fast page notified {fired:?} after the errors began");

    // Errors stop; healthy traffic goes on until both pages are resolved.
    let resolved = page_reaches(&demos, &store, "/users/1", 10, "resolved").await;
    eprintln!("fast page resolved {resolved:?} after the errors stopped");

    // What the dashboard shows needs slow requests and a client that hangs up too.
    for ctx in &demos {
        ctx.server.get("/slow?ms=300").await;
        // A client that goes once the head of a streamed response has come: a disconnect on
        // both frameworks (as in the parity suite).
        let mut stream = tokio::net::TcpStream::connect(ctx.server.addr)
            .await
            .unwrap();
        stream
            .write_all(b"GET /stream?ms=200 HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut head = [0u8; 64];
        let n = stream.read(&mut head).await.unwrap();
        assert!(
            head[..n].starts_with(b"HTTP/1.1 200"),
            "{:?}",
            ctx.framework
        );
        drop(stream);
        all_recorded(&ctx.monitor, "the hung-up request recorded").await;
    }
    dashboard_panels_have_data(&demos, &prometheus).await;
    names_are_exported(&demos, &rules).await;
}

/// Every panel query of the dashboard, with its variables substituted, returns at least one
/// series from the Prometheus that scraped the demos.
async fn dashboard_panels_have_data(demos: &[demo::Ctx], prometheus: &Daemon) {
    let dashboard: Value = serde_json::from_str(&demos[0].monitor.grafana_dashboard()).unwrap();
    assert_eq!(
        dashboard,
        serde_json::from_str::<Value>(&demos[1].monitor.grafana_dashboard()).unwrap()
    );
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            queries.push((
                panel["title"].as_str().unwrap().to_owned(),
                expr.replace("$__rate_interval", "10s")
                    .replace("$route", ".*"),
            ));
        }
    }
    for annotation in dashboard["annotations"]["list"].as_array().unwrap() {
        if let Some(expr) = annotation["expr"].as_str() {
            queries.push((
                annotation["name"].as_str().unwrap().to_owned(),
                expr.to_owned(),
            ));
        }
    }
    assert!(queries.len() >= 10, "{queries:?}");
    for (title, expr) in &queries {
        assert!(
            !expr.contains('$'),
            "{title}: unsubstituted variable in {expr}"
        );
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let result = query(prometheus, expr).await;
            if result.as_ref().is_ok_and(|r| !r.is_empty()) {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "panel {title:?}: {expr} returned {result:?}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    // The route variable's query lists the demo's routes.
    let variable = &dashboard["templating"]["list"][1];
    assert_eq!(variable["name"], "route");
    let series = prometheus.get_json("/api/v1/label/http_route/values").await;
    assert!(
        series["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v == "/users/{id}"),
        "{series}"
    );
}

/// Every metric the rules and the dashboard read is on the demo's `/metrics` (or recorded by
/// the rules); a panel naming a metric vitalsign does not export fails here.
async fn names_are_exported(demos: &[demo::Ctx], rules: &str) {
    let recorded = recorded_names(rules);
    assert!(
        recorded.contains("slo:error_budget:remaining") && recorded.len() == 11,
        "{recorded:?}"
    );
    let dashboard: Value = serde_json::from_str(&demos[0].monitor.grafana_dashboard()).unwrap();
    let mut read = BTreeSet::new();
    for expr in expressions(rules) {
        read.extend(metric_names(&expr));
    }
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            read.extend(metric_names(target["expr"].as_str().unwrap()));
        }
    }
    for annotation in dashboard["annotations"]["list"].as_array().unwrap() {
        read.extend(
            annotation["expr"]
                .as_str()
                .map(metric_names)
                .unwrap_or_default(),
        );
    }
    read.extend(metric_names(
        dashboard["templating"]["list"][1]["definition"]
            .as_str()
            .unwrap()
            .trim_start_matches("label_values(")
            .trim_end_matches(", http_route)"),
    ));
    assert!(read.len() > 5, "{read:?}");
    for ctx in demos {
        let exported = exported_names(&ctx.server.metrics().await.text);
        for name in &read {
            assert!(
                exported.contains(name) || recorded.contains(name),
                "{:?}: {name} is read by the rules or the dashboard, but neither exported nor recorded; exported: {exported:?}",
                ctx.framework
            );
        }
    }
}
