//! `/events`: the response head, the opening block, the clock ticks, and the
//! `clients` count as viewers come and go.

mod common;

use std::io::Write;
use std::thread;
use std::time::{Duration, Instant};

use common::{EventStream, Server, unix_ms_now, without_date};

/// The stream's head, without its `Date` field (checked by `without_date`).
const STREAM_HEAD: &str = "HTTP/1.1 200 OK\r\n\
Content-Type: text/event-stream\r\n\
Cache-Control: no-cache, no-transform\r\n\
X-Accel-Buffering: no\r\n\
Connection: close\r\n\
\r\n";

#[test]
fn the_stream_head_is_exactly_these_bytes() {
    let server = Server::start(&["--interval", "100"]);
    let stream = EventStream::open(&server, "/events");
    assert_eq!(without_date(&stream.head), STREAM_HEAD);
}

#[test]
fn the_first_block_has_a_comment_the_retry_and_the_clients_count() {
    let server = Server::start(&["--interval", "100", "--retry", "4321"]);
    let mut stream = EventStream::open(&server, "/events");
    let first = stream.next_block();
    let fields: Vec<&str> = first.0.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        fields,
        ["", "retry", "event", "data"],
        "comment, retry, clients: {first:?}"
    );
    // Each stream's retry is drawn between --retry and 1.5 times that.
    let retry: u64 = first.get("retry").expect("retry").parse().expect("ms");
    assert!((4321..=6481).contains(&retry), "retry {retry}");
    assert_eq!(first.get("event"), Some("clients"));
    assert_eq!(first.get("data"), Some("1"));
    assert_eq!(first.get("id"), None, "the clients event carries no id");
}

#[test]
fn the_first_tick_goes_out_at_once_with_the_opening_block() {
    // An interval far longer than the read timeout: the first tick can only
    // arrive in time if it is sent at once.
    let server = Server::start(&["--interval", "60000"]);
    let before = unix_ms_now();
    let mut stream = EventStream::open(&server, "/events");
    stream.next_block();
    let (id, _) = stream.next_tick();
    let after = unix_ms_now();
    // Tick 0 is named by the interval boundary just before the stream began.
    assert_eq!(id % 60000, 0, "{id} is a whole minute");
    assert!(
        id <= after && before < id + 60000,
        "tick 0 is the minute the stream began in: {id}, {before} to {after}"
    );
}

#[test]
fn ids_are_the_tick_times_and_step_by_exactly_the_interval() {
    let server = Server::start(&["--interval", "50"]);
    let mut stream = EventStream::open(&server, "/events");
    let (first, _) = stream.next_tick();
    for k in 1..=10 {
        let (id, _) = stream.next_tick();
        assert_eq!(id, first + k * 50, "tick {k}");
        // The schedule is kept by sleeping until each tick is due, never
        // less: a tick is never sent before its own time.
        assert!(unix_ms_now() + 2 >= id, "tick {k} arrived before its time");
    }
}

#[test]
fn whole_second_intervals_show_rfc3339_seconds_matching_the_id() {
    let server = Server::start(&["--interval", "1000"]);
    let mut stream = EventStream::open(&server, "/events");
    for _ in 0..2 {
        let (id, data) = stream.next_tick();
        let secs = id / 1000;
        let time = format!(
            "{:02}:{:02}:{:02}Z",
            secs / 3600 % 24,
            secs / 60 % 60,
            secs % 60
        );
        assert_eq!(data.len(), "2026-11-24T09:13:25Z".len(), "{data}");
        assert_eq!(data.as_bytes()[10], b'T', "{data}");
        assert!(
            data.ends_with(&time),
            "{data} should end with {time} for id {id}"
        );
    }
}

#[test]
fn other_intervals_show_milliseconds() {
    let server = Server::start(&["--interval", "250"]);
    let mut stream = EventStream::open(&server, "/events");
    let (id, data) = stream.next_tick();
    let millis = format!(".{:03}Z", id % 1000);
    assert_eq!(data.len(), "2026-11-24T09:13:25.250Z".len(), "{data}");
    assert!(
        data.ends_with(&millis),
        "{data} should end with {millis} for id {id}"
    );
}

#[test]
fn the_query_string_does_not_change_the_route() {
    let server = Server::start(&["--interval", "100"]);
    let stream = EventStream::open(&server, "/events?since=yesterday");
    assert_eq!(without_date(&stream.head), STREAM_HEAD);
}

#[test]
fn head_on_the_stream_sends_the_head_and_closes() {
    let server = Server::start(&["--interval", "100"]);
    let answer = server.exchange(b"HEAD /events HTTP/1.1\r\nHost: test\r\n\r\n");
    assert_eq!(without_date(&answer), STREAM_HEAD);
}

#[test]
fn clients_goes_up_and_down_as_viewers_come_and_go() {
    let server = Server::start(&["--interval", "200"]);
    let mut first = EventStream::open(&server, "/events");
    assert_eq!(first.next_block().get("data"), Some("1"));

    let mut second = EventStream::open(&server, "/events");
    assert_eq!(
        second.next_block().get("data"),
        Some("2"),
        "a newcomer counts itself"
    );
    first.ticks_until_clients(2, 2);

    drop(second);
    // The viewer that left is noticed at once (a read returns 0 bytes), so
    // the next tick or the one after carries the new count.
    first.ticks_until_clients(1, 2);
    // It had ticks unread, so its close was a reset rather than a FIN.
    server.wait_for_log("(viewer left");
}

#[test]
fn a_vanished_viewer_ends_its_thread() {
    let server = Server::start(&["--interval", "100"]);
    server.wait_until_idle();
    let mut streams: Vec<EventStream> = (0..5)
        .map(|_| EventStream::open(&server, "/events"))
        .collect();
    for stream in &mut streams {
        stream.next_tick();
    }
    assert_eq!(
        server.threads(),
        common::IDLE_THREADS + 5,
        "the idle threads and one per stream"
    );
    drop(streams);
    server.wait_until_idle();
}

#[test]
fn a_request_that_arrives_a_few_bytes_at_a_time_is_served() {
    let server = Server::start(&["--interval", "100"]);
    let mut socket = server.connect();
    socket.set_nodelay(true).expect("nodelay");
    for byte in b"GET /events HTTP/1.1\r\nHost: test\r\n\r\n" {
        socket.write_all(&[*byte]).expect("send a byte");
        thread::sleep(Duration::from_millis(5));
    }
    let mut stream = EventStream::after_request(socket);
    assert_eq!(without_date(&stream.head), STREAM_HEAD);
    stream.next_tick();
}

#[test]
fn a_viewer_that_never_reads_does_not_hold_up_the_others() {
    let server = Server::start(&["--interval", "20"]);
    let mut stalled = server.connect();
    stalled
        .write_all(b"GET /events HTTP/1.1\r\nHost: test\r\n\r\n")
        .expect("send");
    // `stalled` never reads; its thread is the only one that can block.
    let mut reader = EventStream::open(&server, "/events");
    let (first, _) = reader.next_tick();
    for k in 1..=50 {
        assert_eq!(
            reader.next_tick().0,
            first + k * 20,
            "every tick arrives, none skipped"
        );
    }
    drop(stalled);
}

#[test]
fn a_viewer_that_closes_is_noticed_by_writing_within_two_intervals() {
    let server = Server::start(&["--interval", "200"]);
    let mut stream = EventStream::open(&server, "/events");
    stream.next_tick();
    let closed = Instant::now();
    drop(stream);
    // The next write draws a reset from the closed socket, the one after
    // fails: the stream ends at its second tick after the close at latest.
    server.wait_for_log("(viewer left)");
    let noticed = closed.elapsed();
    assert!(
        noticed < Duration::from_millis(2 * 200 + 150),
        "{noticed:?}"
    );
}

#[test]
fn long_intervals_get_a_keep_alive_comment_every_period_between_ticks() {
    let env = [("SSE_CLOCK_KEEP_ALIVE_MS", "100")];
    let server = Server::start_with_env(&["--interval", "350"], &env);
    let mut stream = EventStream::open(&server, "/events");
    stream.next_tick(); // tick 0, at once; tick 1 comes at the next boundary
    let (first, _) = stream.next_tick();
    // 350 ms between ticks, a keep-alive every 100 ms: three in between (after
    // any named events that go out with the tick).
    for _ in 0..3 {
        let block = stream.next_unnamed_block();
        assert_eq!(block.0, [(String::new(), "keep-alive".to_owned())]);
    }
    assert_eq!(
        stream.next_tick().0,
        first + 350,
        "the tick stays on schedule"
    );
}

#[test]
fn intervals_within_the_keep_alive_period_get_no_comments() {
    let env = [("SSE_CLOCK_KEEP_ALIVE_MS", "100")];
    let server = Server::start_with_env(&["--interval", "100"], &env);
    let mut stream = EventStream::open(&server, "/events");
    stream.next_block();
    for _ in 0..5 {
        let block = stream.next_unnamed_block();
        assert!(
            block.get("id").is_some(),
            "only ticks and named events: {block:?}"
        );
    }
}
