//! Faults the server must ride out: running out of file descriptors makes
//! `accept` fail; the loop logs that once per burst, backs off instead of
//! spinning, and serves again as soon as descriptors are free.

mod common;

use std::thread;
use std::time::Duration;

use common::Server;

#[test]
fn accept_failures_are_logged_once_per_burst_and_do_not_spin() {
    // 12 descriptors: stdin, stdout, stderr, the listener, and 8 to spare.
    let server = Server::start_with_fd_limit(&[], 12);
    let silent: Vec<_> = (0..12).map(|_| server.connect()).collect();
    let failed = server.wait_for_log("accept failed: ");
    assert!(
        failed.contains("os error 24"),
        "out of descriptors (EMFILE): {failed}"
    );

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

    // Descriptors come free as those connections close: accepting works
    // again, says so once, and the server serves as before.
    drop(silent);
    let recovered = server.wait_for_log("accept works again after ");
    assert!(recovered.ends_with(" failures"), "{recovered}");
    assert!(server.get("/").starts_with("HTTP/1.1 200 OK\r\n"));
}
