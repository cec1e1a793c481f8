//! A sink of your own: logs every slow request as one JSON line on stderr, and keeps a count of
//! requests per route, printed on exit.
//!
//! ```text
//! cargo run --example custom_sink
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use vitalsign::adapter::RequestStart;
use vitalsign::{ErrorPoint, Monitor, RequestPoint, Sink};

/// Requests slower than `threshold` seconds go to stderr; every request is counted by route.
#[derive(Debug)]
struct SlowRequestLog {
    threshold: f64,
    per_route: Mutex<BTreeMap<String, u64>>,
}

impl Sink for SlowRequestLog {
    fn record_request(&self, point: &RequestPoint<'_>) {
        // Called on the request path: keep it short, never block.
        *self
            .per_route
            .lock()
            .unwrap()
            .entry(point.route.to_owned())
            .or_default() += 1;
        if point.execution_time >= self.threshold {
            eprintln!(
                "{}",
                serde_json::json!({
                    "slow_request": point.route,
                    "method": point.method.as_str(),
                    "status": point.status_code,
                    "seconds": point.execution_time,
                    "request_id": point.request_id.as_str(),
                })
            );
        }
    }

    fn record_error(&self, point: &ErrorPoint<'_>) {
        eprintln!("error {} on {}", point.error_code, point.request.route);
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let log = Arc::new(SlowRequestLog {
        threshold: 0.01,
        per_route: Mutex::new(BTreeMap::new()),
    });
    let monitor = Monitor::builder("custom-sink-example")
        .sink(log.clone())
        .build()?;
    // What an adapter does for each request (axum and actix do this for you).
    for (route, status, sleep_ms) in [("/fast", 200, 0), ("/slow", 200, 20), ("/boom", 503, 0)] {
        let mut flight = vitalsign::adapter::begin(
            &monitor,
            RequestStart::new(b"GET", route).with_route(Some(route)),
        );
        std::thread::sleep(std::time::Duration::from_millis(sleep_ms));
        flight.set_status(status);
        flight.complete();
    }
    println!("requests per route: {:?}", log.per_route.lock().unwrap());
    Ok(())
}
