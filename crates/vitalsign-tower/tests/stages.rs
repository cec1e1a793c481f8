//! When a request is recorded, stage by stage: after `call`, after the future, after each body
//! frame, and on early drops (tower-http's style, with `service_fn`).

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use tower::{Layer, Service, ServiceExt};
use vitalsign_core::{MemorySink, Monitor, PointHandle, CLIENT_CLOSED_REQUEST};
use vitalsign_tower::{MonitorLayer, UriPath};

fn monitor() -> (Monitor, Arc<MemorySink>) {
    let sink = Arc::new(MemorySink::new(100));
    let monitor = Monitor::builder("stages")
        .sink(sink.clone())
        .build()
        .unwrap();
    (monitor, sink)
}

type Chunks =
    StreamBody<futures_util::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;

fn chunks(n: usize) -> Chunks {
    let frames: Vec<_> = (0..n)
        .map(|i| Ok(Frame::data(Bytes::from(format!("chunk {i}")))))
        .collect();
    StreamBody::new(futures_util::stream::iter(frames))
}

fn get(path: &str) -> Request<Empty<Bytes>> {
    Request::get(path).body(Empty::new()).unwrap()
}

#[tokio::test]
async fn recorded_at_end_of_stream_not_before() {
    let (monitor, sink) = monitor();
    let svc = tower::service_fn(|_req: Request<Empty<Bytes>>| async {
        Ok::<_, Infallible>(Response::new(chunks(3)))
    });
    let mut svc = MonitorLayer::new(&monitor)
        .route_resolver(UriPath)
        .layer(svc);
    let future = svc.ready().await.unwrap().call(get("/s"));
    assert_eq!(
        (sink.started(), sink.requests().len()),
        (1, 0),
        "after call"
    );
    let response = future.await.unwrap();
    assert!(
        sink.requests().is_empty(),
        "after the future: the body is still to come"
    );
    let mut body = response.into_body();
    for _ in 0..3 {
        body.frame().await.unwrap().unwrap();
        assert!(sink.requests().is_empty(), "after a data frame");
    }
    assert!(body.frame().await.is_none());
    let points = sink.requests();
    assert_eq!(points.len(), 1, "at end of stream");
    assert_eq!(
        (
            points[0].route.as_str(),
            points[0].status_code,
            points[0].disconnected
        ),
        ("/s", 200, false)
    );
    drop(body);
    assert_eq!(sink.requests().len(), 1, "exactly once");
}

#[tokio::test]
async fn a_body_with_exact_length_is_recorded_on_its_last_frame() {
    let (monitor, sink) = monitor();
    let svc = tower::service_fn(|_req: Request<Empty<Bytes>>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"hello"))))
    });
    let mut svc = MonitorLayer::new(&monitor).layer(svc);
    let mut body = svc
        .ready()
        .await
        .unwrap()
        .call(get("/f"))
        .await
        .unwrap()
        .into_body();
    assert!(sink.requests().is_empty());
    body.frame().await.unwrap().unwrap();
    // hyper stops polling once is_end_stream() is true: the last frame must complete it.
    assert_eq!(sink.requests().len(), 1);
}

#[tokio::test]
async fn an_empty_body_is_recorded_at_the_head() {
    let (monitor, sink) = monitor();
    let svc = tower::service_fn(|_req: Request<Empty<Bytes>>| async {
        Ok::<_, Infallible>(
            Response::builder()
                .status(StatusCode::NO_CONTENT)
                .body(Empty::<Bytes>::new())
                .unwrap(),
        )
    });
    let mut svc = MonitorLayer::new(&monitor).layer(svc);
    let response = svc.ready().await.unwrap().call(get("/e")).await.unwrap();
    assert_eq!(sink.requests()[0].status_code, 204);
    drop(response);
    assert_eq!(sink.requests().len(), 1);
    assert!(!sink.requests()[0].disconnected);
}

#[tokio::test]
async fn dropping_the_future_is_a_disconnect() {
    let (monitor, sink) = monitor();
    let svc = tower::service_fn(|_req: Request<Empty<Bytes>>| async {
        std::future::pending::<()>().await;
        Ok::<_, Infallible>(Response::new(Empty::<Bytes>::new()))
    });
    let mut svc = MonitorLayer::new(&monitor).layer(svc);
    let mut future = Box::pin(svc.ready().await.unwrap().call(get("/hang")));
    assert!(futures_util::poll!(future.as_mut()).is_pending());
    assert_eq!(monitor.in_flight(), 1);
    drop(future);
    let p = &sink.requests()[0];
    assert_eq!(
        (p.status_code, p.disconnected),
        (CLIENT_CLOSED_REQUEST, true)
    );
    assert_eq!(monitor.in_flight(), 0);
}

#[tokio::test]
async fn dropping_the_body_early_is_a_disconnect_with_the_status() {
    let (monitor, sink) = monitor();
    let svc = tower::service_fn(|_req: Request<Empty<Bytes>>| async {
        Ok::<_, Infallible>(Response::new(chunks(5)))
    });
    let mut svc = MonitorLayer::new(&monitor).layer(svc);
    let mut body = svc
        .ready()
        .await
        .unwrap()
        .call(get("/s"))
        .await
        .unwrap()
        .into_body();
    body.frame().await.unwrap().unwrap();
    drop(body);
    let p = &sink.requests()[0];
    assert_eq!((p.status_code, p.disconnected), (200, true));
    assert_eq!(sink.requests().len(), 1);
}

#[tokio::test]
async fn a_service_error_is_recorded_as_500() {
    let (monitor, sink) = monitor();
    let svc = tower::service_fn(|_req: Request<Empty<Bytes>>| async {
        Err::<Response<Empty<Bytes>>, _>(std::io::Error::other("backend gone"))
    });
    let mut svc = MonitorLayer::new(&monitor).layer(svc);
    assert!(svc.ready().await.unwrap().call(get("/x")).await.is_err());
    let p = &sink.requests()[0];
    assert_eq!((p.status_code, p.disconnected), (500, false));
    assert_eq!(sink.errors()[0].error_code, "500");
}

#[tokio::test]
async fn a_panic_in_the_body_stream_is_a_500() {
    let (monitor, sink) = monitor();
    let svc = tower::service_fn(|_req: Request<Empty<Bytes>>| async {
        let stream = futures_util::stream::poll_fn(
            |_| -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
                panic!("stream panicked")
            },
        );
        Ok::<_, Infallible>(Response::new(StreamBody::new(stream)))
    });
    let mut svc = MonitorLayer::new(&monitor).layer(svc);
    let body = svc
        .ready()
        .await
        .unwrap()
        .call(get("/p"))
        .await
        .unwrap()
        .into_body();
    let task = tokio::spawn(async move {
        let mut body = body;
        body.frame().await
    });
    assert!(task.await.unwrap_err().is_panic());
    let p = &sink.requests()[0];
    assert_eq!((p.status_code, p.disconnected), (500, false));
    assert_eq!(sink.errors()[0].error_code, "panic");
}

/// Regression (review item 9): a body that yielded an error was recorded as if it ended well.
#[tokio::test]
async fn a_body_error_is_an_error_point_with_the_status_sent_not_a_disconnect() {
    let (monitor, sink) = monitor();
    let svc = tower::service_fn(|_req: Request<Empty<Bytes>>| async {
        let frames = vec![
            Ok(Frame::data(Bytes::from_static(b"chunk 0\n"))),
            Err(std::io::Error::other("upstream cut")),
            Ok(Frame::data(Bytes::from_static(b"never sent"))),
        ];
        Ok::<_, Infallible>(Response::new(StreamBody::new(futures_util::stream::iter(
            frames,
        ))))
    });
    let mut svc = MonitorLayer::new(&monitor)
        .route_resolver(UriPath)
        .layer(svc);
    let mut body = svc
        .ready()
        .await
        .unwrap()
        .call(get("/s"))
        .await
        .unwrap()
        .into_body();
    body.frame().await.unwrap().unwrap();
    assert!(sink.requests().is_empty(), "after a data frame");
    assert!(body.frame().await.unwrap().is_err());
    let points = sink.requests();
    assert_eq!(points.len(), 1, "recorded at the error");
    let p = &points[0];
    assert_eq!(
        (
            p.route.as_str(),
            p.status_code,
            p.disconnected,
            p.response_body_bytes
        ),
        ("/s", 200, false, 8)
    );
    let errors = sink.errors();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].error_code, "body_error");
    drop(body);
    assert_eq!(sink.requests().len(), 1, "exactly once");
    assert_eq!(monitor.in_flight(), 0);
}

fn assert_send_sync<T: Send + Sync>() {}
fn assert_send<T: Send>() {}

#[test]
fn types_are_send_and_sync() {
    assert_send_sync::<MonitorLayer>();
    assert_send_sync::<vitalsign_tower::MonitorService<tower::util::BoxCloneSyncService<(), (), ()>>>(
    );
    assert_send::<vitalsign_tower::ResponseFuture<std::future::Ready<()>>>();
    assert_send_sync::<vitalsign_tower::ResponseBody<Full<Bytes>>>();
    assert_send_sync::<Monitor>();
}

/// Regression (review item 7): behind tower's `Buffer` the inner service is called on the
/// buffer's worker task, where no thread-local request is: a service reading its point in `call`
/// found none. With `point_in_extensions` the request's extensions carry its handle, and what
/// is added there, in `call` or in the future, lands on the request's point.
#[tokio::test]
async fn behind_a_buffer_the_inner_call_finds_its_point_in_the_extensions() {
    let sink = Arc::new(MemorySink::new(10));
    let monitor = Monitor::builder("stages")
        .point_in_extensions(true)
        .sink(sink.clone())
        .build()
        .unwrap();
    let inner = tower::service_fn(|req: Request<Empty<Bytes>>| {
        let point = PointHandle::of_request(|| req.extensions().get::<PointHandle>().cloned());
        assert!(
            point.is_recording(),
            "found in call, on the buffer's worker"
        );
        point.tag("in_call", "yes");
        async move {
            point.field("in_future", true);
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"done"))))
        }
    });
    let svc = MonitorLayer::new(&monitor)
        .route_resolver(UriPath)
        .layer(tower::buffer::Buffer::new(inner, 4));
    let response = svc.oneshot(get("/buffered")).await.unwrap();
    assert!(sink.requests().is_empty(), "after the future");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"done");
    let points = sink.requests();
    assert_eq!(points.len(), 1);
    assert_eq!(points[0].tag("in_call"), Some("yes"));
    assert_eq!(
        points[0].field("in_future"),
        Some(&vitalsign_core::FieldValue::Bool(true))
    );
}

/// A service whose `call` does its work at once (not in its future) finds its request's point
/// there: the layer enters the request's scope around `call` (skipped only for axum's `Route`,
/// whose `call` runs none of the application's code).
#[tokio::test]
async fn a_service_finds_its_point_in_call() {
    let (monitor, sink) = monitor();
    let inner = tower::service_fn(|_req: Request<Empty<Bytes>>| {
        let point = PointHandle::current().expect("inside the request's scope in call");
        point.tag("in_call", "yes");
        async { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"done")))) }
    });
    let svc = MonitorLayer::new(&monitor)
        .route_resolver(UriPath)
        .layer(inner);
    let response = svc.oneshot(get("/now")).await.unwrap();
    response.into_body().collect().await.unwrap();
    let points = sink.requests();
    assert_eq!(points.len(), 1);
    assert_eq!(points[0].tag("in_call"), Some("yes"));
}
