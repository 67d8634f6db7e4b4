//! The clock stream: what one viewer receives, and when.
//!
//! Spec: WHATWG HTML, section 9.2 "Server-sent events": 9.2.4 (the
//! `Last-Event-ID` header), 9.2.6 (`retry`, `id`). The bytes of each event
//! come from the encoder in `sse.rs`.
//!
//! Everything one viewer receives after the response head, with
//! `--interval 1000 --retry 3000` and two viewers connected:
//!
//! ```text
//! : hello from sse-clock; lines that start with a colon are comments\n
//! retry: 3412\n
//! event: clients\n
//! data: 2\n
//! \n
//! id: 1795511605000\n
//! data: 2026-11-24T09:13:25Z\n
//! \n
//! id: 1795511606000\n
//! data: 2026-11-24T09:13:26Z\n
//! \n
//! ```
//!
//! The first block sets the reconnection delay (`--retry` plus a random
//! share of up to half, see `jitter`) and says how many viewers there are; then comes one clock event per interval, and a new `clients`
//! event whenever that number has changed. A viewer that reconnects with
//! `Last-Event-ID` first gets the ticks it missed (see `start_after`).

use std::fmt::Write as _;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Datelike, Timelike};

use crate::sse::{
    Event, encode_comment, encode_event, encode_retry, encode_stream_head, end_block,
};

/// A viewer that stops reading fills its socket buffer and then makes our
/// write block; after a write has been blocked this long, the stream is
/// dropped, and its thread with it.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the first write of a stream takes: the response head (133 bytes),
/// the opening block (about 110) and tick 0 (about 55), with room to spare.
const FIRST_WRITE_BYTES: usize = 512;

/// Proxies and load balancers close a connection that has been quiet for a
/// while (nginx after 60 s, many cloud balancers after 60 s or less). When
/// ticks are further apart than this, the stream sends a comment this
/// often in between, which browsers ignore:
///
/// ```text
/// : keep-alive\n
/// \n
/// ```
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The comment that opens every stream. Browsers ignore comment lines; it
/// is there for people who watch the stream with `curl -N`.
const GREETING: &str = "hello from sse-clock; lines that start with a colon are comments";

// ---------------------------------------------------------------------------
// The clock: naming ticks, scheduling them, resuming after a reconnect
// ---------------------------------------------------------------------------

/// The most missed ticks a resumed stream replays, and the most ticks one
/// write carries, so that catching up never builds an unbounded buffer.
pub const MAX_REPLAY: u64 = 300;

/// A `Last-Event-ID` older than this starts a fresh stream instead.
pub const MAX_RESUME_AGE_MS: u64 = 24 * 60 * 60 * 1000;

/// The `retry:` one stream gets: a random time between `retry_ms` and 1.5 ×
/// `retry_ms`. When the server restarts, every browser reconnects once its
/// retry time is up; with one shared time they would all arrive in the same
/// instant and overflow the accept queue, while spread over half the
/// delay, they come a few at a time. The randomness is std's: every
/// `RandomState` hashes with fresh keys (seeded from the system once per
/// thread), which is plenty for spreading load, if not for secrets.
pub fn jitter(retry_ms: u64) -> u64 {
    let random = RandomState::new().build_hasher().finish();
    retry_ms + random % (retry_ms / 2 + 1)
}

/// Milliseconds since the Unix epoch, from the system clock.
pub fn unix_ms_now() -> u64 {
    let since_epoch = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX)
}

/// Writes a Unix time in ms as RFC 3339 in UTC (section 5.6 of RFC 3339),
/// `2026-11-24T09:13:25Z`, or `2026-11-24T09:13:25.250Z` with milliseconds.
/// This is the one place chrono is used: it turns a count of milliseconds
/// into a calendar date.
fn format_rfc3339(text: &mut String, unix_ms: u64, with_millis: bool) {
    let time = i64::try_from(unix_ms)
        .ok()
        .and_then(DateTime::from_timestamp_millis)
        .unwrap_or_default();
    let _ = write!(
        text,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        time.year(),
        time.month(),
        time.day(),
        time.hour(),
        time.minute(),
        time.second()
    );
    if with_millis {
        let _ = write!(text, ".{:03}", unix_ms % 1000);
    }
    text.push('Z');
}

/// How a stream begins, decided from its request before the head is
/// dropped.
#[derive(Debug, PartialEq, Eq)]
pub enum Start {
    /// No `Last-Event-ID`: tick 0 is now.
    Fresh,
    /// Continue the schedule whose last tick the viewer saw at this time.
    Resume(u64),
    /// A `Last-Event-ID` we cannot resume from: start fresh, and say why
    /// in a comment. Never an error status: an `EventSource` that gets one
    /// gives up for good.
    Ignored(&'static str),
}

/// Reads the `Last-Event-ID` request header (WHATWG 9.2.4). A browser
/// that reconnects sends the last `id:` it saw there; ours are tick times
/// in Unix ms, so an id that could be one of our ticks (decimal, not in
/// the future, less than a day old) says exactly where the viewer left
/// off. It needs no stored state, so it works after a restart too.
pub fn start_after<'a>(mut ids: impl Iterator<Item = &'a str>, now_ms: u64) -> Start {
    let Some(id) = ids.next() else {
        return Start::Fresh;
    };
    let decimal = !id.is_empty() && id.bytes().all(|byte| byte.is_ascii_digit());
    let tick_ms = match id.parse::<u64>() {
        Ok(tick_ms) if decimal && ids.next().is_none() => tick_ms,
        _ => return Start::Ignored("Last-Event-ID ignored: not one tick id (decimal Unix ms)"),
    };
    if tick_ms > now_ms {
        return Start::Ignored("Last-Event-ID ignored: it is in the future");
    }
    if now_ms - tick_ms > MAX_RESUME_AGE_MS {
        return Start::Ignored("Last-Event-ID ignored: it is more than a day old");
    }
    Start::Resume(tick_ms)
}

/// The ticks of one stream. Tick `k` is named by its wall-clock time,
/// `first_ms + k * interval_ms`, and is due when the monotonic clock
/// reaches that time. Due times come from the monotonic `Instant`, which
/// never jumps; the wall clock, which can, is read once, at `anchor`.
///
/// Computing each due time from the start, rather than sleeping a fixed
/// interval after each write, keeps the schedule from drifting: time spent
/// writing is never added to the period, so no second is ever skipped.
struct Schedule {
    first_ms: u64,
    interval_ms: u64,
    anchor: Instant,
    anchor_ms: u64,
}

impl Schedule {
    fn tick_ms(&self, k: u64) -> u64 {
        self.first_ms
            .saturating_add(self.interval_ms.saturating_mul(k))
    }

    /// When tick `k` is due; a tick whose time has passed is due at once.
    fn due(&self, k: u64) -> Option<Instant> {
        let ahead_ms = self.tick_ms(k).saturating_sub(self.anchor_ms);
        self.anchor.checked_add(Duration::from_millis(ahead_ms))
    }
}

/// Lays out a stream's schedule. Returns the schedule, the index `k` of
/// the first tick to send, and a comment for the opening block when there
/// is something to say. A resumed stream sends
/// the ticks it missed at once, then carries on on the same phase, so the
/// viewer sees every tick exactly once: no gap, no duplicate.
fn plan(
    start: &Start,
    interval_ms: u64,
    anchor: Instant,
    now_ms: u64,
) -> (Schedule, u64, Option<String>) {
    let schedule = |first_ms| Schedule {
        first_ms,
        interval_ms,
        anchor,
        anchor_ms: now_ms,
    };
    match *start {
        Start::Fresh => (schedule(now_ms), 0, None),
        Start::Ignored(why) => (schedule(now_ms), 0, Some(why.to_owned())),
        Start::Resume(last_ms) => {
            // `start_after` accepts no id from the future; saturating keeps
            // a stray one at 0 missed ticks rather than an overflow.
            let missed = now_ms.saturating_sub(last_ms) / interval_ms;
            let skipped = missed.saturating_sub(MAX_REPLAY);
            let note = match skipped {
                0 => format!("resuming after {last_ms}: {missed} missed ticks follow"),
                _ => format!(
                    "resuming after {last_ms}: {missed} missed ticks, {skipped} skipped, the last {MAX_REPLAY} follow"
                ),
            };
            (schedule(last_ms), skipped + 1, Some(note))
        }
    }
}

/// The text of an event's fields, kept from tick to tick so that a stream
/// allocates nothing per tick. Sized once for the longest text a tick
/// holds (a 13-digit id, a 24-character time), so it never grows.
struct Scratch {
    id: String,
    data: String,
}

impl Default for Scratch {
    fn default() -> Self {
        Scratch {
            id: String::with_capacity(24),
            data: String::with_capacity(32),
        }
    }
}

/// Appends the clock tick due at `tick_ms` to `out`: its id is that Unix
/// time in ms, its data the same time as RFC 3339.
///
/// ```text
/// id: 1795511605000\n
/// data: 2026-11-24T09:13:25Z\n
/// \n
/// ```
fn encode_tick(out: &mut Vec<u8>, tick_ms: u64, interval_ms: u64, text: &mut Scratch) {
    text.id.clear();
    let _ = write!(text.id, "{tick_ms}");
    text.data.clear();
    // Whole-second intervals show whole seconds; anything else shows ms.
    format_rfc3339(&mut text.data, tick_ms, interval_ms % 1000 != 0);
    let tick = Event {
        event: None,
        id: Some(&text.id),
        data: &text.data,
    };
    let _ = encode_event(out, &tick); // a decimal id has no line break
}

/// Appends the `clients` event: how many streams are open right now.
///
/// ```text
/// event: clients\n
/// data: 2\n
/// \n
/// ```
fn encode_clients(out: &mut Vec<u8>, count: usize, text: &mut Scratch) {
    text.data.clear();
    let _ = write!(text.data, "{count}");
    let clients = Event {
        event: Some("clients"),
        id: None,
        data: &text.data,
    };
    let _ = encode_event(out, &clients); // "clients" has no line break
}

// ---------------------------------------------------------------------------
// The stream loop (the socket edge)
// ---------------------------------------------------------------------------

/// How a stream ended: how many clock events it delivered, and why it
/// stopped (the viewer left, a write timed out, ...).
pub struct StreamEnd {
    pub events: u64,
    pub cause: io::Error,
}

impl StreamEnd {
    /// Why the stream ended, in a few words for the log.
    pub fn reason(&self) -> String {
        match self.cause.kind() {
            io::ErrorKind::UnexpectedEof => "viewer left".to_owned(),
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => {
                "viewer left, reset".to_owned()
            }
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                "viewer stopped reading".to_owned()
            }
            _ => self.cause.to_string(),
        }
    }
}

/// A stream that counts in `clients` for as long as it lives. Dropping it,
/// on any path out of the stream and even during a panic, takes it out.
struct Viewer<'a>(&'a AtomicUsize);

impl<'a> Viewer<'a> {
    fn join(clients: &'a AtomicUsize) -> Self {
        clients.fetch_add(1, Ordering::SeqCst);
        Viewer(clients)
    }
}

impl Drop for Viewer<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What a stream needs to know, from the command line and the request.
pub struct StreamPlan {
    pub interval_ms: u64,
    pub retry_ms: u64,
    pub write_timeout: Duration,
    pub keep_alive: Duration,
    /// Field lines to add to the response head, each ending in CRLF
    /// (the CORS fields, or nothing).
    pub extra_fields: String,
    pub start: Start,
}

/// Sends the stream head and then every tick as it falls due until the
/// viewer leaves. `clients` counts the open streams of the whole server.
///
/// Each write is built in `block` first and handed to the socket whole by
/// `send`: one system call per tick and never half an event on the wire.
/// `TcpStream` has no buffer of its own (its `flush` does nothing), so
/// `block` is the buffer and `send` is the flush.
pub fn stream_clock(socket: &TcpStream, plan: &StreamPlan, clients: &AtomicUsize) -> StreamEnd {
    let _viewer = Viewer::join(clients);
    let mut events = 0;
    // The clock runs until something fails, so its only result is an error.
    let Err(cause) = run_clock(socket, plan, clients, &mut events);
    StreamEnd { events, cause }
}

fn run_clock(
    socket: &TcpStream,
    stream: &StreamPlan,
    clients: &AtomicUsize,
    events: &mut u64,
) -> io::Result<std::convert::Infallible> {
    socket.set_write_timeout(Some(stream.write_timeout))?;
    // Each block is one complete write, so Nagle's algorithm has nothing
    // to gain by holding a small block back; send it at once.
    socket.set_nodelay(true)?;
    // Reads only look whether the viewer has left, without waiting (see
    // `viewer_left`); writes that cannot finish at once wait (see `send`).
    socket.set_nonblocking(true)?;
    let (schedule, mut k, note) = plan(
        &stream.start,
        stream.interval_ms,
        Instant::now(),
        unix_ms_now(),
    );
    // Room for the first write (head, opening block, tick 0) at once, so
    // the buffer does not grow in the steady state; a replay grows it.
    let mut block = Vec::with_capacity(FIRST_WRITE_BYTES);
    let mut text = Scratch::default();

    // The first write: response head, then the opening block.
    encode_stream_head(&mut block, &stream.extra_fields);
    encode_comment(&mut block, GREETING);
    if let Some(note) = note {
        encode_comment(&mut block, &note);
    }
    encode_retry(&mut block, stream.retry_ms);
    let mut clients_sent = clients.load(Ordering::SeqCst);
    encode_clients(&mut block, clients_sent, &mut text);

    let mut last_write = Instant::now();
    loop {
        let due = |k| schedule.due(k).ok_or(io::ErrorKind::InvalidInput);
        // While the next tick is further off than the keep-alive period,
        // a comment every period shows proxies the connection is alive.
        while due(k)?.saturating_duration_since(last_write) > stream.keep_alive {
            last_write += stream.keep_alive;
            sleep_until(socket, last_write)?;
            encode_comment(&mut block, "keep-alive");
            end_block(&mut block);
            send(socket, &block)?;
            block.clear();
        }
        sleep_until(socket, due(k)?)?;
        // Every tick that is due goes into this write: one when live, a
        // burst when replaying what a resumed viewer missed.
        let mut ticks = 0;
        while ticks < MAX_REPLAY && due(k)? <= Instant::now() {
            encode_tick(
                &mut block,
                schedule.tick_ms(k),
                stream.interval_ms,
                &mut text,
            );
            k += 1;
            ticks += 1;
        }
        let now_open = clients.load(Ordering::SeqCst);
        if now_open != clients_sent {
            clients_sent = now_open;
            encode_clients(&mut block, now_open, &mut text);
        }
        send(socket, &block)?;
        last_write = Instant::now();
        block.clear();
        *events += ticks;
    }
}

/// Sleeps until `at`, then looks whether the viewer has left while we
/// slept; if so, the stream ends with an error of kind `UnexpectedEof`.
fn sleep_until(socket: &TcpStream, at: Instant) -> io::Result<()> {
    thread::sleep(at.saturating_duration_since(Instant::now()));
    if viewer_left(socket)? {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

/// Has the viewer closed the connection? An `EventSource` sends nothing
/// after its request, so the only thing a read can bring is the end: 0
/// bytes. The socket is non-blocking, so the read returns at once, with
/// `WouldBlock` while the viewer is still there. Stray bytes a client does
/// send are read and ignored, a few at a time.
///
/// Looking once per tick, just before the write, costs one system call and
/// finds a viewer that left within one interval. (Waiting in a read until
/// the tick is due would notice it at once, but a read's timeout is kept by
/// the kernel's coarse timer wheel, which fired ticks 5 to 30 ms late at 1 s
/// intervals, measured; `thread::sleep` uses a high-resolution timer.)
fn viewer_left(mut socket: &TcpStream) -> io::Result<bool> {
    let mut ignored = [0u8; 64];
    for _ in 0..16 {
        match socket.read(&mut ignored) {
            Ok(0) => return Ok(true),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

/// Hands a block to the socket in one write. The socket is non-blocking, so
/// when the viewer's buffers are too full to take it all, the rest is
/// written in blocking mode, where the write timeout applies: a viewer that
/// has stopped reading is dropped once a write has waited that long.
fn send(mut socket: &TcpStream, block: &[u8]) -> io::Result<()> {
    let written = match socket.write(block) {
        Ok(written) => written,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
        Err(e) => return Err(e),
    };
    if let Some(rest) = block.get(written..).filter(|rest| !rest.is_empty()) {
        socket.set_nonblocking(false)?;
        socket.write_all(rest)?;
        socket.set_nonblocking(true)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tick_carries_its_time_as_id_and_rfc3339_data() {
        let mut out = Vec::new();
        encode_tick(&mut out, 1_795_511_605_000, 1000, &mut Scratch::default());
        assert_eq!(out, b"id: 1795511605000\ndata: 2026-11-24T09:13:25Z\n\n");
    }

    #[test]
    fn whole_second_intervals_show_seconds_and_others_show_milliseconds() {
        let mut text = String::new();
        format_rfc3339(&mut text, 1_795_511_605_250, false);
        assert_eq!(text, "2026-11-24T09:13:25Z");
        text.clear();
        format_rfc3339(&mut text, 1_795_511_605_250, true);
        assert_eq!(text, "2026-11-24T09:13:25.250Z");
        text.clear();
        format_rfc3339(&mut text, 0, true);
        assert_eq!(text, "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn tick_k_is_named_and_due_k_intervals_after_the_first() {
        let anchor = Instant::now();
        let (schedule, first_k, note) = plan(&Start::Fresh, 250, anchor, 1_000_000);
        assert_eq!((first_k, note), (0, None));
        assert_eq!(schedule.tick_ms(0), 1_000_000);
        assert_eq!(schedule.tick_ms(4), 1_001_000);
        assert_eq!(schedule.due(0), Some(anchor));
        assert_eq!(schedule.due(4), Some(anchor + Duration::from_secs(1)));
    }

    #[test]
    fn a_resumed_schedule_keeps_the_phase_and_its_missed_ticks_are_due_at_once() {
        let anchor = Instant::now();
        let (schedule, first_k, note) = plan(&Start::Resume(1_000_000), 1000, anchor, 1_005_500);
        assert_eq!(first_k, 1, "the tick the viewer saw is not sent again");
        assert_eq!(
            note.as_deref(),
            Some("resuming after 1000000: 5 missed ticks follow")
        );
        assert_eq!(schedule.tick_ms(1), 1_001_000);
        assert_eq!(schedule.due(1), Some(anchor), "missed: due at once");
        assert_eq!(schedule.due(5), Some(anchor), "missed: due at once");
        assert_eq!(
            schedule.due(6),
            Some(anchor + Duration::from_millis(500)),
            "live, same phase"
        );
    }

    #[test]
    fn at_most_300_missed_ticks_are_replayed() {
        let (schedule, first_k, note) = plan(&Start::Resume(0), 10, Instant::now(), 10_005);
        assert_eq!(first_k, 701, "1000 missed, 700 skipped");
        assert_eq!(schedule.tick_ms(first_k), 7010);
        let note = note.expect("a note");
        assert_eq!(
            note,
            "resuming after 0: 1000 missed ticks, 700 skipped, the last 300 follow"
        );
    }

    #[test]
    fn last_event_id_is_resumed_only_when_it_could_be_one_of_our_ticks() {
        let now = 1_795_511_605_000;
        let start = |ids: &[&str]| start_after(ids.iter().copied(), now);
        assert_eq!(start(&[]), Start::Fresh);
        assert_eq!(start(&["1795511600000"]), Start::Resume(1_795_511_600_000));
        assert_eq!(start(&[&now.to_string()]), Start::Resume(now));
        let day_ago = now - MAX_RESUME_AGE_MS;
        assert_eq!(start(&[&day_ago.to_string()]), Start::Resume(day_ago));
        for bad in [
            "",
            "abc",
            "12x",
            "+5",
            "-5",
            "1.5",
            " 1",
            "99999999999999999999999",
        ] {
            let not_a_tick =
                Start::Ignored("Last-Event-ID ignored: not one tick id (decimal Unix ms)");
            assert_eq!(start(&[bad]), not_a_tick, "{bad:?}");
        }
        let two = start(&["1795511600000", "1795511600000"]);
        assert_eq!(
            two,
            Start::Ignored("Last-Event-ID ignored: not one tick id (decimal Unix ms)")
        );
        let future = start(&["1795511605001"]);
        assert_eq!(
            future,
            Start::Ignored("Last-Event-ID ignored: it is in the future")
        );
        let stale = start(&[&(day_ago - 1).to_string()]);
        assert_eq!(
            stale,
            Start::Ignored("Last-Event-ID ignored: it is more than a day old")
        );
    }

    #[test]
    fn retry_is_spread_over_half_again_the_configured_time() {
        let draws: Vec<u64> = (0..200).map(|_| jitter(3000)).collect();
        assert!(
            draws.iter().all(|retry| (3000..=4500).contains(retry)),
            "{draws:?}"
        );
        let distinct: std::collections::BTreeSet<_> = draws.iter().collect();
        assert!(distinct.len() > 100, "spread, not one value: {distinct:?}");
        assert_eq!(jitter(0), 0);
        assert!((1..=1).contains(&jitter(1)));
    }
}
