//! The one-screen server (`src/bin/one-screen.rs`), the lesson's first step, through its
//! binary: the smoke set for what it has (the page, the stream's head and ticks, resume), and
//! what it does right where the tutorial's server goes wrong: ticks on whole seconds, ids that
//! resume without loss, a thread that ends when its viewer leaves, a bounded head. The README's
//! listings of it are these bytes (`Date`, ids and times aside). `.ci/run` runs this file by name.

mod common;

use std::io::{Read, Write};
use std::thread;
use std::time::Duration;

use common::{Block, EventStream, Server, read_to_close, unix_ms_now, without_date};

const BINARY: &str = env!("CARGO_BIN_EXE_one-screen");
const PAGE: &[u8] = include_bytes!("../static/index.html");
const SOURCE: &str = include_str!("../src/bin/one-screen.rs");

/// The head every stream starts with, its `Date` taken out by `without_date`.
const STREAM_HEAD: &str = "HTTP/1.1 200 OK\r\n\
Content-Type: text/event-stream\r\n\
Cache-Control: no-cache\r\n\
Connection: close\r\n\
\r\n";

fn start() -> Server {
    Server::start_binary(BINARY)
}

/// A block as the server wrote it: `name: value\n` lines, then the blank line
/// (`next_block` has checked that each line ended in one LF).
fn wire(block: &Block) -> String {
    let lines: String = block.0.iter().map(|(n, v)| format!("{n}: {v}\n")).collect();
    lines + "\n"
}

/// The tick named `id`, its data the same time in RFC 3339, computed here
/// without chrono: days since 1970 to a civil date (H. Hinnant's algorithm).
fn tick(id: u64) -> String {
    let (days, secs) = ((id / 1000 / 86_400) as i64, id / 1000 % 86_400);
    let z = days + 719_468;
    let (era, doe) = (z.div_euclid(146_097), z.rem_euclid(146_097));
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    format!("id: {id}\ndata: {year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z\n\n")
}

#[test]
fn tick_dates_in_this_test_are_right() {
    assert_eq!(
        tick(1_795_618_800_000),
        "id: 1795618800000\ndata: 2026-11-25T15:00:00Z\n\n"
    );
    assert_eq!(
        tick(951_782_400_000),
        "id: 951782400000\ndata: 2000-02-29T00:00:00Z\n\n"
    );
}

#[test]
fn the_file_fits_one_screen_of_150_lines() {
    let lines = SOURCE.lines().count();
    assert!(lines <= 150, "src/bin/one-screen.rs has {lines} lines");
}

#[test]
fn the_page() {
    let server = start();
    let answer = server.get("/");
    let head = format!(
        "HTTP/1.1 200 OK\r\n\
         Content-Type: text/html; charset=utf-8\r\n\
         Content-Length: {}\r\n\
         Connection: close\r\n\
         \r\n",
        PAGE.len()
    );
    let answer = without_date(&answer);
    assert_eq!(answer.as_bytes(), [head.as_bytes(), PAGE].concat());
}

#[test]
fn the_stream_head_retry_and_ticks_on_whole_seconds() {
    let server = start();
    let opened_ms = unix_ms_now();
    let mut stream = EventStream::open(&server, "/events");
    assert_eq!(without_date(&stream.head), STREAM_HEAD);
    assert_eq!(wire(&stream.next_block()), "retry: 3000\n\n");
    // The first tick is this second's, sent at once; each next one on its
    // whole second, not before it (not a second after each write).
    let first = stream.next_tick().0;
    assert_eq!(first % 1000, 0, "a whole second: {first}");
    assert!(
        first <= opened_ms + 1000 && opened_ms < first + 2000,
        "{first} at {opened_ms}"
    );
    for k in 1..=2 {
        let block = stream.next_block();
        let arrived_ms = unix_ms_now();
        let id = first + k * 1000;
        assert_eq!(wire(&block), tick(id), "tick {k}");
        assert!(arrived_ms >= id, "tick {id} arrived early, at {arrived_ms}");
    }
}

#[test]
fn a_resume_sends_every_tick_after_the_last_event_id() {
    let server = start();
    let now = EventStream::open(&server, "/events").next_tick().0;
    let last = now - 3000; // three ticks missed since, the fourth still to come
    let field = format!("Last-Event-ID: {last}\r\n");
    let mut stream = EventStream::open_with(&server, "/events", &field);
    assert_eq!(without_date(&stream.head), STREAM_HEAD);
    assert_eq!(wire(&stream.next_block()), "retry: 3000\n\n");
    for k in 1..=4 {
        assert_eq!(
            wire(&stream.next_block()),
            tick(last + k * 1000),
            "tick {k}"
        );
    }
}

#[test]
fn an_old_id_replays_at_most_300_ticks_and_a_future_or_bad_one_none() {
    let server = start();
    let mut old = EventStream::open_with(&server, "/events", "Last-Event-ID: 1000\r\n");
    let now = unix_ms_now();
    old.next_block(); // retry
    let first = old.next_tick().0;
    // 300 seconds before the server's now, which is at most a second before ours.
    assert!(
        first + 302_000 > now && first + 299_000 <= now,
        "{first} at {now}"
    );
    for id in [format!("{}", now + 3_600_000), "soon".to_owned()] {
        let field = format!("Last-Event-ID: {id}\r\n");
        let mut fresh = EventStream::open_with(&server, "/events", &field);
        fresh.next_block();
        let first = fresh.next_tick().0;
        assert!(
            first <= unix_ms_now() && first + 2000 > now,
            "{id}: {first} at {now}"
        );
    }
}

#[test]
fn a_viewer_that_leaves_ends_its_thread() {
    let server = start();
    let viewers: Vec<EventStream> = (0..3)
        .map(|_| {
            let mut viewer = EventStream::open(&server, "/events");
            viewer.next_tick();
            viewer
        })
        .collect();
    assert_eq!(
        server.threads(),
        4,
        "the accepting thread and one per viewer"
    );
    drop(viewers);
    // The first write after a close is answered with a reset, the next fails.
    server.wait_until_idle();
    let log = server.stop_and_read_log();
    assert_eq!(log.matches("ended: ").count(), 3, "{log}");
}

#[test]
fn other_paths_get_404_other_methods_501_and_other_lines_400() {
    let server = start();
    for (request, status) in [
        ("GET /nope HTTP/1.1\r\n\r\n", "404 Not Found"),
        (
            "POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
            "501 Not Implemented",
        ),
        ("GET / HTTP/2.0\r\n\r\n", "400 Bad Request"),
        ("hello\r\n\r\n", "400 Bad Request"),
    ] {
        let answer = without_date(&server.exchange(request.as_bytes()));
        let body = format!("{status}\n");
        let expected = format!(
            "HTTP/1.1 {status}\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             Content-Length: {}\r\n\
             Connection: close\r\n\
             \r\n\
             {body}",
            body.len()
        );
        assert_eq!(answer, expected, "{request:?}");
    }
}

#[test]
fn a_head_in_pieces_is_read_whole() {
    let server = start();
    let mut socket = server.connect();
    for piece in ["GET /nope H", "TTP/1.1\r\nHo", "st: x\r", "\n\r\n"] {
        socket.write_all(piece.as_bytes()).expect("send a piece");
        thread::sleep(Duration::from_millis(50)); // each piece its own read
    }
    let answer = read_to_close(&mut socket);
    assert!(answer.starts_with("HTTP/1.1 404 Not Found\r\n"), "{answer}");
}

#[test]
fn a_head_over_8_kib_is_closed_unanswered() {
    let server = start();
    let mut socket = server.connect();
    let long = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(9000));
    let _ = socket.write_all(long.as_bytes()); // the server may close before the end
    let mut answer = Vec::new();
    let _ = socket.read_to_end(&mut answer); // a FIN or a reset, but no answer
    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
}

#[test]
fn anything_but_addr_on_the_command_line_gets_the_usage_and_status_2() {
    let output = std::process::Command::new(BINARY)
        .arg("--interval")
        .output()
        .expect("run one-screen");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr, "one-screen: usage: one-screen [--addr HOST:PORT]\n");
    assert!(output.stdout.is_empty());
}
