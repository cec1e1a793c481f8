//! The rule for tests that need an external server (promtool, prometheus, influxd): a missing
//! one fails the test with the install instruction; only the explicit opt-out under
//! `scripts/test.sh` skips it, and then the skip is written where the script counts it.
//!
//! This binary changes its own `PATH` and environment, so it holds a single test.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};

use common::*;

/// The panic message of `f`, or `None` if it returned.
fn panic_message(f: impl FnOnce()) -> Option<String> {
    let payload = catch_unwind(AssertUnwindSafe(f)).err()?;
    Some(
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default(),
    )
}

/// Regression (review item 14): with promtool, prometheus and influxd absent and `CI` unset,
/// the tests that need them returned early or skipped their promtool check (a note on captured
/// stderr), so `cargo test --workspace` passed on a fresh machine without testing.
#[test]
fn a_missing_server_fails_unless_the_run_opts_out_under_the_script() {
    let empty = std::env::temp_dir().join(format!("vitalsign-empty-path-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    std::env::set_var("PATH", &empty);
    std::env::remove_var(SKIP_EXTERNAL);
    std::env::remove_var(SKIP_LOG);
    std::env::set_var("CI", "false");

    let text = "# HELP up Up.\n# TYPE up gauge\nup 1\n";
    for (tool, package) in [
        (&PROMTOOL, "prometheus"),
        (&PROMETHEUS, "prometheus"),
        (&INFLUXD, "influxdb"),
    ] {
        let message = panic_message(|| {
            require(tool);
        })
        .unwrap_or_else(|| panic!("{} is missing, yet require passed", tool.program));
        assert!(
            message.contains(&format!("sudo apt-get install {package}"))
                && message.contains("bash scripts/test.sh"),
            "no install instruction: {message}"
        );
    }
    let message = panic_message(|| promtool_check(text))
        .expect("promtool_check passes without promtool outside CI");
    assert!(message.contains("apt-get install prometheus"), "{message}");

    // The opt-out alone is refused: nothing would count the skips at the end of the run.
    std::env::set_var(SKIP_EXTERNAL, "1");
    let message = panic_message(|| promtool_check(text)).expect("a skip nobody counts");
    assert!(message.contains("scripts/test.sh"), "{message}");

    // Under the script: skipped, and each skip is one line of the log.
    let log = empty.join("skipped.log");
    std::env::set_var(SKIP_LOG, &log);
    assert_eq!(panic_message(|| promtool_check(text)), None);
    assert!(!require(&INFLUXD));
    let test = std::thread::current().name().unwrap().to_owned();
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        format!("promtool\texternal_servers::{test}\ninfluxd\texternal_servers::{test}\n")
    );
    std::fs::remove_dir_all(&empty).unwrap();
}
