//! One request per connection (RFC 9112 section 9.6): every answer says
//! `Connection: close`, the connection closes after it, and nothing sent
//! behind the first request is ever answered; and the deadline that bounds
//! how long the one head may take to arrive.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::Server;

const PAGE: &str = include_str!("../static/index.html");

#[test]
fn every_answer_closes_its_connection_and_a_second_request_is_never_answered() {
    let server = Server::start(&[]);
    let requests: [&[u8]; 5] = [
        b"GET / HTTP/1.1\r\nHost: test\r\n\r\n",
        b"HEAD / HTTP/1.1\r\nHost: test\r\n\r\n",
        b"GET /nope HTTP/1.1\r\nHost: test\r\n\r\n",
        b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost : test\r\n\r\n",
    ];
    for first in requests {
        // A second request right behind the first, as pipelining would send.
        let mut two = first.to_vec();
        two.extend_from_slice(b"GET /index.html HTTP/1.1\r\nHost: test\r\n\r\n");
        let answer = server.exchange(&two);
        let request = String::from_utf8_lossy(first);
        assert_eq!(
            answer.matches("HTTP/1.1 ").count(),
            1,
            "{request:?}: {answer}"
        );
        let (head, _) = answer.split_once("\r\n\r\n").expect("a whole head");
        assert!(
            head.ends_with("\r\nConnection: close"),
            "{request:?}: {head}"
        );
        assert!(!head.contains("keep-alive"), "{head}");
    }
}

#[test]
fn a_client_that_keeps_its_side_open_still_sees_the_close() {
    let server = Server::start(&[]);
    let mut socket = server.connect();
    socket
        .write_all(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
        .expect("send");
    let started = Instant::now();
    let mut answer = String::new();
    socket
        .read_to_string(&mut answer)
        .expect("read to the close");
    assert!(answer.ends_with(PAGE), "the whole page, then the close");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_head_trickled_in_a_byte_at_a_time_still_times_out() {
    let server = Server::start_with_env(&[], &[("SSE_CLOCK_HEAD_TIMEOUT_MS", "600")]);
    let mut socket = server.connect();
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("read timeout");
    let started = Instant::now();
    let mut answer = Vec::new();
    // Each byte arrives well within any per-read timeout; only a deadline
    // for the whole head stops this peer.
    for byte in b"GET / HTTP/1.1\r\nX-Slow: ".iter().cycle().take(100) {
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
        waited >= Duration::from_millis(590),
        "not before the deadline: {waited:?}"
    );
    drop(socket);
    server.wait_for_log("\"-\" 408 ");
}
