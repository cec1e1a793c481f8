//! [`MonitorLayer`] and the route resolvers it can use.

use http::{Extensions, HeaderMap, Method, Uri};
use tower_layer::Layer;
use vitalsign_core::Monitor;

use crate::MonitorService;

/// What a [`ResolveRoute`] sees of a request.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct RequestHead<'r> {
    /// Request method.
    pub method: &'r Method,
    /// Request URI.
    pub uri: &'r Uri,
    /// Request headers.
    pub headers: &'r HeaderMap,
    /// Request extensions (where routers put the matched route).
    pub extensions: &'r Extensions,
}

/// Finds the route template of a request; `None` means no route matched (`unmatched`).
///
/// The returned text becomes the `http_route` label: it must come from a finite set (route
/// templates, gRPC method paths), never a raw path with ids in it. The monitor's label-set cap
/// bounds the damage of a resolver that gets this wrong.
pub trait ResolveRoute: Clone + Send + Sync + 'static {
    /// The route template of this request.
    fn resolve<'r>(&self, head: &RequestHead<'r>) -> Option<&'r str>;

    /// Calls `found` with each path parameter of this request, as `(name, value)`; the monitor
    /// keeps those that
    /// [`MonitorBuilder::path_label`](vitalsign_core::MonitorBuilder::path_label) asked for.
    /// Called only when the monitor keeps some. Defaults to none.
    fn path_params(&self, head: &RequestHead<'_>, found: &mut dyn FnMut(&str, &str)) {
        let _ = (head, found);
    }
}

/// A resolver made from a function; see [`MonitorLayer::route_fn`].
#[derive(Clone, Copy)]
pub struct RouteFn<F>(F);

impl<F> std::fmt::Debug for RouteFn<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("RouteFn")
            .field(&std::any::type_name::<F>())
            .finish()
    }
}

impl<F> ResolveRoute for RouteFn<F>
where
    F: for<'r> Fn(&RequestHead<'r>) -> Option<&'r str> + Clone + Send + Sync + 'static,
{
    fn resolve<'r>(&self, head: &RequestHead<'r>) -> Option<&'r str> {
        (self.0)(head)
    }
}

/// Uses the request path itself as the route. Only for services whose paths form a small,
/// fixed set, such as tonic/gRPC (`/package.Service/Method`).
///
/// Clients choose raw paths, so they are bounded like every route: once the monitor knows
/// `max_label_sets` distinct routes ([`MonitorBuilder::max_label_sets`]), requests on new paths
/// are recorded under the one route [`OVERFLOW_ROUTE`] (`__overflow__`, a warning is logged
/// once), while routes seen before keep their names. Set the cap a little above the number of
/// methods the service really has.
///
/// [`MonitorBuilder::max_label_sets`]: vitalsign_core::MonitorBuilder::max_label_sets
/// [`OVERFLOW_ROUTE`]: vitalsign_core::OVERFLOW_ROUTE
#[derive(Clone, Copy, Debug, Default)]
pub struct UriPath;

impl ResolveRoute for UriPath {
    fn resolve<'r>(&self, head: &RequestHead<'r>) -> Option<&'r str> {
        Some(head.uri.path())
    }
}

/// Matches no route: every request is recorded as `unmatched`. Pick a real resolver with
/// [`MonitorLayer::route_resolver`].
#[derive(Clone, Copy, Debug, Default)]
pub struct NoRoute;

impl ResolveRoute for NoRoute {
    fn resolve<'r>(&self, _head: &RequestHead<'r>) -> Option<&'r str> {
        None
    }
}

/// The resolver of [`MonitorLayer::new`]: axum's `MatchedPath` when the `axum` feature is on
/// anywhere in the build (as [`axum::MatchedPathRoute`](crate::axum::MatchedPathRoute)),
/// otherwise none (`unmatched`, as [`NoRoute`]).
///
/// It is one type whatever the features, so that turning on `axum` somewhere in a dependency
/// graph changes no one's types: features only add. A request without a `MatchedPath`
/// (any non-axum stack) is `unmatched` either way.
#[derive(Clone, Copy, Debug, Default)]
pub struct DefaultResolver;

impl ResolveRoute for DefaultResolver {
    #[inline]
    fn resolve<'r>(&self, head: &RequestHead<'r>) -> Option<&'r str> {
        #[cfg(feature = "axum")]
        return crate::axum::MatchedPathRoute.resolve(head);
        #[cfg(not(feature = "axum"))]
        return NoRoute.resolve(head);
    }

    fn path_params(&self, head: &RequestHead<'_>, found: &mut dyn FnMut(&str, &str)) {
        #[cfg(feature = "axum")]
        crate::axum::MatchedPathRoute.path_params(head, found);
        #[cfg(not(feature = "axum"))]
        NoRoute.path_params(head, found);
    }
}

/// A Tower layer that records every request through a [`Monitor`].
///
/// With axum, add it with `Router::layer` (not around the finished router from outside), so
/// that it runs after routing and sees the matched route template. Add it **last**, after
/// `merge`, `nest` and `fallback`: axum's `Router::merge` keeps the merged router's default
/// fallback, which would not carry the layer, and unmatched requests (404) would go unrecorded.
///
/// ```
/// # #[cfg(feature = "axum")] {
/// use axum::{routing::get, Router};
/// use vitalsign_core::Monitor;
/// use vitalsign_tower::MonitorLayer;
///
/// let monitor = Monitor::builder("shop").build().unwrap();
/// let app: Router = Router::new()
///     .route("/users/{id}", get(|| async { "user" }))
///     .layer(MonitorLayer::new(&monitor));
/// # }
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct MonitorLayer<R = DefaultResolver> {
    monitor: Monitor,
    resolver: R,
}

impl MonitorLayer {
    /// A layer recording into `monitor`, with the [`DefaultResolver`].
    pub fn new(monitor: &Monitor) -> Self {
        MonitorLayer {
            monitor: monitor.clone(),
            resolver: DefaultResolver,
        }
    }
}

impl<R> MonitorLayer<R> {
    /// Uses another route resolver (e.g. [`UriPath`] for tonic). Defaults to
    /// [`DefaultResolver`].
    pub fn route_resolver<R2: ResolveRoute>(self, resolver: R2) -> MonitorLayer<R2> {
        MonitorLayer {
            monitor: self.monitor,
            resolver,
        }
    }

    /// Uses a function as the route resolver.
    ///
    /// ```
    /// use vitalsign_core::Monitor;
    /// use vitalsign_tower::MonitorLayer;
    ///
    /// let monitor = Monitor::builder("grpc").build().unwrap();
    /// // Everything under /static/ is one route; other paths come from a fixed list.
    /// let layer = MonitorLayer::new(&monitor).route_fn(|head| {
    ///     let path = head.uri.path();
    ///     if path.starts_with("/static/") {
    ///         Some("/static/{*file}")
    ///     } else {
    ///         ["/", "/login"].into_iter().find(|known| *known == path)
    ///     }
    /// });
    /// # let _ = layer;
    /// ```
    pub fn route_fn<F>(self, f: F) -> MonitorLayer<RouteFn<F>>
    where
        F: for<'r> Fn(&RequestHead<'r>) -> Option<&'r str> + Clone + Send + Sync + 'static,
    {
        self.route_resolver(RouteFn(f))
    }

    /// The monitor this layer records into.
    pub fn monitor(&self) -> &Monitor {
        &self.monitor
    }
}

impl<S, R: Clone> Layer<S> for MonitorLayer<R> {
    type Service = MonitorService<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        MonitorService::new(inner, self.monitor.clone(), self.resolver.clone())
    }
}
