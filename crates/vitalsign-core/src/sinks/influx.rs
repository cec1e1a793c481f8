//! [`InfluxSink`]: monitoring points as InfluxDB line protocol, over HTTP or UDP.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use influxdb_line_protocol::LineProtocolBuilder;

use super::queue::Queue;
use crate::point::{Field, FieldValue};
use crate::{
    AggregatePoint, ConfigError, ConfigErrorKind, ErrorPoint, RequestPoint, Sink, SinkReport,
};

/// Where lines go.
#[derive(Clone)]
enum Target {
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

/// Writes request points (series `requests`), error points (series `errors`) and aggregates as
/// InfluxDB line protocol.
///
/// Tags: `service`, `route`, `method`, `status_code` (+ `error_code`), plus handler tags. Fields:
/// `request_id`, `execution_time` (seconds), plus handler fields (unsigned integers are written
/// as integers, which InfluxDB 1.x accepts). Timestamp: request start, in nanoseconds (use
/// `precision=ns`, the default). Aggregates carry `count`, `min`, `max`, `sum` at the period's
/// start. Escaping is done by InfluxData's `influxdb-line-protocol` crate.
///
/// Lines are queued (bounded, oldest dropped and counted) and written by a background thread
/// every `flush_period` or as soon as `batch_size` lines are queued. Connection errors and 5xx
/// answers are retried with exponential backoff; a 4xx answer (bad data) drops the batch,
/// counted, and is logged once per status.
///
/// ```no_run
/// use std::time::Duration;
/// use vitalsign_core::{sinks::InfluxSink, Monitor};
///
/// let influx = InfluxSink::http("http://127.0.0.1:8086/write?db=metrics")
///     .flush_period(Duration::from_secs(1))
///     .batch_size(500)
///     .build()?;
/// let monitor = Monitor::builder("shop").sink(influx).build()?;
/// # Ok::<(), vitalsign_core::ConfigError>(())
/// ```
pub struct InfluxSink {
    queue: Arc<Queue>,
    flushes: Arc<Mutex<Vec<tokio::sync::oneshot::Sender<()>>>>,
    prefixes: Prefixes,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl std::fmt::Debug for InfluxSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InfluxSink")
            .field("report", &self.report())
            .finish_non_exhaustive()
    }
}

impl InfluxSink {
    /// A sink writing to a full write URL: `http://host:8086/write?db=…` (1.x) or
    /// `http://host:8086/api/v2/write?org=…&bucket=…` (2.x, with [`InfluxSinkBuilder::token`]).
    ///
    /// `https://` needs the `influx-tls` feature (part of `influx`): TLS through rustls,
    /// trusting the system's root certificates and those given to
    /// `InfluxSinkBuilder::root_certificate_pem`. A URL the sink cannot use fails at
    /// [`InfluxSinkBuilder::build`].
    pub fn http(url: impl Into<String>) -> InfluxSinkBuilder {
        Self::builder(Target::Http {
            url: url.into(),
            token: None,
        })
    }

    /// A sink sending datagrams (at most 1400 bytes of lines each) to an InfluxDB UDP listener.
    pub fn udp(addr: impl Into<String>) -> InfluxSinkBuilder {
        Self::builder(Target::Udp {
            addr: addr.into(),
            max_datagram: 1400,
        })
    }

    /// The line protocol this sink writes for a point (with `error_code`: its error point).
    ///
    /// ```
    /// use vitalsign_core::{sinks::InfluxSink, Method, RequestId, RequestPoint};
    ///
    /// let id = RequestId::from_header(Some(b"r-1")).unwrap();
    /// let mut point = RequestPoint::new("shop", "/a b", Method::Get, 200, &id);
    /// point.execution_time = 0.5;
    /// point.start_unix_nanos = 1;
    /// assert_eq!(
    ///     InfluxSink::line(&point, None),
    ///     "requests,method=GET,route=/a\\ b,service=shop,status_code=200 execution_time=0.5,request_id=\"r-1\" 1\n"
    /// );
    /// ```
    pub fn line(point: &RequestPoint<'_>, error_code: Option<&str>) -> String {
        String::from_utf8(encode_point(point, error_code)).unwrap_or_default()
    }

    fn builder(target: Target) -> InfluxSinkBuilder {
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

/// Tag keys and values: as [`one_line`], and without trailing backslashes, which no line
/// protocol parser reads back (the backslash would escape the separator after it).
fn tag_text(text: &str) -> std::borrow::Cow<'_, str> {
    match one_line(text) {
        std::borrow::Cow::Borrowed(t) => t.trim_end_matches('\\').into(),
        std::borrow::Cow::Owned(t) => t.trim_end_matches('\\').to_owned().into(),
    }
}

/// Tag values and string fields: control characters (line breaks end a line; tabs separate
/// for some parsers, even inside quoted strings) are replaced by spaces; the crate escapes
/// everything else. Empty tag values are left out by the caller.
fn one_line(value: &str) -> std::borrow::Cow<'_, str> {
    if value.contains(char::is_control) {
        value
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect::<String>()
            .into()
    } else {
        value.into()
    }
}

/// What one line holds: `series,tags first,ints,floats,request_id,fields timestamp`.
struct Line<'a> {
    series: &'a str,
    tags: &'a [(String, String)],
    /// The first field (a line has at least one).
    first: (&'a str, f64),
    ints: &'a [(&'a str, i64)],
    floats: &'a [(&'a str, f64)],
    request_id: Option<&'a str>,
    fields: &'a [Field],
    timestamp: u64,
}

impl Line<'_> {
    fn encode(&self) -> Vec<u8> {
        self.fields_of()
            .timestamp(self.timestamp as i64)
            .close_line()
            .build()
    }

    /// The line without a timestamp.
    fn encode_untimed(&self) -> Vec<u8> {
        self.fields_of().close_line().build()
    }

    /// Series, tags and fields.
    fn fields_of(
        &self,
    ) -> LineProtocolBuilder<Vec<u8>, influxdb_line_protocol::builder::AfterField> {
        let mut builder =
            LineProtocolBuilder::new_with(Vec::with_capacity(256)).measurement(self.series);
        for (key, value) in self.tags {
            let value = tag_text(value);
            if !value.is_empty() {
                builder = builder.tag(&tag_text(key), &value);
            }
        }
        let mut line = builder.field(self.first.0, self.first.1);
        for (key, value) in self.ints {
            line = line.field(key, *value);
        }
        for (key, value) in self.floats {
            line = line.field(key, *value);
        }
        if let Some(id) = self.request_id {
            line = line.field("request_id", id);
        }
        for field in self.fields {
            if matches!(&*field.key, "request_id" | "execution_time") {
                continue;
            }
            line = match &field.value {
                FieldValue::Float(v) if v.is_finite() => line.field(&field.key, *v),
                FieldValue::Float(_) => line,
                FieldValue::Int(v) => line.field(&field.key, *v),
                FieldValue::UInt(v) => {
                    line.field(&field.key, i64::try_from(*v).unwrap_or(i64::MAX))
                }
                FieldValue::Bool(v) => line.field(&field.key, *v),
                FieldValue::Str(v) => line.field(&field.key, &*one_line(v)),
            };
        }
        line
    }
}

/// Encodes a request (or, with `error_code`, an error) point.
pub(crate) fn encode_point(point: &RequestPoint<'_>, error_code: Option<&str>) -> Vec<u8> {
    let tags = super::tag_set(point, error_code);
    Line {
        series: series_of(error_code),
        tags: &tags,
        first: ("execution_time", point.execution_time),
        ints: &[],
        floats: &[],
        request_id: Some(point.request_id.as_str()),
        fields: point.fields,
        timestamp: point.start_unix_nanos,
    }
    .encode()
}

/// Label sets whose encoded `series,tags` prefix is cached.
const CACHED_PREFIXES: usize = 1024;

/// The encoded `series,tags` of the label sets seen (points without handler tags), so that the
/// crate escapes each label set once, not once per point.
struct Prefixes(crate::cache::OnceCache<Box<Prefix>>);

/// One cached label set and its encoded prefix.
struct Prefix {
    method: crate::Method,
    status: u16,
    route: Box<str>,
    error_code: Option<Box<str>>,
    /// `series,tag=value,…` as the crate writes it.
    bytes: Box<[u8]>,
}

impl Prefixes {
    fn new() -> Self {
        Prefixes(crate::cache::OnceCache::new(CACHED_PREFIXES * 2))
    }

    /// The line of a request (or, with `error_code`, an error) point, as [`encode_point`]
    /// writes it. Points without handler tags or fields reuse their label set's prefix; the
    /// fields then need no escaping: constant keys, a number, and a request id (its characters
    /// exclude `"` and `\`, the only ones a string field escapes).
    fn encode(&self, point: &RequestPoint<'_>, error_code: Option<&str>) -> Vec<u8> {
        if !point.tags.is_empty() || !point.fields.is_empty() {
            return encode_point(point, error_code);
        }
        let hash = self
            .0
            .hash((point.method, point.status_code, point.route, error_code));
        let found = self.0.find(hash, |p| {
            p.method == point.method
                && p.status == point.status_code
                && *p.route == *point.route
                && p.error_code.as_deref() == error_code
        });
        let prefix = match found {
            Some((_, prefix)) => prefix,
            None => {
                let Some(prefix) = Prefix::of(point, error_code) else {
                    return encode_point(point, error_code);
                };
                match self.0.insert(hash, Box::new(prefix)) {
                    Some(slot) => self.0.get(slot).expect("just filled"),
                    None => return encode_point(point, error_code),
                }
            }
        };
        use std::io::Write;
        let id = point.request_id.as_str();
        let mut line = Vec::with_capacity(prefix.bytes.len() + id.len() + 80);
        line.extend_from_slice(&prefix.bytes);
        line.extend_from_slice(b" execution_time=");
        let _ = write!(line, "{}", point.execution_time);
        line.extend_from_slice(b",request_id=\"");
        line.extend_from_slice(id.as_bytes());
        line.extend_from_slice(b"\" ");
        line.extend_from_slice(
            itoa::Buffer::new()
                .format(point.start_unix_nanos as i64)
                .as_bytes(),
        );
        line.push(b'\n');
        line
    }
}

impl Prefix {
    /// Encodes the point's `series,tags` with the crate: the line it writes with
    /// `execution_time=0` as the only field and no timestamp, less that field.
    fn of(point: &RequestPoint<'_>, error_code: Option<&str>) -> Option<Prefix> {
        const SUFFIX: &[u8] = b" execution_time=0\n";
        let tags = super::tag_set(point, error_code);
        let line = Line {
            series: series_of(error_code),
            tags: &tags,
            first: ("execution_time", 0.0),
            ints: &[],
            floats: &[],
            request_id: None,
            fields: &[],
            timestamp: 0,
        }
        .encode_untimed();
        let bytes = line.strip_suffix(SUFFIX)?;
        Some(Prefix {
            method: point.method,
            status: point.status_code,
            route: point.route.into(),
            error_code: error_code.map(Into::into),
            bytes: bytes.into(),
        })
    }
}

fn series_of(error_code: Option<&str>) -> &'static str {
    if error_code.is_some() {
        "errors"
    } else {
        "requests"
    }
}

/// Encodes an aggregate point: fields `sum`, `count`, `min`, `max`.
pub(crate) fn encode_aggregate(point: &AggregatePoint<'_>) -> Vec<u8> {
    Line {
        series: point.series,
        tags: point.tags,
        first: ("sum", point.sum),
        ints: &[("count", point.count as i64)],
        floats: &[("min", point.min), ("max", point.max)],
        request_id: None,
        fields: &[],
        timestamp: point.period_start_unix_nanos,
    }
    .encode()
}

/// The writer thread's state.
struct Writer {
    /// The HTTP client (none for UDP).
    client: Option<reqwest::Client>,
    queue: Arc<Queue>,
    target: Target,
    flush_period: Duration,
    max_backoff: Duration,
    flushes: Arc<Mutex<Vec<tokio::sync::oneshot::Sender<()>>>>,
    /// Statuses already logged (4xx are logged once per status).
    rejected: Mutex<Vec<u16>>,
}

/// Why a batch was not written.
enum Failure {
    /// Worth retrying (connection error, 5xx).
    Retry(String),
    /// Never worth retrying (4xx: bad data, unknown database, bad token).
    Reject(u16, String),
}

impl Writer {
    async fn run(self, mut stopped: tokio::sync::oneshot::Receiver<()>) {
        let udp = match &self.target {
            Target::Udp { .. } => tokio::net::UdpSocket::bind("0.0.0.0:0").await.ok(),
            Target::Http { .. } => None,
        };
        let mut backoff = Duration::from_millis(100);
        loop {
            let stopping = tokio::select! {
                _ = tokio::time::sleep(self.flush_period) => false,
                _ = self.queue.batch_ready.notified() => false,
                _ = &mut stopped => true,
            };
            loop {
                let batch = self.queue.take_batch();
                if batch.is_empty() {
                    backoff = Duration::from_millis(100);
                    break;
                }
                let n = batch.len() as u64;
                match self.write(udp.as_ref(), &batch).await {
                    Ok(()) => {
                        self.queue.sent.fetch_add(n, Relaxed);
                    }
                    Err(Failure::Reject(status, body)) => {
                        self.queue.dropped.fetch_add(n, Relaxed);
                        let mut seen = self.rejected.lock().unwrap_or_else(PoisonError::into_inner);
                        if !seen.contains(&status) {
                            seen.push(status);
                            tracing::warn!(
                                status,
                                "vitalsign: InfluxDB rejected a batch of {n} points ({body}); \
                                 dropped, and this status is not logged again"
                            );
                        }
                    }
                    Err(Failure::Retry(reason)) => {
                        self.queue.put_back(batch);
                        if stopping {
                            break;
                        }
                        tracing::debug!(
                            "vitalsign: InfluxDB write failed ({reason}); retrying in {backoff:?}"
                        );
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(self.max_backoff);
                        break;
                    }
                }
            }
            if self.queue.len() == 0 {
                for done in self
                    .flushes
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .drain(..)
                {
                    let _ = done.send(());
                }
            }
            if stopping {
                return;
            }
        }
    }

    async fn write(
        &self,
        udp: Option<&tokio::net::UdpSocket>,
        batch: &[Vec<u8>],
    ) -> Result<(), Failure> {
        match &self.target {
            Target::Http { url, token } => {
                let body: Vec<u8> = batch.concat();
                let client = self
                    .client
                    .as_ref()
                    .ok_or_else(|| Failure::Retry("no HTTP client".into()))?;
                let mut request = client.post(url).body(body);
                if let Some(token) = token {
                    request = request.header("authorization", format!("Token {token}"));
                }
                let response = request
                    .send()
                    .await
                    .map_err(|e| Failure::Retry(error_chain(&e)))?;
                let status = response.status();
                if status.is_success() {
                    return Ok(());
                }
                let body = response.text().await.unwrap_or_default();
                if status.is_client_error() {
                    Err(Failure::Reject(status.as_u16(), body.trim().to_owned()))
                } else {
                    Err(Failure::Retry(format!("{status}: {}", body.trim())))
                }
            }
            Target::Udp { addr, max_datagram } => {
                let socket = udp.ok_or_else(|| Failure::Retry("no UDP socket".into()))?;
                let mut datagram = Vec::with_capacity(*max_datagram);
                for line in batch {
                    if !datagram.is_empty() && datagram.len() + line.len() > *max_datagram {
                        socket
                            .send_to(&datagram, addr.as_str())
                            .await
                            .map_err(|e| Failure::Retry(e.to_string()))?;
                        datagram.clear();
                    }
                    datagram.extend_from_slice(line);
                }
                if !datagram.is_empty() {
                    socket
                        .send_to(&datagram, addr.as_str())
                        .await
                        .map_err(|e| Failure::Retry(e.to_string()))?;
                }
                Ok(())
            }
        }
    }
}

/// An error with its sources (`reqwest`'s own text hides the cause).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

impl Sink for InfluxSink {
    fn record_request(&self, point: &RequestPoint<'_>) {
        self.queue.push(self.prefixes.encode(point, None));
    }

    fn record_error(&self, point: &ErrorPoint<'_>) {
        self.queue
            .push(self.prefixes.encode(point.request, Some(point.error_code)));
    }

    fn record_aggregate(&self, point: &AggregatePoint<'_>) {
        self.queue.push(encode_aggregate(point));
    }

    fn flush(&self) -> Option<tokio::sync::oneshot::Receiver<()>> {
        let (done, wait) = tokio::sync::oneshot::channel();
        self.flushes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(done);
        self.queue.batch_ready.notify_one();
        Some(wait)
    }

    fn report(&self) -> Option<SinkReport> {
        Some(SinkReport {
            name: "influx",
            sent: self.queue.sent.load(Relaxed),
            dropped: self.queue.dropped.load(Relaxed),
            queued: self.queue.len() as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Method, RequestId, Tag};

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

    #[test]
    fn cached_prefixes_write_the_lines_the_crate_writes() {
        let prefixes = Prefixes::new();
        let ids = [
            RequestId::EMPTY,
            RequestId::generate(),
            RequestId::from_header(Some(b"a-Z_0.9:+=/@")).unwrap(),
        ];
        let routes = [
            "/users/{id}",
            "/a b,c=d",
            "/quote\"and\\slash\\",
            "/line\nbreak\ttab",
            "/ünïcödé/日本",
            "",
        ];
        for (i, route) in routes.iter().enumerate() {
            for (method, status, code) in [
                (Method::Get, 200, None),
                (Method::Other, 503, Some("db down, \"really\"")),
                (Method::Post, 499, None),
            ] {
                for id in &ids {
                    let point = RequestPoint {
                        service: "svc one",
                        route,
                        method,
                        status_code: status,
                        request_id: id,
                        execution_time: 0.000_123 * (i + 1) as f64,
                        start_unix_nanos: 1_700_000_000_123_456_789 + i as u64,
                        disconnected: false,
                        head_time: None,
                        response_body_bytes: 0,
                        request_body_bytes: 0,
                        tags: &[],
                        fields: &[],
                    };
                    // First sight fills the cache, the second reads it.
                    for _ in 0..2 {
                        assert_eq!(
                            String::from_utf8(prefixes.encode(&point, code)).unwrap(),
                            String::from_utf8(encode_point(&point, code)).unwrap(),
                        );
                    }
                }
            }
        }
        let cached = (0..CACHED_PREFIXES * 2)
            .filter(|i| prefixes.0.get(*i).is_some())
            .count();
        assert_eq!(cached, routes.len() * 3, "one prefix per label set");
    }

    #[test]
    fn points_encode_with_escaping() {
        let id = RequestId::from_header(Some(b"req-1")).unwrap();
        let tags = [Tag {
            key: "tenant".into(),
            value: "a b,c=d\"e\\".into(),
        }];
        let fields = [
            Field {
                key: "note".into(),
                value: FieldValue::Str("say \"hi\" \\o/".into()),
            },
            Field {
                key: "rows".into(),
                value: FieldValue::UInt(3),
            },
        ];
        let point = RequestPoint {
            service: "shop",
            route: "/users/{id}",
            method: Method::Get,
            status_code: 200,
            request_id: &id,
            execution_time: 0.25,
            start_unix_nanos: 1_700_000_000_000_000_000,
            disconnected: false,
            head_time: None,
            response_body_bytes: 0,
            request_body_bytes: 0,
            tags: &tags,
            fields: &fields,
        };
        let line = String::from_utf8(encode_point(&point, None)).unwrap();
        let want = concat!(
            // The trailing backslash of the tag value is dropped: no parser reads it back.
            r#"requests,method=GET,route=/users/{id},service=shop,status_code=200,tenant=a\ b\,c\=d"e "#,
            r#"execution_time=0.25,request_id="req-1",note="say \"hi\" \\o/",rows=3i 1700000000000000000"#,
            "\n"
        );
        assert_eq!(line, want);
        let error = String::from_utf8(encode_point(&point, Some("E1"))).unwrap();
        assert!(
            error.starts_with("errors,error_code=E1,method=GET"),
            "{error}"
        );
    }
}
