//! Framework-independent answers of vitalsign's endpoints; adapters only translate them into
//! their framework's response type.
//!
//! ```
//! use vitalsign_core::Monitor;
//!
//! let monitor = Monitor::builder("shop").build().unwrap();
//! let page = monitor.metrics_endpoint();
//! assert_eq!(page.status, 200);
//! assert_eq!(page.content_type, vitalsign_core::endpoint::PROMETHEUS_CONTENT_TYPE);
//! ```

/// Content type of the Prometheus text exposition format (version 0.0.4).
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Content type of plain-text answers.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; charset=utf-8";

/// Why a handler's point extractor failed (the text of its 500 answer).
pub const MISSING_POINT_MESSAGE: &str =
    "vitalsign: this request has no monitoring point: wrap the \
     app or router in vitalsign's middleware (axum: Router::layer(MonitorLayer), added last; \
     actix: App::wrap(Monitoring)), and do not exclude this path";

/// An endpoint's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointResponse {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type` header value.
    pub content_type: &'static str,
    /// Body.
    pub body: String,
}

impl crate::Monitor {
    /// The answer of `GET /metrics`: the exposition text, or 404 with a reason when the monitor
    /// has no Prometheus sink.
    pub fn metrics_endpoint(&self) -> EndpointResponse {
        #[cfg(feature = "prometheus")]
        if let Some(body) = self.render_metrics() {
            return EndpointResponse {
                status: 200,
                content_type: PROMETHEUS_CONTENT_TYPE,
                body,
            };
        }
        EndpointResponse {
            status: 404,
            content_type: TEXT_CONTENT_TYPE,
            body: "vitalsign: this monitor has no Prometheus sink\n".to_owned(),
        }
    }
}
