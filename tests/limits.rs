//! `--max-connections`: the cap on open connections. Connections whose
//! head has not arrived give their slot up to newcomers; when every slot
//! holds real work, newcomers are told to come back later, in a way that
//! brings a browser back rather than losing it.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::{EventStream, Server, read_to_close, wait_for, without_date};

/// Opens a stream, trying again while the server answers "full".
fn open_when_admitted(server: &Server) -> EventStream {
    let admitted = wait_for(|| {
        let mut stream = EventStream::open(server, "/events");
        let opening = stream.next_block();
        let full = opening.get("") == Some("full, come back later");
        (!full).then_some(stream)
    });
    admitted.expect("a slot for a viewer")
}

fn stream_ticks(stream: &mut EventStream, count: u64, interval: u64) {
    let (first, _) = stream.next_tick();
    for k in 1..=count {
        assert_eq!(
            stream.next_tick().0,
            first + k * interval,
            "every tick, in order"
        );
    }
}

#[test]
fn a_full_server_tells_a_stream_to_retry_and_a_page_request_503() {
    let server = Server::start(&[
        "--interval",
        "50",
        "--max-connections",
        "2",
        "--retry",
        "1000",
    ]);
    let mut first = EventStream::open(&server, "/events");
    let mut second = EventStream::open(&server, "/events");
    first.next_tick();
    second.next_tick();

    // A stream request gets a 200 stream that ends at once after a retry
    // block: an EventSource comes back after `retry`, where a 503 would
    // make it give up for good.
    let mut turned = EventStream::open(&server, "/events");
    let head = without_date(&turned.head);
    assert!(
        head.starts_with("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"),
        "{head}"
    );
    let block = turned.next_block();
    assert_eq!(block.get(""), Some("full, come back later"));
    let retry: u64 = block.get("retry").expect("a retry").parse().expect("ms");
    assert!((1000..=1500).contains(&retry), "retry {retry}");
    let mut socket = turned.socket().try_clone().expect("clone");
    assert_eq!(read_to_close(&mut socket), "", "and then the stream ends");

    let answer = server.get("/");
    assert!(
        answer.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{answer}"
    );
    assert!(answer.contains("\r\nRetry-After: 5\r\n"), "{answer}");
    server.wait_for_log("turning newcomers away");

    // A 404 is the same answer, full or not, and is not logged as `full`.
    assert!(
        server
            .get("/nope")
            .starts_with("HTTP/1.1 404 Not Found\r\n")
    );
    let not_found = server.wait_for_log("\"GET /nope HTTP/1.1\" 404");
    assert!(!not_found.contains("(full)"), "{not_found}");
    assert!(
        server
            .wait_for_log("\"GET / HTTP/1.1\" 503")
            .contains("(full)")
    );

    // HEAD gets the same heads, and never a body, full or not.
    for path in ["/events", "/"] {
        let request = format!("HEAD {path} HTTP/1.1\r\nHost: test\r\n\r\n");
        let answer = server.exchange(request.as_bytes());
        let (_, body) = answer.split_once("\r\n\r\n").expect("a head");
        assert_eq!(body, "", "HEAD {path} on a full server: {answer}");
    }

    stream_ticks(&mut first, 5, 50);
    stream_ticks(&mut second, 5, 50);

    // A slot is given back when a stream ends.
    drop(second);
    stream_ticks(&mut open_when_admitted(&server), 2, 50);
}

#[test]
fn silent_connections_give_their_places_to_newcomers_oldest_first() {
    let server = Server::start(&["--interval", "50", "--max-connections", "4"]);
    let mut silent: Vec<_> = (0..6).map(|_| server.connect()).collect();
    // Six arrived for four slots: the two that waited longest were closed
    // to make room. Their reads see the end, with no answer.
    for (i, socket) in silent.iter_mut().enumerate().take(2) {
        assert_eq!(
            read_to_close(socket),
            "",
            "silent connection {i} was reclaimed"
        );
    }
    // Real requests still get in, each reclaiming another silent slot.
    let answer = server.get("/");
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    let mut stream = EventStream::open(&server, "/events");
    stream_ticks(&mut stream, 3, 50);
    assert_eq!(
        read_to_close(&mut silent[2]),
        "",
        "the oldest left was reclaimed"
    );

    // Threads stay bounded: one per slot, plus the idle ones.
    server.wait_until_threads_at_most(4 + common::IDLE_THREADS);
}

#[test]
fn a_newcomer_to_a_full_server_slow_with_its_head_is_closed_unanswered_never_408() {
    let server = Server::start(&["--interval", "50", "--max-connections", "1"]);
    let mut holder = EventStream::open(&server, "/events");
    holder.next_tick();
    // An error status would end an EventSource for good; a close is retried.
    for half in [
        "GET /events HTTP/1.1\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\n",
        "",
    ] {
        let mut slow = server.connect();
        slow.write_all(half.as_bytes()).expect("half a head");
        let started = Instant::now();
        let mut answer = String::new();
        slow.read_to_string(&mut answer).expect("read to the close");
        let waited = started.elapsed();
        assert_eq!(answer, "", "{half:?}: no status at all");
        assert!(waited >= Duration::from_millis(900), "{waited:?}");
        assert!(waited < Duration::from_secs(3), "{waited:?}");
    }
    holder.next_tick();
}

#[test]
fn a_flood_of_silent_connections_keeps_threads_bounded() {
    let server = Server::start(&["--max-connections", "10"]);
    let flood: Vec<_> = (0..300).map(|_| server.connect()).collect();
    let answer = server.get("/");
    assert!(
        answer.starts_with("HTTP/1.1 200 OK\r\n"),
        "a real request gets in: {answer}"
    );
    server.wait_until_threads_at_most(10 + common::IDLE_THREADS);
    drop(flood);
    server.wait_until_idle();
}
