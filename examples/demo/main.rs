//! The vitalsign demo: a small axum service with monitoring on every route.
//!
//! ```text
//! cargo run --release --example demo -- --addr 127.0.0.1:3000 --framework axum
//! ```

mod actix_app;
mod app;
mod grpc;

use std::net::SocketAddr;
use std::process::ExitCode;

const USAGE: &str = "\
usage: demo [--addr HOST:PORT] [--framework axum|actix] [--dependency HOST:PORT]
            [--check-interval-ms N] [--token TOKEN] [--influx URL] [--influx-token T]
            [--flush-ms N] [--statsd HOST:PORT] [--statsd-prefix P] [--aggregate-ms N]
            [--otlp URL] [--print-rules | --print-dashboard] [--slo-time-scale N]
            [--native-histograms] [--grpc-addr HOST:PORT]

  --addr HOST:PORT         address to listen on (default 127.0.0.1:3000)
  --framework NAME         web framework serving the demo: axum (default) or actix
  --dependency HOST:PORT   a critical health component `dependency`, checked by a TCP connect
                           (200 ms timeout)
  --check-interval-ms N    interval of the dependency check (default 1000)
  --token TOKEN            bearer token for /metrics, /stats, health details,
                           /annotations and the status page's details; writing
                           annotations (POST) needs one
  --influx URL             push points to InfluxDB: a full write URL, e.g.
                           http://127.0.0.1:8086/write?db=demo (1.x) or
                           http://127.0.0.1:8086/api/v2/write?org=o&bucket=b (2.x)
  --influx-token T         InfluxDB 2.x token
  --flush-ms N             flush period of the push sinks (default 1000)
  --statsd HOST:PORT       push metrics to a StatsD server (UDP)
  --statsd-prefix P        prefix of the StatsD metric names
  --aggregate-ms N         aggregate points per period before pushing them
  --otlp URL               export OpenTelemetry metrics over OTLP/HTTP every second to an
                           http:// endpoint base, e.g. http://127.0.0.1:4318 (metrics go to
                           URL/v1/metrics)
  --print-rules            print the Prometheus rule file of the demo's objectives (recording
                           rules and burn-rate alerts) and exit
  --print-dashboard        print the demo's Grafana dashboard (JSON) and exit
  --slo-time-scale N       for tests: divide every objective window by N (1 to 300; with 60
                           the fast page looks at 1m and 5s instead of 1h and 5m; default 1)
  --native-histograms      also keep the request duration as a Prometheus native histogram,
                           served on /metrics in the protobuf format to a scraper that asks
                           for it (Prometheus with --enable-feature=native-histograms)
  --grpc-addr HOST:PORT    also serve the gRPC service demo.v1.Greeter (tonic, from
                           examples/demo/proto/demo.proto) there, recorded on the same
                           monitor: its rpc_server_* series on the same /metrics (default: off)
  -h, --help           print this help";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Framework {
    Axum,
    Actix,
}

/// What `--print-rules` and `--print-dashboard` ask for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Print {
    Rules,
    Dashboard,
}

struct Args {
    addr: SocketAddr,
    print: Option<Print>,
    slo_time_scale: u32,
    native_histograms: bool,
    framework: Framework,
    health: app::HealthOptions,
    push: app::PushOptions,
    grpc_addr: Option<SocketAddr>,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut addr: SocketAddr = "127.0.0.1:3000".parse().expect("valid default");
    let mut framework = Framework::Axum;
    let mut health = app::HealthOptions::default();
    let mut push = app::PushOptions::default();
    let mut print = None;
    let mut slo_time_scale = 1;
    let mut native_histograms = false;
    let mut grpc_addr = None;
    let millis = |flag: &str, v: String| -> Result<std::time::Duration, String> {
        v.parse::<u64>()
            .ok()
            .filter(|ms| (1..=3_600_000).contains(ms))
            .map(std::time::Duration::from_millis)
            .ok_or_else(|| format!("{flag} {v:?} is not a whole number from 1 to 3600000"))
    };
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--addr" => {
                let v = value("--addr")?;
                addr = v.parse().map_err(|e| {
                    format!("--addr {v:?} is not a socket address like 127.0.0.1:3000: {e}")
                })?;
            }
            "--grpc-addr" => {
                let v = value("--grpc-addr")?;
                grpc_addr = Some(v.parse().map_err(|e| {
                    format!("--grpc-addr {v:?} is not a socket address like 127.0.0.1:50051: {e}")
                })?);
            }
            "--framework" => {
                framework = match value("--framework")?.as_str() {
                    "axum" => Framework::Axum,
                    "actix" => Framework::Actix,
                    other => {
                        return Err(format!("--framework {other:?} is not one of axum, actix"))
                    }
                }
            }
            "--dependency" => {
                let v = value("--dependency")?;
                if v.rsplit_once(':')
                    .is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err())
                {
                    return Err(format!("--dependency {v:?} is not HOST:PORT"));
                }
                health.dependency = Some(v);
            }
            "--check-interval-ms" => {
                let v = value("--check-interval-ms")?;
                let ms: u64 = v
                    .parse()
                    .ok()
                    .filter(|ms| (10..=3_600_000).contains(ms))
                    .ok_or_else(|| {
                        format!(
                            "--check-interval-ms {v:?} is not a whole number from 10 to 3600000"
                        )
                    })?;
                health.check_interval = std::time::Duration::from_millis(ms);
            }
            "--token" => {
                let v = value("--token")?;
                if v.is_empty() || !v.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err("--token must be non-empty visible ASCII".to_owned());
                }
                health.token = Some(v);
            }
            "--influx" => {
                let v = value("--influx")?;
                if !(v.starts_with("http://") || v.starts_with("https://")) {
                    return Err(format!("--influx {v:?} is not an http(s) write URL"));
                }
                push.influx = Some(v);
            }
            "--influx-token" => push.influx_token = Some(value("--influx-token")?),
            "--flush-ms" => push.flush = Some(millis("--flush-ms", value("--flush-ms")?)?),
            "--statsd" => {
                let v = value("--statsd")?;
                if v.rsplit_once(':')
                    .is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err())
                {
                    return Err(format!("--statsd {v:?} is not HOST:PORT"));
                }
                push.statsd = Some(v);
            }
            "--statsd-prefix" => push.statsd_prefix = Some(value("--statsd-prefix")?),
            "--aggregate-ms" => {
                push.aggregate = Some(millis("--aggregate-ms", value("--aggregate-ms")?)?)
            }
            "--otlp" => {
                let v = value("--otlp")?;
                if !v.starts_with("http://") || v.len() == "http://".len() {
                    return Err(format!("--otlp {v:?} is not an http:// endpoint base"));
                }
                push.otlp = Some(v);
            }
            "--print-rules" | "--print-dashboard" => {
                let wanted = if flag == "--print-rules" {
                    Print::Rules
                } else {
                    Print::Dashboard
                };
                if print.is_some_and(|p| p != wanted) {
                    return Err(
                        "--print-rules and --print-dashboard print one file each: give one"
                            .to_owned(),
                    );
                }
                print = Some(wanted);
            }
            "--slo-time-scale" => {
                let v = value("--slo-time-scale")?;
                slo_time_scale = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=vitalsign_core::slo::MAX_TIME_SCALE).contains(n))
                    .ok_or_else(|| {
                        format!(
                            "--slo-time-scale {v:?} is not a whole number from 1 to {}",
                            vitalsign_core::slo::MAX_TIME_SCALE
                        )
                    })?;
            }
            "--native-histograms" => {
                if inline.is_some() {
                    return Err("--native-histograms takes no value".to_owned());
                }
                native_histograms = true;
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Some(Args {
        addr,
        print,
        slo_time_scale,
        native_histograms,
        framework,
        health,
        push,
        grpc_addr,
    }))
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("demo: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if let Some(print) = args.print {
        return match monitor(&args) {
            Ok(monitor) => {
                print!(
                    "{}",
                    match print {
                        Print::Rules => monitor.prometheus_rules(),
                        Print::Dashboard => monitor.grafana_dashboard(),
                    }
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("demo: {e}");
                ExitCode::FAILURE
            }
        };
    }
    install_logger();
    let served = match args.framework {
        Framework::Axum => tokio::runtime::Runtime::new()
            .map_err(Into::into)
            .and_then(|runtime| runtime.block_on(serve_axum(args))),
        Framework::Actix => actix_web::rt::System::new().block_on(serve_actix(args)),
    };
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Prints where the demo listens and what to try: one shell command per route, every argument
/// single-quoted (zsh would glob an unquoted `?`), with the token where an endpoint needs it.
fn print_banner(framework: &str, addr: SocketAddr, token: Option<&str>) {
    let base = format!("http://{addr}");
    println!("vitalsign demo ({framework}) listening on {base}");
    println!("status page (open it in a browser): {base}/status");
    println!("try:");
    let auth = token.map(|t| format!(" -H {}", shell_quote(&format!("Authorization: Bearer {t}"))));
    for (options, path, guarded) in [
        ("", "/users/42", false),
        ("", "/error", false),
        ("", "/slow?ms=300", false),
        ("", "/block?ms=200", false),
        ("", "/stream", false),
        ("", "/panic", false),
        (" -X POST --data 'hello'", "/echo", false),
        ("", "/api/v1/orders/7/items/3", false),
        ("", "/no/such/route", false),
        ("", "/metrics", true),
        ("", "/health", true),
        ("", "/health/http", true),
        ("", "/health/live", false),
        ("", "/health/ready", false),
        ("", "/stats", true),
        ("", "/status", false),
        ("", "/status/data", true),
        ("", "/annotations", true),
        ("", "/annotations/lifecycle?since=0", true),
        (
            " -X POST -H 'Content-Type: application/json' \
             --data '{\"title\":\"v1.4.2 rolled out\",\"source\":\"deploy.sh\"}'",
            "/annotations/deploys",
            true,
        ),
    ] {
        let auth = auth.as_deref().filter(|_| guarded).unwrap_or_default();
        println!(
            "  curl -s{options}{auth} {}",
            shell_quote(&format!("{base}{path}"))
        );
    }
    if token.is_none() {
        println!("(POST /annotations/{{stream}} answers 403 until the demo runs with --token)");
    }
    println!("a WebSocket that echoes text messages: ws://{addr}/ws (e.g. websocat)");
    println!("health transitions and sink failures are logged on stderr (filter: RUST_LOG)");
    println!("stop with Ctrl-C");
}

/// `text` as one single-quoted shell word.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// Logs vitalsign's warnings (health transitions, sink failures) on stderr. `RUST_LOG` picks
/// what is shown (`warn` when unset; invalid directives are ignored).
fn install_logger() {
    let filter = tracing_subscriber::EnvFilter::builder()
        .with_default_directive(tracing_subscriber::filter::LevelFilter::WARN.into())
        .from_env_lossy();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// How long a graceful stop waits for in-flight requests.
const DRAIN_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// Ctrl-C: readiness flips to 503, in-flight requests finish (or the deadline passes).
async fn drain_on_ctrl_c(monitor: vitalsign::Monitor) {
    let _ = tokio::signal::ctrl_c().await;
    println!("draining: /health/ready now answers 503");
    let report = monitor.shutdown(DRAIN_DEADLINE).await;
    println!(
        "drained in {} ms, {} request(s) cut, push sinks {}",
        report.waited.as_millis(),
        report.cut,
        if report.flushed {
            "flushed"
        } else {
            "not flushed in time"
        }
    );
}

/// The demo's monitor for these flags.
fn monitor(args: &Args) -> Result<vitalsign::Monitor, vitalsign::ConfigError> {
    let builder = app::with_objectives(
        app::monitor_builder_with(&args.health)?,
        args.slo_time_scale,
    )
    .native_histograms(args.native_histograms);
    app::with_sinks(builder, app::push_sinks(&args.push)?).build()
}

/// `--grpc-addr`: serves the Greeter there on the current runtime (Tokio's, or actix-web's,
/// which is Tokio's too) until Ctrl-C.
async fn serve_grpc(
    monitor: &vitalsign::Monitor,
    addr: Option<SocketAddr>,
) -> Result<(), Box<dyn std::error::Error>> {
    let Some(addr) = addr else {
        return Ok(());
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr} (--grpc-addr): {e}"))?;
    println!(
        "gRPC demo.v1.Greeter (SayHello, Fail, StreamHello) on {}",
        listener.local_addr()?
    );
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let monitor = monitor.clone();
    tokio::spawn(async move {
        if let Err(e) = grpc::serve_grpc(monitor, listener, stop).await {
            eprintln!("demo: gRPC server: {e}");
        }
    });
    Ok(())
}

async fn serve_axum(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let monitor = monitor(&args)?;
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.addr))?;
    print_banner("axum", listener.local_addr()?, args.health.token.as_deref());
    serve_grpc(&monitor, args.grpc_addr).await?;
    axum::serve(listener, app::axum_app(&monitor))
        .with_graceful_shutdown(drain_on_ctrl_c(monitor.clone()))
        .await?;
    Ok(())
}

async fn serve_actix(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let monitor = monitor(&args)?;
    let (server, addrs) = actix_app::actix_server(&monitor, args.addr)
        .map_err(|e| format!("cannot listen on {}: {e}", args.addr))?;
    print_banner("actix", addrs[0], args.health.token.as_deref());
    serve_grpc(&monitor, args.grpc_addr).await?;
    let handle = server.handle();
    actix_web::rt::spawn(async move {
        drain_on_ctrl_c(monitor).await;
        handle.stop(true).await;
    });
    server.await?;
    Ok(())
}
