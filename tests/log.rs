//! The log on stderr: one line per request, whose fields a request cannot
//! forge, and a stderr that nobody reads (a terminal paused with Ctrl-S,
//! `2>&1 | less` left open, a stuck log shipper) stops nothing: lines wait
//! in a bounded queue for the one thread that writes them, and past it are
//! dropped and counted.

mod common;

use std::io::{BufRead, BufReader};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use common::{EventStream, Server};

#[test]
fn a_quote_in_the_target_is_logged_escaped_so_one_line_holds_one_request() {
    let server = Server::start(&[]);
    let forged = "/x\"_200_-_\"GET_/admin\\";
    let answer = server.get(forged);
    assert!(answer.starts_with("HTTP/1.1 404 "), "{answer}");
    let line = server.wait_for_log("GET /x");
    let escaped = r#" "GET /x\x22_200_-_\x22GET_/admin\x5C HTTP/1.1" 404 14 bytes "#;
    assert!(line.contains(escaped), "{line}");
    assert_eq!(line.matches('"').count(), 2, "{line}");
}

#[test]
fn a_stderr_nobody_reads_stops_nothing_and_the_lines_dropped_are_counted() {
    let mut server = Server::start_with_stderr_unread(&["--max-connections", "50"]);
    // About 400 bytes a line: the pipe's 64 KiB fill after some 160 lines,
    // and the queue soon after; every request must still be answered.
    let name = "9".repeat(300);
    for k in 0..2000 {
        let answer = server.get(&format!("/nope-{name}"));
        assert!(answer.starts_with("HTTP/1.1 404 "), "request {k}: {answer}");
    }
    assert!(server.get("/").starts_with("HTTP/1.1 200 OK\r\n"));
    let mut stream = EventStream::open(&server, "/events");
    stream.next_tick();
    stream.next_tick();
    drop(stream);
    server.wait_until_idle();

    // Once stderr is read, the lines come, and the count of those dropped.
    let (lines, read) = mpsc::channel();
    let stderr = BufReader::new(server.take_stderr());
    thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let (mut logged, mut dropped) = (0, 0);
    // Lines and counts come until every request is told of, as written or as dropped.
    while logged + dropped < 2002 {
        let line = read
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("{logged} written, {dropped} dropped: where is the rest?"));
        match line.split_once(" log lines dropped") {
            Some((count, _)) => dropped += count.parse::<usize>().expect("a count"),
            None => logged += 1,
        }
    }
    assert!(dropped > 0, "lines were dropped");
    // 2,002 requests: each line was either written or counted, never both.
    assert_eq!(
        logged + dropped,
        2002,
        "{logged} written, {dropped} dropped"
    );
    let more = read.recv_timeout(Duration::from_secs(1));
    assert!(more.is_err(), "nothing more: {more:?}");
}
