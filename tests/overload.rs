//! Overload benchmark, ignored by default. Run it with
//!
//! ```text
//! cargo test --release --test overload -- --ignored --nocapture
//! ```
//!
//! While silent connections keep arriving (a slowloris flood: 5,000 by
//! default, `FLOOD=N` to change) and a client that never reads holds a
//! stream, a probe asks for the page and for a new stream every 50 ms and
//! times both; a sampler watches the server's thread count. It prints one
//! table and fails only if a probe went unanswered, never on a slow day.

mod common;

use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::{EventStream, Server};

const MAX_CONNECTIONS: usize = 1000;
const TURN_AWAY_THREADS: usize = 8;

#[test]
#[ignore = "a benchmark: run with --ignored --nocapture"]
fn page_and_first_event_stay_fast_under_a_silent_flood() {
    let flood: usize = std::env::var("FLOOD")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(5000);
    let server = Server::start(&[
        "--quiet",
        "--interval",
        "1000",
        "--max-connections",
        &MAX_CONNECTIONS.to_string(),
    ]);
    let mut stalled = server.connect();
    stalled
        .write_all(b"GET /events HTTP/1.1\r\nHost: bench\r\n\r\n")
        .expect("send");
    // `stalled` never reads; its stream thread holds a slot throughout.

    let done = AtomicBool::new(false);
    let most_threads = AtomicUsize::new(0);
    let started = Instant::now();
    let (page_ms, event_ms, failures) = thread::scope(|scope| {
        scope.spawn(|| {
            while !done.load(Ordering::SeqCst) {
                most_threads.fetch_max(server.threads(), Ordering::SeqCst);
                thread::sleep(Duration::from_millis(5));
            }
        });
        let flooder = scope.spawn(|| flood_silently(&server, flood));
        let probe = scope.spawn(|| probe_until(&server, &done));
        flooder.join().expect("flood");
        done.store(true, Ordering::SeqCst);
        probe.join().expect("probe")
    });
    let seconds = started.elapsed().as_secs_f64();
    let most = most_threads.load(Ordering::SeqCst);

    println!();
    println!(
        "overload: {flood} silent connections in {seconds:.1} s, 1 stalled stream, --max-connections {MAX_CONNECTIONS}"
    );
    println!("{:<28}{:>8}{:>8}{:>8}", "probe (ms)", "p50", "p99", "max");
    for (name, samples) in [
        ("page (GET /, whole answer)", &page_ms),
        ("first event (GET /events)", &event_ms),
    ] {
        println!(
            "{name:<28}{:>8.2}{:>8.2}{:>8.2}",
            percentile(samples, 50),
            percentile(samples, 99),
            percentile(samples, 100)
        );
    }
    println!("probes: {} of each, {failures} unanswered", page_ms.len());
    println!(
        "server threads at most: {most} (slots {MAX_CONNECTIONS} + turn-away {TURN_AWAY_THREADS} + accept 1)"
    );
    assert_eq!(failures, 0, "every probe answered");
    assert!(!page_ms.is_empty(), "the probe ran");
}

/// Opens `count` connections that never send a byte, about 1,000 a second,
/// keeping the newest 2,000 open (the server closes older ones itself as it
/// reclaims their slots).
fn flood_silently(server: &Server, count: usize) {
    let mut open = VecDeque::new();
    let started = Instant::now();
    for n in 0..count {
        if let Ok(socket) = std::net::TcpStream::connect(server.addr) {
            open.push_back(socket);
        }
        if open.len() > 2000 {
            open.pop_front();
        }
        let due = started + Duration::from_millis(u64::try_from(n).expect("fits"));
        thread::sleep(due.saturating_duration_since(Instant::now()));
    }
}

/// Every 50 ms until `done`: time a page request and a new stream's first
/// event. Returns both lists of ms, and how many probes went unanswered.
fn probe_until(server: &Server, done: &AtomicBool) -> (Vec<f64>, Vec<f64>, usize) {
    let (mut page_ms, mut event_ms, mut failures) = (Vec::new(), Vec::new(), 0);
    while !done.load(Ordering::SeqCst) {
        let start = Instant::now();
        let answer = server.get("/");
        page_ms.push(start.elapsed().as_secs_f64() * 1000.0);
        failures += usize::from(!answer.starts_with("HTTP/1.1 200 OK\r\n"));

        let start = Instant::now();
        let mut stream = EventStream::open(server, "/events");
        let opening = stream.next_block();
        if opening.get("") == Some("full, come back later") {
            failures += 1;
        } else {
            stream.next_tick();
            event_ms.push(start.elapsed().as_secs_f64() * 1000.0);
        }
        drop(stream);
        thread::sleep(Duration::from_millis(50));
    }
    (page_ms, event_ms, failures)
}

fn percentile(samples: &[f64], percent: usize) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = (sorted.len() * percent).div_ceil(100).max(1) - 1;
    sorted.get(rank).copied().unwrap_or(f64::NAN)
}
