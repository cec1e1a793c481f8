//! Exemplars and OpenMetrics: requests with W3C `traceparent` headers reach the demo (both
//! frameworks), a real Prometheus (Debian's, `--enable-feature=exemplar-storage`) scrapes it in
//! OpenMetrics and `/api/v1/query_exemplars` returns those trace ids on the right series; the
//! classic text stays promtool-clean and exemplar-free; any header value leaves the
//! OpenMetrics text well-formed (a strict line checker parses it back).
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

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::processes::{start_prometheus_with, Daemon};
use common::*;
use demo::Ctx;
use proptest::prelude::*;
use vitalsign::prometheus::ExpositionFormat;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A sampled `traceparent` with this trace id (32 hex digits) and span id (16).
fn traceparent(trace: &str, span: &str, sampled: bool) -> String {
    format!("00-{trace}-{span}-{}", if sampled { "01" } else { "00" })
}

async fn get_traced(ctx: &Ctx, path: &str, traceparent: &str, request_id: Option<&str>) -> u16 {
    let mut request = client()
        .get(ctx.server.url(path))
        .header("traceparent", traceparent);
    if let Some(id) = request_id {
        request = request.header("x-request-id", id);
    }
    request.send().await.unwrap().status().as_u16()
}

async fn get_openmetrics(ctx: &Ctx) -> String {
    let response = client()
        .get(ctx.server.url("/metrics"))
        .header(
            "accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], OPENMETRICS);
    response.text().await.unwrap()
}

/// (route, status, trace id, span id) of the sampled requests each framework sends, one per
/// series so that each stays its series' bucket's latest exemplar.
const SAMPLED: [(&str, &str, u16, &str, &str); 3] = [
    (
        "/users/7",
        "/users/{id}",
        200,
        "0af7651916cd43dd8448eb211c80319c",
        "b7ad6b7169203331",
    ),
    (
        "/error",
        "/error",
        500,
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "00f067aa0ba902b7",
    ),
    (
        "/slow?ms=30",
        "/slow",
        200,
        "11111111111111112222222222222222",
        "3333333333333333",
    ),
];
/// A trace that is not sampled: no exemplar.
const UNSAMPLED: &str = "99999999999999999999999999999999";

/// Sends the traced requests of this test to the demo and checks the points' request ids.
async fn send_traced(ctx: &Ctx) {
    for (path, _, status, trace, span) in SAMPLED {
        assert_eq!(
            get_traced(ctx, path, &traceparent(trace, span, true), None).await,
            status
        );
    }
    // Not sampled, and an x-request-id that takes precedence over the trace id.
    assert_eq!(
        get_traced(
            ctx,
            "/nowhere",
            &traceparent(UNSAMPLED, "1234567812345678", false),
            Some("mine-1")
        )
        .await,
        404
    );
    // Invalid (all-zero trace id): ignored.
    assert_eq!(
        get_traced(
            ctx,
            "/users/8",
            &traceparent(&"0".repeat(32), "1234567812345678", true),
            None
        )
        .await,
        200
    );
    all_recorded(&ctx.monitor, "the traced requests recorded").await;
    let requests = ctx.sink.requests();
    let ids: Vec<&str> = requests.iter().map(|p| p.request_id.as_str()).collect();
    for (_, _, _, trace, _) in SAMPLED {
        assert!(ids.contains(&trace), "{:?}: {ids:?}", ctx.framework);
    }
    assert!(ids.contains(&"mine-1"), "{ids:?}");
    assert!(!ids.contains(&UNSAMPLED), "{ids:?}");
    assert!(!ids.iter().any(|id| id.starts_with("0000")), "{ids:?}");
}

fn start_scraping(target: &str) -> Option<Daemon> {
    start_prometheus_with(
        &format!(
            "global:\n  scrape_interval: 200ms\n  scrape_timeout: 150ms\nscrape_configs:\n  - job_name: vitalsign\n    static_configs:\n      - targets: ['{target}']\n"
        ),
        &[],
        &["--enable-feature=exemplar-storage"],
    )
}

/// Trace id → the duration bucket series labels Prometheus stored it on.
async fn stored_exemplars(prometheus: &Daemon) -> BTreeMap<String, BTreeMap<String, String>> {
    let response = client()
        .get(format!("{}/api/v1/query_exemplars", prometheus.base))
        .query(&[
            ("query", "http_server_request_duration_seconds_bucket"),
            ("start", "0"),
            ("end", "9999999999"),
        ])
        .send()
        .await
        .unwrap();
    let json: serde_json::Value = response.json().await.unwrap();
    assert_eq!(json["status"], "success", "{json}");
    let mut found = BTreeMap::new();
    for series in json["data"].as_array().unwrap() {
        let labels: BTreeMap<String, String> =
            serde_json::from_value(series["seriesLabels"].clone()).unwrap();
        for exemplar in series["exemplars"].as_array().unwrap() {
            let trace = exemplar["labels"]["trace_id"].as_str().unwrap().to_owned();
            found.insert(trace, labels.clone());
        }
    }
    found
}

/// Prometheus negotiates OpenMetrics, stores the exemplars, and finds each trace id on the
/// bucket series of its request's route and status (both frameworks).
#[tokio::test(flavor = "multi_thread")]
async fn prometheus_stores_the_trace_ids_on_their_series() {
    for framework in demo::BOTH {
        let ctx = demo::start(framework, app::monitor_builder().unwrap()).await;
        let Some(prometheus) = start_scraping(&ctx.server.addr.to_string()) else {
            return;
        };
        send_traced(&ctx).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let found = loop {
            let found = stored_exemplars(&prometheus).await;
            if SAMPLED
                .iter()
                .all(|(.., trace, _)| found.contains_key(*trace))
            {
                break found;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{framework:?}: exemplars never stored: {found:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        for (_, route, status, trace, _) in SAMPLED {
            let labels = &found[trace];
            assert_eq!(labels["http_route"], route, "{framework:?} {labels:?}");
            assert_eq!(
                labels["http_response_status_code"],
                status.to_string(),
                "{framework:?} {labels:?}"
            );
            assert_eq!(labels["job"], "vitalsign");
            assert_eq!(
                labels["__name__"],
                "http_server_request_duration_seconds_bucket"
            );
        }
        assert!(
            !found.contains_key(UNSAMPLED),
            "{framework:?}: unsampled {found:?}"
        );
        assert!(
            !found.contains_key(&"0".repeat(32)),
            "{framework:?}: {found:?}"
        );
        let targets = prometheus.get_json("/api/v1/targets").await;
        let target = &targets["data"]["activeTargets"][0];
        assert_eq!(target["health"], "up", "{target}");
        assert_eq!(target["lastError"], "", "{target}");
    }
}

/// With traced requests recorded: the classic text has no exemplar and passes promtool; the
/// OpenMetrics text passes the strict checker, has every sampled trace on its route's
/// bucket, and the same samples as the classic text (both frameworks).
#[tokio::test(flavor = "multi_thread")]
async fn both_formats_hold_the_same_samples() {
    for framework in demo::BOTH {
        let ctx = demo::start(framework, app::monitor_builder().unwrap()).await;
        send_traced(&ctx).await;
        let response = client()
            .get(ctx.server.url("/metrics"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.headers()["content-type"],
            "text/plain; version=0.0.4; charset=utf-8"
        );
        let classic = response.text().await.unwrap();
        let open = get_openmetrics(&ctx).await;
        assert!(!classic.contains(" # {"), "{classic}");
        promtool_check(&classic);
        let checked = check_openmetrics(&open).unwrap_or_else(|e| panic!("{e}\n---\n{open}"));
        for (_, route, status, trace, span) in SAMPLED {
            let line = open
                .lines()
                .find(|l| l.contains(trace))
                .unwrap_or_else(|| panic!("{framework:?}: no exemplar of {trace}:\n{open}"));
            assert!(
                line.starts_with("http_server_request_duration_seconds_bucket{")
                    && line.contains(&format!("http_route=\"{route}\""))
                    && line.contains(&format!("http_response_status_code=\"{status}\""))
                    && line.contains(&format!("span_id=\"{span}\"")),
                "{line}"
            );
        }
        assert!(!open.contains(UNSAMPLED));
        // Sample for sample the same (process and runtime figures change between scrapes).
        let steady = |name: &&str| !name.starts_with("process_") && !name.starts_with("tokio_");
        let classic_samples: BTreeSet<&str> = classic
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| l.rsplit_once(' ').unwrap().0)
            .filter(steady)
            .collect();
        let open_samples: BTreeSet<&str> = checked
            .samples
            .iter()
            .map(|s| s.series.as_str())
            .filter(steady)
            .collect();
        assert_eq!(classic_samples, open_samples, "{framework:?}");
    }
}

/// Strict OpenMetrics 1.0 text checking, for the tests: every line's syntax, metadata before
/// samples, families contiguous and unique, sample names that fit their family's type,
/// exemplars only on buckets and counters with label sets within 128 characters, `# EOF` last.
#[derive(Debug, Default)]
struct Checked {
    samples: Vec<CheckedSample>,
}

#[derive(Debug)]
struct CheckedSample {
    /// Name and label set as written.
    series: String,
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(s: &str) -> bool {
    is_name(s) && !s.contains(':')
}

fn is_number(s: &str) -> bool {
    matches!(s, "+Inf" | "-Inf" | "NaN")
        || (!s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'))
            && s.parse::<f64>().is_ok())
}

/// Label names and (unescaped) values.
type Labels = Vec<(String, String)>;

/// Parses `{…}` at the start of `s`: (labels, rest after `}`, characters of names and values).
fn parse_labels(s: &str) -> Result<(Labels, &str, usize), String> {
    let mut rest = s.strip_prefix('{').ok_or("no '{'")?;
    let mut labels = Vec::new();
    let mut chars = 0;
    if let Some(after) = rest.strip_prefix('}') {
        return Ok((labels, after, 0));
    }
    loop {
        let (name, after) = rest.split_once("=\"").ok_or("no =\"")?;
        if !is_label_name(name) {
            return Err(format!("bad label name {name:?}"));
        }
        let mut value = String::new();
        let mut it = after.char_indices();
        let end = loop {
            match it.next() {
                None => return Err("unterminated label value".into()),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match it.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => return Err(format!("bad escape {other:?}")),
                },
                Some((_, '\n')) => return Err("newline in label value".into()),
                Some((_, c)) => value.push(c),
            }
        };
        chars += name.chars().count() + value.chars().count();
        if labels.iter().any(|(n, _)| n == name) {
            return Err(format!("label {name} twice"));
        }
        labels.push((name.to_owned(), value));
        rest = &after[end + 1..];
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((labels, after, chars));
        }
        rest = rest.strip_prefix(',').ok_or("no ',' between labels")?;
    }
}

fn check_openmetrics(text: &str) -> Result<Checked, String> {
    let body = text.strip_suffix("# EOF\n").ok_or("no final '# EOF'")?;
    let mut checked = Checked::default();
    // family name → type; the family whose lines come now.
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut helped: BTreeSet<String> = BTreeSet::new();
    let mut current: Option<String> = None;
    if !body.is_empty() && !body.ends_with('\n') {
        return Err("text after '# EOF'".into());
    }
    for (n, line) in body.split_terminator('\n').enumerate() {
        let at = |e: String| format!("line {}: {e}: {line:?}", n + 1);
        if line.is_empty() {
            return Err(at("empty line".into()));
        }
        let mut enter = |family: &str, current: &mut Option<String>| -> Result<(), String> {
            if current.as_deref() != Some(family) {
                if !seen.insert(family.to_owned()) {
                    return Err(format!("family {family} not contiguous"));
                }
                *current = Some(family.to_owned());
            }
            Ok(())
        };
        if let Some(rest) = line.strip_prefix("# ") {
            let (keyword, rest) = rest
                .split_once(' ')
                .ok_or_else(|| at("bad comment".into()))?;
            let (name, value) = rest.split_once(' ').unwrap_or((rest, ""));
            if !is_name(name) {
                return Err(at("bad family name".into()));
            }
            match keyword {
                "TYPE" => {
                    if !matches!(
                        value,
                        "counter"
                            | "gauge"
                            | "histogram"
                            | "summary"
                            | "unknown"
                            | "info"
                            | "stateset"
                            | "gaugehistogram"
                    ) {
                        return Err(at("bad type".into()));
                    }
                    if value == "counter" && name.ends_with("_total") {
                        return Err(at("counter family named _total".into()));
                    }
                    enter(name, &mut current).map_err(at)?;
                    if types.insert(name.to_owned(), value.to_owned()).is_some() {
                        return Err(at("TYPE twice".into()));
                    }
                }
                "HELP" => {
                    enter(name, &mut current).map_err(at)?;
                    if !helped.insert(name.to_owned()) {
                        return Err(at("HELP twice".into()));
                    }
                    let mut it = value.chars();
                    while let Some(c) = it.next() {
                        match c {
                            '"' => return Err(at("unescaped quote in HELP".into())),
                            '\\' if !matches!(it.next(), Some('\\' | '"' | 'n')) => {
                                return Err(at("bad escape in HELP".into()))
                            }
                            _ => {}
                        }
                    }
                }
                "UNIT" => enter(name, &mut current).map_err(at)?,
                _ => return Err(at("unknown comment".into())),
            }
            continue;
        }
        // A sample: name, labels, value, optional timestamp, optional exemplar.
        let name_end = line.find(['{', ' ']).ok_or_else(|| at("no value".into()))?;
        let name = &line[..name_end];
        if !is_name(name) {
            return Err(at("bad metric name".into()));
        }
        let (labels, rest) = if line[name_end..].starts_with('{') {
            let (labels, rest, _) = parse_labels(&line[name_end..]).map_err(at)?;
            (labels, rest)
        } else {
            (Vec::new(), &line[name_end..])
        };
        let series = &line[..line.len() - rest.len()];
        let rest = rest
            .strip_prefix(' ')
            .ok_or_else(|| at("no space".into()))?;
        let (value_part, exemplar) = match rest.split_once(" # ") {
            Some((value, exemplar)) => (value, Some(exemplar)),
            None => (rest, None),
        };
        let mut words = value_part.split(' ');
        let value = words.next().unwrap_or_default();
        if !is_number(value) {
            return Err(at(format!("bad value {value:?}")));
        }
        if let Some(timestamp) = words.next() {
            if !is_number(timestamp) {
                return Err(at("bad timestamp".into()));
            }
        }
        if words.next().is_some() {
            return Err(at("trailing text".into()));
        }
        // The family: the longest typed family name the sample name fits.
        let family = types
            .iter()
            .filter_map(|(family, kind)| {
                let suffix = name.strip_prefix(family.as_str())?;
                let fits = match kind.as_str() {
                    "counter" => matches!(suffix, "_total" | "_created"),
                    "histogram" => matches!(suffix, "_bucket" | "_count" | "_sum" | "_created"),
                    "summary" => matches!(suffix, "" | "_count" | "_sum" | "_created"),
                    _ => suffix.is_empty(),
                };
                fits.then_some((family.clone(), kind.clone(), suffix))
            })
            .max_by_key(|(family, ..)| family.len());
        let (family, kind, suffix) = family.ok_or_else(|| at("sample of no family".into()))?;
        enter(&family, &mut current).map_err(at)?;
        let has = |label: &str| labels.iter().any(|(n, _)| n == label);
        if kind == "histogram" && suffix == "_bucket" && !has("le") {
            return Err(at("bucket without le".into()));
        }
        if let Some(exemplar) = exemplar {
            if !((kind == "histogram" && suffix == "_bucket")
                || (kind == "counter" && suffix == "_total"))
            {
                return Err(at("exemplar on a sample that cannot have one".into()));
            }
            let (_, rest, chars) = parse_labels(exemplar).map_err(at)?;
            if chars > 128 {
                return Err(at("exemplar label set over 128 characters".into()));
            }
            let mut words = rest
                .strip_prefix(' ')
                .ok_or_else(|| at("exemplar value".into()))?
                .split(' ');
            if !words.next().is_some_and(is_number) {
                return Err(at("bad exemplar value".into()));
            }
            if let Some(timestamp) = words.next() {
                if !is_number(timestamp) {
                    return Err(at("bad exemplar timestamp".into()));
                }
            }
            if words.next().is_some() {
                return Err(at("trailing text after exemplar".into()));
            }
        }
        checked.samples.push(CheckedSample {
            series: series.to_owned(),
        });
    }
    Ok(checked)
}

/// The checker refuses what OpenMetrics forbids (so that its passing means something).
#[test]
fn the_checker_refuses_broken_text() {
    let good = "# HELP a Help \\\"q\\\".\n# TYPE a counter\na_total{x=\"1\"} 2 # {trace_id=\"ab\"} 1 2.5\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_count 1\nh_sum 0.5\n# EOF\n";
    check_openmetrics(good).unwrap();
    for bad in [
        "# TYPE a counter\na_total 1\n",
        "# TYPE a counter\na_total 1\n\n# EOF\n",
        "# TYPE a_total counter\na_total 1\n# EOF\n",
        "# TYPE a counter\na 1\n# EOF\n",
        "# HELP a say \"x\"\n# TYPE a gauge\na 1\n# EOF\n",
        "# TYPE a gauge\na{x=\"a\nb\"} 1\n# EOF\n",
        "# TYPE a gauge\na{x=\"\\q\"} 1\n# EOF\n",
        "# TYPE a gauge\na 1 # {t=\"1\"} 1\n# EOF\n",
        "# TYPE a gauge\na one\n# EOF\n",
        "# TYPE a gauge\n# TYPE b gauge\na 1\nb 1\na 2\n# EOF\n",
        "# a comment\n# EOF\n",
        "# TYPE h histogram\nh_bucket 1\n# EOF\n",
        &format!(
            "# TYPE h histogram\nh_bucket{{le=\"1\"}} 1 # {{trace_id=\"{}\"}} 1\n# EOF\n",
            "x".repeat(121)
        ),
    ] {
        assert!(check_openmetrics(bad).is_err(), "{bad:?}");
    }
}

/// A monitor whose label function puts the `x-client` header into a label, so that header
/// values reach label values too.
fn hostile_monitor() -> vitalsign::Monitor {
    vitalsign::Monitor::builder("props")
        .label_fn("client", |req| {
            req.header("x-client")
                .map(|v| String::from_utf8_lossy(v).into_owned())
        })
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any `traceparent`, `x-request-id` and labelled header value, valid or not, leaves the
    /// OpenMetrics text well-formed; a valid sampled one shows up as its bucket's exemplar.
    #[test]
    fn any_header_value_keeps_openmetrics_well_formed(
        traceparent in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..80),
            // Well-formed or nearly: any version, flags and extension, hex in either case.
            ("[0-9a-f]{2}", "[0-9a-f]{32}", "[0-9a-f]{16}", "[0-9a-f]{2}", "(-[ -~]{0,10})?")
                .prop_map(|(v, t, s, f, more)| format!("{v}-{t}-{s}-{f}{more}").into_bytes()),
            ("0[01]", "[0-9a-fA-F]{32}", "[0-9a-fA-F]{16}", "0[0-3]")
                .prop_map(|(v, t, s, f)| format!("{v}-{t}-{s}-{f}").into_bytes()),
        ],
        request_id in proptest::collection::vec(any::<u8>(), 0..70),
        client in proptest::collection::vec(any::<u8>(), 0..40),
        route in "[ -~]{0,20}",
    ) {
        use vitalsign::adapter::{self, RequestStart};
        let monitor = hostile_monitor();
        let headers = |name: &str| (name == "x-client").then_some(&client[..]);
        let start = RequestStart::new(b"GET", "/p")
            .with_route(Some(&route))
            .with_request_id(Some(&request_id))
            .with_traceparent(Some(&traceparent))
            .with_headers(&headers);
        adapter::begin(&monitor, start).response(200).complete();
        let open = String::from_utf8(monitor.render_metrics_as(ExpositionFormat::OpenMetrics).unwrap()).unwrap();
        let checked = check_openmetrics(&open);
        prop_assert!(checked.is_ok(), "{:?}\n{}", checked.err(), open);
        let trace = vitalsign::TraceContext::from_traceparent(&traceparent);
        let exemplars = open.lines().filter(|l| l.contains(" # {")).count();
        prop_assert_eq!(exemplars, usize::from(trace.is_some_and(|t| t.sampled())), "{}", open);
        if let Some(trace) = trace.filter(|t| t.sampled()) {
            let trace_id = trace.trace_id_hex();
            prop_assert!(open.contains(trace_id.as_str()));
        }
    }
}

/// A request with a sampled `traceparent` (and one with an `x-request-id` too) allocates
/// nothing once its series holds exemplars: the trace rides in the request's id buffer and the
/// exemplar goes into the bucket's atomics.
#[test]
fn a_traced_request_allocates_nothing_once_its_series_has_exemplars() {
    use vitalsign::adapter::{self, RequestStart};
    let monitor = vitalsign::Monitor::builder("alloc").build().unwrap();
    let header = traceparent("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", true);
    let send = |n: usize| {
        for i in 0..n {
            let request_id = (i % 2 == 0).then_some(&b"5b3f1c2e-0d9a-4c55-8f1e-2a7b9c0d4e6f"[..]);
            let start = RequestStart::new(b"GET", "/users/7")
                .with_route(Some("/users/{id}"))
                .with_request_id(request_id)
                .with_traceparent(Some(header.as_bytes()));
            adapter::begin(&monitor, start).response(200).complete();
        }
    };
    send(100);
    let info = allocation_counter::measure(|| send(10_000));
    assert_eq!(info.count_total, 0, "{info:?}");
    let open = String::from_utf8(
        monitor
            .render_metrics_as(ExpositionFormat::OpenMetrics)
            .unwrap(),
    )
    .unwrap();
    assert!(open.contains("0af7651916cd43dd8448eb211c80319c"), "{open}");
}

/// Everything the classic text has comes out as OpenMetrics: the application's own series in a
/// shared registry (a counter with `_total`, one without, a gauge, a summary, HELP text with
/// quotes and backslashes), the collectors' families and vitalsign's histograms.
#[test]
fn the_application_registry_and_collectors_convert_too() {
    use vitalsign::adapter::{self, RequestStart};
    use vitalsign::metrics_exporter_prometheus::PrometheusBuilder;
    let recorder = PrometheusBuilder::new().build_recorder();
    metrics::with_local_recorder(&recorder, || {
        metrics::describe_counter!("app_jobs_total", "Jobs \"done\" \\ so far.");
        metrics::counter!("app_jobs_total", "queue" => "a\"b").increment(3);
        metrics::counter!("app_plain", "queue" => "c").increment(2);
        metrics::gauge!("app_depth").set(1.5);
        metrics::histogram!("app_latency_seconds").record(0.25);
    });
    let monitor = vitalsign::Monitor::builder("registry")
        .prometheus_recorder(recorder)
        .global_label("zone", "z\\1")
        .build()
        .unwrap();
    let header = traceparent("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", true);
    let start = RequestStart::new(b"GET", "/a")
        .with_route(Some("/a"))
        .with_traceparent(Some(header.as_bytes()));
    adapter::begin(&monitor, start).response(200).complete();
    let open = String::from_utf8(
        monitor
            .render_metrics_as(ExpositionFormat::OpenMetrics)
            .unwrap(),
    )
    .unwrap();
    check_openmetrics(&open).unwrap_or_else(|e| panic!("{e}\n---\n{open}"));
    for expected in [
        "# HELP app_jobs Jobs \\\"done\\\" \\\\ so far.\n# TYPE app_jobs counter\n",
        "app_jobs_total{queue=\"a\\\"b\"} 3\n",
        "# TYPE app_plain unknown\napp_plain{queue=\"c\"} 2\n",
        "zone=\"z\\\\1\"",
        "# TYPE app_depth gauge\n",
        "# TYPE app_latency_seconds summary\n",
        "# TYPE http_server_request_duration_seconds histogram\n",
        "# TYPE http_server_active_requests gauge\n",
        "# TYPE vitalsign_sink_panics counter\n",
        "# TYPE process_cpu_seconds counter\n",
        "0af7651916cd43dd8448eb211c80319c",
    ] {
        assert!(open.contains(expected), "{expected:?} not in\n{open}");
    }
    // The classic text of the same registry keeps the `_total` family names.
    let classic = monitor.render_metrics().unwrap();
    assert!(
        classic.contains("# TYPE app_jobs_total counter\n"),
        "{classic}"
    );
    assert!(!classic.contains("# EOF"));
}
