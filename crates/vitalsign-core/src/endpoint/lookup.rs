//! [`EndpointLookup`]: which endpoint a request path is for, with a rejection of other paths
//! that costs a handful of instructions, for adapters that answer the endpoints before the
//! application's router (the actix middleware) and for the admin listener.

use super::Endpoint;

/// The monitor's endpoint table ([`Monitor::endpoint_routes`](crate::Monitor::endpoint_routes))
/// made ready to match request paths as the routers do: a static path exactly, a path with a
/// `/{parameter}` at its end (`/health/{component}`) by its parent path and one more non-empty
/// segment; a static path wins over a parameter (`/health/live` is [`Endpoint::Live`], not a
/// component). Paths are compared as they arrive (no percent-decoding), as axum's router does.
///
/// A path whose second byte (the one after the leading `/`) is no endpoint path's second byte
/// is rejected with one bit test, before any comparison: most application paths.
///
/// ```
/// use vitalsign_core::endpoint::{Endpoint, EndpointLookup};
/// use vitalsign_core::Monitor;
///
/// let monitor = Monitor::builder("shop").build().unwrap();
/// let lookup = EndpointLookup::new(monitor.endpoint_routes());
/// assert_eq!(lookup.find("/users/7"), None);
/// assert_eq!(lookup.find("/health/a/b"), None);
/// let found = lookup.find("/health/db").unwrap();
/// assert_eq!(found.endpoint, Endpoint::Component);
/// assert_eq!(found.route, "/health/{component}");
/// assert_eq!(found.param, Some(("component", "db")));
/// assert_eq!(lookup.find("/health/live").unwrap().endpoint, Endpoint::Live);
/// ```
#[derive(Clone, Debug)]
pub struct EndpointLookup {
    /// Bit `b % 64` set for the second byte `b` of each endpoint path.
    second_bytes: u64,
    /// Bit `len % 64` set for the length of each static path.
    static_lengths: u64,
    /// The shortest path with a parameter that can match (`/health/x`); `usize::MAX` without one.
    shortest_param: usize,
    routes: Box<[LookupRoute]>,
}

#[derive(Clone, Debug)]
struct LookupRoute {
    /// The path as mounted (`/health/{component}`): the route a request to it is recorded with.
    route: Box<str>,
    endpoint: Endpoint,
    /// For a path with a trailing `/{parameter}`: the length of its parent path and the
    /// parameter's name.
    param: Option<(usize, Box<str>)>,
}

/// What [`EndpointLookup::find`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct EndpointMatch<'a> {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// Its path as mounted, the route a request to it is recorded with (`/health/{component}`).
    pub route: &'a str,
    /// For a path with a parameter: its name and the request's value (`("component", "db")`).
    pub param: Option<(&'a str, &'a str)>,
}

/// The byte after a path's leading `/` (0 for a shorter path).
#[inline]
fn second_byte(path: &str) -> u32 {
    u32::from(path.as_bytes().get(1).copied().unwrap_or(0))
}

impl EndpointLookup {
    /// The lookup of `routes` (the monitor's [`Monitor::endpoint_routes`](crate::Monitor::endpoint_routes)).
    pub fn new(routes: &[(Box<str>, Endpoint)]) -> Self {
        let mut lookup = EndpointLookup {
            second_bytes: 0,
            static_lengths: 0,
            shortest_param: usize::MAX,
            routes: Box::default(),
        };
        let mut table = Vec::with_capacity(routes.len());
        for (route, endpoint) in routes {
            lookup.second_bytes |= 1u64 << (second_byte(route) % 64);
            let param = route
                .strip_suffix('}')
                .and_then(|r| r.rsplit_once("/{"))
                .map(|(parent, name)| (parent.len(), Box::<str>::from(name)));
            match &param {
                Some((parent, _)) => {
                    lookup.shortest_param = lookup.shortest_param.min(parent + 2);
                }
                None => lookup.static_lengths |= 1u64 << (route.len() % 64),
            }
            table.push(LookupRoute {
                route: route.clone(),
                endpoint: *endpoint,
                param,
            });
        }
        lookup.routes = table.into_boxed_slice();
        lookup
    }

    /// The endpoint mounted at `path` (a request path without its query string), if any.
    #[inline]
    pub fn find<'a>(&'a self, path: &'a str) -> Option<EndpointMatch<'a>> {
        if self.second_bytes & (1u64 << (second_byte(path) % 64)) == 0 {
            return None;
        }
        self.find_among_routes(path)
    }

    fn find_among_routes<'a>(&'a self, path: &'a str) -> Option<EndpointMatch<'a>> {
        if self.static_lengths & (1u64 << (path.len() % 64)) != 0 {
            if let Some(found) = self
                .routes
                .iter()
                .find(|r| r.param.is_none() && *r.route == *path)
            {
                return Some(EndpointMatch {
                    endpoint: found.endpoint,
                    route: &found.route,
                    param: None,
                });
            }
        }
        if path.len() < self.shortest_param {
            return None;
        }
        self.routes.iter().find_map(|r| {
            let (parent, name) = r.param.as_ref()?;
            let value = path
                .strip_prefix(&r.route[..*parent])?
                .strip_prefix('/')
                .filter(|value| !value.is_empty() && !value.contains('/'))?;
            Some(EndpointMatch {
                endpoint: r.endpoint,
                route: &r.route,
                param: Some((&**name, value)),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::Endpoints;

    fn find(lookup: &EndpointLookup, path: &str) -> Option<Endpoint> {
        lookup.find(path).map(|m| m.endpoint)
    }

    #[test]
    fn paths_resolve_as_the_routers_do() {
        let routes = Endpoints::new().prefix("/_v").routes().unwrap();
        let lookup = EndpointLookup::new(&routes);
        assert_eq!(find(&lookup, "/_v/health"), Some(Endpoint::Health));
        assert_eq!(find(&lookup, "/_v/health/live"), Some(Endpoint::Live));
        assert_eq!(find(&lookup, "/_v/health/db"), Some(Endpoint::Component));
        assert_eq!(find(&lookup, "/_v/health/"), None);
        assert_eq!(find(&lookup, "/_v/health/a/b"), None);
        assert_eq!(find(&lookup, "/_v/healthy"), None);
        assert_eq!(find(&lookup, "/_v/health-check"), None);
        assert_eq!(find(&lookup, "/health"), None);
        assert_eq!(find(&lookup, "/_v/metrics"), Some(Endpoint::Metrics));
        assert_eq!(find(&lookup, "/_v/metrics/"), None);
        assert_eq!(
            find(&lookup, "/_v/annotations"),
            Some(Endpoint::Annotations)
        );
        assert_eq!(
            find(&lookup, "/_v/annotations/deploys"),
            Some(Endpoint::AnnotationStream)
        );
        assert_eq!(find(&lookup, "/_v/annotations/a/b"), None);
        assert_eq!(find(&lookup, "/_v"), None);
        assert_eq!(find(&lookup, "/"), None);
        assert_eq!(find(&lookup, ""), None);
    }

    #[test]
    fn default_table_matches_with_routes_and_parameters() {
        let routes = Endpoints::new().routes().unwrap();
        let lookup = EndpointLookup::new(&routes);
        for (path, endpoint) in &routes {
            if !path.contains('{') {
                let found = lookup.find(path).unwrap();
                assert_eq!((found.endpoint, found.route), (*endpoint, &**path));
                assert_eq!(found.param, None);
            }
        }
        let found = lookup.find("/annotations/deploys").unwrap();
        assert_eq!(found.route, "/annotations/{stream}");
        assert_eq!(found.param, Some(("stream", "deploys")));
        for other in ["/users/7", "/api/v1/orders", "/statusx", "/st", "/a", "/h"] {
            assert_eq!(lookup.find(other), None, "{other}");
        }
    }

    #[test]
    fn custom_paths_keep_static_before_parameter() {
        let routes = Endpoints::new()
            .path(Endpoint::Health, "/h")
            .path(Endpoint::Live, "/h/live")
            .without(Endpoint::Ready)
            .routes()
            .unwrap();
        let lookup = EndpointLookup::new(&routes);
        assert_eq!(find(&lookup, "/h/live"), Some(Endpoint::Live));
        assert_eq!(find(&lookup, "/h/ready"), Some(Endpoint::Component));
        assert_eq!(find(&lookup, "/health/ready"), None);
    }
}
