//! A client written from the WHATWG parsing rules (HTML 9.2.5 and 9.2.6),
//! not a browser, keeps its place through every way a stream ends: a full
//! server's answer, a resumed stream's opening that missed nothing, and a
//! stream that ends at its age. Such a client starts each stream with an
//! empty last-event-ID buffer and copies that buffer into its last event ID
//! at every blank line, with `data` or without ("dispatch the event", step
//! 1), so every block before a stream's first tick must carry `id:`.
//! Browsers happen to keep the previous id, so the browser tests cannot
//! tell. Also here: a viewer that never reads is let go at the stream's age.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{EventStream, Server};

/// What a spec-exact `EventSource` keeps across its streams.
#[derive(Default)]
struct Source {
    /// "the last event ID string of the event source", sent back as
    /// `Last-Event-ID` when not empty.
    last_event_id: String,
    /// The ids of the `message` events dispatched, in order.
    ticks: Vec<u64>,
    /// The reconnection time, from `retry:`.
    retry_ms: Option<u64>,
    /// Blank lines seen, and comments, to know where the test is.
    dispatches: usize,
    comments: Vec<String>,
}

/// One stream, parsed line by line as 9.2.6 says.
struct Parser {
    data: String,
    event_type: String,
    /// "the last event ID buffer": empty at the start of every stream.
    last_event_id: String,
}

impl Source {
    /// Connects as an `EventSource` reconnects: `Last-Event-ID` only when
    /// the last event ID string is not empty (9.2.4).
    fn connect(&self, server: &Server) -> BufReader<TcpStream> {
        let mut socket = server.connect();
        let mut request = "GET /events HTTP/1.1\r\nHost: test\r\n".to_owned();
        if !self.last_event_id.is_empty() {
            request += &format!("Last-Event-ID: {}\r\n", self.last_event_id);
        }
        request += "\r\n";
        socket.write_all(request.as_bytes()).expect("send");
        let mut reader = BufReader::new(socket);
        let mut line = String::new();
        while line != "\r\n" {
            line.clear();
            assert!(reader.read_line(&mut line).expect("read the head") > 0);
        }
        reader
    }

    /// Reads and interprets lines until `until` says stop or the stream ends.
    fn read(&mut self, reader: &mut BufReader<TcpStream>, mut until: impl FnMut(&Source) -> bool) {
        let mut parser = Parser {
            data: String::new(),
            event_type: String::new(),
            last_event_id: String::new(),
        };
        while !until(self) {
            let mut line = String::new();
            if reader.read_line(&mut line).expect("read a line") == 0 {
                return; // the end of the stream: a pending event is discarded
            }
            let line = line.strip_suffix('\n').unwrap_or(&line);
            self.interpret(&mut parser, line.strip_suffix('\r').unwrap_or(line));
        }
    }

    fn interpret(&mut self, parser: &mut Parser, line: &str) {
        if line.is_empty() {
            return self.dispatch(parser);
        }
        if let Some(comment) = line.strip_prefix(':') {
            return self.comments.push(comment.trim_start().to_owned());
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => parser.event_type = value.to_owned(),
            "data" => {
                parser.data.push_str(value);
                parser.data.push('\n');
            }
            "id" if !value.contains('\0') => parser.last_event_id = value.to_owned(),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                self.retry_ms = value.parse().ok();
            }
            _ => {}
        }
    }

    /// "dispatch the event", steps 1 to 3, and the type for step 6.
    fn dispatch(&mut self, parser: &mut Parser) {
        self.dispatches += 1;
        self.last_event_id.clone_from(&parser.last_event_id);
        if parser.data.is_empty() {
            parser.event_type.clear();
            return;
        }
        if parser.event_type.is_empty() || parser.event_type == "message" {
            self.ticks
                .push(self.last_event_id.parse().expect("a tick's id"));
        }
        parser.data.clear();
        parser.event_type.clear();
    }

    /// The ticks seen must follow each other one interval apart: none lost,
    /// none twice.
    fn assert_no_tick_lost(&self, interval_ms: u64) {
        for pair in self.ticks.windows(2) {
            assert_eq!(pair[1], pair[0] + interval_ms, "ticks {:?}", self.ticks);
        }
    }
}

#[test]
fn a_full_server_s_answer_keeps_the_client_s_place() {
    let server = Server::start(&["--interval", "100", "--max-connections", "1"]);
    let mut source = Source::default();
    let mut stream = source.connect(&server);
    source.read(&mut stream, |source| source.ticks.len() == 3);
    drop(stream);
    server.wait_until_idle();
    let mut holder = EventStream::open(&server, "/events");
    holder.next_tick();
    let place = source.last_event_id.clone();
    // The full server's stream ends at once; its blank line dispatches.
    let mut full = source.connect(&server);
    source.read(&mut full, |_| false);
    assert_eq!(
        source.last_event_id, place,
        "the full server's answer kept it"
    );
    drop(holder);
    server.wait_until_idle();
    let mut resumed = source.connect(&server);
    source.read(&mut resumed, |source| source.ticks.len() == 12);
    source.assert_no_tick_lost(100);
}

#[test]
fn a_resumed_opening_that_missed_nothing_keeps_the_client_s_place() {
    // Long enough that the client reconnects before the next tick is due.
    let server = Server::start(&["--interval", "500"]);
    let mut source = Source::default();
    let mut stream = source.connect(&server);
    source.read(&mut stream, |source| source.ticks.len() == 2);
    drop(stream);
    let place = source.last_event_id.clone();
    // The opening only, nothing missed: the connection breaks after it.
    let mut opening = source.connect(&server);
    let dispatched = source.dispatches;
    source.read(&mut opening, |source| source.dispatches > dispatched);
    let resuming = format!("resuming after {place}: 0 missed ticks follow");
    assert!(source.comments.contains(&resuming), "{:?}", source.comments);
    assert_eq!(source.ticks.len(), 2, "nothing missed, no tick yet");
    assert_eq!(source.last_event_id, place, "the opening kept it");
    drop(opening);
    let mut resumed = source.connect(&server);
    source.read(&mut resumed, |source| source.ticks.len() == 5);
    source.assert_no_tick_lost(500);
}

#[test]
fn a_stream_ends_at_its_age_and_is_resumed_at_once_with_nothing_lost() {
    let server = Server::start(&["--interval", "100", "--max-stream-age", "1"]);
    let mut source = Source::default();
    let started = Instant::now();
    let mut stream = source.connect(&server);
    source.read(&mut stream, |_| false);
    let lived = started.elapsed();
    // Each stream's age is drawn between 1 s and 1.5 s; it ends with a tick.
    assert!(
        Duration::from_millis(1000) <= lived && lived < Duration::from_millis(1700),
        "{lived:?}"
    );
    assert_eq!(source.retry_ms, Some(250), "come back at once");
    let seen = source.ticks.len();
    let mut resumed = source.connect(&server);
    source.read(&mut resumed, |source| source.ticks.len() == seen + 5);
    source.assert_no_tick_lost(100);
    server.wait_for_log("events written (its age)");
}

#[test]
fn a_viewer_that_never_reads_is_let_go_at_the_stream_s_age() {
    let server = Server::start(&["--interval", "100", "--max-stream-age", "1"]);
    server.wait_until_idle();
    let mut stalled = server.connect();
    stalled
        .write_all(b"GET /events HTTP/1.1\r\nHost: test\r\n\r\n")
        .expect("send");
    // `stalled` never reads and never closes: only the age frees its thread
    // (after up to 1.5 s, and 2 s of waiting for the client's close).
    let line = server.wait_for_log_within("(its age)", Duration::from_secs(6));
    assert!(line.contains("\" 200 "), "{line}");
    server.wait_until_idle();
    drop(stalled);
}
