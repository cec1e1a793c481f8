//! The admin listener: vitalsign's endpoints on a listener of their own, apart from the
//! application's, whatever its framework (axum, actix-web, or another), with hyper's HTTP/1
//! server on the current Tokio runtime (an actix runtime is one). Feature `admin`.
//!
//! It serves the monitor's endpoint table
//! ([`MonitorBuilder::endpoints`](crate::MonitorBuilder::endpoints)) with the same answers
//! and the same token rules as the routers the adapters mount: GET and HEAD (and POST for
//! `/annotations/{stream}`), 405 for other methods, 404 for other paths.
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! use vitalsign_core::admin::ServeAdmin;
//! use vitalsign_core::Monitor;
//!
//! let monitor = Monitor::builder("shop").build().unwrap();
//! let admin = monitor.serve_admin("127.0.0.1:9464").await?;
//! println!("metrics on http://{}/metrics", admin.local_addr());
//! # Ok(()) }
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::{HeaderValue, ACCEPT, ALLOW, AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::endpoint::{EndpointBody, EndpointLookup, EndpointRequest};
use crate::Monitor;

/// A running admin listener; stops when dropped (or with [`AdminServer::stop`]).
#[derive(Debug)]
#[must_use = "the admin listener stops when this is dropped"]
pub struct AdminServer {
    addr: SocketAddr,
    stop: Option<watch::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl AdminServer {
    /// The address it listens on (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets open requests finish, and waits for the server to end.
    pub async fn stop(mut self) -> std::io::Result<()> {
        // Dropping the sender is the signal.
        drop(self.stop.take());
        match self.task.take() {
            Some(task) => task.await.map_err(std::io::Error::other)?,
            None => Ok(()),
        }
    }
}

/// Serves vitalsign's endpoints on a listener of their own, apart from the application's
/// (for any framework: the actix middleware and the Tower layer feed the same monitor).
pub trait ServeAdmin {
    /// Binds `addr` and serves the monitor's endpoints (by default `/metrics`, `/stats` and
    /// `/health*`) on the current Tokio runtime (an actix runtime is one). Fails at once, with
    /// the reason, if `addr` cannot be bound.
    ///
    /// ```no_run
    /// # async fn run() -> std::io::Result<()> {
    /// use vitalsign_core::admin::ServeAdmin;
    /// use vitalsign_core::Monitor;
    ///
    /// let monitor = Monitor::builder("shop").build().unwrap();
    /// let admin = monitor.serve_admin("127.0.0.1:9464").await?;
    /// println!("metrics on http://{}/metrics", admin.local_addr());
    /// # Ok(()) }
    /// ```
    fn serve_admin(
        &self,
        addr: impl tokio::net::ToSocketAddrs + Send,
    ) -> impl std::future::Future<Output = std::io::Result<AdminServer>> + Send;
}

impl ServeAdmin for Monitor {
    async fn serve_admin(
        &self,
        addr: impl tokio::net::ToSocketAddrs + Send,
    ) -> std::io::Result<AdminServer> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = watch::channel(());
        let lookup = Arc::new(EndpointLookup::new(self.endpoint_routes()));
        let task = tokio::spawn(run(listener, self.clone(), lookup, stopped));
        Ok(AdminServer {
            addr,
            stop: Some(stop),
            task: Some(task),
        })
    }
}

/// Accepts until the stop signal, then lets each connection finish its request.
async fn run(
    listener: TcpListener,
    monitor: Monitor,
    lookup: Arc<EndpointLookup>,
    mut stopped: watch::Receiver<()>,
) -> std::io::Result<()> {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = stopped.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(connection(
                        stream,
                        monitor.clone(),
                        Arc::clone(&lookup),
                        stopped.clone(),
                    ));
                }
                // The peer left before it was accepted: nothing to do.
                Err(e) if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionAborted | std::io::ErrorKind::ConnectionReset
                ) => {}
                // Out of file descriptors, say: wait a little rather than spin.
                Err(e) => {
                    tracing::warn!("vitalsign admin listener: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
    Ok(())
}

async fn connection(
    stream: tokio::net::TcpStream,
    monitor: Monitor,
    lookup: Arc<EndpointLookup>,
    mut stopped: watch::Receiver<()>,
) {
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let monitor = monitor.clone();
        let lookup = Arc::clone(&lookup);
        async move { Ok::<_, Infallible>(answer(&monitor, &lookup, request).await) }
    });
    let conn =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = stopped.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// An answer's body: its bytes in one frame.
#[derive(Debug, Default)]
struct AdminBody(Option<hyper::body::Bytes>);

impl hyper::body::Body for AdminBody {
    type Data = hyper::body::Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        std::task::Poll::Ready(
            self.0
                .take()
                .map(|bytes| Ok(hyper::body::Frame::data(bytes))),
        )
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_none()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.0.as_ref().map_or(0, |b| b.len() as u64))
    }
}

async fn answer<B>(
    monitor: &Monitor,
    lookup: &EndpointLookup,
    request: Request<B>,
) -> Response<AdminBody>
where
    B: hyper::body::Body<Data = hyper::body::Bytes>,
{
    let (head, body) = request.into_parts();
    let path = head.uri.path();
    let Some(endpoint) = lookup.find(path).map(|found| found.endpoint) else {
        return status_only(StatusCode::NOT_FOUND);
    };
    let post = head.method == Method::POST && endpoint.takes_body();
    if head.method != Method::GET && head.method != Method::HEAD && !post {
        let mut response = status_only(StatusCode::METHOD_NOT_ALLOWED);
        let allow = if endpoint.takes_body() {
            "GET,HEAD,POST"
        } else {
            "GET,HEAD"
        };
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static(allow));
        return response;
    }
    let headers = &head.headers;
    let request = EndpointRequest {
        authorization: headers.get(AUTHORIZATION).map(|v| v.as_bytes()),
        accept: headers.get(ACCEPT).map(|v| v.as_bytes()),
    };
    let page = if post {
        let mut collected = EndpointBody::new();
        let mut body = std::pin::pin!(body);
        while let Some(Ok(frame)) = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
            if let Some(data) = frame.data_ref() {
                if !collected.push(data) {
                    break;
                }
            }
        }
        monitor.serve_endpoint_post(endpoint, path, &request, &collected)
    } else {
        let path = head.uri.path_and_query().map_or(path, |p| p.as_str());
        monitor.serve_endpoint(endpoint, path, &request)
    };
    let mut response = Response::new(AdminBody(Some(page.body.into())));
    *response.status_mut() =
        StatusCode::from_u16(page.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(page.content_type));
    for (name, value) in page.headers {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

fn status_only(status: StatusCode) -> Response<AdminBody> {
    let mut response = Response::new(AdminBody(Some(hyper::body::Bytes::new())));
    *response.status_mut() = status;
    response
}
