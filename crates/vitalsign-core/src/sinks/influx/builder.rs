//! [`InfluxSinkBuilder`]: the sink's settings, the checks of its target (refused at `build()`,
//! saying why), and the start of its writer thread.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::line::Prefixes;
use super::writer::Writer;
use super::{error_chain, InfluxSink, Queue};
use crate::{ConfigError, ConfigErrorKind};

/// Where lines go.
#[derive(Clone)]
pub(super) enum Target {
    /// A full write URL: InfluxDB 1.x `…/write?db=…` or 2.x `…/api/v2/write?org=…&bucket=…`.
    Http { url: String, token: Option<String> },
    /// An InfluxDB UDP listener.
    Udp { addr: String, max_datagram: usize },
}

/// Prints the URL and whether a token is set, never the token.
impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Http { url, token } => f
                .debug_struct("Http")
                .field("url", url)
                .field("token", &token.as_ref().map(|_| "<redacted>"))
                .finish(),
            Target::Udp { addr, max_datagram } => f
                .debug_struct("Udp")
                .field("addr", addr)
                .field("max_datagram", max_datagram)
                .finish(),
        }
    }
}

/// Builds an [`InfluxSink`].
#[derive(Clone, Debug)]
#[must_use]
pub struct InfluxSinkBuilder {
    target: Target,
    flush_period: Duration,
    batch_size: usize,
    capacity: usize,
    max_backoff: Duration,
    /// PEM bundles to trust besides the system's roots.
    #[cfg(feature = "influx-tls")]
    root_certificates: Vec<Vec<u8>>,
}

impl InfluxSinkBuilder {
    /// Token for InfluxDB 2.x (`Authorization: Token …`). Defaults to none.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        if let Target::Http { token: t, .. } = &mut self.target {
            *t = Some(token.into());
        }
        self
    }

    /// Longest a point waits before it is written. Defaults to 1 s.
    pub fn flush_period(mut self, period: Duration) -> Self {
        self.flush_period = period.max(Duration::from_millis(1));
        self
    }

    /// Points per write; a full batch is written at once. Defaults to 500.
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n.max(1);
        self
    }

    /// Most points queued; past it the oldest are dropped and counted. Defaults to 10 000.
    pub fn queue_capacity(mut self, n: usize) -> Self {
        self.capacity = n.max(1);
        self
    }

    /// Longest wait between two retries (backoff doubles from 100 ms). Defaults to 10 s.
    pub fn max_backoff(mut self, max: Duration) -> Self {
        self.max_backoff = max.max(Duration::from_millis(100));
        self
    }

    /// Trusts the certificates of a PEM bundle for `https://` URLs, besides the system's root
    /// certificates: a private CA's, or a self-signed InfluxDB's own certificate. Can be given
    /// several times. A bundle that holds no certificate fails at [`build`](Self::build)
    /// (setting `root_certificate_pem`). Feature `influx-tls` (part of `influx`).
    ///
    /// ```no_run
    /// use vitalsign_core::sinks::InfluxSink;
    ///
    /// let ca = std::fs::read("/etc/influxdb/ca.pem").unwrap();
    /// let influx = InfluxSink::http("https://influx.internal:8086/write?db=metrics")
    ///     .root_certificate_pem(ca)
    ///     .build()?;
    /// # Ok::<(), vitalsign_core::ConfigError>(())
    /// ```
    #[cfg(feature = "influx-tls")]
    pub fn root_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_certificates.push(pem.into());
        self
    }

    /// Checks the target and starts the sink's writer thread.
    ///
    /// A target the sink cannot use fails here, with [`ConfigErrorKind::InvalidValue`] and
    /// setting `url`, saying why: not a URL, a scheme other than `http` and `https`, `https`
    /// without the `influx-tls` feature, no host, no write path, a 1.x write URL without `db`
    /// or a 2.x one without `bucket`, or a UDP address that does not resolve.
    ///
    /// ```
    /// use vitalsign_core::{sinks::InfluxSink, ConfigErrorKind};
    ///
    /// let err = InfluxSink::http("ftp://127.0.0.1/write?db=m").build().unwrap_err();
    /// assert_eq!((err.kind(), err.setting()), (ConfigErrorKind::InvalidValue, "url"));
    /// assert!(err.to_string().contains("scheme \"ftp\""), "{err}");
    /// ```
    pub fn build(self) -> Result<Arc<InfluxSink>, ConfigError> {
        let client = match &self.target {
            Target::Http { url, .. } => {
                check_url(url)?;
                Some(self.http_client()?)
            }
            Target::Udp { addr, .. } => {
                check_udp(addr)?;
                None
            }
        };
        let queue = Arc::new(Queue::new(self.capacity, self.batch_size));
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let flushes = Arc::new(Mutex::new(Vec::new()));
        let writer = Writer {
            client,
            queue: Arc::clone(&queue),
            target: self.target.clone(),
            flush_period: self.flush_period,
            max_backoff: self.max_backoff,
            flushes: Arc::clone(&flushes),
            rejected: Mutex::new(Vec::new()),
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| {
                ConfigError::new(
                    ConfigErrorKind::Resource,
                    "build",
                    format!("influx sink: no runtime: {e}"),
                )
                .with_source(e)
            })?;
        std::thread::Builder::new()
            .name("vitalsign-influx".into())
            .spawn(move || runtime.block_on(writer.run(stopped)))
            .map_err(|e| {
                ConfigError::new(
                    ConfigErrorKind::Resource,
                    "build",
                    format!("influx sink: no writer thread: {e}"),
                )
                .with_source(e)
            })?;
        Ok(Arc::new(InfluxSink {
            queue,
            flushes,
            prefixes: Prefixes::new(),
            _stop: stop,
        }))
    }
}

impl InfluxSinkBuilder {
    /// The HTTP client, trusting the given certificates.
    fn http_client(&self) -> Result<reqwest::Client, ConfigError> {
        #[allow(unused_mut)]
        let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(10));
        #[cfg(feature = "influx-tls")]
        for pem in &self.root_certificates {
            let invalid = |why: String| {
                ConfigError::new(
                    ConfigErrorKind::InvalidValue,
                    "root_certificate_pem",
                    format!("influx sink: root certificate: {why}"),
                )
            };
            let certificates = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| invalid(format!("not a PEM bundle: {}", error_chain(&e))))?;
            if certificates.is_empty() {
                return Err(invalid(
                    "no certificate in the PEM bundle (no BEGIN CERTIFICATE block)".into(),
                ));
            }
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        builder.build().map_err(|e| {
            ConfigError::new(
                ConfigErrorKind::Resource,
                "build",
                format!("influx sink: no HTTP client: {}", error_chain(&e)),
            )
            .with_source(e)
        })
    }
}

/// Refuses an HTTP write URL the sink cannot use, saying why.
fn check_url(url: &str) -> Result<(), ConfigError> {
    let invalid = |why: String| {
        ConfigError::new(
            ConfigErrorKind::InvalidValue,
            "url",
            format!("influx URL {url:?} {why}"),
        )
    };
    let parsed: reqwest::Url = url
        .parse()
        .map_err(|e| invalid(format!("is not a URL: {e}")))?;
    match parsed.scheme() {
        "http" => {}
        "https" if cfg!(feature = "influx-tls") => {}
        "https" => {
            return Err(invalid(
                "is https, and this build has no TLS: enable the `influx-tls` feature \
                 (part of `influx`)"
                    .into(),
            ))
        }
        other => return Err(invalid(format!("has scheme {other:?}, not http or https"))),
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(invalid("has no host".into()));
    }
    let has = |name: &str| {
        parsed
            .query_pairs()
            .any(|(k, v)| k == name && !v.is_empty())
    };
    let path = parsed.path().trim_end_matches('/');
    if path.is_empty() {
        Err(invalid(
            "has no write path: use http(s)://HOST:PORT/write?db=NAME (InfluxDB 1.x) or \
             http(s)://HOST:PORT/api/v2/write?org=ORG&bucket=BUCKET (2.x)"
                .into(),
        ))
    } else if path.ends_with("/api/v2/write") && !has("bucket") {
        Err(invalid(
            "names no bucket: a 2.x write URL is …/api/v2/write?org=ORG&bucket=BUCKET".into(),
        ))
    } else if path.ends_with("/write") && !path.ends_with("/api/v2/write") && !has("db") {
        Err(invalid(
            "names no database: a 1.x write URL is …/write?db=NAME".into(),
        ))
    } else {
        Ok(())
    }
}

/// Refuses a UDP address that does not resolve.
fn check_udp(addr: &str) -> Result<(), ConfigError> {
    use std::net::ToSocketAddrs;
    let invalid = |why: String| {
        ConfigError::new(
            ConfigErrorKind::InvalidValue,
            "url",
            format!("influx UDP address {addr:?} {why}"),
        )
    };
    match addr.to_socket_addrs().map(|mut addrs| addrs.next()) {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(invalid("resolves to no address".into())),
        Err(e) => Err(invalid(format!(
            "does not resolve (HOST:PORT expected): {e}"
        ))),
    }
}

impl InfluxSink {
    pub(super) fn builder(target: Target) -> InfluxSinkBuilder {
        InfluxSinkBuilder {
            target,
            flush_period: Duration::from_secs(1),
            batch_size: 500,
            capacity: 10_000,
            max_backoff: Duration::from_secs(10),
            #[cfg(feature = "influx-tls")]
            root_certificates: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_the_token() {
        let builder = InfluxSink::http("http://127.0.0.1:8086/api/v2/write?org=o&bucket=b")
            .token("s3cr3t-token");
        let printed = format!("{builder:?}");
        assert!(!printed.contains("s3cr3t"), "{printed}");
        assert!(printed.contains("<redacted>"), "{printed}");
    }

    /// Regression (review item 3): `https://` URLs were accepted without a TLS backend and
    /// every write failed and was retried forever; other unusable targets failed late too.
    /// Each fails at `build()` now, saying why.
    #[test]
    fn unusable_targets_fail_at_build_saying_why() {
        let refused = |builder: InfluxSinkBuilder, why: &str| {
            let err = builder.build().expect_err(why);
            assert_eq!(
                (err.kind(), err.setting()),
                (ConfigErrorKind::InvalidValue, "url"),
                "{err}"
            );
            assert!(
                err.to_string().contains(why),
                "{err:?} does not say {why:?}"
            );
        };
        refused(InfluxSink::http("127.0.0.1:8086/write?db=m"), "not a URL");
        refused(InfluxSink::http("not a url"), "not a URL");
        refused(
            InfluxSink::http("ftp://127.0.0.1/write?db=m"),
            "scheme \"ftp\"",
        );
        refused(InfluxSink::http("unix:/run/influx.sock"), "scheme \"unix\"");
        refused(InfluxSink::http("http://:8086/write?db=m"), "not a URL");
        refused(InfluxSink::http("http://127.0.0.1:8086"), "no write path");
        refused(InfluxSink::http("http://127.0.0.1:8086/"), "no write path");
        refused(
            InfluxSink::http("http://127.0.0.1:8086/write"),
            "no database",
        );
        refused(
            InfluxSink::http("http://127.0.0.1:8086/write?db="),
            "no database",
        );
        refused(
            InfluxSink::http("http://127.0.0.1:8086/api/v2/write?org=o"),
            "no bucket",
        );
        refused(InfluxSink::udp("127.0.0.1"), "does not resolve");
        refused(
            InfluxSink::udp("no-such-host.invalid:8089"),
            "does not resolve",
        );
        #[cfg(not(feature = "influx-tls"))]
        refused(
            InfluxSink::http("https://127.0.0.1:8086/write?db=m"),
            "enable the `influx-tls` feature",
        );
        for usable in [
            InfluxSink::http("http://127.0.0.1:8086/write?db=m"),
            InfluxSink::http("http://localhost:8086/write?db=m&precision=ns"),
            InfluxSink::http("http://127.0.0.1:8086/api/v2/write?org=o&bucket=b").token("t"),
            InfluxSink::http("http://proxy.example/influx/write?db=m"),
            InfluxSink::udp("127.0.0.1:8089"),
            InfluxSink::udp("localhost:8089"),
        ] {
            usable.build().unwrap();
        }
        #[cfg(feature = "influx-tls")]
        InfluxSink::http("https://127.0.0.1:8086/write?db=m")
            .build()
            .unwrap();
    }

    /// A root certificate that is not one fails at `build()` (setting
    /// `root_certificate_pem`).
    #[cfg(feature = "influx-tls")]
    #[test]
    fn a_bundle_without_certificates_fails_at_build() {
        for pem in [
            &b"not a certificate"[..],
            b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
        ] {
            let err = InfluxSink::http("https://127.0.0.1:8086/write?db=m")
                .root_certificate_pem(pem)
                .build()
                .unwrap_err();
            assert_eq!(
                (err.kind(), err.setting()),
                (ConfigErrorKind::InvalidValue, "root_certificate_pem"),
                "{err}"
            );
        }
    }
}
