//! W3C Trace Context: the `traceparent` request header, parsed into a [`TraceContext`].
//!
//! A request that carries a valid `traceparent` links its metrics to its trace: the duration
//! histogram keeps, per bucket, the latest sampled request's trace and span ids as an exemplar
//! (rendered on `/metrics` in the OpenMetrics format), and the trace id becomes the request id
//! when no `x-request-id` was sent.
//!
//! Parsing follows the specification (<https://www.w3.org/TR/trace-context/#traceparent-header>):
//! version `00` is exactly 55 characters; a later version (not `ff`) may be longer, with a `-`
//! after the first 55 characters, whose fields are read as version `00`'s. Hex digits are
//! lower case; an all-zero trace or parent id, or anything else malformed, makes the header
//! ignored.
//!
//! With the feature `tracing-otel`, a request without a valid `traceparent` takes the
//! OpenTelemetry context of the current `tracing` span instead (tracing-opentelemetry's layer
//! sets it, for instance from a `TraceLayer` span the application opens around the monitor), so
//! that requests whose trace starts in this service get exemplars too.
//!
//! ```
//! use vitalsign_core::TraceContext;
//!
//! let header = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
//! let trace = TraceContext::from_traceparent(header).unwrap();
//! assert_eq!(trace.trace_id_hex().as_str(), "4bf92f3577b34da6a3ce929d0e0e4736");
//! assert_eq!(trace.span_id_hex().as_str(), "00f067aa0ba902b7");
//! assert!(trace.sampled());
//! // All-zero trace id, upper-case hex, version ff: ignored.
//! assert!(TraceContext::from_traceparent(b"00-00000000000000000000000000000000-00f067aa0ba902b7-01").is_none());
//! assert!(TraceContext::from_traceparent(b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01").is_none());
//! assert!(TraceContext::from_traceparent(b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").is_none());
//! ```

use std::fmt;

/// The request header W3C Trace Context propagates the caller's trace in.
pub const TRACEPARENT_HEADER: &str = "traceparent";

/// Length of a version `00` `traceparent` value.
const LEN: usize = 55;

/// The trace a request belongs to, from its `traceparent` header: trace id, the caller's span
/// (parent) id, and the trace flags (of which vitalsign reads `sampled`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceContext {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    flags: u8,
}

/// A hex rendering, stored inline: 32 characters for a trace id, 16 for a span id.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Hex<const N: usize>([u8; N]);

impl<const N: usize> Hex<N> {
    /// The digits (lower case).
    pub fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever stored.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl<const N: usize> fmt::Debug for Hex<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<const N: usize> fmt::Display for Hex<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The value of each lower-case hex digit; [`NOT_HEX`] for every other byte.
const HEX_VALUES: [u8; 256] = {
    let mut table = [NOT_HEX; 256];
    let mut digit = 0;
    while digit < 16 {
        table[b"0123456789abcdef"[digit] as usize] = digit as u8;
        digit += 1;
    }
    table
};
/// [`HEX_VALUES`] of a byte that is not a lower-case hex digit (above every digit's value).
const NOT_HEX: u8 = 0x10;

/// Decodes lower-case hex into `out` (`text` has twice its length): a table lookup per digit,
/// and one check at the end (the header is read once per request).
fn decode(text: &[u8], out: &mut [u8]) -> Option<()> {
    let mut seen = 0u8;
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        let (high, low) = (
            HEX_VALUES[usize::from(pair[0])],
            HEX_VALUES[usize::from(pair[1])],
        );
        seen |= high | low;
        *byte = (high << 4) | (low & 0x0f);
    }
    (seen < NOT_HEX).then_some(())
}

fn encode<const N: usize>(bytes: &[u8]) -> Hex<N> {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; N];
    for (pair, byte) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0xf)];
    }
    Hex(out)
}

impl TraceContext {
    /// Parses a `traceparent` header value; `None` if it is not a valid one (see the module
    /// documentation). Optional whitespace around the value is ignored.
    pub fn from_traceparent(value: &[u8]) -> Option<TraceContext> {
        let value = value.trim_ascii();
        if value.len() < LEN {
            return None;
        }
        let mut version = [0u8; 1];
        decode(&value[..2], &mut version)?;
        match version[0] {
            // Version 00 has exactly these fields.
            0 if value.len() != LEN => return None,
            0xff => return None,
            // A later version may append fields after a dash.
            _ if value.len() > LEN && value[LEN] != b'-' => return None,
            _ => {}
        }
        if value[2] != b'-' || value[35] != b'-' || value[52] != b'-' {
            return None;
        }
        let mut trace_id = [0u8; 16];
        let mut span_id = [0u8; 8];
        let mut flags = [0u8; 1];
        decode(&value[3..35], &mut trace_id)?;
        decode(&value[36..52], &mut span_id)?;
        decode(&value[53..55], &mut flags)?;
        TraceContext::new(trace_id, span_id, flags[0])
    }

    /// A context from its parts (for instance an OpenTelemetry span's); `None` if the trace id
    /// or the span id is all zeros (invalid). Bit 0 of `flags` is `sampled`.
    pub fn new(trace_id: [u8; 16], span_id: [u8; 8], flags: u8) -> Option<TraceContext> {
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(TraceContext {
            trace_id,
            span_id,
            flags,
        })
    }

    /// The trace id.
    pub fn trace_id(&self) -> [u8; 16] {
        self.trace_id
    }

    /// The caller's span id (the header's `parent-id`).
    pub fn span_id(&self) -> [u8; 8] {
        self.span_id
    }

    /// The trace flags.
    pub fn flags(&self) -> u8 {
        self.flags
    }

    /// Whether the caller records the trace (flag `sampled`): only then is an exemplar kept.
    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }

    /// The trace id in lower-case hex (32 characters).
    pub fn trace_id_hex(&self) -> Hex<32> {
        encode(&self.trace_id)
    }

    /// The span id in lower-case hex (16 characters).
    pub fn span_id_hex(&self) -> Hex<16> {
        encode(&self.span_id)
    }

    /// The trace id as a request id (what a request without `x-request-id` is identified by).
    pub fn request_id(&self) -> crate::RequestId {
        // 32 lower-case hex digits: a valid id as it is.
        let mut buf = [0u8; crate::RequestId::MAX_LEN];
        buf[..32].copy_from_slice(&self.trace_id_hex().0);
        crate::RequestId::from_parts(buf, 32)
    }
}

impl fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TraceContext")
            .field("trace_id", &self.trace_id_hex())
            .field("span_id", &self.span_id_hex())
            .field("flags", &self.flags)
            .finish()
    }
}

/// The version `00` `traceparent` value.
impl fmt::Display for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{}-{}-{:02x}",
            self.trace_id_hex(),
            self.span_id_hex(),
            self.flags
        )
    }
}

/// The OpenTelemetry context of the current `tracing` span (set by tracing-opentelemetry's
/// layer), for a request without a valid `traceparent` (feature `tracing-otel`): `None`
/// outside a span, or without the layer, or with an invalid context.
#[cfg(feature = "tracing-otel")]
pub(crate) fn current_span_context() -> Option<TraceContext> {
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let span = tracing::Span::current();
    if span.is_none() {
        return None;
    }
    let context = span.context();
    let span = context.span();
    let span_context = span.span_context();
    if !span_context.is_valid() {
        return None;
    }
    TraceContext::new(
        span_context.trace_id().to_bytes(),
        span_context.span_id().to_bytes(),
        span_context.trace_flags().to_u8(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const SPAN: &str = "00f067aa0ba902b7";

    fn parse(value: &str) -> Option<TraceContext> {
        TraceContext::from_traceparent(value.as_bytes())
    }

    #[test]
    fn version_00_is_read() {
        let trace = parse(&format!("00-{TRACE}-{SPAN}-01")).unwrap();
        assert_eq!(trace.trace_id_hex().as_str(), TRACE);
        assert_eq!(trace.span_id_hex().as_str(), SPAN);
        assert_eq!(trace.flags(), 1);
        assert!(trace.sampled());
        assert_eq!(trace.to_string(), format!("00-{TRACE}-{SPAN}-01"));
        assert_eq!(trace.request_id().as_str(), TRACE);
        let unsampled = parse(&format!("00-{TRACE}-{SPAN}-00")).unwrap();
        assert!(!unsampled.sampled());
        // Other flag bits do not make it sampled; bit 0 does whatever else is set.
        assert!(!parse(&format!("00-{TRACE}-{SPAN}-02")).unwrap().sampled());
        assert!(parse(&format!("00-{TRACE}-{SPAN}-ff")).unwrap().sampled());
        // Optional whitespace around the value.
        assert_eq!(parse(&format!(" \t00-{TRACE}-{SPAN}-01 ")), Some(trace));
    }

    #[test]
    fn later_versions_are_read_as_00() {
        let trace = parse(&format!("cc-{TRACE}-{SPAN}-01")).unwrap();
        assert_eq!(trace.trace_id_hex().as_str(), TRACE);
        let longer = parse(&format!("01-{TRACE}-{SPAN}-01-what-comes-next")).unwrap();
        assert_eq!(longer, trace);
        // Longer without the dash that starts the next field.
        assert_eq!(parse(&format!("01-{TRACE}-{SPAN}-01x")), None);
        // Version ff is invalid; version 00 must not be longer.
        assert_eq!(parse(&format!("ff-{TRACE}-{SPAN}-01")), None);
        assert_eq!(parse(&format!("00-{TRACE}-{SPAN}-01-extra")), None);
    }

    #[test]
    fn malformed_values_are_ignored() {
        let zeros32 = "0".repeat(32);
        let zeros16 = "0".repeat(16);
        for bad in [
            String::new(),
            "00".to_owned(),
            format!("00-{zeros32}-{SPAN}-01"),
            format!("00-{TRACE}-{zeros16}-01"),
            format!("00-{}-{SPAN}-01", TRACE.to_uppercase()),
            format!("00-{TRACE}-{}-01", SPAN.to_uppercase()),
            format!("0g-{TRACE}-{SPAN}-01"),
            format!("00-{TRACE}-{SPAN}-0x"),
            format!("00_{TRACE}-{SPAN}-01"),
            format!("00-{TRACE}_{SPAN}-01"),
            format!("00-{TRACE}-{SPAN}_01"),
            format!("00-{}-{SPAN}-01", &TRACE[..31]),
            format!("00-{TRACE}-{SPAN}-1"),
            format!("00-{TRACE}z-{}-01", &SPAN[..15]),
            format!("00-{TRACE}-{SPAN}-01\u{e9}"),
            format!("00 {TRACE} {SPAN} 01"),
        ] {
            assert_eq!(parse(&bad), None, "{bad:?}");
        }
        assert_eq!(TraceContext::from_traceparent(&[0xff; 60]), None);
    }

    /// Feature `tracing-otel`: without a valid header, the request takes the current span's
    /// OpenTelemetry context (a real SDK tracer behind tracing-opentelemetry's layer); a valid
    /// header wins; outside a span there is none.
    #[cfg(all(feature = "tracing-otel", feature = "prometheus"))]
    #[test]
    fn the_current_spans_context_stands_in_for_a_missing_header() {
        use crate::adapter::{self, RequestStart};
        use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
        use tracing_opentelemetry::OpenTelemetrySpanExt as _;
        use tracing_subscriber::layer::SubscriberExt as _;

        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        let sink = std::sync::Arc::new(crate::MemorySink::new(8));
        let monitor = crate::Monitor::builder("s")
            .sink(sink.clone())
            .build()
            .unwrap();
        let send = |route: &'static str, header: Option<&'static [u8]>| {
            let start = RequestStart::new(b"GET", route)
                .with_route(Some(route))
                .with_traceparent(header);
            adapter::begin(&monitor, start).response(200).complete();
        };
        let header = format!("00-{TRACE}-{SPAN}-01");
        let header: &'static [u8] = header.leak().as_bytes();
        let expected = tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("request");
            let _entered = span.enter();
            send("/span", None);
            send("/invalid", Some(b"00-nonsense"));
            send("/header", Some(header));
            let context = span.context();
            let span_context = context.span().span_context().clone();
            TraceContext::new(
                span_context.trace_id().to_bytes(),
                span_context.span_id().to_bytes(),
                span_context.trace_flags().to_u8(),
            )
            .unwrap()
        });
        send("/outside", None);
        let requests = sink.requests();
        assert!(expected.sampled());
        assert_eq!(requests[0].trace, Some(expected));
        assert_eq!(
            requests[0].request_id.as_str(),
            expected.trace_id_hex().as_str()
        );
        assert_eq!(requests[1].trace, Some(expected));
        assert_eq!(
            requests[2].trace,
            parse(std::str::from_utf8(header).unwrap())
        );
        assert_eq!(requests[3].trace, None);
        let open = String::from_utf8(
            monitor
                .render_metrics_as(crate::prometheus::ExpositionFormat::OpenMetrics)
                .unwrap(),
        )
        .unwrap();
        assert!(open.contains(expected.trace_id_hex().as_str()), "{open}");
        assert!(open.contains(TRACE), "{open}");
    }

    #[test]
    fn parts_are_checked() {
        assert!(TraceContext::new([0; 16], [1; 8], 1).is_none());
        assert!(TraceContext::new([1; 16], [0; 8], 1).is_none());
        let trace = TraceContext::new([0xab; 16], [0x01; 8], 0).unwrap();
        assert_eq!(trace.trace_id(), [0xab; 16]);
        assert_eq!(trace.span_id(), [0x01; 8]);
        assert_eq!(trace.span_id_hex().as_str(), "0101010101010101");
        assert!(!trace.sampled());
        assert!(format!("{trace:?}").contains("abababab"));
    }
}
