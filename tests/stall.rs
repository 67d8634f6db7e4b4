//! A viewer that stops reading: its socket buffers fill, the server's write
//! blocks, and once a write has been blocked for the write timeout the
//! stream is dropped and its thread ends, while other viewers go on.
//!
//! Slow (the loopback buffers hold megabytes: about 80 s at one event per
//! ms on the project's machine), so it is ignored by `cargo test`; `.ci/run`
//! runs it on its own:
//!
//! ```text
//! cargo test --test stall -- --ignored
//! ```

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::{EventStream, Server};

#[test]
#[ignore = "slow: fills the socket buffers (about 80 s); run with --ignored"]
fn a_viewer_that_stops_reading_is_dropped_after_the_write_timeout() {
    let env = [("SSE_CLOCK_WRITE_TIMEOUT_MS", "500")];
    let server = Server::start_with_env(&["--interval", "1"], &env);
    let mut stalled = server.connect();
    stalled
        .write_all(b"GET /events HTTP/1.1\r\nHost: test\r\n\r\n")
        .expect("send");
    // `stalled` never reads a byte from here on.
    let started = Instant::now();
    let line = server.wait_for_log_within("(viewer stopped reading)", Duration::from_secs(300));
    eprintln!(
        "dropped after {:.1} s: {line}",
        started.elapsed().as_secs_f64()
    );

    // Its thread is gone, and a new viewer is served as usual.
    server.wait_until_idle();
    let mut viewer = EventStream::open(&server, "/events");
    assert_eq!(
        viewer.next_block().get("data"),
        Some("1"),
        "the stalled viewer no longer counts"
    );
    viewer.next_tick();
    drop(stalled);
}
