//! The vitalsign demo: a small axum service with monitoring on every route.
//!
//! ```text
//! cargo run --release --example demo -- --addr 127.0.0.1:3000 --framework axum
//! ```

mod app;

use std::net::SocketAddr;
use std::process::ExitCode;

const USAGE: &str = "\
usage: demo [--addr HOST:PORT] [--framework axum]

  --addr HOST:PORT     address to listen on (default 127.0.0.1:3000)
  --framework NAME     web framework serving the demo: axum (default)
  -h, --help           print this help";

struct Args {
    addr: SocketAddr,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut addr: SocketAddr = "127.0.0.1:3000".parse().expect("valid default");
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
            "--framework" => match value("--framework")?.as_str() {
                "axum" => {}
                other => {
                    return Err(format!(
                    "--framework {other:?} is not available: this build serves the demo with axum"
                ))
                }
            },
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Some(Args { addr }))
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
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let monitor = app::monitor(Vec::new())?;
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.addr))?;
    let base = format!("http://{}", listener.local_addr()?);
    println!("vitalsign demo (axum) listening on {base}");
    println!("try:");
    for path in [
        "/users/42",
        "/error",
        "/slow?ms=300",
        "/stream",
        "/panic",
        "/no/such/route",
        "/metrics",
        "/health/live",
    ] {
        println!("  curl -s {base}{path}");
    }
    println!("stop with Ctrl-C");
    axum::serve(listener, app::axum_app(&monitor))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
