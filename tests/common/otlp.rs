//! An OTLP/HTTP receiver on 127.0.0.1 for the OpenTelemetry sink's tests, built on the
//! official `opentelemetry-proto` types. Included by test crates that include `common`.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{metric, HistogramDataPoint, Metric};
use prost::Message;
use vitalsign::sinks::otel::DURATION;

use crate::common::Server;

/// An OTLP/HTTP receiver: `POST /v1/metrics` decodes `ExportMetricsServiceRequest`s (protobuf)
/// and keeps them, in arrival order.
pub struct Receiver {
    pub server: Server,
    pub received: Arc<Mutex<Vec<ExportMetricsServiceRequest>>>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener).await
    }

    pub async fn serve(listener: tokio::net::TcpListener) -> Receiver {
        let received = Arc::new(Mutex::new(Vec::new()));
        let into = received.clone();
        let app = axum::Router::new().route(
            "/v1/metrics",
            post(move |body: Bytes| {
                let into = into.clone();
                async move {
                    let request = ExportMetricsServiceRequest::decode(body).expect("OTLP protobuf");
                    into.lock().unwrap().push(request);
                    (
                        [("content-type", "application/x-protobuf")],
                        ExportMetricsServiceResponse::default().encode_to_vec(),
                    )
                }
            }),
        );
        let server = Server::start_on(listener, app).await;
        Receiver { server, received }
    }

    /// Every metric named `name` received so far, oldest first, with its resource's
    /// `service.name` and its scope's name.
    pub fn metrics(&self, name: &str) -> Vec<(String, String, Metric)> {
        let mut found = Vec::new();
        for request in self.received.lock().unwrap().iter() {
            for resource in &request.resource_metrics {
                let service = resource
                    .resource
                    .as_ref()
                    .map(|r| attributes(&r.attributes))
                    .and_then(|a| a.get("service.name").cloned())
                    .unwrap_or_default();
                for scope in &resource.scope_metrics {
                    let scope_name = scope.scope.as_ref().map(|s| s.name.clone());
                    for m in scope.metrics.iter().filter(|m| m.name == name) {
                        found.push((
                            service.clone(),
                            scope_name.clone().unwrap_or_default(),
                            m.clone(),
                        ));
                    }
                }
            }
        }
        found
    }

    /// The latest `http.server.request.duration` received (cumulative: it holds every request
    /// exported so far).
    pub fn latest_duration(&self) -> Option<(String, String, Metric)> {
        self.metrics(DURATION).pop()
    }

    /// Requests counted by the latest duration histogram.
    pub fn latest_count(&self) -> u64 {
        self.latest_duration()
            .map_or(0, |(_, _, m)| histogram(&m).iter().map(|p| p.count).sum())
    }
}

/// Attributes as text (`"200"` for the integer 200).
pub fn attributes(list: &[KeyValue]) -> BTreeMap<String, String> {
    list.iter()
        .map(|kv| {
            let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(any_value::Value::StringValue(s)) => s.clone(),
                Some(any_value::Value::IntValue(i)) => i.to_string(),
                Some(other) => format!("{other:?}"),
                None => String::new(),
            };
            (kv.key.clone(), value)
        })
        .collect()
}

pub fn histogram(m: &Metric) -> Vec<HistogramDataPoint> {
    match &m.data {
        Some(metric::Data::Histogram(h)) => h.data_points.clone(),
        other => panic!("{} is not a histogram: {other:?}", m.name),
    }
}
