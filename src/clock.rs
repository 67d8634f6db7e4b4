//! Lesson 2b: one viewer's stream: its ticks, named how and sent when; how a viewer that reconnects
//! picks up where it left off; the loop that writes. Spec: WHATWG HTML, "Server-sent events",
//! 9.2.4 (`Last-Event-ID`) and 9.2.6 (`id`, `retry`); RFC 3339 5.6 for the time in `data`.

use std::fmt::{Display, Write as _};
use std::io;
use std::mem;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::sse::{self, Event};
use crate::time::{self, millis};

/// The comment that opens every stream, for people watching with `curl -N`.
const GREETING: &str = "hello from sse-clock; lines that start with a colon are comments";
/// Proxies close a quiet connection (nginx after 60 s): between ticks further
/// apart than this, a `: keep-alive` comment block goes out this often.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The most missed ticks a resumed stream replays (catching up stays bounded), and the
/// oldest `Last-Event-ID` it resumes from: an older one starts a fresh stream instead.
pub const MAX_REPLAY: u64 = 300;
pub const MAX_RESUME_AGE_MS: u64 = 24 * 60 * 60 * 1000;

/// The tick window (`window_offset_ms`) per open stream, and a stream's place in it.
const WINDOW_US_PER_STREAM: u64 = 40;
const PLACES: u64 = 1_000_000;

/// A steady write: a tick (46 B) and `clients` (24 B); a bigger first shrinks back.
const BLOCK_BYTES: usize = 128;
/// The comment and `retry:` that end a stream at its age: come back at once.
const AGED: &str = "stream ends at its age (--max-stream-age): resume now";
const AGED_RETRY_MS: u64 = 250;

/// How a stream begins. A bad `Last-Event-ID` is ignored with a comment, never
/// an error status (which would end the `EventSource` for good).
#[derive(Debug, PartialEq, Eq)]
pub enum Start {
    Fresh,
    Resume(u64),
    Ignored(&'static str),
}

/// Reads `Last-Event-ID` (WHATWG 9.2.4): an id that could be one of our ticks says where the
/// viewer left off, with no state kept, even after a restart; after the clock stepped back,
/// an id beyond `now_ms` is "in the future".
pub fn start_after<'a>(mut ids: impl Iterator<Item = &'a str>, now_ms: u64) -> Start {
    let Some(id) = ids.next() else {
        return Start::Fresh;
    };
    // `parse` alone would take `+5`.
    let decimal = id.bytes().all(|byte| byte.is_ascii_digit());
    let tick_ms = match id.parse::<u64>() {
        Ok(tick_ms) if decimal && ids.next().is_none() => tick_ms,
        _ => return Start::Ignored("Last-Event-ID ignored: not one tick id (decimal Unix ms)"),
    };
    match now_ms.checked_sub(tick_ms) {
        None => Start::Ignored("Last-Event-ID ignored: it is in the future"),
        Some(0..=MAX_RESUME_AGE_MS) => Start::Resume(tick_ms),
        Some(_) => Start::Ignored("Last-Event-ID ignored: it is more than a day old"),
    }
}

/// Tick `k` is named `first_ms + k × interval_ms` and due `offset_ms` later:
/// counted from the start, never from the last write, so it cannot drift.
struct Schedule {
    first_ms: u64,
    interval_ms: u64,
    offset_ms: u64,
}

impl Schedule {
    fn tick_ms(&self, k: u64) -> u64 {
        self.first_ms
            .saturating_add(self.interval_ms.saturating_mul(k))
    }

    fn due(&self, k: u64) -> Duration {
        Duration::from_millis(self.tick_ms(k).saturating_add(self.offset_ms))
    }

    /// Makes tick 0 the last one due by `now`, on the same phase: after a step
    /// of the clock, no burst of catch-up ticks, no sleep until the old time.
    fn restart(&mut self, now: Duration) {
        let named_ms = millis(now).saturating_sub(self.offset_ms);
        let interval = self.interval_ms;
        let past = (named_ms % interval + interval - self.first_ms % interval) % interval;
        self.first_ms = named_ms.saturating_sub(past);
    }
}

/// A stream's schedule, first tick `k` and opening comment. Fresh: tick 0 is the boundary before
/// now. Resumed: tick 0 is the id it resumed from (the viewer has it), so `k` starts at 1, or
/// past the ticks too many to replay.
fn plan(start: &Start, interval_ms: u64, now_ms: u64) -> (Schedule, u64, String) {
    let schedule = |first_ms| Schedule {
        first_ms,
        interval_ms,
        offset_ms: 0,
    };
    let fresh = schedule(now_ms - now_ms % interval_ms);
    match *start {
        Start::Fresh => (fresh, 0, String::new()),
        Start::Ignored(why) => (fresh, 0, why.to_owned()),
        Start::Resume(last_ms) => {
            let missed = now_ms.saturating_sub(last_ms) / interval_ms;
            let skipped = missed.saturating_sub(MAX_REPLAY);
            let mut note = format!("resuming after {last_ms}: {missed} missed ticks");
            if skipped > 0 {
                let _ = write!(note, ", {skipped} skipped, the last {MAX_REPLAY}");
            }
            note.push_str(" follow");
            (schedule(last_ms), skipped + 1, note)
        }
    }
}

/// The tick window: how long after its due time a stream's ticks go out, so that the threads
/// of all streams do not wake in the same instant: its `place` of `PLACES`, drawn once, in a
/// window 40 µs wide for each stream open now (40 ms for 1,000), at most half an interval.
/// In whole ms: up to 25 streams, every tick goes out on the boundary.
fn window_offset_ms(place: u64, open: usize, interval_ms: u64) -> u64 {
    let streams = u64::try_from(open).unwrap_or(u64::MAX);
    let window_us = streams.saturating_mul(WINDOW_US_PER_STREAM);
    let window_us = window_us.min(interval_ms.saturating_mul(500));
    window_us.saturating_mul(place) / PLACES / 1000
}

/// The next write, built whole, and the events in it, for the log. `text`, a tick's id and
/// data or an event's data, kept from write to write, makes a stream allocate nothing per tick.
#[derive(Default)]
struct Batch {
    bytes: Vec<u8>,
    events: u64,
    text: String,
}

impl Batch {
    /// Appends the tick named `tick_ms`: its id that Unix time in ms, its data
    /// the same time as RFC 3339 (46 bytes in all):
    ///
    /// ```text
    /// id: 1795618800000\n
    /// data: 2026-11-25T15:00:00Z\n
    /// \n
    /// ```
    fn encode_tick(&mut self, tick_ms: u64, with_millis: bool) {
        self.text.clear();
        let _ = write!(self.text, "{tick_ms}");
        let id_end = self.text.len();
        time::format_rfc3339(&mut self.text, tick_ms, with_millis);
        self.encode(None, id_end);
    }

    /// Appends an event of type `event`, no id: `event: clients\ndata: 2\n\n`.
    fn encode_named(&mut self, event: &str, data: impl Display) {
        self.text.clear();
        let _ = write!(self.text, "{data}");
        self.encode(Some(event), 0);
    }

    /// Appends the event whose id is `text` up to `id_end` (none if 0), its data the rest.
    fn encode(&mut self, event: Option<&str>, id_end: usize) {
        let (id, data) = self.text.split_at(id_end);
        let id = (id_end > 0).then_some(id);
        let encoded = sse::encode_event(&mut self.bytes, &Event { event, id, data });
        self.events += u64::from(encoded.is_ok()); // a type with a line end is refused
    }
}

/// One stream, as `http.rs` plans it from the command line and the request.
pub struct StreamPlan {
    pub interval_ms: u64, // `--interval`
    /// This stream's `retry:`, drawn by `time::jitter` from `--retry`.
    pub retry_ms: u64,
    /// This stream's age, drawn from `--max-stream-age` the same way (0: none).
    pub max_age_ms: u64,
    /// How often a `: keep-alive` goes out between ticks further apart.
    pub keep_alive: Duration,
    /// The request's `Last-Event-ID` (or `?lastEventId=`), judged by `start_after`.
    pub start: Start,
}

/// Counts a stream in `clients` while it lives; its drop, even in a panic, uncounts it.
struct Counted<'a>(&'a AtomicUsize);

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The loop: one wake and one whole write a pass, in the steps numbered below. The first write
/// holds the head, the opening, and tick 0 or all a resumed viewer missed. A viewer that left
/// fails a write: the first after its close if it left bytes unread (a reset), else the second.
fn run_clock(
    mut send: impl FnMut(&[u8]) -> io::Result<()>,
    head: Vec<u8>,
    stream: &StreamPlan,
    clients: &AtomicUsize,
    events: &mut u64,
) -> io::Result<()> {
    let place = time::random_below(PLACES); // in the tick window
    // Both clocks, read at each wake: the wall clock names and times ticks;
    // the monotonic one times sleeps and the age, and so finds steps.
    let mut wake = (time::now(), Instant::now());
    let born = wake.1;
    let (mut schedule, mut k, note) = plan(&stream.start, stream.interval_ms, millis(wake.0));
    // Whole seconds show whole seconds; another interval or phase, ms.
    let with_millis = stream.interval_ms % 1000 != 0 || schedule.first_ms % 1000 != 0;
    let mut batch = Batch {
        bytes: head,
        ..Batch::default()
    };
    // The opening: comments, a resumed id (see `sse.rs`), `retry:`, `clients`.
    sse::encode_comment(&mut batch.bytes, GREETING);
    if !note.is_empty() {
        sse::encode_comment(&mut batch.bytes, &note);
    }
    if let Start::Resume(last_ms) = stream.start {
        sse::encode_id(&mut batch.bytes, last_ms);
    }
    sse::encode_retry(&mut batch.bytes, stream.retry_ms);
    let mut said = clients.load(Ordering::SeqCst);
    batch.encode_named("clients", said);
    loop {
        // 1. The ticks due: none after a wake the clock made early (slewed, or stepped back
        // by 1 s or less); then the write holds only what the wake found, or nothing.
        let first = k;
        while schedule.due(k) <= wake.0 {
            batch.encode_tick(schedule.tick_ms(k), with_millis);
            k += 1;
        }
        let open = clients.load(Ordering::SeqCst);
        // 2. THE NAMED EVENTS after this write's ticks (`first..k`), the one place to add yours:
        // `batch.encode_named(type, data)` (and a listener for its type on the page).
        // `clients`: the streams open, whenever that changed since this stream said it.
        if k > first && open != said {
            said = open;
            batch.encode_named("clients", open);
        }
        // 3. The tick window, set after the ticks: `plan` left it 0, so the first are at once.
        schedule.offset_ms = window_offset_ms(place, open, stream.interval_ms);
        // 4. At its age a stream ends with this write, to be resumed at once.
        let aged = stream.max_age_ms > 0 && millis(wake.1 - born) >= stream.max_age_ms;
        if aged {
            sse::encode_comment(&mut batch.bytes, AGED);
            sse::encode_retry(&mut batch.bytes, AGED_RETRY_MS);
            sse::end_block(&mut batch.bytes);
        }
        send(&batch.bytes)?; // 5. The write, whole.
        *events += mem::take(&mut batch.events);
        if aged {
            return Ok(());
        }
        batch.bytes.clear();
        batch.bytes.shrink_to(BLOCK_BYTES);
        // 6. Until tick `k` is due by the wall clock, sleep on the monotonic one, waking for
        // a keep-alive if that comes first (WHATWG HTML 9.2.7). Now is the wake's reading
        // plus the build and write time: a step meanwhile shows at the next wake, which
        // finds a step of the clock, or a keep-alive due.
        let wait = schedule.due(k).saturating_sub(wake.0 + wake.1.elapsed());
        thread::sleep(wait.min(stream.keep_alive));
        let was = mem::replace(&mut wake, (time::now(), Instant::now()));
        if let Some(step) = time::step_note(was, wake.0, wake.1) {
            // A viewer sees this comment, then the tick the schedule moved to;
            // after a step back, ids go down (an `EventSource` does not mind).
            sse::encode_comment(&mut batch.bytes, &step);
            schedule.restart(wake.0);
            k = 0;
        } else if wait > stream.keep_alive {
            sse::encode_comment(&mut batch.bytes, "keep-alive");
            sse::end_block(&mut batch.bytes);
        }
    }
}

/// Sends `head` (encoded), then the stream, counted in `clients` meanwhile, until a write fails or
/// the stream reaches its age. `send` puts one block on the wire whole, within the write timeout
/// (`http.rs` gives it the socket). Returns, for the log: `12 events written (viewer left)`.
pub fn stream_clock(
    send: impl FnMut(&[u8]) -> io::Result<()>,
    head: Vec<u8>,
    stream: &StreamPlan,
    clients: &AtomicUsize,
) -> String {
    clients.fetch_add(1, Ordering::SeqCst);
    let _counted = Counted(clients);
    let mut events = 0;
    let reason = match run_clock(send, head, stream, clients, &mut events) {
        Ok(()) => "its age".into(),
        Err(cause) => match cause.kind() {
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => "viewer left".into(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => "viewer stopped reading".into(),
            _ => cause.to_string(),
        },
    };
    let plural = if events == 1 { "" } else { "s" };
    format!("{events} event{plural} written ({reason})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tick_carries_its_time_as_id_and_rfc3339_data_in_46_bytes() {
        let mut batch = Batch::default();
        batch.encode_tick(1_795_618_800_000, false);
        assert_eq!(
            batch.bytes,
            b"id: 1795618800000\ndata: 2026-11-25T15:00:00Z\n\n"
        );
        assert_eq!((batch.bytes.len(), batch.events), (46, 1));
    }

    #[test]
    fn the_tick_window_is_40_us_a_stream_and_at_most_half_an_interval() {
        let last = PLACES - 1;
        for (place, streams, interval_ms, offset_ms) in [
            (last, 1, 1000, 0), // one viewer: on the boundary
            (last, 25, 1000, 0),
            (PLACES / 2, 1000, 1000, 20),
            (last, 1000, 1000, 39),
            (last, 10_000, 1000, 399),
            (last, 20_000, 1000, 499), // half an interval at most
            (last, 10_000, 100, 49),
        ] {
            let offset = window_offset_ms(place, streams, interval_ms);
            assert_eq!(offset, offset_ms, "{streams} streams, place {place}");
        }
    }

    #[test]
    fn a_fresh_stream_starts_with_the_boundary_before_now_and_keeps_its_offset() {
        let (mut schedule, k, note) = plan(&Start::Fresh, 1000, 1_795_618_800_400);
        schedule.offset_ms = 7;
        assert_eq!((k, note.as_str()), (0, ""));
        assert_eq!(schedule.tick_ms(0), 1_795_618_800_000, "sent at once");
        assert_eq!(schedule.tick_ms(3), 1_795_618_803_000);
        assert_eq!(schedule.due(3), Duration::from_millis(1_795_618_803_007));
        let (odd, _, _) = plan(&Start::Fresh, 250, 1_000_380);
        assert_eq!(odd.tick_ms(0), 1_000_250, "a multiple of the interval");
    }

    #[test]
    fn a_resumed_stream_keeps_the_phase_of_its_id_and_sends_what_it_missed() {
        let (mut schedule, k, note) = plan(&Start::Resume(1_000_500), 1000, 1_005_700);
        schedule.offset_ms = 3;
        assert_eq!(k, 1, "the tick the viewer saw is not sent again");
        assert_eq!(note, "resuming after 1000500: 5 missed ticks follow");
        assert_eq!(schedule.tick_ms(1), 1_001_500);
        assert_eq!(schedule.tick_ms(5), 1_005_500, "the last missed one");
        assert_eq!(
            schedule.due(6),
            Duration::from_millis(1_006_503),
            "then live, same phase"
        );
    }

    #[test]
    fn at_most_300_missed_ticks_are_replayed() {
        let (schedule, k, note) = plan(&Start::Resume(0), 10, 10_005);
        assert_eq!(k, 701, "1000 missed, 700 skipped");
        assert_eq!(schedule.tick_ms(k), 7010);
        assert_eq!(
            note,
            "resuming after 0: 1000 missed ticks, 700 skipped, the last 300 follow"
        );
    }

    #[test]
    fn last_event_id_is_resumed_only_when_it_could_be_one_of_our_ticks() {
        let now = 1_795_618_800_000;
        let start = |ids: &[&str]| start_after(ids.iter().copied(), now);
        assert_eq!(start(&[]), Start::Fresh);
        assert_eq!(start(&["1795618790000"]), Start::Resume(1_795_618_790_000));
        let day_ago = now - MAX_RESUME_AGE_MS;
        assert_eq!(start(&[&day_ago.to_string()]), Start::Resume(day_ago));
        let not_a_tick = Start::Ignored("Last-Event-ID ignored: not one tick id (decimal Unix ms)");
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
            assert_eq!(start(&[bad]), not_a_tick, "{bad:?}");
        }
        assert_eq!(start(&["1", "1"]), not_a_tick, "two ids");
        let future = Start::Ignored("Last-Event-ID ignored: it is in the future");
        assert_eq!(start(&["1795618800001"]), future);
        let stale = Start::Ignored("Last-Event-ID ignored: it is more than a day old");
        assert_eq!(start(&[&(day_ago - 1).to_string()]), stale);
    }

    #[test]
    fn after_a_step_tick_0_is_the_last_due_on_the_same_phase() {
        let mut schedule = Schedule {
            first_ms: 1_000_500,
            interval_ms: 1000,
            offset_ms: 7,
        };
        schedule.restart(Duration::from_millis(4_600_506));
        assert_eq!(
            schedule.tick_ms(0),
            4_599_500,
            "4_600_500 is due at 4_600_507"
        );
        schedule.restart(Duration::from_millis(2_000_000));
        assert_eq!(schedule.tick_ms(0), 1_999_500, "and back");
        assert!(schedule.due(0) <= Duration::from_millis(2_000_000));
    }
}
