#!/usr/bin/env bash
# What adding vitalsign costs an application's clean release build, against the peer crates:
# one-route apps (axum, actix-web), each built in a fresh target directory with its dependencies
# already downloaded. Prints one line per app: crates compiled and wall-clock seconds.
#
#   bash scripts/build-cost.sh            # every app
#   bash scripts/build-cost.sh axum-peer  # some of them
#
# The figures depend on the machine and on what else runs: compare apps of the same run.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
work=${BUILD_COST_DIR:-$(mktemp -d /tmp/vitalsign-build-cost.XXXXXX)}
mkdir -p "$work"

axum_main='use axum::{routing::get, Router};
#[tokio::main]
async fn main() {
    let monitor = vitalsign::Monitor::builder("app").build().unwrap();
    let app = Router::new()
        .route("/users/{id}", get(|| async { "user" }))
        .merge(vitalsign::axum::endpoints(&monitor))
        .layer(vitalsign::MonitorLayer::new(&monitor));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    axum::serve(listener, app).await.unwrap();
}'
axum_peer_main='use axum::{routing::get, Router};
#[tokio::main]
async fn main() {
    let (layer, handle) = axum_prometheus::PrometheusMetricLayer::pair();
    let app = Router::new()
        .route("/users/{id}", get(|| async { "user" }))
        .route("/metrics", get(|| async move { handle.render() }))
        .layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    axum::serve(listener, app).await.unwrap();
}'
actix_main='use actix_web::{web, App, HttpServer};
#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let monitor = vitalsign::Monitor::builder("app").build().unwrap();
    HttpServer::new(move || {
        App::new()
            .wrap(vitalsign::actix::Monitoring::new(&monitor))
            .configure(vitalsign::actix::configure(&monitor))
            .route("/users/{id}", web::get().to(|| async { "user" }))
    })
    .bind("127.0.0.1:0")?
    .run()
    .await
}'
actix_peer_main='use actix_web::{web, App, HttpServer};
#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let prom = actix_web_prom::PrometheusMetricsBuilder::new("app")
        .endpoint("/metrics")
        .build()
        .unwrap();
    HttpServer::new(move || {
        App::new()
            .wrap(prom.clone())
            .route("/users/{id}", web::get().to(|| async { "user" }))
    })
    .bind("127.0.0.1:0")?
    .run()
    .await
}'

tokio='tokio = { version = "1", features = ["rt-multi-thread", "macros", "net"] }'
declare -A deps mains
deps[axum-vitalsign]="axum = \"0.8\"
$tokio
vitalsign = { path = \"$root\" }"
mains[axum-vitalsign]=$axum_main
deps[axum-vitalsign-stats]="axum = \"0.8\"
$tokio
vitalsign = { path = \"$root\", features = [\"stats\"] }"
mains[axum-vitalsign-stats]=$axum_main
deps[axum-peer]="axum = \"0.8\"
$tokio
axum-prometheus = \"0.10\""
mains[axum-peer]=$axum_peer_main
deps[actix-vitalsign]="actix-web = \"4\"
vitalsign = { path = \"$root\", default-features = false, features = [\"actix\", \"prometheus\"] }"
mains[actix-vitalsign]=$actix_main
deps[actix-vitalsign-stats]="actix-web = \"4\"
vitalsign = { path = \"$root\", default-features = false, features = [\"actix\", \"prometheus\", \"stats\"] }"
mains[actix-vitalsign-stats]=$actix_main
deps[actix-peer]="actix-web = \"4\"
actix-web-prom = \"0.10\""
mains[actix-peer]=$actix_peer_main

apps=("$@")
if [ ${#apps[@]} -eq 0 ]; then
    apps=(axum-peer axum-vitalsign axum-vitalsign-stats actix-peer actix-vitalsign actix-vitalsign-stats)
fi

for app in "${apps[@]}"; do
    [ -n "${deps[$app]:-}" ] || { echo "unknown app: $app" >&2; exit 2; }
    dir="$work/$app"
    mkdir -p "$dir/src"
    printf '[package]\nname = "app"\nversion = "0.1.0"\nedition = "2021"\n\n[dependencies]\n%s\n\n[workspace]\n' \
        "${deps[$app]}" >"$dir/Cargo.toml"
    printf '%s\n' "${mains[$app]}" >"$dir/src/main.rs"
    (cd "$dir" && cargo fetch --quiet)
    rm -rf "$dir/target"
    start=$(date +%s.%N)
    (cd "$dir" && cargo build --release 2>"$dir/build.log")
    end=$(date +%s.%N)
    crates=$(grep -c '^ *Compiling ' "$dir/build.log")
    printf '%-22s crates=%3d seconds=%5.1f\n' "$app" "$crates" "$(awk "BEGIN { print $end - $start }")"
    rm -rf "$dir/target"
done
