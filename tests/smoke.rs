//! The smoke set: one short test for each thing a viewer needs, so that a
//! binary built for another machine can be checked quickly. `.ci/run` runs
//! this file against the static builds and the 64-bit ARM glibc build, the
//! ARM ones under qemu-user, through `SSE_CLOCK_TEST_SERVER` (see
//! `tests/common/mod.rs`); plain `cargo test` runs it against the binary it
//! built.
//!
//! The other test files check each of these in full. These check only what
//! would break on another architecture (the bytes, the ids, the counts) and
//! nothing about time beyond the read timeout: under qemu every instruction
//! is emulated, so a time measured there says nothing about a real board.
//! For the same reason none of them reads `/proc`, where qemu's own threads
//! would be counted too.

mod common;

use common::{EventStream, Server};

const PAGE: &[u8] = include_bytes!("../static/index.html");

/// Asserts that `head` is a `200 OK` head holding each of `fields` (whole
/// lines), whatever else it holds.
fn assert_ok_with(head: &str, fields: &[&str]) {
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    for field in fields {
        assert!(
            head.contains(&format!("\r\n{field}\r\n")),
            "{field}: {head}"
        );
    }
}

#[test]
fn the_page() {
    let server = Server::start(&[]);
    let answer = server.get("/");
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head");
    assert_ok_with(
        &format!("{head}\r\n"),
        &[
            "Content-Type: text/html; charset=utf-8",
            &format!("Content-Length: {}", PAGE.len()),
        ],
    );
    assert_eq!(body.as_bytes(), PAGE);
}

#[test]
fn the_stream_head_and_the_first_ticks() {
    let server = Server::start(&["--interval", "100", "--retry", "4321"]);
    let mut stream = EventStream::open(&server, "/events");
    assert_ok_with(
        &stream.head,
        &[
            "Content-Type: text/event-stream",
            "Cache-Control: no-cache, no-transform",
            "X-Accel-Buffering: no",
            "Connection: close",
        ],
    );
    let opening = stream.next_block();
    let retry: u64 = opening.get("retry").expect("retry").parse().expect("ms");
    assert!((4321..=6481).contains(&retry), "retry {retry}");
    let (first, _) = stream.next_tick();
    for k in 1..=3 {
        let (id, data) = stream.next_tick();
        assert_eq!(id, first + k * 100, "tick {k}");
        // The time of day in the data is the id's, to the millisecond:
        // 64-bit milliseconds survive a 32-bit machine.
        let (secs, millis) = (id / 1000, id % 1000);
        let (hours, minutes) = (secs / 3600 % 24, secs / 60 % 60);
        let time = format!("T{hours:02}:{minutes:02}:{:02}.{millis:03}Z", secs % 60);
        assert!(data.ends_with(&time), "{data} for id {id}");
    }
}

#[test]
fn a_clients_event_as_a_viewer_comes_and_goes() {
    let server = Server::start(&["--interval", "100"]);
    let mut first = EventStream::open(&server, "/events");
    let opening = first.next_block();
    assert_eq!(opening.get("event"), Some("clients"));
    assert_eq!(opening.get("data"), Some("1"));
    let second = EventStream::open(&server, "/events");
    first.ticks_until_clients(2, 5);
    drop(second);
    first.ticks_until_clients(1, 5);
}

#[test]
fn a_resume_with_last_event_id() {
    let server = Server::start(&["--interval", "100"]);
    let (now, _) = EventStream::open(&server, "/events").next_tick();
    // Five ticks before one the server sent: on its phase, five missed.
    let last = now - 500;
    let mut stream =
        EventStream::open_with(&server, "/events", &format!("Last-Event-ID: {last}\r\n"));
    assert!(
        stream.head.starts_with("HTTP/1.1 200 OK\r\n"),
        "{}",
        stream.head
    );
    for k in 1..=7 {
        assert_eq!(
            stream.next_tick().0,
            last + k * 100,
            "tick {k} after {last}"
        );
    }
}

#[test]
fn a_bad_request_gets_400() {
    let server = Server::start(&[]);
    // Whitespace before a field's colon (RFC 9112 5.1).
    let answer = server.exchange(b"GET / HTTP/1.1\r\nHost : test\r\n\r\n");
    assert!(
        answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{answer}"
    );
    assert!(answer.ends_with("\r\n\r\n400 Bad Request\n"), "{answer}");
}

#[test]
fn the_full_server_answer() {
    let server = Server::start(&["--interval", "100", "--max-clients", "1"]);
    let mut viewer = EventStream::open(&server, "/events");
    let (first, _) = viewer.next_tick();

    // A stream request: a 200 stream that says to come back, then ends
    // (the whole answer is read to the server's close).
    let answer = server.get("/events");
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head");
    assert_ok_with(&format!("{head}\r\n"), &["Content-Type: text/event-stream"]);
    assert!(body.contains(": full, come back later\n"), "{body}");
    assert!(body.contains("\nretry: "), "{body}");

    // Anything else: 503 with Retry-After.
    let answer = server.get("/");
    assert!(
        answer.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{answer}"
    );
    assert!(answer.contains("\r\nRetry-After: 5\r\n"), "{answer}");

    // The viewer inside goes on as before.
    assert_eq!(viewer.next_tick().0, first + 100);
}
