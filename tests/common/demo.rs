//! The demo on either framework, for tests that run one scenario on both. Included by test
//! crates that also include the demo's `app` and `actix_app` modules at their root.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use vitalsign::{MemorySink, Monitor, MonitorBuilder, Sink};

use crate::common::Server;
use crate::{actix_app, app};

/// The framework serving the demo.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framework {
    Axum,
    Actix,
}

/// Both frameworks, axum first.
pub const BOTH: [Framework; 2] = [Framework::Axum, Framework::Actix];

/// A running demo with its monitor and a collecting sink.
pub struct Ctx {
    pub framework: Framework,
    pub server: Server,
    pub monitor: Monitor,
    pub sink: Arc<MemorySink>,
}

/// Serves the demo on `framework` with the monitor `builder` makes (plus a `MemorySink`).
pub async fn start(framework: Framework, builder: MonitorBuilder) -> Ctx {
    let sink = Arc::new(MemorySink::new(100_000));
    let monitor = app::with_sinks(builder, vec![sink.clone() as Arc<dyn Sink>])
        .build()
        .unwrap();
    let server = match framework {
        Framework::Axum => Server::start(app::axum_app(&monitor)).await,
        Framework::Actix => {
            let monitor = monitor.clone();
            Server::start_actix(move || {
                actix_app::actix_server(&monitor, "127.0.0.1:0".parse().unwrap())
            })
        }
    };
    Ctx {
        framework,
        server,
        monitor,
        sink,
    }
}
