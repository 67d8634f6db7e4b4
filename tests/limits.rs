//! Limits on what a peer can take: `--max-clients` connections at most,
//! and 10 s for a request head.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::{EventStream, Server, read_to_close, wait_for};

#[test]
fn a_connection_past_the_cap_gets_503_and_the_streams_go_on() {
    let server = Server::start(&["--interval", "50", "--max-clients", "2"]);
    let mut first = EventStream::open(&server, "/events");
    let mut second = EventStream::open(&server, "/events");
    first.next_tick();
    second.next_tick();

    // The third is answered at once, before it even sends a request.
    let answer = read_to_close(&mut server.connect());
    assert!(
        answer.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{answer}"
    );
    assert!(answer.contains("\r\nRetry-After: 5\r\n"), "{answer}");
    server.wait_for_log("refusing new ones with 503");

    let (before, _) = first.next_tick();
    assert_eq!(
        first.next_tick().0,
        before + 50,
        "existing streams keep every tick"
    );
    second.next_tick();

    // A place is given back when a connection ends.
    drop(second);
    let third = wait_for(|| {
        let stream = EventStream::open(&server, "/events");
        stream
            .head
            .starts_with("HTTP/1.1 200 OK\r\n")
            .then_some(stream)
    });
    assert!(third.is_some(), "a freed place is taken by the next viewer");
}

#[test]
fn a_head_trickled_in_a_byte_a_second_still_times_out_at_10_s() {
    let server = Server::start(&[]);
    let mut socket = server.connect();
    socket
        .set_read_timeout(Some(Duration::from_secs(1)))
        .expect("read timeout");
    let started = Instant::now();
    let mut answer = Vec::new();
    // Each byte arrives well within any per-read timeout; only a deadline
    // for the whole head stops this peer.
    for byte in b"GET / HTTP/1.1\r\nX-Slow: ".iter().cycle().take(20) {
        let _ = socket.write_all(&[*byte]); // fails once the server has closed
        let closed = socket.read_to_end(&mut answer).is_ok();
        if closed || !answer.is_empty() {
            break;
        }
    }
    let waited = started.elapsed();
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
        "{answer:?} after {waited:?}"
    );
    assert!(
        waited >= Duration::from_millis(9900),
        "not before the deadline: {waited:?}"
    );
    drop(socket);
    server.wait_for_log("\"-\" 408 ");
}
