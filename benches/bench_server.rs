//! A one-worker server for the loopback load script (`scripts/bench-load.sh`): the same route
//! served bare, with vitalsign, or with the peer crate, on axum or actix-web.
//!
//! ```text
//! cargo bench -p vitalsign-benches --bench bench_server -- axum vitalsign 127.0.0.1:3100
//! ```

use std::net::SocketAddr;

const USAGE: &str = "usage: bench_server axum|actix bare|vitalsign|peer HOST:PORT";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (framework, variant, addr) = match args.as_slice() {
        [f, v, a]
            if matches!(f.as_str(), "axum" | "actix")
                && matches!(v.as_str(), "bare" | "vitalsign" | "peer") =>
        {
            match a.parse::<SocketAddr>() {
                Ok(addr) => (f.clone(), v.clone(), addr),
                Err(e) => fail(&format!("bad address {a:?}: {e}")),
            }
        }
        _ => fail(USAGE),
    };
    match framework.as_str() {
        "axum" => axum_server(&variant, addr),
        _ => actix_server(&variant, addr),
    }
}

fn fail(message: &str) -> ! {
    eprintln!("bench_server: {message}");
    std::process::exit(2)
}

fn axum_server(variant: &str, addr: SocketAddr) {
    use axum::routing::get;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let app = axum::Router::new().route("/users/{id}", get(|| async { "user" }));
        let app = match variant {
            "vitalsign" => {
                let monitor = vitalsign::Monitor::builder("bench").build().unwrap();
                app.layer(vitalsign::MonitorLayer::new(&monitor))
            }
            "peer" => app.layer(axum_prometheus::PrometheusMetricLayer::new()),
            _ => app,
        };
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        println!("ready");
        axum::serve(listener, app).await.unwrap();
    });
}

fn actix_server(variant: &str, addr: SocketAddr) {
    use actix_web::{web, App, HttpServer};
    macro_rules! serve {
        ($app:expr) => {{
            let server = HttpServer::new($app).workers(1).bind(addr).unwrap();
            println!("ready");
            server.run().await.unwrap();
        }};
    }
    let variant = variant.to_owned();
    actix_web::rt::System::new().block_on(async move {
        let user = || web::get().to(|| async { "user" });
        match variant.as_str() {
            "vitalsign" => {
                let monitor = vitalsign::Monitor::builder("bench").build().unwrap();
                serve!(move || App::new()
                    .wrap(vitalsign::actix::Monitoring::new(&monitor))
                    .route("/users/{id}", user()))
            }
            "peer" => {
                let prom = actix_web_prom::PrometheusMetricsBuilder::new("bench")
                    .build()
                    .unwrap();
                serve!(move || App::new().wrap(prom.clone()).route("/users/{id}", user()))
            }
            _ => serve!(move || App::new().route("/users/{id}", user())),
        }
    });
}
