//! Faults the server must ride out, all about file descriptors: one per
//! connection, plus stdin, stdout, stderr and the listener. At start the
//! server makes room for its cap, or lowers the cap to the room there is
//! and says so. When `accept` still finds none free (EMFILE), the silent
//! connection that has waited longest is closed; the loop logs the burst
//! once, backs off instead of spinning, and serves again once one is free.

mod common;

use std::process::Command;
use std::thread;
use std::time::Duration;

use common::{EventStream, Server, read_to_close};

/// Lowers the running server's soft limit on open files to its lowest free
/// descriptor (a new one always takes the lowest), so that its next
/// `accept` fails with EMFILE. `false` when `prlimit` (util-linux) is missing.
fn allow_no_more_files(server: &Server) -> bool {
    let Some(prlimit) = common::find_program(&["prlimit"]) else {
        common::missing("prlimit is", "util-linux");
        return false;
    };
    let fds = std::fs::read_dir(format!("/proc/{}/fd", server.pid())).expect("read /proc fd");
    let open: Vec<u32> = fds
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    let lowest_free = (0..).find(|fd| !open.contains(fd)).expect("a free number");
    let status = Command::new(prlimit)
        .arg(format!("--pid={}", server.pid()))
        .arg(format!("--nofile={lowest_free}:"))
        .status()
        .expect("run prlimit");
    assert!(status.success(), "prlimit: {status}");
    true
}

#[test]
fn the_table_of_open_files_is_grown_for_the_cap_before_the_first_connection() {
    let server = Server::start(&["--max-connections", "3000"]);
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid()))
        .expect("read /proc status");
    let slots: usize = status
        .lines()
        .find_map(|line| line.strip_prefix("FDSize:"))
        .expect("an FDSize line")
        .trim()
        .parse()
        .expect("a number");
    // 3,000 connections, 8 turn-away sockets, 8 closing, and 4 of its own.
    assert!(
        slots >= 3000 + 20,
        "FDSize {slots}: grown before any thread shares it"
    );
    assert!(!server.log().contains("lowered"), "{}", server.log());
}

/// The default cap and what the server keeps for itself fit the usual soft
/// limit of 1024 open files (a fresh shell, systemd's default): no notice.
#[test]
fn the_default_cap_fits_the_usual_limit_of_1024_open_files() {
    let server = Server::start_with_fd_limit(&[], 1024);
    assert!(server.get("/").starts_with("HTTP/1.1 200 OK\r\n"));
    let log = server.stop_and_read_log();
    assert!(!log.contains("lowered"), "{log}");
    // 1010 and the 20 do not fit: the same limit lowers that cap.
    let over = Server::start_with_fd_limit(&["--max-connections", "1010"], 1024);
    over.wait_for_log("--max-connections lowered from 1010 to ");
}

#[test]
fn a_low_open_files_limit_lowers_the_cap_and_a_silent_flood_cannot_shut_the_page_out() {
    let server = Server::start_with_fd_limit(&["--max-connections", "1024"], 64);
    let lowered = server.wait_for_log("sse-clock: --max-connections lowered from 1024 to ");
    assert!(
        lowered.contains("with 64 files open, no more may be; for 1024, allow ")
            && lowered.contains("`ulimit -n ")
            && lowered.contains("`LimitNOFILE="),
        "{lowered}"
    );
    // Far more silent connections than the limit allows: each newcomer
    // takes the place of the one silent longest, and the page is answered.
    let flood: Vec<_> = (0..300).map(|_| server.connect()).collect();
    for _ in 0..5 {
        let answer = server.get("/");
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    }
    drop(flood);
}

#[test]
fn out_of_descriptors_the_connection_silent_longest_is_closed_for_a_newcomer() {
    // Silent connections are not timed out during the test: only the
    // reclaiming can free a descriptor.
    let env = [("SSE_CLOCK_HEAD_TIMEOUT_MS", "60000")];
    let server = Server::start_with_env(&["--max-connections", "10"], &env);
    let mut silent: Vec<_> = (0..3).map(|_| server.connect()).collect();
    common::wait_for(|| (server.threads() == 3 + common::IDLE_THREADS).then_some(()))
        .expect("3 admitted");
    if !allow_no_more_files(&server) {
        return;
    }
    let answer = server.get("/");
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert_eq!(read_to_close(&mut silent[0]), "", "the oldest was closed");
    let failed = server.wait_for_log("accept failed: ");
    assert!(failed.contains("os error 24"), "EMFILE: {failed}");
}

#[test]
fn accept_failures_are_logged_once_per_burst_and_do_not_spin() {
    let server = Server::start(&["--interval", "50"]);
    let mut streams: Vec<_> = (0..2)
        .map(|_| EventStream::open(&server, "/events"))
        .collect();
    for stream in &mut streams {
        stream.next_tick(); // their heads are in: no slot to reclaim
    }
    if !allow_no_more_files(&server) {
        return;
    }
    let waiting: Vec<_> = (0..3).map(|_| server.connect()).collect();
    let failed = server.wait_for_log("accept failed: ");
    assert!(failed.contains("os error 24"), "EMFILE: {failed}");

    // Accepting keeps failing while the descriptors stay taken.
    let before = server.cpu_ticks();
    thread::sleep(Duration::from_secs(1));
    let used = server.cpu_ticks() - before;
    assert!(
        used < 30,
        "the loop backs off: {used} ticks of CPU in one second"
    );
    assert_eq!(
        server.log().matches("accept failed").count(),
        1,
        "logged once per burst"
    );

    // Descriptors come free as the streams end: accepting works again,
    // says so once, and the server serves as before.
    drop((waiting, streams));
    let recovered = server.wait_for_log("accept works again after ");
    assert!(recovered.ends_with(" failures"), "{recovered}");
    assert!(server.get("/").starts_with("HTTP/1.1 200 OK\r\n"));
}
