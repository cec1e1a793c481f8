//! The vitalsign demo: a small axum service with monitoring on every route.
//!
//! ```text
//! cargo run --release --example demo -- --addr 127.0.0.1:3000 --framework axum
//! ```

mod actix_app;
mod app;

use std::net::SocketAddr;
use std::process::ExitCode;

const USAGE: &str = "\
usage: demo [--addr HOST:PORT] [--framework axum|actix]

  --addr HOST:PORT     address to listen on (default 127.0.0.1:3000)
  --framework NAME     web framework serving the demo: axum (default) or actix
  -h, --help           print this help";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Framework {
    Axum,
    Actix,
}

struct Args {
    addr: SocketAddr,
    framework: Framework,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut addr: SocketAddr = "127.0.0.1:3000".parse().expect("valid default");
    let mut framework = Framework::Axum;
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
            "--framework" => {
                framework = match value("--framework")?.as_str() {
                    "axum" => Framework::Axum,
                    "actix" => Framework::Actix,
                    other => {
                        return Err(format!("--framework {other:?} is not one of axum, actix"))
                    }
                }
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Some(Args { addr, framework }))
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

/// Prints where the demo listens and what to try.
fn print_banner(framework: &str, addr: SocketAddr) {
    let base = format!("http://{addr}");
    println!("vitalsign demo ({framework}) listening on {base}");
    println!("try:");
    for path in [
        "/users/42",
        "/error",
        "/slow?ms=300",
        "/stream",
        "/panic",
        "/api/v1/orders/7/items/3",
        "/no/such/route",
        "/metrics",
        "/health/live",
    ] {
        println!("  curl -s {base}{path}");
    }
    println!("stop with Ctrl-C");
}

async fn serve_axum(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let monitor = app::monitor(Vec::new())?;
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.addr))?;
    print_banner("axum", listener.local_addr()?);
    axum::serve(listener, app::axum_app(&monitor))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

async fn serve_actix(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let monitor = app::monitor(Vec::new())?;
    let (server, addrs) = actix_app::actix_server(&monitor, args.addr)
        .map_err(|e| format!("cannot listen on {}: {e}", args.addr))?;
    print_banner("actix", addrs[0]);
    let handle = server.handle();
    actix_web::rt::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        handle.stop(true).await;
    });
    server.await?;
    Ok(())
}
