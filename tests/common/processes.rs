//! Servers from Debian packages that tests start: Prometheus and Alertmanager, each in a
//! temporary directory, stopped by PID (kill, then wait) when dropped.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{client, free_port, require, External, ALERTMANAGER, PROMETHEUS};

/// A directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A new empty directory under the system's temporary directory.
    pub fn new(prefix: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "vitalsign-{prefix}-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    /// Writes `text` to `name` in the directory and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process killed (by its PID) and reaped on drop; its output goes to a log file in
/// its directory, shown by [`Daemon::log`] when a test fails.
pub struct Daemon {
    child: Child,
    pub base: String,
    log: PathBuf,
    // Last: removed after the process is gone.
    dir: TempDir,
}

impl Daemon {
    fn spawn(program: &str, args: &[String], port: u16, dir: TempDir) -> Daemon {
        let log = dir.0.join("output.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("start {program}: {e}"));
        Daemon {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
            dir,
        }
    }

    /// What the process wrote so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn dir(&self) -> &TempDir {
        &self.dir
    }

    /// `GET path` of its HTTP API, as JSON.
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        client()
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {}{path}: {e}", self.base))
            .json()
            .await
            .unwrap_or_else(|e| panic!("GET {}{path}: not JSON: {e}", self.base))
    }

    /// Waits (at most `deadline`) until `GET path` answers 200.
    pub async fn wait_ready(&self, path: &str, deadline: Duration) {
        let until = tokio::time::Instant::now() + deadline;
        loop {
            let ok = client()
                .get(format!("{}{path}", self.base))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                return;
            }
            assert!(
                tokio::time::Instant::now() < until,
                "{}{path} not ready within {deadline:?}; its output:\n{}",
                self.base,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `tool` in a new temporary directory holding `files` (name, text), with `args` made
/// from that directory and a free port; `None` when the run opted out of external servers
/// ([`require`]).
fn start(
    tool: &External,
    files: &[(&str, &str)],
    args: impl FnOnce(&Path, u16) -> Vec<String>,
) -> Option<Daemon> {
    if !require(tool) {
        return None;
    }
    let dir = TempDir::new(tool.package);
    for (name, text) in files {
        dir.write(name, text);
    }
    let port = free_port();
    let args = args(dir.path(), port);
    Some(Daemon::spawn(tool.program, &args, port, dir))
}

/// Starts Prometheus with `config` (prometheus.yml) and `files` (name, text) beside it.
pub fn start_prometheus(config: &str, files: &[(&str, &str)]) -> Option<Daemon> {
    start_prometheus_with(config, files, &[])
}

/// [`start_prometheus`] with more command-line flags (`--enable-feature=…`).
pub fn start_prometheus_with(
    config: &str,
    files: &[(&str, &str)],
    flags: &[&str],
) -> Option<Daemon> {
    let mut all = vec![("prometheus.yml", config)];
    all.extend_from_slice(files);
    start(&PROMETHEUS, &all, |dir, port| {
        let mut args = vec![
            format!("--config.file={}", dir.join("prometheus.yml").display()),
            format!("--storage.tsdb.path={}", dir.join("data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            // Firing alerts are sent again every second (the default is a minute).
            "--rules.alert.resend-delay=1s".to_owned(),
        ];
        args.extend(flags.iter().map(|flag| (*flag).to_owned()));
        args
    })
}

/// Starts Alertmanager with `config` (alertmanager.yml), clustering off.
pub fn start_alertmanager(config: &str) -> Option<Daemon> {
    start(
        &ALERTMANAGER,
        &[("alertmanager.yml", config)],
        |dir, port| {
            vec![
                format!("--config.file={}", dir.join("alertmanager.yml").display()),
                format!("--storage.path={}", dir.join("data").display()),
                format!("--web.listen-address=127.0.0.1:{port}"),
                // No gossip port: a lone instance.
                "--cluster.listen-address=".to_owned(),
            ]
        },
    )
}

/// The result of an instant query: the vector's elements (`metric`, `value`), or why not.
pub async fn query(prometheus: &Daemon, expr: &str) -> Result<Vec<serde_json::Value>, String> {
    let response = client()
        .get(format!("{}/api/v1/query", prometheus.base))
        .query(&[("query", expr)])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let json: serde_json::Value = response.json().await.map_err(|e| e.to_string())?;
    if json["status"] != "success" {
        return Err(format!("{expr}: {json}"));
    }
    json["data"]["result"]
        .as_array()
        .cloned()
        .ok_or_else(|| format!("{expr}: not a vector: {json}"))
}

/// The value of an instant query's single result, if there is exactly one.
pub async fn query_one(prometheus: &Daemon, expr: &str) -> Option<f64> {
    let result = query(prometheus, expr).await.ok()?;
    if result.len() != 1 {
        return None;
    }
    result[0]["value"][1].as_str()?.parse().ok()
}
