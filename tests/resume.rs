//! Resuming with `Last-Event-ID`: the missed ticks at once, then the same
//! schedule live; at most 300 replayed; ids we cannot resume from ignored
//! with a comment, never with an error status.

mod common;

use common::{Block, EventStream, Server, unix_ms_now};

fn resume(server: &Server, last_event_id: &str) -> EventStream {
    let stream = EventStream::open_with(
        server,
        "/events",
        &format!("Last-Event-ID: {last_event_id}\r\n"),
    );
    assert!(
        stream.head.starts_with("HTTP/1.1 200 OK\r\n"),
        "{}",
        stream.head
    );
    stream
}

fn comments(block: &Block) -> Vec<&str> {
    block
        .0
        .iter()
        .filter(|(name, _)| name.is_empty())
        .map(|(_, text)| text.as_str())
        .collect()
}

#[test]
fn missed_ticks_come_at_once_then_the_same_schedule_goes_on() {
    let server = Server::start(&["--interval", "100"]);
    let last = unix_ms_now() - 550;
    let mut stream = resume(&server, &last.to_string());
    let opening = stream.next_block();
    let note = comments(&opening)[1];
    assert!(
        note.starts_with(&format!("resuming after {last}: ")),
        "{note}"
    );
    // Ticks last+100 ... last+500 were missed; then it goes on live, on the
    // same phase: every tick exactly once, no gap, no duplicate.
    for k in 1..=9 {
        let (id, _) = stream.next_tick();
        assert_eq!(id, last + k * 100, "tick {k} after the last one seen");
        assert!(
            id <= unix_ms_now() + 2,
            "tick {k} is not sent before its time"
        );
    }
}

#[test]
fn at_most_300_missed_ticks_are_replayed_after_a_comment_that_counts_the_rest() {
    let server = Server::start(&["--interval", "10"]);
    let requested = unix_ms_now();
    let last = requested - 10_000; // 1000 ticks before the request
    let mut stream = resume(&server, &last.to_string());
    let opening = stream.next_block();
    let note = comments(&opening)[1];
    // "resuming after L: M missed ticks, S skipped, the last 300 follow"
    let numbers: Vec<u64> = note
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|word| word.parse().ok())
        .collect();
    let [after, missed, skipped, replayed] = numbers[..] else {
        panic!("unexpected note: {note}");
    };
    assert_eq!((after, replayed), (last, 300), "{note}");
    assert_eq!(missed - skipped, 300, "{note}");
    assert!(missed >= 1000, "{note}");
    for k in 0..310 {
        let (id, _) = stream.next_tick();
        assert_eq!(id, last + (skipped + 1 + k) * 10, "tick {k} of the replay");
    }
    // The replay ends with the most recent missed tick, not an older one:
    // the server's clock read at least `requested`, so the newest tick it
    // counted as missed is less than one interval before that.
    assert!(
        last + missed * 10 + 10 > requested,
        "replayed the most recent 300"
    );
}

fn assert_fresh_start_with_note(server: &Server, last_event_id: &str, why: &str) {
    let mut stream = resume(server, last_event_id);
    let opening = stream.next_block();
    assert_eq!(
        comments(&opening)[1],
        why,
        "Last-Event-ID {last_event_id:?}"
    );
    assert!(opening.get("retry").is_some(), "still in the first block");
    let (id, _) = stream.next_tick();
    assert!(
        id.abs_diff(unix_ms_now()) < 2000,
        "a fresh stream's tick 0 is now: {id}"
    );
}

#[test]
fn a_malformed_id_starts_fresh_with_a_comment() {
    let server = Server::start(&["--interval", "100"]);
    for bad in [
        "abc",
        "12x",
        "-5",
        "1.5",
        "99999999999999999999999",
        "\u{e9}",
    ] {
        let why = "Last-Event-ID ignored: not one tick id (decimal Unix ms)";
        assert_fresh_start_with_note(&server, bad, why);
    }
}

#[test]
fn an_id_in_the_future_or_older_than_a_day_starts_fresh_with_a_comment() {
    let server = Server::start(&["--interval", "100"]);
    let future = (unix_ms_now() + 60_000).to_string();
    assert_fresh_start_with_note(
        &server,
        &future,
        "Last-Event-ID ignored: it is in the future",
    );
    let stale = (unix_ms_now() - 25 * 60 * 60 * 1000).to_string();
    assert_fresh_start_with_note(
        &server,
        &stale,
        "Last-Event-ID ignored: it is more than a day old",
    );
}

#[test]
fn a_resumed_stream_works_after_a_restart_because_the_id_is_the_time() {
    let first = Server::start(&["--interval", "100"]);
    let mut stream = EventStream::open(&first, "/events");
    let (last, _) = stream.next_tick();
    drop(stream);
    drop(first);
    let second = Server::start(&["--interval", "100"]);
    let mut resumed = resume(&second, &last.to_string());
    for k in 1..=5 {
        assert_eq!(
            resumed.next_tick().0,
            last + k * 100,
            "tick {k} after the restart"
        );
    }
}

#[test]
fn a_resumed_phase_off_the_second_shows_milliseconds_and_is_kept_live() {
    let server = Server::start(&[]);
    let now = unix_ms_now();
    let last = now - now % 1000 - 1500; // half a second off the grid
    let mut stream = resume(&server, &last.to_string());
    stream.next_block();
    let (id, data) = stream.next_tick();
    assert_eq!(id, last + 1000, "the phase of the id it resumed from");
    assert!(
        data.ends_with(".500Z"),
        "{data}: the time it names, to the ms"
    );
    let (live, _) = stream.next_tick();
    assert_eq!(live % 1000, 500, "and live on the same phase");
}

#[test]
fn a_resumed_stream_with_nothing_missed_gets_its_head_and_opening_at_once() {
    // At a minute's interval, the next tick is up to a minute away: the
    // head and the opening block must not wait for it.
    let server = Server::start(&["--interval", "60000"]);
    let now = unix_ms_now();
    let last = now - now % 60000; // the tick of this minute: none missed
    let started = std::time::Instant::now();
    let mut stream = resume(&server, &last.to_string());
    let opening = stream.next_block();
    assert!(opening.get("retry").is_some(), "{opening:?}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(1),
        "the opening came after {:?}",
        started.elapsed()
    );
}

#[test]
fn the_query_resumes_like_the_field_and_the_field_comes_first() {
    let server = Server::start(&["--interval", "100"]);
    let last = unix_ms_now() - 250;
    let query = format!("/events?lastEventId={last}");
    let mut stream = EventStream::open(&server, &query);
    let note = comments(&stream.next_block())[1].to_owned();
    assert!(
        note.starts_with(&format!("resuming after {last}: ")),
        "{note}"
    );
    assert_eq!(stream.next_tick().0, last + 100, "resumed from the query");
    let field = format!("Last-Event-ID: {}\r\n", last - 100);
    let mut both = EventStream::open_with(&server, &query, &field);
    both.next_block();
    assert_eq!(both.next_tick().0, last, "resumed from the field");
}
