//! `/status`: a status page for people, and `/status/data`, the JSON document it reads
//! (feature `status`, which includes `stats` and `prometheus`).
//!
//! The page is one HTML document with its CSS and script inline (no CDN, no external font,
//! nothing fetched but the data document: it works on an air-gapped host; its
//! `Content-Security-Policy` lets it connect to its own origin only). It shows the overall
//! level, the components, tiles of the current figures, charts of the last 15 minutes, the
//! busiest routes, the latest annotations of each stream and the push sinks, and refreshes
//! itself by fetching the data document every [`REFRESH`] (no reload). With a token configured, an anonymous visitor sees the overall
//! level only (as `/health`); the page offers a field for the token, keeps it in
//! `sessionStorage` and sends it as `Authorization: Bearer …`, never in a URL.
//!
//! ```
//! use vitalsign_core::endpoint::EndpointRequest;
//! use vitalsign_core::Monitor;
//!
//! let monitor = Monitor::builder("shop").token("s3cret").build().unwrap();
//! let page = monitor.status_page_endpoint();
//! assert_eq!((page.status, page.content_type), (200, "text/html; charset=utf-8"));
//! assert!(page.body.len() < 100 * 1024);
//!
//! // Anonymous: the overall level only.
//! let data = monitor.status_data_endpoint(&EndpointRequest::default());
//! let json: serde_json::Value = serde_json::from_slice(&data.body).unwrap();
//! assert_eq!(json["authorized"], false);
//! assert_eq!(json["overall"]["level"], "available");
//! assert!(json.get("components").is_none());
//!
//! // With the token: everything.
//! let request = EndpointRequest { authorization: Some(b"Bearer s3cret"), accept: None };
//! let json: serde_json::Value =
//!     serde_json::from_slice(&monitor.status_data_endpoint(&request).body).unwrap();
//! assert_eq!(json["authorized"], true);
//! assert!(json["history"]["time"].is_array());
//!
//! // A wrong token is said to be wrong (401), with the anonymous view.
//! let wrong = EndpointRequest { authorization: Some(b"Bearer nope"), accept: None };
//! assert_eq!(monitor.status_data_endpoint(&wrong).status, 401);
//! ```
//!
//! # The data document (`GET /status/data`)
//!
//! Always 200 with a document (the level is in the body; probes use `/health`), except 401
//! when an `Authorization` header is sent that does not carry the token: the body is then the
//! anonymous document plus `"error"`. `format` is 1; fields are only ever added.
//!
//! | field | meaning |
//! |---|---|
//! | `format` | 1 |
//! | `name`, `version` | the service, as `/health` names them |
//! | `time` | when the document was made (RFC 3339) |
//! | `authorized` | whether the details follow (no token configured, or the right one sent) |
//! | `token_required` | whether the monitor has a token |
//! | `refresh_in_millis` | how often the page fetches the document |
//! | `overall.level` | `available`, `degraded` or `unavailable` (anonymous callers too) |
//! | `overall.summary` | the sentence of `/health` |
//! | `ready`, `draining` | as `/health/ready` |
//! | `uptime_in_millis` | since the monitor was built |
//! | `components[]` | `name`, `critical`, `level`, `summary`, `since` (RFC 3339: the last level change, or the start) |
//! | `current.window` | `from`, `to`, `seconds`: the last closed collection interval (the `window` of `/stats`) |
//! | `current.requests_per_second`, `current.error_ratio` | over that interval; errors are 5xx responses |
//! | `current.cpu_ratio` | process CPU time over wall time in that interval (1.0 is one core; `null` before two samples) |
//! | `history` | the charts' ring, oldest first, one entry per closed interval: `time` (Unix ms, the interval's end), `requests`, `errors` (5xx), `requests_per_second`, `errors_per_second`, `p50_in_millis`, `p90_in_millis`, `p99_in_millis` (`null` without requests or without a Prometheus sink), `in_flight` (when the interval closed); `interval_in_millis`, `capacity` |
//! | `routes` | the busiest routes of the last minute from the duration histograms: `top[]` with `method`, `route`, `requests`, `requests_per_second`, `error_ratio` (5xx), `p99_in_millis`; `span_in_millis`; `available` (false, with a `reason`, without a Prometheus sink) |
//! | `sinks[]` | push sinks: `name`, `queued`, `sent`, `dropped` |
//! | `annotations[]` | each annotation stream (by name): `stream`, `total`, and `events[]`, its [`ANNOTATIONS_PER_STREAM`] latest events, newest first, as `GET /annotations/{stream}` answers them |
//! | `stats` | the `/stats` document, as `/stats` answers it at the same moment |
//!
//! # The history ring
//!
//! vitalsign's health thread takes one sample when the `/stats` window closes (every
//! [`collection_interval`](crate::MonitorBuilder::collection_interval), 5 s by default), from
//! counters the request path already keeps: the window's totals, the Prometheus duration
//! histograms (differences since the last sample give the percentiles and the routes) and the
//! in-flight counter. Nothing is added to the request path. The ring holds 15 minutes of
//! samples, at most [`MAX_SAMPLES`] (40 bytes each: 7 KB at 5 s, 36 KB at most); the routes
//! ring holds the [`ROUTES_PER_INTERVAL`] busiest routes of each interval of the last minute
//! (at most 60 intervals; 184 bytes a route with the default buckets: 43 KB at 5 s, 216 KB at
//! most). With the defaults both rings take at most 51 360 bytes (50 KiB); whatever the
//! interval, at most 257 KB. To take differences the sampler also keeps one copy of each
//! duration series' bucket counts (8 bytes per bucket per label set, as the histograms
//! themselves). [`Monitor::status_memory`]
//! tells the bound of the two rings.

mod history;

use serde_json::{json, Map, Value};

pub(crate) use history::Sampler;
pub use history::{HISTORY_SPAN, MAX_SAMPLES, ROUTES_PER_INTERVAL, ROUTES_SHOWN, ROUTES_SPAN};

use crate::endpoint::{EndpointRequest, EndpointResponse};
use crate::Monitor;

/// Latest events of each annotation stream in the data document (and on the page).
pub const ANNOTATIONS_PER_STREAM: usize = 3;

/// How often the page fetches the data document: every 2 s.
pub const REFRESH: std::time::Duration = std::time::Duration::from_secs(2);

/// Content type of the page.
pub const HTML_CONTENT_TYPE: &str = "text/html; charset=utf-8";

/// The page's `Content-Security-Policy`: its inline style and script, connections to its own
/// origin only, no other resource.
pub const PAGE_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; \
     script-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// The page, with `__VITALSIGN_DATA_URL__` where the data document's URL goes.
const PAGE: &str = include_str!("page.html");

const DATA_URL_PLACEHOLDER: &str = "__VITALSIGN_DATA_URL__";

/// `to` relative to the page at `from` (both absolute paths), so that the page finds its data
/// behind a proxy that mounts the service under a prefix.
fn relative(from: &str, to: &str) -> String {
    let dir = &from[..from.rfind('/').map_or(0, |i| i + 1)];
    if let Some(rest) = to.strip_prefix(dir).filter(|_| !dir.is_empty()) {
        return rest.to_owned();
    }
    let depth = dir.matches('/').count().saturating_sub(1);
    format!("{}{}", "../".repeat(depth), to.trim_start_matches('/'))
}

fn escape_attribute(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn rfc3339(time: std::time::SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

impl Monitor {
    /// The status page's HTML, with the data document's URL (relative to the page, or empty
    /// when `/status/data` is not mounted).
    pub(crate) fn status_page(&self) -> String {
        use crate::endpoint::Endpoint;
        let routes = self.endpoint_routes();
        let path_of =
            |wanted: Endpoint| routes.iter().find(|(_, e)| *e == wanted).map(|(p, _)| &**p);
        let url = match (path_of(Endpoint::Status), path_of(Endpoint::StatusData)) {
            (Some(page), Some(data)) => relative(page, data),
            (None, Some(data)) => data.to_owned(),
            (_, None) => String::new(),
        };
        PAGE.replace(DATA_URL_PLACEHOLDER, &escape_attribute(&url))
    }

    /// The bound, in bytes, of the status page's two rings (the samples of the last 15
    /// minutes and the busiest routes of the last minute); see [`crate::status`].
    ///
    /// ```
    /// let monitor = vitalsign_core::Monitor::builder("shop").build().unwrap();
    /// assert_eq!(monitor.status_memory(), 51_360); // the defaults: 5 s interval, 14 buckets
    /// ```
    pub fn status_memory(&self) -> usize {
        self.status_sampler().memory_bound()
    }

    /// The data document of `/status/data` (see [`crate::status`]); the details only when
    /// `authorized`.
    pub fn status_json(&self, authorized: bool) -> Value {
        let snapshot = self.health();
        let mut doc = Map::new();
        doc.insert("format".into(), 1.into());
        doc.insert("name".into(), self.service().into());
        doc.insert("version".into(), self.version().into());
        doc.insert("time".into(), rfc3339(std::time::SystemTime::now()).into());
        doc.insert("authorized".into(), authorized.into());
        doc.insert("token_required".into(), self.token().is_some().into());
        doc.insert(
            "refresh_in_millis".into(),
            (REFRESH.as_millis() as u64).into(),
        );
        if !authorized {
            doc.insert(
                "overall".into(),
                json!({ "level": snapshot.overall.as_str() }),
            );
            return Value::Object(doc);
        }
        doc.insert(
            "overall".into(),
            json!({ "level": snapshot.overall.as_str(), "summary": snapshot.summary }),
        );
        doc.insert("ready".into(), snapshot.ready.into());
        doc.insert("draining".into(), snapshot.draining.into());
        let sampler = self.status_sampler();
        let started = sampler.started();
        let components: Vec<Value> = snapshot
            .components
            .iter()
            .map(|(name, status)| {
                let since = self.health_engine().changed_at(name).unwrap_or(started);
                json!({
                    "name": name,
                    "critical": status.critical,
                    "level": status.level.as_str(),
                    "summary": status.summary,
                    "since": rfc3339(since),
                })
            })
            .collect();
        doc.insert("components".into(), components.into());
        let stats = self.stats_json();
        doc.insert(
            "uptime_in_millis".into(),
            stats["process"]["uptime_in_millis"].clone(),
        );
        let (rate, ratio) = sampler.latest_rates();
        let window = &stats["window"];
        let seconds = match (
            window["from"]
                .as_str()
                .and_then(|t| humantime::parse_rfc3339(t).ok()),
            window["to"]
                .as_str()
                .and_then(|t| humantime::parse_rfc3339(t).ok()),
        ) {
            (Some(from), Some(to)) => to.duration_since(from).unwrap_or_default().as_secs_f64(),
            _ => 0.0,
        };
        doc.insert(
            "current".into(),
            json!({
                "window": { "from": window["from"], "to": window["to"], "seconds": seconds },
                "requests_per_second": rate,
                "error_ratio": ratio,
                "cpu_ratio": sampler.cpu_ratio(),
            }),
        );
        doc.insert("history".into(), sampler.history_json());
        doc.insert("routes".into(), sampler.routes_json());
        let sinks: Vec<Value> = stats["sinks"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(name, figures)| {
                json!({
                    "name": name,
                    "queued": figures["queued"],
                    "sent": figures["sent"],
                    "dropped": figures["dropped"],
                })
            })
            .collect();
        doc.insert("sinks".into(), sinks.into());
        let annotations: Vec<Value> = self
            .annotation_streams()
            .into_iter()
            .map(|stream| {
                let events: Vec<Value> = self
                    .annotations(&stream.name, None)
                    .iter()
                    .take(ANNOTATIONS_PER_STREAM)
                    .map(|event| event.to_json())
                    .collect();
                json!({ "stream": stream.name, "total": stream.total, "events": events })
            })
            .collect();
        doc.insert("annotations".into(), annotations.into());
        doc.insert("stats".into(), stats);
        Value::Object(doc)
    }

    /// `GET /status/data`, answered by [`Monitor::status_data_endpoint`].
    pub(crate) fn status_data(&self, request: &EndpointRequest<'_>) -> EndpointResponse {
        let authorized = self.authorized(request);
        let mut doc = self.status_json(authorized);
        if authorized || request.authorization.is_none() {
            return EndpointResponse::json_no_store(200, &doc);
        }
        doc["error"] = "the token is wrong: the Authorization header does not carry the \
                        monitor's token"
            .into();
        let mut page = EndpointResponse::json_no_store(401, &doc);
        page.headers
            .insert(0, ("www-authenticate", "Bearer realm=\"vitalsign\""));
        page
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_url_is_relative_to_the_page() {
        assert_eq!(relative("/status", "/status/data"), "status/data");
        assert_eq!(relative("/_v/status", "/_v/status/data"), "status/data");
        assert_eq!(relative("/a/status", "/b/data"), "../b/data");
        assert_eq!(relative("/status", "/x/y"), "x/y");
        assert_eq!(relative("/a/b/page", "/a/b/page/data"), "page/data");
    }

    #[test]
    fn the_page_is_self_contained_and_small() {
        let monitor = Monitor::builder("s").build().unwrap();
        let page = monitor.status_page();
        assert!(page.len() < 100 * 1024, "{} bytes", page.len());
        assert!(page.contains(r#"content="status/data""#));
        // The SVG namespace is a name, not a request.
        let page = page.replace("http://www.w3.org/2000/svg", "");
        for external in [
            "http:",
            "https:",
            "//",
            "@import",
            "stylesheet",
            "src=",
            "url(",
        ] {
            assert!(!page.contains(external), "{external}");
        }
    }

    fn request(monitor: &Monitor, route: &str, status: u16) -> crate::adapter::Flight {
        let mut flight = crate::adapter::begin(
            monitor,
            crate::adapter::RequestStart::new(b"GET", route).with_route(Some(route)),
        );
        flight.set_status(status);
        flight
    }

    fn data(monitor: &Monitor, authorization: Option<&[u8]>) -> (u16, Value) {
        let request = EndpointRequest {
            authorization,
            accept: None,
        };
        let page = monitor.status_data_endpoint(&request);
        (page.status, serde_json::from_slice(&page.body).unwrap())
    }

    /// The ring samples each closed window from the counters the request path keeps: rates,
    /// 5xx, percentiles from the duration histograms, in-flight, and the busiest routes.
    #[test]
    fn each_closed_window_becomes_one_sample_and_the_routes_table() {
        let monitor = Monitor::builder("s")
            .collection_interval(std::time::Duration::from_millis(100))
            .build()
            .unwrap();
        let held = request(&monitor, "/held", 200);
        for _ in 0..8 {
            request(&monitor, "/users/{id}", 200).complete();
        }
        for _ in 0..2 {
            request(&monitor, "/error", 500).complete();
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let (sample, doc) = loop {
            let (status, doc) = data(&monitor, None);
            assert_eq!(status, 200);
            let history = &doc["history"];
            let found = history["requests"]
                .as_array()
                .unwrap()
                .iter()
                .position(|n| n.as_u64() == Some(10));
            if let Some(i) = found {
                break (i, doc);
            }
            assert!(std::time::Instant::now() < deadline, "no sample: {doc:#}");
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        let history = &doc["history"];
        assert_eq!(history["errors"][sample], 2);
        assert_eq!(history["in_flight"][sample], 1, "{history:#}");
        for p in ["p50_in_millis", "p90_in_millis", "p99_in_millis"] {
            let v = history[p][sample].as_f64().unwrap();
            // Instant requests: within the first bucket (5 ms).
            assert!((0.0..=5.0).contains(&v), "{p} {v}");
        }
        assert_eq!(history["capacity"], 900);
        let top = doc["routes"]["top"].as_array().unwrap();
        assert_eq!(top[0]["route"], "/users/{id}");
        assert_eq!(
            (top[0]["requests"].as_u64(), top[0]["error_ratio"].as_f64()),
            (Some(8), Some(0.0))
        );
        assert_eq!(top[1]["route"], "/error");
        assert_eq!(top[1]["error_ratio"], 1.0);
        assert!(top[1]["p99_in_millis"].as_f64().is_some());
        assert_eq!(doc["stats"]["requests"]["total"], 10);
        drop(held);
        // 40 bytes a sample, 900 samples at 100 ms; the routes of 60 intervals.
        assert_eq!(
            monitor.status_memory(),
            900 * 40 + 60 * ROUTES_PER_INTERVAL * (64 + 15 * 8)
        );
    }

    #[test]
    fn the_data_lists_the_latest_annotations_of_each_stream() {
        let monitor = Monitor::builder("shop").build().unwrap();
        for i in 0..5 {
            monitor
                .annotate(
                    "deploys",
                    crate::annotation::Annotation::new(format!("v{i}")),
                )
                .unwrap();
        }
        let (_, doc) = data(&monitor, None);
        let streams = doc["annotations"].as_array().unwrap();
        let names: Vec<&str> = streams
            .iter()
            .map(|s| s["stream"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["deploys", "lifecycle"]);
        let deploys = &streams[0];
        assert_eq!(deploys["total"], 5);
        let titles: Vec<&str> = deploys["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["title"].as_str().unwrap())
            .collect();
        assert_eq!(titles, ["v4", "v3", "v2"], "the latest, newest first");
        assert_eq!(streams[1]["events"][0]["title"], "shop unknown started");
    }

    #[test]
    fn anonymous_callers_see_the_overall_level_and_a_wrong_token_is_said_to_be_wrong() {
        let monitor = Monitor::builder("shop").token("s3cret").build().unwrap();
        let (status, doc) = data(&monitor, None);
        assert_eq!(status, 200);
        let keys: Vec<&str> = doc.as_object().unwrap().keys().map(|k| &**k).collect();
        assert_eq!(
            keys,
            [
                "authorized",
                "format",
                "name",
                "overall",
                "refresh_in_millis",
                "time",
                "token_required",
                "version"
            ]
        );
        assert_eq!(doc["overall"], json!({ "level": "available" }));
        let (status, doc) = data(&monitor, Some(b"Bearer wrong"));
        assert_eq!(status, 401);
        assert!(doc["error"].as_str().unwrap().contains("wrong"));
        assert_eq!(doc["overall"], json!({ "level": "available" }));
        assert!(doc.get("stats").is_none());
        let (status, doc) = data(&monitor, Some(b"Bearer s3cret"));
        assert_eq!((status, &doc["authorized"]), (200, &json!(true)));
        assert!(doc["stats"]["process"].is_object());
        assert!(doc["components"].is_array());
        // The page itself holds no figures: served to anyone.
        assert_eq!(monitor.status_page_endpoint().status, 200);
    }
}
