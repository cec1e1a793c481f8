//! Features are additive: the same user code compiles, with the same types, with and without the
//! `axum` feature. `.ci/run` checks this file both ways (`--no-default-features` and
//! `--features axum`).
//!
//! Regression (issue "Ready to adopt (2 of 2)", features are additive): `DefaultResolver` was a
//! type alias, `NoRoute` without `axum` and `MatchedPathRoute` with it, so turning on `axum`
//! anywhere in a dependency graph changed the type of `MonitorLayer::new(&m)` for everyone. The
//! impls below conflict (E0119) whenever the default resolver is an alias of another resolver.

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Empty;
use tower::{Layer, ServiceExt};
use vitalsign_core::{MemorySink, Monitor, UNMATCHED_ROUTE};
use vitalsign_tower::{DefaultResolver, MonitorLayer, NoRoute, UriPath};

/// User code naming the layer's types, as an application or a library on top would.
trait Named {
    const NAME: &'static str;
}

impl Named for MonitorLayer {
    const NAME: &'static str = "default";
}

impl Named for MonitorLayer<NoRoute> {
    const NAME: &'static str = "no route";
}

impl Named for MonitorLayer<UriPath> {
    const NAME: &'static str = "uri path";
}

#[cfg(feature = "axum")]
impl Named for MonitorLayer<vitalsign_tower::axum::MatchedPathRoute> {
    const NAME: &'static str = "matched path";
}

/// The constructor's type is spelled out: it is `MonitorLayer<DefaultResolver>` in every build.
fn user_layer(monitor: &Monitor) -> MonitorLayer<DefaultResolver> {
    MonitorLayer::new(monitor)
}

fn name_of<T: Named>(_: &T) -> &'static str {
    T::NAME
}

#[tokio::test]
async fn the_default_layer_has_one_type_and_records_without_a_router_as_unmatched() {
    let sink = std::sync::Arc::new(MemorySink::new(10));
    let monitor = Monitor::builder("additive")
        .sink(sink.clone())
        .build()
        .unwrap();
    let layer = user_layer(&monitor);
    assert_eq!(name_of(&layer), "default");
    assert_eq!(
        name_of(&MonitorLayer::new(&monitor).route_resolver(NoRoute)),
        "no route"
    );
    let svc = layer.layer(tower::service_fn(|_req: Request<Empty<Bytes>>| async {
        Ok::<_, Infallible>(Response::new(Empty::<Bytes>::new()))
    }));
    let response = svc
        .oneshot(Request::get("/users/7").body(Empty::new()).unwrap())
        .await
        .unwrap();
    drop(response);
    // No router put a `MatchedPath` in the request: `unmatched`, with or without `axum`.
    let points = sink.requests();
    assert_eq!(points.len(), 1);
    assert_eq!(points[0].route, UNMATCHED_ROUTE);
}
