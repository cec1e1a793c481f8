//! Test support: a real server on 127.0.0.1, a collecting sink, an exposition parser.
#![allow(dead_code, unreachable_pub)]

pub mod browser;
pub mod processes;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vitalsign::{FieldValue, MemorySink, Monitor, PointHandle};

/// A server bound to 127.0.0.1:0 serving an app until dropped.
pub struct Server {
    pub addr: SocketAddr,
    pub base: String,
    stop: Option<Box<dyn FnOnce() + Send>>,
}

impl Server {
    pub async fn start(app: axum::Router) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::start_on(listener, app).await
    }

    /// Serves `app` on a listener the test bound (a given port).
    pub async fn start_on(listener: tokio::net::TcpListener, app: axum::Router) -> Server {
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        Server {
            addr,
            base: format!("http://{addr}"),
            stop: Some(Box::new(move || {
                let _ = stop.send(());
            })),
        }
    }

    /// Runs the actix server that `build` makes in its own thread and actix system.
    pub fn start_actix<F>(build: F) -> Server
    where
        F: FnOnce() -> std::io::Result<(actix_web::dev::Server, Vec<SocketAddr>)> + Send + 'static,
    {
        let (ready, started) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let (server, addrs) = build().expect("actix server starts");
                ready.send((server.handle(), addrs[0])).unwrap();
                let _ = server.await;
            })
        });
        let (handle, addr) = started.recv().expect("actix server thread");
        Server {
            addr,
            base: format!("http://{addr}"),
            // The stop command is sent at once; the server thread ends by itself.
            stop: Some(Box::new(move || drop(handle.stop(false)))),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// GET `path`, returning status and body.
    pub async fn get(&self, path: &str) -> (u16, String) {
        let response = client().get(self.url(path)).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    pub async fn metrics(&self) -> Exposition {
        let (status, text) = self.get("/metrics").await;
        assert_eq!(status, 200, "{text}");
        Exposition::parse(&text)
    }

    /// Sends raw bytes, returns what the server answered (until it closes or `wait` passes).
    pub async fn raw(&self, request: &[u8], wait: Duration) -> String {
        let mut stream = TcpStream::connect(self.addr).await.unwrap();
        stream.write_all(request).await.unwrap();
        let mut out = Vec::new();
        let _ = tokio::time::timeout(wait, stream.read_to_end(&mut out)).await;
        String::from_utf8_lossy(&out).into_owned()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop();
        }
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// Retries `check` until it returns true or 10 s pass (server-side effects of a hang-up arrive
/// asynchronously).
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits (as [`eventually`]) until `monitor` has no request in flight: every request it began
/// has reached its sinks.
pub async fn all_recorded(monitor: &Monitor, what: &str) {
    eventually(what, || async { monitor.in_flight() == 0 }).await;
}

/// The handler body of the `Point` scenarios below, on both frameworks: tags the point
/// `handler=ran`, sets its field `answered=true`, and answers whether the point records.
pub fn tag_and_answer(point: &PointHandle) -> String {
    point.tag("handler", "ran").field("answered", true);
    if point.is_recording() {
        "recording".to_owned()
    } else {
        "not recording".to_owned()
    }
}

/// The `Point` scenario on excluded paths (review item 15), the same on both frameworks: the
/// server routes `/ping`, `/internal/{name}` (both excluded) and `/kept` to a handler that runs
/// [`tag_and_answer`].
pub async fn excluded_paths_answer_and_only_kept_is_recorded(
    server: &Server,
    monitor: &Monitor,
    sink: &MemorySink,
) {
    assert_eq!(server.get("/ping").await, (200, "not recording".to_owned()));
    assert_eq!(
        server.get("/internal/x").await,
        (200, "not recording".to_owned())
    );
    assert_eq!(server.get("/kept").await, (200, "recording".to_owned()));
    all_recorded(monitor, "/kept recorded").await;
    let points = sink.requests();
    assert_eq!(points.len(), 1, "{points:?}");
    assert_eq!(points[0].route, "/kept");
    assert_eq!(points[0].tag("handler"), Some("ran"));
    assert_eq!(
        sink.started(),
        1,
        "the excluded requests never started a point"
    );
    let m = server.metrics().await;
    assert_eq!(m.sum(COUNT, &[]), 1.0, "{}", m.text);
}

/// The `Point` scenario of a route the middleware does not cover, a wiring mistake (review
/// item 15), the same on both frameworks: the server routes `/late` outside the middleware and
/// `covered` (a route template without parameters) inside it, both to a handler that runs
/// [`tag_and_answer`]. `/late` answers, with a point that records nothing, and never reaches
/// the monitor; `covered` is recorded.
pub async fn uncovered_route_answers_with_a_point_that_records_nothing(
    server: &Server,
    monitor: &Monitor,
    sink: &MemorySink,
    covered: &str,
) {
    assert_eq!(server.get("/late").await, (200, "not recording".to_owned()));
    assert_eq!(server.get(covered).await, (200, "recording".to_owned()));
    all_recorded(monitor, "the covered route recorded").await;
    let points = sink.requests();
    assert_eq!(points.len(), 1, "{points:?}");
    assert_eq!(points[0].route, covered);
    assert_eq!(points[0].tag("handler"), Some("ran"));
    assert_eq!(points[0].field("answered"), Some(&FieldValue::Bool(true)));
    assert_eq!(sink.started(), 1, "/late never reached the monitor");
}

/// The spawned-task `Point` scenario (review item 7), the same on both frameworks: `start`
/// serves `/spawned` with the monitor it is given; the handler's work runs on another task than
/// the middleware's, takes the request's point there and runs [`tag_and_answer`]. With
/// `point_in_extensions` the handle travels in the request's extensions and what the task adds
/// lands on the request's point; without it the route still answers, with a point that records
/// nothing (the thread-local is the only way, and it stays on the middleware's task).
pub async fn spawned_work_finds_its_point_in_the_extensions<F, Fut>(start: F)
where
    F: Fn(Monitor) -> Fut,
    Fut: Future<Output = Server>,
{
    let (monitor, sink) = monitor_with_sink(|b| b.point_in_extensions(true));
    let server = start(monitor.clone()).await;
    for _ in 0..3 {
        assert_eq!(server.get("/spawned").await, (200, "recording".to_owned()));
    }
    all_recorded(&monitor, "/spawned recorded").await;
    let points = sink.requests_for("/spawned");
    assert_eq!(points.len(), 3);
    for point in &points {
        assert_eq!(point.tag("handler"), Some("ran"));
        assert_eq!(point.field("answered"), Some(&FieldValue::Bool(true)));
    }

    let (monitor, sink) = monitor_with_sink(|b| b);
    let server = start(monitor.clone()).await;
    assert_eq!(
        server.get("/spawned").await,
        (200, "not recording".to_owned())
    );
    all_recorded(&monitor, "/spawned recorded").await;
    let points = sink.requests_for("/spawned");
    assert_eq!((points.len(), points[0].tag("handler")), (1, None));
}

/// The scenario of a handler that panics with nothing to catch the panic (no `CatchPanic`), the
/// same on both frameworks: the server routes `/panic` to such a handler and `/ok` to one that
/// answers. The server drops the connection (the client sees an error, not a response); the
/// request is recorded as a 500 with the error code `panic`, not as a disconnect, the in-flight
/// gauge returns to zero, and the server keeps serving.
pub async fn a_panic_without_catch_panic_is_a_500_and_the_server_keeps_serving(
    server: &Server,
    sink: &MemorySink,
) {
    for _ in 0..3 {
        assert!(client().get(server.url("/panic")).send().await.is_err());
    }
    for _ in 0..10 {
        assert_eq!(server.get("/ok").await.0, 200);
    }
    let m = server.metrics().await;
    let labels = [
        ("http_request_method", "GET"),
        ("http_route", "/panic"),
        ("http_response_status_code", "500"),
    ];
    assert_eq!(m.get(COUNT, &labels), Some(3.0));
    assert_eq!(m.sum(DISCONNECTS, &[]), 0.0, "a panic is not a disconnect");
    assert_eq!(active(&m), 0.0);
    let panic_points = sink.requests_for("/panic");
    assert_eq!(panic_points.len(), 3);
    assert!(panic_points.iter().all(|p| !p.disconnected));
    assert_eq!(
        sink.errors()
            .iter()
            .filter(|e| e.error_code == "panic")
            .count(),
        3
    );
}

/// One sample line of the Prometheus text format.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A parsed `/metrics` page.
#[derive(Debug, Clone)]
pub struct Exposition {
    pub text: String,
    pub samples: Vec<Sample>,
}

impl Exposition {
    /// Parses the text format (label values with escapes included); panics on a malformed line.
    pub fn parse(text: &str) -> Exposition {
        let mut samples = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (name, rest) = match line.find('{') {
                Some(i) => (&line[..i], &line[i..]),
                None => {
                    let (n, v) = line.split_once(' ').expect("sample line");
                    samples.push(Sample {
                        name: n.to_owned(),
                        labels: BTreeMap::new(),
                        value: parse_value(v),
                    });
                    continue;
                }
            };
            let (labels, after) =
                parse_labels(rest).unwrap_or_else(|e| panic!("bad line {line}: {e}"));
            samples.push(Sample {
                name: name.to_owned(),
                labels,
                value: parse_value(after.trim()),
            });
        }
        Exposition {
            text: text.to_owned(),
            samples,
        }
    }

    /// The value of the sample with exactly these labels.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples
            .iter()
            .find(|s| s.name == name && s.labels == want)
            .map(|s| s.value)
    }

    /// Samples of `name` whose labels include `subset`.
    pub fn matching(&self, name: &str, subset: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| {
                s.name == name
                    && subset
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect()
    }

    /// Sum of `name` over samples whose labels include `subset`.
    pub fn sum(&self, name: &str, subset: &[(&str, &str)]) -> f64 {
        self.matching(name, subset).iter().map(|s| s.value).sum()
    }
}

/// Parses `{k="v",...}` (with `\\`, `\"` and `\n` escapes); returns the labels and the rest.
fn parse_labels(text: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    let mut chars = text.char_indices().peekable();
    if chars.next().map(|(_, c)| c) != Some('{') {
        return Err("no opening brace".into());
    }
    loop {
        match chars.peek() {
            Some((i, '}')) => return Ok((labels, &text[i + 1..])),
            Some(_) => {}
            None => return Err("unterminated labels".into()),
        }
        let mut key = String::new();
        for (_, c) in chars.by_ref() {
            if c == '=' {
                break;
            }
            key.push(c);
        }
        if chars.next().map(|(_, c)| c) != Some('"') {
            return Err(format!("label {key} has no quoted value"));
        }
        let mut value = String::new();
        loop {
            match chars.next().map(|(_, c)| c) {
                Some('\\') => match chars.next().map(|(_, c)| c) {
                    Some('n') => value.push('\n'),
                    Some(c) => value.push(c),
                    None => return Err("dangling escape".into()),
                },
                Some('"') => break,
                Some(c) => value.push(c),
                None => return Err("unterminated value".into()),
            }
        }
        if labels.insert(key.clone(), value).is_some() {
            return Err(format!("label {key} repeated"));
        }
        if let Some((_, ',')) = chars.peek() {
            chars.next();
        }
    }
}

fn parse_value(v: &str) -> f64 {
    match v.split_whitespace().next().unwrap() {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other
            .parse()
            .unwrap_or_else(|_| panic!("bad value {other:?}")),
    }
}

/// The variable that lets `bash scripts/test.sh` skip the tests that need an external server
/// (`VITALSIGN_SKIP_EXTERNAL=1`); the script then ends its run by counting the skips.
pub const SKIP_EXTERNAL: &str = "VITALSIGN_SKIP_EXTERNAL";

/// The file each skip is appended to (`scripts/test.sh` sets it and reads it at the end).
pub const SKIP_LOG: &str = "VITALSIGN_SKIP_LOG";

/// A program from a Debian package that some tests start.
#[derive(Debug)]
pub struct External {
    /// The executable.
    pub program: &'static str,
    /// Arguments that make it print its version and exit (the probe).
    pub probe: &'static [&'static str],
    /// The Debian package that installs it.
    pub package: &'static str,
}

/// `promtool check metrics`.
pub const PROMTOOL: External = External {
    program: "promtool",
    probe: &["--version"],
    package: "prometheus",
};

/// The Prometheus server.
pub const PROMETHEUS: External = External {
    program: "prometheus",
    probe: &["--version"],
    package: "prometheus",
};

/// Alertmanager (Debian names its binary `prometheus-alertmanager`).
pub const ALERTMANAGER: External = External {
    program: "prometheus-alertmanager",
    probe: &["--version"],
    package: "prometheus-alertmanager",
};

/// InfluxDB 1.x.
pub const INFLUXD: External = External {
    program: "influxd",
    probe: &["version"],
    package: "influxdb",
};

/// Chromium, which the status page's browser tests drive (headless) through chromedriver.
pub const CHROMIUM: External = External {
    program: "chromium",
    probe: &["--version"],
    package: "chromium",
};

/// chromedriver (Debian's `chromium-driver`), the WebDriver server for Chromium.
pub const CHROMEDRIVER: External = External {
    program: "chromedriver",
    probe: &["--version"],
    package: "chromium-driver",
};

/// Whether the test may use `tool`: `true` when it runs. When it is missing the test fails
/// with the install instruction, unless the run opted out (`VITALSIGN_SKIP_EXTERNAL=1` under
/// `scripts/test.sh`): then the skip is written to the script's skip log, which the script
/// counts in its last lines, and this returns `false`.
pub fn require(tool: &External) -> bool {
    let probe = std::process::Command::new(tool.program)
        .args(tool.probe)
        .stdin(std::process::Stdio::null())
        .output();
    let error = match probe {
        Ok(out) if out.status.success() => return true,
        Ok(out) => format!(
            "`{} {}` failed: {}",
            tool.program,
            tool.probe.join(" "),
            out.status
        ),
        Err(e) => format!("{} cannot run ({e})", tool.program),
    };
    let install = format!(
        "{error}: this test needs Debian's `{package}` package. Install it \
         (`sudo apt-get install {package}`), or run the tests with `bash scripts/test.sh`, \
         which installs what is missing",
        package = tool.package
    );
    // CI never skips a test for want of its program, whatever the environment says.
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{install} (CI=true: such a test fails rather than skips)");
    }
    if std::env::var(SKIP_EXTERNAL).as_deref() != Ok("1") {
        panic!("{install}; {SKIP_EXTERNAL}=1 under scripts/test.sh skips such tests instead");
    }
    let Some(log) = std::env::var_os(SKIP_LOG) else {
        panic!(
            "{install}. {SKIP_EXTERNAL}=1 skips such tests only under `bash scripts/test.sh`, \
             which counts the skips at the end of the run"
        );
    };
    let test = std::thread::current()
        .name()
        .unwrap_or("(unnamed thread)")
        .to_owned();
    let binary = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .map(|stem| {
            stem.rsplit_once('-')
                .map_or(stem.clone(), |(b, _)| b.to_owned())
        })
        .unwrap_or_default();
    // One write of one line per skip: appends from parallel tests do not interleave.
    let line = format!("{}\t{binary}::{test}\n", tool.program);
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .and_then(|mut file| std::io::Write::write_all(&mut file, line.as_bytes()))
        .unwrap_or_else(|e| panic!("cannot append to {SKIP_LOG} {}: {e}", log.display()));
    eprintln!("SKIPPED ({SKIP_EXTERNAL}=1): {install}");
    false
}

/// Runs `promtool check metrics` on `text` (see [`require`] when promtool is missing).
pub fn promtool_check(text: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    if !require(&PROMTOOL) {
        return;
    }
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let findings = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && findings.trim().is_empty(),
        "promtool findings:\n{findings}\n---\n{text}"
    );
}

/// Labels of a duration series of the demo (which declares `handler_id`).
pub fn series<'a>(
    method: &'a str,
    route: &'a str,
    status: &'a str,
    handler_id: &'a str,
) -> [(&'a str, &'a str); 4] {
    [
        ("http_request_method", method),
        ("http_route", route),
        ("http_response_status_code", status),
        ("handler_id", handler_id),
    ]
}

pub const COUNT: &str = "http_server_request_duration_seconds_count";
pub const SUM: &str = "http_server_request_duration_seconds_sum";
pub const BUCKET: &str = "http_server_request_duration_seconds_bucket";
pub const ERRORS: &str = "http_server_errors_total";
pub const DISCONNECTS: &str = "http_server_disconnects_total";
pub const ACTIVE: &str = "http_server_active_requests";

/// In-flight gauge summed over methods.
pub fn active(m: &Exposition) -> f64 {
    m.sum(ACTIVE, &[])
}

pub fn monitor_with_sink(
    build: impl FnOnce(vitalsign::MonitorBuilder) -> vitalsign::MonitorBuilder,
) -> (Monitor, Arc<MemorySink>) {
    let sink = Arc::new(MemorySink::new(100_000));
    let monitor = build(Monitor::builder("test").sink(sink.clone()))
        .build()
        .unwrap();
    (monitor, sink)
}

/// A port free on 127.0.0.1 right now (for servers that take a port number).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Records one request straight through the monitor, as an adapter would.
pub fn record(monitor: &Monitor, method: &[u8], route: &str, status: u16) {
    let mut flight = vitalsign::adapter::begin(
        monitor,
        vitalsign::adapter::RequestStart::new(method, route).with_route(Some(route)),
    );
    flight.set_status(status);
    flight.complete();
}

/// A TCP dependency on 127.0.0.1 that can go away and come back on the same port, for the
/// health checks that connect to it.
pub struct Dependency {
    pub addr: SocketAddr,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Dependency {
    pub async fn start() -> Dependency {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        Dependency {
            addr,
            task: Some(Self::serve(listener)),
        }
    }

    fn serve(listener: tokio::net::TcpListener) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                let _ = listener.accept().await;
            }
        })
    }

    pub async fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    pub async fn restart(&mut self) {
        self.task = Some(Self::serve(
            tokio::net::TcpListener::bind(self.addr).await.unwrap(),
        ));
    }
}

impl Drop for Dependency {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
