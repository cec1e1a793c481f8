//! [`RpcMethods`]: the known gRPC methods, which bound the `rpc_service` and `rpc_method`
//! labels.

/// The gRPC methods recorded under their own names: whole services (every method of a
/// service named by its `NamedService::NAME`, `demo.v1.Greeter`) and single method paths
/// (`/demo.v1.Greeter/SayHello`). A call to any other path is recorded under
/// [`UNMATCHED_ROUTE`](crate::UNMATCHED_ROUTE), as an HTTP request that matched no route;
/// the methods of a whole service are also capped with the monitor's routes
/// ([`MonitorBuilder::max_label_sets`](crate::MonitorBuilder::max_label_sets)), past which
/// they share the overflow label.
///
/// ```
/// use vitalsign_core::rpc::RpcMethods;
///
/// let known = RpcMethods::new()
///     .method("/demo.v1.Greeter/SayHello")
///     .service("grpc.health.v1.Health");
/// assert_eq!(known.resolve("/demo.v1.Greeter/SayHello"), Some("/demo.v1.Greeter/SayHello"));
/// assert_eq!(known.resolve("/demo.v1.Greeter/Nope"), None);
/// assert!(known.resolve("/grpc.health.v1.Health/Check").is_some());
/// assert_eq!(known.resolve("/grpc.health.v1.Health/a/b"), None);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RpcMethods {
    services: Vec<Box<str>>,
    methods: Vec<Box<str>>,
}

impl RpcMethods {
    /// No known method: every call is recorded under
    /// [`UNMATCHED_ROUTE`](crate::UNMATCHED_ROUTE) until services or methods are added.
    pub fn new() -> Self {
        RpcMethods::default()
    }

    /// Every method of the service `name` (fully qualified, `demo.v1.Greeter`: tonic's
    /// `NamedService::NAME`).
    #[must_use]
    pub fn service(mut self, name: impl Into<Box<str>>) -> Self {
        self.services.push(name.into());
        self
    }

    /// The method at `path` (`/demo.v1.Greeter/SayHello`).
    #[must_use]
    pub fn method(mut self, path: impl Into<Box<str>>) -> Self {
        self.methods.push(path.into());
        self
    }

    /// Whether no service or method is known.
    pub fn is_empty(&self) -> bool {
        self.services.is_empty() && self.methods.is_empty()
    }

    /// The label of a call to `path`: the path itself when it is a known method (or a method
    /// of a known service: `/service/Method`, the method one path segment of
    /// identifier characters), `None` otherwise.
    pub fn resolve<'p>(&self, path: &'p str) -> Option<&'p str> {
        if self.methods.iter().any(|m| **m == *path) {
            return Some(path);
        }
        let (service, method) = path.strip_prefix('/')?.split_once('/')?;
        let identifier = !method.is_empty()
            && method.len() <= 128
            && method
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_');
        (identifier && self.services.iter().any(|s| **s == *service)).then_some(path)
    }
}
