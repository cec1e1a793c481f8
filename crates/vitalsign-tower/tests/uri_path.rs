//! `UriPath` uses raw request paths as routes, so clients choose them: the monitor's route cap
//! bounds them, and past it requests go to the overflow route (review item 12).

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty};
use tower::{Layer, Service, ServiceExt};
use vitalsign_core::{MemorySink, Monitor, OVERFLOW_ROUTE};
use vitalsign_tower::{MonitorLayer, UriPath};

#[tokio::test]
async fn uri_paths_past_the_route_cap_go_to_the_overflow_route() {
    let sink = Arc::new(MemorySink::new(10_000));
    let monitor = Monitor::builder("grpc")
        .max_label_sets(4)
        .sink(sink.clone())
        .build()
        .unwrap();
    let svc = tower::service_fn(|_req: Request<Empty<Bytes>>| async {
        Ok::<_, Infallible>(Response::new(Empty::<Bytes>::new()))
    });
    let mut svc = MonitorLayer::new(&monitor)
        .route_resolver(UriPath)
        .layer(svc);
    let known: Vec<String> = (0..4).map(|i| format!("/pkg.Svc/M{i}")).collect();
    for path in &known {
        call(&mut svc, path).await;
    }
    // A client inventing paths: 1 000 of them.
    for i in 0..1000 {
        call(&mut svc, &format!("/random/{i}")).await;
    }
    // Known routes keep their names after the cap is reached.
    call(&mut svc, &known[0]).await;
    let routes: Vec<String> = sink.requests().into_iter().map(|p| p.route).collect();
    assert_eq!(routes.len(), 1005);
    assert_eq!(&routes[..4], &known[..]);
    assert!(
        routes[4..1004].iter().all(|r| r == OVERFLOW_ROUTE),
        "{routes:?}"
    );
    assert_eq!(routes[1004], known[0]);
    let metrics = monitor.render_metrics().unwrap();
    let series = metrics
        .lines()
        .filter(|l| l.starts_with("http_server_request_duration_seconds_count"))
        .count();
    assert!(
        series <= 5,
        "at most the cap plus one overflow series:\n{metrics}"
    );
    assert!(!metrics.contains("/random/"), "{metrics}");
}

async fn call<S>(svc: &mut S, path: &str)
where
    S: Service<
        Request<Empty<Bytes>>,
        Response = Response<vitalsign_tower::ResponseBody<Empty<Bytes>>>,
    >,
    S::Error: std::fmt::Debug,
{
    let request = Request::post(path).body(Empty::new()).unwrap();
    let response = svc.ready().await.unwrap().call(request).await.unwrap();
    response.into_body().collect().await.unwrap();
}
