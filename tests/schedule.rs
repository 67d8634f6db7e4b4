//! The schedule: every viewer's clock shows the right second. Tick ids are
//! multiples of the interval since the Unix epoch; tick 0 goes out at once,
//! named by the boundary just before it, and every later tick arrives just
//! after the boundary it names, however late in a second its viewer came.

mod common;

use std::hash::{BuildHasher, Hasher, RandomState};
use std::thread;
use std::time::Duration;

use common::{EventStream, Server, unix_ms_now};

const INTERVAL_MS: u64 = 1000;
/// How late after the second it names a tick may arrive (issue 12: the
/// page beside a wall clock shows the same second, give or take 10 ms).
const MOST_LATE_MS: i128 = 10;
const STREAMS: usize = 3;
/// Ticks read after tick 0, on each stream.
const TICKS: u64 = 5;
/// Seconds allowed to have a tick more than `MOST_LATE_MS` late. On a
/// shared 2-core machine any thread, the test's own readers included, is
/// now and then woken tens of ms late: with two busy loops beside this
/// test, 2 % of ticks were, a few seconds at a time, while a bare thread
/// of the test sleeping to the same boundaries was late at those moments
/// too. A schedule that is late by design (ticks at the phase of the
/// connection, a window too wide for three streams) is late in every
/// second, not in one or two.
const SECONDS_SPOILT_AT_MOST: usize = 2;

/// One tick as the test saw it: its id, and the test's wall clock in whole
/// Unix ms (as the server reads it) when the tick had been read.
type Seen = (u64, u64);

#[test]
fn every_tick_arrives_within_10_ms_after_the_second_it_names() {
    let server = Server::start(&["--interval", "1000"]);
    // Open the streams at random moments of the coming second, kept at
    // least 50 ms from its boundaries: a stream whose ticks keep the phase
    // of its connection would then show every second at least 50 ms late.
    let next_second = (unix_ms_now() / INTERVAL_MS + 1) * INTERVAL_MS;
    let mut moments: Vec<u64> = (0..STREAMS)
        .map(|_| next_second + 50 + random() % (INTERVAL_MS - 100))
        .collect();
    moments.sort_unstable();
    let seen: Vec<Vec<Seen>> = thread::scope(|scope| {
        let readers: Vec<_> = moments
            .iter()
            .map(|&moment| {
                thread::sleep(Duration::from_millis(moment.saturating_sub(unix_ms_now())));
                let mut stream = EventStream::open(&server, "/events");
                // Each stream is read on its own thread, so that no stream
                // waits for another to be read.
                scope.spawn(move || {
                    (0..=TICKS)
                        .map(|_| {
                            let (id, _) = stream.next_tick();
                            (id, unix_ms_now())
                        })
                        .collect()
                })
            })
            .collect();
        readers
            .into_iter()
            .map(|reader| reader.join().expect("a reader"))
            .collect()
    });

    // Every tick: named by the start of a second, one interval after the
    // one before, never seen before the time it names; tick 0 within the
    // second it names.
    let mut faults = Vec::new();
    // For each second named after tick 0, the latest of its ticks.
    let mut latest = std::collections::BTreeMap::<u64, i128>::new();
    for (n, ticks) in seen.iter().enumerate() {
        for (k, &(id, seen_at)) in ticks.iter().enumerate() {
            let mut fault = |what: String| faults.push(format!("stream {n}, tick {k}: {what}"));
            let late = i128::from(seen_at) - i128::from(id);
            if id % INTERVAL_MS != 0 {
                fault(format!("id {id} is not the start of a second"));
            }
            if k > 0 && id != ticks[k - 1].0 + INTERVAL_MS {
                fault(format!("id {id} after {}", ticks[k - 1].0));
            }
            if late < 0 || (k == 0 && late >= INTERVAL_MS.into()) {
                fault(format!("id {id} seen {late} ms after it"));
            }
            if k > 0 {
                let second = latest.entry(id).or_insert(late);
                *second = late.max(*second);
            }
        }
    }
    let spoilt: Vec<_> = latest
        .iter()
        .filter(|(_, late)| **late > MOST_LATE_MS)
        .collect();
    assert!(
        faults.is_empty() && spoilt.len() <= SECONDS_SPOILT_AT_MOST,
        "ticks on the second's start, each seen 0 to {MOST_LATE_MS} ms after it in all but \
         {SECONDS_SPOILT_AT_MOST} seconds; streams opened at {moments:?}:\n{}\n\
         latest tick of each second, ms after its start: {latest:?}",
        faults.join("\n")
    );
}

/// A random number, from std's randomly keyed hasher (as the server does
/// for `retry:`).
fn random() -> u64 {
    RandomState::new().build_hasher().finish()
}
