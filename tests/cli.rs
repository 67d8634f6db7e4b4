//! The command line: help, version, mistakes, and the `Listening on` line.

mod common;

use common::{Server, run_to_exit};

fn stderr_of(args: &[&str]) -> (Option<i32>, String) {
    let output = run_to_exit(args);
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn help_and_version_print_to_stdout_and_exit_0() {
    for flag in ["-h", "--help"] {
        let output = run_to_exit(&[flag]);
        assert_eq!(output.status.code(), Some(0));
        assert!(String::from_utf8_lossy(&output.stdout).starts_with("usage: sse-clock "));
    }
    for flag in ["-V", "--version"] {
        let output = run_to_exit(&[flag]);
        assert_eq!(output.status.code(), Some(0));
        assert_eq!(
            output.stdout,
            format!("sse-clock {}\n", env!("CARGO_PKG_VERSION")).as_bytes()
        );
    }
}

#[test]
fn a_mistake_gets_one_line_of_reason_then_the_usage_and_exit_2() {
    let mistakes: &[(&[&str], &str)] = &[
        (&["--bogus"], "unknown option \"--bogus\""),
        (&["--interval"], "--interval needs a value"),
        (
            &["--interval", "0"],
            "--interval takes a whole number from 1 to 86400000, not \"0\"",
        ),
        (&["--interval", "1.5"], "--interval takes a whole number"),
        (
            &["--retry", "-1"],
            "--retry takes a whole number from 0 to 86400000",
        ),
        (
            &["--max-clients", "0"],
            "--max-clients takes a whole number from 1 to 1000000",
        ),
        (
            &["--max-clients", "99999999999999999999999"],
            "--max-clients takes a whole number",
        ),
        (&["--addr", "8080"], "--addr takes HOST:PORT"),
        (&["--addr", "127.0.0.1:99999"], "--addr takes HOST:PORT"),
    ];
    for (args, reason) in mistakes {
        let (code, stderr) = stderr_of(args);
        assert_eq!(code, Some(2), "{args:?}");
        let mut lines = stderr.lines();
        let first = lines.next().unwrap_or_default();
        assert!(
            first.starts_with(&format!("sse-clock: {reason}")),
            "{args:?}: {first}"
        );
        assert_eq!(
            lines
                .next()
                .map(|line| line.starts_with("usage: sse-clock ")),
            Some(true),
            "{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn the_first_line_names_the_real_address() {
    let server = Server::start(&[]);
    assert_eq!(server.addr.ip().to_string(), "127.0.0.1");
    assert_ne!(
        server.addr.port(),
        0,
        "port 0 is replaced by the port the system picked"
    );
}

#[test]
fn an_address_in_use_is_one_line_and_exit_1() {
    let server = Server::start(&[]);
    let addr = server.addr.to_string();
    let (code, stderr) = stderr_of(&["--addr", &addr]);
    assert_eq!(code, Some(1));
    assert_eq!(
        stderr,
        format!("sse-clock: {addr} is already in use (another server on that port?)\n")
    );
}
