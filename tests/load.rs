//! Exactness under load: 64 concurrent keep-alive clients over mixed routes and statuses, on
//! the axum and the actix demo; histogram counts, error counters and `/stats` totals equal what
//! was sent, exactly. `VITALSIGN_LOAD_PER_CLIENT` sets the requests per client (default 500;
//! the 50 000 takes minutes on two cores and is run by hand).

#[path = "../examples/demo/actix_app.rs"]
#[allow(dead_code)]
mod actix_app;
#[path = "../examples/demo/app.rs"]
#[allow(dead_code)]
mod app;
mod common;
#[path = "common/demo.rs"]
mod demo;

use std::collections::BTreeMap;

use common::*;
use demo::Framework;

const CLIENTS: usize = 64;

/// (path, expected status, route label)
const MIX: [(&str, u16, &str); 4] = [
    ("/users/1", 200, "/users/{id}"),
    ("/error", 500, "/error"),
    ("/no/such", 404, "unmatched"),
    (
        "/api/v1/orders/3/items/4",
        200,
        "/api/v1/orders/{order}/items/{item}",
    ),
];

fn per_client() -> usize {
    std::env::var("VITALSIGN_LOAD_PER_CLIENT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500)
}

async fn load(framework: Framework) {
    let ctx = demo::start(framework, app::monitor_builder().unwrap()).await;
    let n = per_client();
    let started = std::time::Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let base = ctx.server.base.clone();
            tokio::spawn(async move {
                // One keep-alive connection per client.
                let client = reqwest::Client::builder()
                    .no_proxy()
                    .pool_max_idle_per_host(1)
                    .build()
                    .unwrap();
                let mut sent = BTreeMap::<(&str, u16), u64>::new();
                for i in 0..n {
                    let (path, status, route) = MIX[(c + i) % MIX.len()];
                    let response = client.get(format!("{base}{path}")).send().await.unwrap();
                    assert_eq!(response.status().as_u16(), status);
                    response.bytes().await.unwrap();
                    *sent.entry((route, status)).or_default() += 1;
                }
                sent
            })
        })
        .collect();
    let mut sent = BTreeMap::<(&str, u16), u64>::new();
    for task in tasks {
        for (key, count) in task.await.unwrap() {
            *sent.entry(key).or_default() += count;
        }
    }
    let elapsed = started.elapsed();
    let total: u64 = sent.values().sum();
    assert_eq!(total as usize, CLIENTS * n);
    all_recorded(&ctx.monitor, "all recorded").await;
    let m = ctx.server.metrics().await;
    for ((route, status), count) in &sent {
        let got = m.sum(
            COUNT,
            &[
                ("http_route", route),
                ("http_response_status_code", &status.to_string()),
            ],
        );
        assert_eq!(got, *count as f64, "{framework:?} {route} {status}");
    }
    assert_eq!(m.sum(COUNT, &[]), total as f64);
    let errors = sent.get(&("/error", 500)).copied().unwrap_or(0);
    assert_eq!(m.sum(ERRORS, &[("error_code", "1001")]), errors as f64);
    assert_eq!(m.sum(ERRORS, &[]), errors as f64);
    assert_eq!(active(&m), 0.0);
    let stats: serde_json::Value = serde_json::from_str(&ctx.server.get("/stats").await.1).unwrap();
    assert_eq!(stats["requests"]["total"], total);
    assert_eq!(stats["requests"]["disconnects"], 0);
    assert_eq!(stats["requests"]["status_codes"]["500"], errors);
    assert_eq!(stats["concurrent_connections"], 0);
    println!(
        "{framework:?}: {total} requests from {CLIENTS} clients in {elapsed:?} ({:.0}/s), counts exact",
        total as f64 / elapsed.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_are_exact_under_concurrent_load_on_axum() {
    load(Framework::Axum).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_are_exact_under_concurrent_load_on_actix() {
    load(Framework::Actix).await;
}
