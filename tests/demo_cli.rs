//! The demo binary as a user runs it: flags, usage errors, and a real server process.
#![cfg(all(feature = "axum", feature = "prometheus"))]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

mod common;
#[path = "common/otlp.rs"]
mod otlp;

/// `target/<profile>/examples/demo`, beside this test binary (`target/<profile>/deps/`): the
/// demo is an example of the root package `vitalsign`, which `cargo test --workspace` (the
/// README's `bash scripts/test.sh`) builds along with this package's tests. Running this
/// package alone (`cargo test -p vitalsign-tests`) does not build it: run
/// `cargo build --example demo` (with the same profile) first, or the binary is missing or
/// stale.
fn demo_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let path = dir
        .join("examples")
        .join(format!("demo{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo test --workspace` (which builds the \
         examples), or `cargo build --example demo` before `cargo test -p vitalsign-tests`",
        path.display()
    );
    path
}

#[test]
fn bad_flags_get_a_usage_error_and_exit_code_2() {
    for args in [
        &["--bogus"][..],
        &["--addr"],
        &["--addr", "not-an-address"],
        &["--framework", "rocket"],
        &["--addr=127.0.0.1:99999"],
        &["--dependency", "no-port"],
        &["--dependency", ":80"],
        &["--check-interval-ms", "0"],
        &["--check-interval-ms", "soon"],
        &["--token", ""],
        &["--token", "has space"],
        &["--influx", "127.0.0.1:8086"],
        &["--statsd", "localhost"],
        &["--flush-ms", "0"],
        &["--aggregate-ms", "x"],
        &["--otlp", "127.0.0.1:4318"],
        &["--otlp", "https://127.0.0.1:4318"],
        &["--otlp", "http://"],
        &["--slo-time-scale", "0"],
        &["--slo-time-scale", "301"],
        &["--print-rules", "--print-dashboard"],
        &["--native-histograms=yes"],
        &["--grpc-addr", "nowhere"],
        &["--grpc-addr"],
    ] {
        let out = Command::new(demo_binary()).args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("usage: demo"), "{args:?}: {stderr}");
        assert!(stderr.starts_with("demo: "), "{args:?}: {stderr}");
    }
}

/// `--print-rules` prints a rule file that promtool accepts, `--print-dashboard` a dashboard,
/// each on stdout with exit code 0, before anything is served; `--slo-time-scale` shortens the
/// windows of both.
#[test]
fn print_rules_and_print_dashboard_print_the_files_and_exit_0() {
    let run = |args: &[&str]| {
        let out = Command::new(demo_binary()).args(args).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stderr.is_empty(), "{args:?}: nothing on stderr");
        String::from_utf8(out.stdout).unwrap()
    };
    let rules = run(&["--print-rules"]);
    assert!(rules.contains("- name: \"vitalsign-slo:vitalsign-demo:demo-availability\""));
    assert!(rules.contains("- name: \"vitalsign-slo:vitalsign-demo:demo-latency\""));
    assert!(rules.contains("slo:sli_error:ratio_rate5m{slo=\"demo-latency\"}"));
    let scaled = run(&["--print-rules", "--slo-time-scale", "60"]);
    assert!(scaled.contains("slo:sli_error:ratio_rate5s{slo=\"demo-latency\"}"));
    assert!(scaled.contains("window: \"1m/5s\""));
    if common::require(&common::PROMTOOL) {
        let dir = common::processes::TempDir::new("demo-rules");
        for (name, text) in [("rules.yml", &rules), ("scaled.yml", &scaled)] {
            let path = dir.write(name, text);
            let out = Command::new("promtool")
                .args(["check", "rules"])
                .arg(&path)
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success() && stdout.contains("SUCCESS: 30 rules found"),
                "{stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    let dashboard: serde_json::Value = serde_json::from_str(&run(&["--print-dashboard"])).unwrap();
    assert_eq!(dashboard["title"], "vitalsign-demo (vitalsign)");
    let titles: Vec<&str> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    assert!(
        titles.contains(&"demo-availability: burn rate (1 = the budget lasts exactly the period)"),
        "{titles:?}"
    );
}

#[test]
fn help_prints_usage_and_exits_0() {
    let out = Command::new(demo_binary()).arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("--framework"));
    assert!(String::from_utf8_lossy(&out.stdout).contains("--grpc-addr HOST:PORT"));
}

#[test]
fn the_demo_process_serves_grpc_beside_axum() {
    demo_process_serves_grpc("axum");
}

#[test]
fn the_demo_process_serves_grpc_beside_actix() {
    demo_process_serves_grpc("actix");
}

/// `--grpc-addr`: the demo process serves the Greeter there, recorded on the HTTP app's
/// monitor (its `rpc_server_*` series on the same `/metrics`), on either framework.
fn demo_process_serves_grpc(framework: &str) {
    use vitalsign_demo_proto::greeter_client::GreeterClient;
    use vitalsign_demo_proto::HelloRequest;
    let (_child, first, lines) = spawn_demo(&[
        "--addr",
        "127.0.0.1:0",
        "--framework",
        framework,
        "--grpc-addr",
        "127.0.0.1:0",
    ]);
    let base = first.rsplit(' ').next().unwrap().to_owned();
    let grpc_line = lines
        .map(|l| l.unwrap())
        .find(|l| l.starts_with("gRPC "))
        .expect("a line with the gRPC address");
    let grpc_addr = grpc_line.rsplit(' ').next().unwrap().to_owned();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut client = GreeterClient::connect(format!("http://{grpc_addr}"))
            .await
            .unwrap_or_else(|e| panic!("{framework}: {grpc_line}: {e}"));
        let request = || HelloRequest {
            name: "cli".to_owned(),
        };
        let reply = client.say_hello(request()).await.unwrap().into_inner();
        assert_eq!(reply.message, "hello cli");
        let failed = client.fail(request()).await.unwrap_err();
        assert_eq!(failed.code(), tonic::Code::Internal);
        assert_eq!(failed.message(), "demo failure");
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let text = http.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
            let recorded = [
                r#"rpc_server_call_duration_seconds_count{rpc_system="grpc",rpc_service="demo.v1.Greeter",rpc_method="SayHello",rpc_grpc_status_code="0"} 1"#,
                r#"rpc_server_errors_total{rpc_system="grpc",rpc_service="demo.v1.Greeter",rpc_method="Fail",rpc_grpc_status_code="13"} 1"#,
            ];
            if recorded.iter().all(|line| text.contains(line)) {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{framework}: {text}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
}

#[test]
fn the_demo_process_serves_routes_and_metrics_on_axum() {
    demo_process_serves_routes_and_metrics("axum");
}

#[test]
fn the_demo_process_serves_routes_and_metrics_on_actix() {
    demo_process_serves_routes_and_metrics("actix");
}

fn demo_process_serves_routes_and_metrics(framework: &str) {
    // Port 1 on loopback refuses connections: the dependency is down.
    let (_child, first, mut lines) = spawn_demo(&[
        "--addr",
        "127.0.0.1:0",
        "--framework",
        framework,
        "--dependency",
        "127.0.0.1:1",
        "--check-interval-ms",
        "100",
        "--token",
        "demo-token",
    ]);
    let base = first.rsplit(' ').next().unwrap().to_owned();
    assert!(base.starts_with("http://127.0.0.1:"), "{first}");
    assert!(first.contains(&format!("({framework})")), "{first}");
    let printed: Vec<String> = lines.by_ref().take(9).map(|l| l.unwrap()).collect();
    assert!(
        printed.iter().any(|l| l.contains("/users/42")),
        "{printed:?}"
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(10)).build().unwrap();
        let get = |path: &str| client.get(format!("{base}{path}")).send();
        assert_eq!(get("/users/42").await.unwrap().status(), 200);
        assert_eq!(get("/error").await.unwrap().status(), 500);
        assert_eq!(get("/panic").await.unwrap().status(), 500);
        assert_eq!(get("/slow?ms=20").await.unwrap().status(), 200);
        assert_eq!(get("/slow?ms=999999").await.unwrap().status(), 400);
        assert_eq!(get("/health/live").await.unwrap().status(), 200);
        assert_eq!(get("/api/v1/orders/1/items/2").await.unwrap().status(), 200);
        assert_eq!(get("/metrics").await.unwrap().status(), 401, "the token guards /metrics");
        // Regression (review item 20): a wrong token got "needs an Authorization: Bearer
        // header" although one was sent.
        let missing = get("/metrics").await.unwrap().text().await.unwrap();
        assert!(missing.contains("needs an Authorization: Bearer <token> header"), "{missing}");
        for wrong in ["Bearer wrong-token", "Basic ZGVtby10b2tlbg=="] {
            let answer = client
                .get(format!("{base}/stats"))
                .header("authorization", wrong)
                .send()
                .await
                .unwrap();
            assert_eq!(answer.status(), 401, "{wrong}");
            let text = answer.text().await.unwrap();
            assert!(
                text.contains("does not carry this endpoint's token") && !text.contains("needs an"),
                "{framework} {wrong}: {text}"
            );
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let health = get("/health").await.unwrap();
            let status = health.status();
            let body = health.text().await.unwrap();
            if status == 503 {
                assert_eq!(body, r#"{"name":"vitalsign-demo","status":{"overall":{"level":"unavailable"}},"version":"0.1.0"}"#);
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{status} {body}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(get("/health/ready").await.unwrap().status(), 503);
        let authorized = |path: &str| {
            client
                .get(format!("{base}{path}"))
                .header("authorization", "Bearer demo-token")
                .send()
        };
        let health = authorized("/health").await.unwrap().text().await.unwrap();
        assert!(health.contains("TCP connect to 127.0.0.1:1 failed"), "{health}");
        let text = authorized("/metrics").await.unwrap().text().await.unwrap();
        for line in [
            r#"http_server_request_duration_seconds_count{http_request_method="GET",http_route="/users/{id}",http_response_status_code="200",handler_id="get_user"} 1"#,
            r#"http_server_errors_total{http_request_method="GET",http_route="/error",http_response_status_code="500",error_code="1001"} 1"#,
            r#"http_server_errors_total{http_request_method="GET",http_route="/panic",http_response_status_code="500",error_code="panic"} 1"#,
            r#"http_server_request_duration_seconds_count{http_request_method="GET",http_route="/slow",http_response_status_code="400",handler_id=""} 1"#,
        ] {
            assert!(text.contains(line), "missing {line}\n{text}");
        }
    });
}

/// `--native-histograms` puts native buckets into the protobuf `/metrics` on both frameworks;
/// without it the protobuf has the classic buckets only.
#[test]
fn the_native_histograms_flag_adds_native_buckets_to_the_protobuf_metrics() {
    // In a `Histogram` message: field 6 (zero_threshold, a double) holding 2^-20.
    let zero_threshold: Vec<u8> = std::iter::once(0x31)
        .chain((1.0f64 / f64::from(1 << 20)).to_le_bytes())
        .collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for framework in ["axum", "actix"] {
        for native in [true, false] {
            let mut args = vec!["--addr", "127.0.0.1:0", "--framework", framework];
            if native {
                args.push("--native-histograms");
            }
            let (_child, first, _lines) = spawn_demo(&args);
            let base = first.rsplit(' ').next().unwrap().to_owned();
            runtime.block_on(async {
                let client = reqwest::Client::builder().no_proxy().build().unwrap();
                let slow = client.get(format!("{base}/slow?ms=1")).send().await.unwrap();
                assert_eq!(slow.status(), 200);
                let deadline = std::time::Instant::now() + Duration::from_secs(10);
                loop {
                    let answer = client
                        .get(format!("{base}/metrics"))
                        .header(
                            "accept",
                            "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited",
                        )
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(
                        answer.headers()["content-type"],
                        "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
                    );
                    let body = answer.bytes().await.unwrap();
                    // The /slow request is in once the duration family is.
                    if body
                        .windows(36)
                        .any(|w| w == b"http_server_request_duration_seconds")
                    {
                        let has_native = body
                            .windows(zero_threshold.len())
                            .any(|w| w == zero_threshold);
                        assert_eq!(has_native, native, "{framework} --native-histograms {native}");
                        break;
                    }
                    assert!(std::time::Instant::now() < deadline, "{framework}: no duration family");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            });
        }
    }
}

/// Starts the demo with `args`; returns the process, its first output line (the address) and
/// the rest of its output.
fn spawn_demo(
    args: &[&str],
) -> (
    KillOnDrop,
    String,
    std::io::Lines<BufReader<std::process::ChildStdout>>,
) {
    spawn_demo_with(args, &[], Stdio::null())
}

/// [`spawn_demo`] with environment variables and a destination for stderr.
fn spawn_demo_with(
    args: &[&str],
    env: &[(&str, &str)],
    stderr: Stdio,
) -> (
    KillOnDrop,
    String,
    std::io::Lines<BufReader<std::process::ChildStdout>>,
) {
    let child = Command::new(demo_binary())
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    (child, first, lines)
}

/// Stops the demo process whatever the test's outcome.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_push_flags_reach_a_statsd_server() {
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let statsd = udp.local_addr().unwrap().to_string();
    let (_child, first, _lines) = spawn_demo(&[
        "--addr",
        "127.0.0.1:0",
        "--statsd",
        &statsd,
        "--statsd-prefix",
        "demo",
        "--flush-ms",
        "50",
    ]);
    let base = first.rsplit(' ').next().unwrap().to_owned();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        for _ in 0..3 {
            assert_eq!(
                client
                    .get(format!("{base}/users/1"))
                    .send()
                    .await
                    .unwrap()
                    .status(),
                200
            );
        }
    });
    let mut received = String::new();
    let mut buf = [0u8; 65536];
    while received.matches("demo.requests:1|c").count() < 3 {
        let n = udp.recv(&mut buf).expect("StatsD datagrams from the demo");
        received.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(received.contains("route:/users/{id}"), "{received}");
}

/// Splits a shell command line into words: single quotes (`'\''` included) and spaces only,
/// which is all the banner may use.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' => words.extend(word.take()),
            '\'' => {
                let word = word.get_or_insert_with(String::new);
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    word.push(c);
                }
            }
            '\\' => word.get_or_insert_with(String::new).extend(chars.next()),
            c => {
                assert!(
                    c.is_ascii_alphanumeric() || "-_./:".contains(c),
                    "{c:?} unquoted in: {line}"
                );
                word.get_or_insert_with(String::new).push(c);
            }
        }
    }
    words.extend(word);
    words
}

#[test]
fn the_banner_lists_every_route_as_a_quoted_working_command_on_axum() {
    banner_lists_every_route_as_a_quoted_working_command("axum");
}

#[test]
fn the_banner_lists_every_route_as_a_quoted_working_command_on_actix() {
    banner_lists_every_route_as_a_quoted_working_command("actix");
}

/// Regression (review item 20): the banner left out `POST /echo` and `/health/{component}`,
/// and printed `/slow?ms=300` unquoted (zsh globs `?`). Every line it prints is run here, as
/// the shell would split it, with the token where the endpoint needs it.
fn banner_lists_every_route_as_a_quoted_working_command(framework: &str) {
    let (_child, first, lines) = spawn_demo(&[
        "--addr",
        "127.0.0.1:0",
        "--framework",
        framework,
        "--token",
        "it's-me",
    ]);
    let base = first.rsplit(' ').next().unwrap().to_owned();
    let banner: Vec<String> = lines
        .map(Result::unwrap)
        .take_while(|line| line != "stop with Ctrl-C")
        .collect();
    let commands: Vec<Vec<String>> = banner
        .iter()
        .filter_map(|line| line.strip_prefix("  "))
        .map(shell_words)
        .collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut tried = Vec::new();
    for words in &commands {
        let (url, options) = words.split_last().unwrap();
        assert_eq!(&options[..2], ["curl", "-s"], "{words:?}");
        let path = url
            .strip_prefix(&base)
            .unwrap_or_else(|| panic!("{words:?}"));
        let (mut method, mut body, mut headers) = ("GET", None, Vec::new());
        let mut options = options[2..].iter();
        while let Some(option) = options.next() {
            let value = options.next().unwrap_or_else(|| panic!("{words:?}"));
            match option.as_str() {
                "-X" => method = value.as_str(),
                "--data" => body = Some(value.clone()),
                "-H" => headers.push(value.split_once(": ").unwrap()),
                _ => panic!("unexpected option in {words:?}"),
            }
        }
        let mut request = client.request(method.parse().unwrap(), url);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let status = runtime.block_on(async { request.send().await.unwrap().status().as_u16() });
        let want = match path {
            "/no/such/route" => 404,
            "/error" | "/panic" => 500,
            "/annotations/deploys" if method == "POST" => 201,
            _ => 200,
        };
        assert_eq!(status, want, "{framework}: {words:?}");
        tried.push(format!("{method} {}", path.split('?').next().unwrap()));
    }
    for route in [
        "GET /users/42",
        "GET /slow",
        "GET /block",
        "GET /stream",
        "POST /echo",
        "GET /api/v1/orders/7/items/3",
        "GET /metrics",
        "GET /health",
        "GET /health/http",
        "GET /health/live",
        "GET /health/ready",
        "GET /stats",
        "GET /status",
        "GET /status/data",
        "GET /annotations",
        "GET /annotations/lifecycle",
        "POST /annotations/deploys",
    ] {
        assert!(
            tried.iter().any(|t| t == route),
            "{route} missing from {banner:#?}"
        );
    }
}

/// Regression (review item 20): health transitions are logged at `warn`, but the demo
/// installed no logger, so nothing was shown. A dependency that comes up and goes away gives
/// one line each on stderr, with `RUST_LOG` set.
#[test]
fn a_health_transition_is_logged_on_stderr() {
    let dependency = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = dependency.local_addr().unwrap().to_string();
    let (mut child, _first, _lines) = spawn_demo_with(
        &[
            "--addr",
            "127.0.0.1:0",
            "--dependency",
            &address,
            "--check-interval-ms",
            "50",
        ],
        &[("RUST_LOG", "vitalsign_core=warn")],
        Stdio::piped(),
    );
    let stderr = BufReader::new(child.0.stderr.take().unwrap());
    let (sender, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    let wait_for = |to: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = lines
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("no transition to {to} on stderr ({e}): {seen:#?}"));
            if line.contains("WARN")
                && line.contains("health of dependency changed")
                && line.contains(&format!("to=\"{to}\""))
            {
                return;
            }
            seen.push(line);
        }
    };
    wait_for("available");
    drop(dependency);
    wait_for("unavailable");
}

/// `--otlp URL`: the demo process, on either framework, exports its requests to an OTLP/HTTP
/// receiver at `URL/v1/metrics`: the semantic-convention histogram with its attributes, under
/// the demo's service name.
#[test]
fn the_otlp_flag_exports_to_an_otlp_receiver() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let receiver = runtime.block_on(otlp::Receiver::start());
    for framework in ["axum", "actix"] {
        receiver.received.lock().unwrap().clear();
        let (_child, first, _lines) = spawn_demo(&[
            "--addr",
            "127.0.0.1:0",
            "--framework",
            framework,
            "--otlp",
            &receiver.server.base,
        ]);
        let base = first.rsplit(' ').next().unwrap().to_owned();
        runtime.block_on(async {
            let client = reqwest::Client::builder().no_proxy().build().unwrap();
            for _ in 0..3 {
                let status = client
                    .get(format!("{base}/users/1"))
                    .send()
                    .await
                    .unwrap()
                    .status();
                assert_eq!(status, 200);
            }
            common::eventually(&format!("{framework}: 3 requests exported"), || async {
                receiver
                    .metrics(vitalsign::sinks::otel::DURATION)
                    .iter()
                    .any(|(service, _, m)| {
                        service == "vitalsign-demo"
                            && otlp::histogram(m).iter().any(|p| {
                                let set = otlp::attributes(&p.attributes);
                                p.count == 3
                                    && set.get("http.route").map(String::as_str)
                                        == Some("/users/{id}")
                                    && set.get("network.protocol.version").map(String::as_str)
                                        == Some("1.1")
                            })
                    })
            })
            .await;
        });
    }
}
