//! The clock follows the system clock. The real binary runs under
//! libfaketime with only its wall clock faked (the monotonic clock stays
//! true, as when NTP steps a board's clock or a laptop wakes from suspend);
//! the fake offset is read from a file at every call, and the test rewrites
//! that file under an open stream: 1 h forward, then 2 h back. Within one
//! interval of each step the stream names the faked now, says so in a
//! comment, and sends no burst of catch-up ticks; a new stream, `Date` and
//! the judging of `Last-Event-ID` follow too.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{Block, EventStream, Server, missing, unix_ms_now};

const HOUR_MS: i64 = 60 * 60 * 1000;

/// Debian's libfaketime (package `faketime`), for this machine's architecture.
fn libfaketime() -> Option<PathBuf> {
    let multiarch = format!("{}-linux-gnu", std::env::consts::ARCH);
    [
        format!("/usr/lib/{multiarch}/faketime/libfaketime.so.1"),
        "/usr/lib/faketime/libfaketime.so.1".to_owned(),
        "/usr/local/lib/faketime/libfaketime.so.1".to_owned(),
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|path| path.is_file())
}

/// A server whose wall clock is the real one plus what `offset` sets.
struct Faked {
    server: Server,
    file: PathBuf,
    offset_ms: i64,
}

impl Faked {
    fn start(name: &str, args: &[&str]) -> Option<Faked> {
        let Some(library) = libfaketime() else {
            missing("libfaketime", "faketime");
            return None;
        };
        let file = format!("sse-clock-faketime-{}-{name}", std::process::id());
        let file = std::env::temp_dir().join(file);
        // `+0`: real time; libfaketime reads `+N`/`-N` as seconds from now.
        std::fs::write(&file, "+0\n").expect("write the faketime file");
        let library = library.to_str().expect("a UTF-8 path").to_owned();
        let path = file.to_str().expect("a UTF-8 path").to_owned();
        let env = [
            ("LD_PRELOAD", library.as_str()),
            ("FAKETIME_TIMESTAMP_FILE", path.as_str()),
            ("FAKETIME_NO_CACHE", "1"),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
        ];
        let server = Server::start_with_env(args, &env);
        Some(Faked {
            server,
            file,
            offset_ms: 0,
        })
    }

    /// Steps the server's wall clock to real time plus `offset_ms`.
    fn step_to(&mut self, offset_ms: i64) {
        let seconds = offset_ms / 1000;
        std::fs::write(&self.file, format!("{seconds:+}\n")).expect("rewrite the faketime file");
        self.offset_ms = offset_ms;
    }

    /// What the server's wall clock reads now, in Unix ms.
    fn now_ms(&self) -> i64 {
        i64::try_from(unix_ms_now()).expect("fits") + self.offset_ms
    }
}

impl Drop for Faked {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.file);
    }
}

/// The next block that is a tick, and the comments read on the way.
fn next_tick_block(stream: &mut EventStream) -> (i64, Vec<String>) {
    let mut comments = Vec::new();
    loop {
        let Block(fields) = stream.next_block();
        comments.extend(
            fields
                .iter()
                .filter(|(name, _)| name.is_empty())
                .map(|(_, text)| text.clone()),
        );
        let id = fields.iter().find(|(name, _)| name == "id");
        let named = fields.iter().any(|(name, _)| name == "event");
        if let (Some((_, id)), false) = (id, named) {
            return (id.parse().expect("a numeric id"), comments);
        }
    }
}

/// Steps the clock by `step_ms` under `stream` and checks what it does.
fn step_and_follow(faked: &mut Faked, stream: &mut EventStream, step_ms: i64, interval_ms: i64) {
    let (before, _) = next_tick_block(stream);
    faked.step_to(faked.offset_ms + step_ms);
    let stepped = Instant::now();
    // Ticks already on their way may still name the old time, but no more
    // than the ticks of about one interval; then the stepped clock's tick.
    let mut old = before;
    let (first, comments) = loop {
        let (id, comments) = next_tick_block(stream);
        if (id - before).abs() > HOUR_MS / 2 {
            break (id, comments);
        }
        old += interval_ms;
        assert_eq!(id, old, "the old schedule goes on until the step shows");
        let stale = (old - before) / interval_ms;
        assert!(
            stale <= 3,
            "{stale} ticks of the old time after the step: a burst"
        );
        let waited = stepped.elapsed().as_millis();
        assert!(
            waited < 3 * interval_ms as u128 + 1000,
            "no step seen after {waited} ms"
        );
    };
    let noticed = stepped.elapsed();
    assert!(
        noticed < Duration::from_millis(interval_ms as u64 * 2 + 1000),
        "the step showed after {noticed:?}"
    );
    let now = faked.now_ms();
    assert!(
        first <= now && now - first < 2 * interval_ms + 500,
        "after the step, a tick names the new now: {first}, now {now}"
    );
    let sign = if step_ms > 0 { '+' } else { '-' };
    let said = format!(
        "the server's clock stepped by {sign}{}.0 s",
        step_ms.abs() / 1000
    );
    assert!(comments.contains(&said), "{said:?} not in {comments:?}");
    // No burst and no stall: the ticks go on one interval apart, each
    // arriving about when it names, never all at once.
    for k in 1..=3 {
        let (id, _) = next_tick_block(stream);
        assert_eq!(id, first + k * interval_ms, "tick {k} after the step");
        let late = faked.now_ms() - id;
        assert!(
            (-5..interval_ms + 1000).contains(&late),
            "tick {k} seen {late} ms after its time"
        );
    }
}

/// A new stream's tick 0 names the faked now, and so does `Date`.
fn assert_new_answers_follow(faked: &Faked, interval_ms: i64) {
    let mut fresh = EventStream::open(&faked.server, "/events");
    let (id, _) = next_tick_block(&mut fresh);
    let now = faked.now_ms();
    assert!(
        id <= now && now - id < interval_ms + 500,
        "a new stream's tick 0: {id}, now {now}"
    );
    let answer = faked.server.get("/");
    let date = answer
        .lines()
        .find_map(|line| line.strip_prefix("Date: "))
        .expect("a Date field");
    // `Tue, 01 Dec 2026 10:48:05 GMT`: compare the time of day, in seconds.
    let time = date.split(' ').nth(4).expect("a time of day");
    let parts: Vec<i64> = time
        .split(':')
        .map(|n| n.parse().expect("digits"))
        .collect();
    let shown = parts[0] * 3600 + parts[1] * 60 + parts[2];
    let expected = faked.now_ms() / 1000 % 86_400;
    let off = (shown - expected).rem_euclid(86_400);
    assert!(
        off <= 2 || off >= 86_400 - 2,
        "Date {date:?}, faked now {expected} s into the day"
    );
}

fn the_clock_follows_steps_forward_and_back(interval_ms: i64) {
    let interval = interval_ms.to_string();
    let Some(mut faked) = Faked::start(&interval, &["--interval", &interval]) else {
        return;
    };
    let mut stream = EventStream::open(&faked.server, "/events");
    let (id, _) = next_tick_block(&mut stream);
    assert!(
        (faked.now_ms() - id).abs() < interval_ms + 1000,
        "real time at first: {id}"
    );

    step_and_follow(&mut faked, &mut stream, HOUR_MS, interval_ms);
    assert_new_answers_follow(&faked, interval_ms);
    let (from_the_future, _) = next_tick_block(&mut stream);

    step_and_follow(&mut faked, &mut stream, -2 * HOUR_MS, interval_ms);
    assert_new_answers_follow(&faked, interval_ms);
    // An id from before the step back lies beyond the new now: fresh start.
    let last_event_id = format!("Last-Event-ID: {from_the_future}\r\n");
    let mut resumed = EventStream::open_with(&faked.server, "/events", &last_event_id);
    let opening = resumed.next_block();
    assert_eq!(
        opening.0.get(1).map(|(_, text)| text.as_str()),
        Some("Last-Event-ID ignored: it is in the future"),
        "{opening:?}"
    );
}

#[test]
fn at_the_default_interval_the_clock_follows_steps_forward_and_back() {
    the_clock_follows_steps_forward_and_back(1000);
}

#[test]
fn at_a_short_interval_the_clock_follows_steps_forward_and_back() {
    the_clock_follows_steps_forward_and_back(100);
}
