//! Lesson 2b: one viewer's stream: its ticks, named how and sent when; how a viewer that
//! reconnects picks up where it left off; the loop that writes. The time and the draws come
//! from `time.rs`. Spec: WHATWG HTML, "Server-sent events", 9.2.4 (`Last-Event-ID`) and 9.2.6
//! (`id`, `retry`); RFC 3339 section 5.6 for the time in `data`.

use std::fmt::{Display, Write as _};
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::sse::{self, Event};
use crate::time::{self, Clock, millis};

/// The comment that opens every stream, for people watching with `curl -N`.
const GREETING: &str = "hello from sse-clock; lines that start with a colon are comments";

/// Proxies close a quiet connection (nginx after 60 s): between ticks further
/// apart than this, a `: keep-alive` comment block goes out this often.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The most missed ticks a resumed stream replays: catching up stays bounded.
pub const MAX_REPLAY: u64 = 300;

/// A `Last-Event-ID` older than this starts a fresh stream instead.
pub const MAX_RESUME_AGE_MS: u64 = 24 * 60 * 60 * 1000;

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

/// A stream's schedule, first tick `k` and opening comment. Fresh: tick 0 is
/// the boundary before now. Resumed: tick 0 is the id it resumed from (the
/// viewer has it), so `k` starts at 1, or past the ticks too many to replay.
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
            let note = match skipped {
                0 => format!("resuming after {last_ms}: {missed} missed ticks follow"),
                _ => format!(
                    "resuming after {last_ms}: {missed} missed ticks, {skipped} skipped, the last {MAX_REPLAY} follow"
                ),
            };
            (schedule(last_ms), skipped + 1, note)
        }
    }
}

/// Appends the tick named `tick_ms`: its id that Unix time in ms, its data
/// the same time as RFC 3339 (46 bytes in all):
///
/// ```text
/// id: 1795618800000\n
/// data: 2026-11-25T15:00:00Z\n
/// \n
/// ```
/// `text` holds the id, then the data: kept from tick to tick, it makes a
/// stream allocate nothing per tick.
fn encode_tick(out: &mut Vec<u8>, tick_ms: u64, with_millis: bool, text: &mut String) {
    text.clear();
    let _ = write!(text, "{tick_ms}");
    let id_end = text.len();
    time::format_rfc3339(text, tick_ms, with_millis);
    let (id, data) = text.split_at(id_end);
    let tick = Event {
        event: None,
        id: Some(id),
        data,
    };
    let _ = sse::encode_event(out, &tick); // a decimal id holds no line end
}

/// Appends an event of type `event` with data `value`: `event: clients\ndata: 2\n\n`.
fn encode_named(out: &mut Vec<u8>, event: &str, value: impl Display, text: &mut String) {
    text.clear();
    let _ = write!(text, "{value}");
    let named = Event {
        event: Some(event),
        id: None,
        data: text,
    };
    let _ = sse::encode_event(out, &named); // our type names hold no line end
}

/// One stream, as `http.rs` plans it from the command line and the request.
pub struct StreamPlan {
    /// `--interval`: the time between ticks.
    pub interval_ms: u64,
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

/// Sends `head` (the response head, encoded), then the stream, counted in `clients`
/// meanwhile, until a write fails or the stream reaches its age. `send` puts one block on
/// the wire whole, within the write timeout (`http.rs` gives it the socket). Returns what
/// it knows, for the log: `12 events written (viewer left)`.
pub fn stream_clock(
    send: impl FnMut(&[u8]) -> io::Result<()>,
    head: Vec<u8>,
    stream: &StreamPlan,
    clients: &AtomicUsize,
    clock: &Clock,
) -> String {
    clients.fetch_add(1, Ordering::SeqCst);
    let _counted = Counted(clients);
    let mut events = 0;
    let reason = match run_clock(send, head, stream, clients, clock, &mut events) {
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

/// The loop: each pass is one wake and one whole write. The first holds, in
/// this order, the head, the opening, and every tick due: tick 0, or all a
/// resumed viewer missed (`k` counts from the id it resumed from, which it
/// has). Then the loop sleeps while tick `k` is not due, and each write holds
/// the tick due (more after a late wake; none, so no write, after a wake the
/// clock made early: slewed, or stepped back by 1 s or less), a keep-alive,
/// or a step's comment and its tick; `clients` or the age's end may follow.
/// A viewer that left fails a write: the first after its close if it left
/// bytes unread (a reset), else the second.
fn run_clock(
    mut send: impl FnMut(&[u8]) -> io::Result<()>,
    mut block: Vec<u8>,
    stream: &StreamPlan,
    clients: &AtomicUsize,
    clock: &Clock,
    events: &mut u64,
) -> io::Result<()> {
    let place = time::random_below(time::PLACES); // in the tick window, `time.rs`
    // Both clocks, read at each wake: the wall clock names and times ticks;
    // the monotonic one times sleeps and the age, and so finds steps.
    let (mut wall, mut mono) = (clock.now(), Instant::now());
    let born = mono;
    let (mut schedule, mut k, note) = plan(&stream.start, stream.interval_ms, millis(wall));
    // Whole seconds show whole seconds; another interval or phase, ms.
    let with_millis = stream.interval_ms % 1000 != 0 || schedule.first_ms % 1000 != 0;
    let text = &mut String::with_capacity(48);
    // The opening: comments, a resumed id (see `sse.rs`), `retry:`, `clients`.
    sse::encode_comment(&mut block, GREETING);
    if !note.is_empty() {
        sse::encode_comment(&mut block, &note);
    }
    if let Start::Resume(last_ms) = stream.start {
        sse::encode_id(&mut block, last_ms);
    }
    sse::encode_retry(&mut block, stream.retry_ms);
    let mut said = clients.load(Ordering::SeqCst);
    encode_named(&mut block, "clients", said, text);
    let mut named = 1; // the events in a block besides its ticks (here the opening's `clients`)
    loop {
        let mut ticks = 0;
        while schedule.due(k) <= wall {
            encode_tick(&mut block, schedule.tick_ms(k), with_millis, text);
            (k, ticks) = (k + 1, ticks + 1);
        }
        let open = clients.load(Ordering::SeqCst);
        // Set after the ticks: `plan` leaves it 0, so the first write's are due at once.
        schedule.offset_ms = clock.offset_ms(place, open, stream.interval_ms);
        // The named events after a write's ticks, the place to add one: `clients`, if changed.
        if ticks > 0 && open != said {
            (said, named) = (open, named + 1);
            encode_named(&mut block, "clients", open, text);
        }
        // At its age a stream ends with this write, to be resumed at once.
        let aged = stream.max_age_ms > 0 && millis(mono - born) >= stream.max_age_ms;
        if aged {
            sse::encode_comment(&mut block, AGED);
            sse::encode_retry(&mut block, AGED_RETRY_MS);
            sse::end_block(&mut block);
        }
        send(&block)?;
        (*events, named) = (*events + ticks + named, 0);
        if aged {
            return Ok(());
        }
        block.clear();
        block.shrink_to(BLOCK_BYTES);
        // Until tick `k` is due by the wall clock, sleep on the monotonic one, waking
        // for a keep-alive if that comes first (WHATWG HTML 9.2.7). Now is the wake's
        // reading plus the build and write time: a step meanwhile shows at the next wake.
        let wait = schedule.due(k).saturating_sub(wall + mono.elapsed());
        thread::sleep(wait.min(stream.keep_alive));
        let was = (wall, mono);
        (wall, mono) = (clock.now(), Instant::now());
        if let Some(step) = time::step_note(was, wall, mono) {
            // A viewer sees this comment, then the tick the schedule moved to;
            // after a step back, ids go down (an `EventSource` does not mind).
            sse::encode_comment(&mut block, &step);
            schedule.restart(wall);
            k = 0;
        } else if wait > stream.keep_alive {
            sse::encode_comment(&mut block, "keep-alive");
            sse::end_block(&mut block);
        } else {
            let late = wall.saturating_sub(schedule.due(k));
            clock.report_late(late, k, open, stream.interval_ms);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tick_carries_its_time_as_id_and_rfc3339_data_in_46_bytes() {
        let mut out = Vec::new();
        encode_tick(&mut out, 1_795_618_800_000, false, &mut String::new());
        assert_eq!(out, b"id: 1795618800000\ndata: 2026-11-25T15:00:00Z\n\n");
        assert_eq!(out.len(), 46);
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
