//! Property tests: label escaping on `/metrics`, line-protocol encoding, request ids and the
//! method policy hold for arbitrary input.

mod common;

use common::Exposition;
use proptest::prelude::*;
use vitalsign::adapter::RequestStart;
use vitalsign::sinks::InfluxSink;
use vitalsign::{Method, Monitor, RequestId, RequestPoint, Tag};

fn point<'a>(id: &'a RequestId, route: &'a str, tags: &'a [Tag]) -> RequestPoint<'a> {
    let mut point = RequestPoint::new("svc", route, Method::Get, 200, id);
    point.execution_time = 0.25;
    point.start_unix_nanos = 1_700_000_000_000_000_000;
    point.tags = tags;
    point
}

/// What line protocol can carry of a tag: control characters become spaces, trailing
/// backslashes go.
fn tag_text(v: &str) -> String {
    let line: String = v
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    line.trim_end_matches('\\').to_owned()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_tag_value_survives_the_exposition(value in "\\PC{0,40}|[\"\\\\\n\t ,=]{0,10}") {
        let monitor = Monitor::builder("p").label_tag("tenant").build().unwrap();
        let mut flight = vitalsign::adapter::begin(&monitor, RequestStart::new(b"GET", "/x").with_route(Some("/x")));
        flight.in_scope(|| {
            vitalsign::PointHandle::current().unwrap().tag("tenant", value.clone());
        });
        flight.set_status(200);
        flight.complete();
        let text = monitor.render_metrics().unwrap();
        let parsed = Exposition::parse(&text);
        let counts = parsed.matching("http_server_request_duration_seconds_count", &[]);
        prop_assert_eq!(counts.len(), 1);
        prop_assert_eq!(counts[0].labels.get("tenant").map(String::as_str), Some(value.as_str()));
    }

    #[test]
    fn any_tag_and_route_give_parseable_line_protocol(
        route in "\\PC{1,30}",
        key in "[a-z_][a-z0-9_ ,=]{0,12}",
        value in "\\PC{0,40}|[\"\\\\\n\t ,=]{1,10}",
    ) {
        let id = RequestId::generate();
        let tags = [Tag { key: key.clone().into(), value: value.clone() }];
        let text = InfluxSink::line(&point(&id, &route, &tags), None);
        let lines = influxdb_line_protocol::parse_lines(&text).collect::<Result<Vec<_>, _>>();
        prop_assert!(lines.is_ok(), "{:?} did not parse: {:?}", text, lines.err());
        let lines = lines.unwrap();
        prop_assert_eq!(lines.len(), 1);
        let tag_set = lines[0].series.tag_set.clone().unwrap_or_default();
        let get = |k: &str| tag_set.iter().find(|(tk, _)| tk.as_str() == k).map(|(_, v)| v.to_string());
        prop_assert_eq!(get("route"), Some(tag_text(&route)).filter(|r| !r.is_empty()));
        let shown = tag_text(&value);
        if !shown.is_empty() && !matches!(key.as_str(), "service" | "route" | "method" | "status_code") {
            prop_assert_eq!(get(&tag_text(&key)), Some(shown));
        }
    }

    #[test]
    fn request_ids_are_kept_only_when_sane(raw in proptest::collection::vec(any::<u8>(), 0..100)) {
        let sane = !raw.is_empty()
            && raw.len() <= RequestId::MAX_LEN
            && raw.iter().all(|b| b.is_ascii_alphanumeric() || b"-_.:+=/@".contains(b));
        match RequestId::from_header(Some(&raw)) {
            Some(id) => {
                prop_assert!(sane);
                prop_assert_eq!(id.as_str().as_bytes(), &raw[..]);
            }
            None => prop_assert!(!sane),
        }
        let replaced = RequestId::from_header_or_generate(Some(&raw));
        prop_assert!(replaced.as_str().len() <= RequestId::MAX_LEN);
        prop_assert!(replaced.as_str().bytes().all(|b| b.is_ascii_graphic()));
    }

    /// Regression (review item 13): this asserted that the parsed method is in `Method::ALL`,
    /// which holds by construction. Now: a standard token (exactly as RFC 9110 spells it) is
    /// classified as itself, anything else (other case, padding, other bytes) as `_OTHER`.
    #[test]
    fn any_method_token_is_itself_or_other(raw in method_token()) {
        let method = Method::from_bytes(&raw);
        let standard = Method::ALL
            .iter()
            .copied()
            .find(|m| *m != Method::Other && m.as_str().as_bytes() == raw.as_slice());
        prop_assert_eq!(method, standard.unwrap_or(Method::Other), "{:?}", raw);
        prop_assert_eq!(Method::ALL[method.index()], method);
    }
}

/// Method tokens: standard ones, their near misses, and arbitrary bytes.
fn method_token() -> impl Strategy<Value = Vec<u8>> {
    let standard = proptest::sample::select(
        Method::ALL
            .iter()
            .filter(|m| **m != Method::Other)
            .map(|m| m.as_str())
            .collect::<Vec<_>>(),
    );
    prop_oneof![
        1 => standard.clone().prop_map(|m| m.as_bytes().to_vec()),
        3 => (standard, 0..4u8, any::<usize>(), any::<u8>()).prop_map(|(m, how, at, byte)| {
            // A near miss: one byte changed or added, one byte or the whole token lower-cased.
            let mut raw = m.as_bytes().to_vec();
            match how {
                0 => raw[at % m.len()] = byte,
                1 => raw[at % m.len()].make_ascii_lowercase(),
                2 => raw.make_ascii_lowercase(),
                _ => raw.insert(at % (m.len() + 1), byte),
            }
            raw
        }),
        1 =>         proptest::collection::vec(any::<u8>(), 0..12),
    ]
}
