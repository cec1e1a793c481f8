//! Set-up shared by the benches.
#![allow(dead_code, unreachable_pub)] // each bench uses its part

use std::sync::Arc;

use vitalsign::adapter::RequestStart;
use vitalsign::{Monitor, Sink};

/// A known route, as the request loops send it.
pub const START: RequestStart<'static> =
    RequestStart::new(b"GET", "/users/42").with_route(Some("/users/{id}"));

/// A monitor recording into the InfluxDB sink instead of Prometheus, sending to a UDP port
/// nobody listens on: the request path encodes the line and queues it; a background task
/// sends. Call it inside a Tokio runtime.
pub fn influx_monitor() -> Monitor {
    let influx = vitalsign::sinks::InfluxSink::udp("127.0.0.1:9")
        .queue_capacity(1 << 16)
        .build()
        .unwrap();
    without_prometheus(influx)
}

/// A monitor recording into the StatsD sink instead of Prometheus (to a UDP port nobody
/// listens on).
pub fn statsd_monitor() -> Monitor {
    let statsd = vitalsign::sinks::StatsdSink::udp("127.0.0.1:9")
        .build()
        .unwrap();
    without_prometheus(statsd)
}

fn without_prometheus(sink: Arc<dyn Sink>) -> Monitor {
    Monitor::builder("core")
        .without_prometheus()
        .sink(sink)
        .build()
        .unwrap()
}

/// A monitor holding `sets` label sets (one request on each of `sets` routes).
pub fn monitor_with_label_sets(sets: usize) -> Monitor {
    let monitor = Monitor::builder("render")
        .max_label_sets(sets + 10)
        .build()
        .unwrap();
    for i in 0..sets {
        let route = format!("/r/{i}");
        let mut flight = vitalsign::adapter::begin(
            &monitor,
            RequestStart::new(START.method, &route).with_route(Some(&route)),
        );
        flight.set_status(200);
        flight.complete();
    }
    monitor
}
