//! Load benchmark, ignored by default. Run it with
//!
//! ```text
//! cargo test --release --test load -- --ignored --nocapture
//! STREAMS=10000 cargo test --release --test load -- --ignored --nocapture
//! ```
//!
//! It starts the release binary, opens `STREAMS` (default 1,000) `/events`
//! clients at 3,000 connects a second, lets them settle, and measures a
//! window of `WINDOW` seconds (default 10): every event each client
//! receives, new streams' time to first event, and the server's threads,
//! memory and CPU from `/proc/<pid>`. It prints one table, and fails if any
//! client missed an event. This process and the server each need a little
//! more than STREAMS open files (`ulimit -n`) and threads.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::{EventStream, Server};

const INTERVAL_MS: u64 = 1000;
const CONNECTS_PER_SECOND: u64 = 3000;
const SETTLE: Duration = Duration::from_secs(2);

/// One received clock event: when it arrived, and its id.
type Arrival = (Instant, u64);

#[test]
#[ignore = "a benchmark: run with --release --ignored --nocapture"]
fn streams_get_every_tick_on_time() {
    let streams = env_number("STREAMS", 1000);
    let window = Duration::from_secs(env_number("WINDOW", 10));
    let max_clients = (streams + 100).to_string();
    let server = Server::start(&[
        "--quiet",
        "--interval",
        "1000",
        "--max-connections",
        &max_clients,
    ]);
    server.wait_until_idle();
    let idle_kb = server.rss_kb();

    // Connect at a steady 3,000 a second; a thread per client reads.
    let started_streams = AtomicUsize::new(0);
    let (arrivals, report) = thread::scope(|scope| {
        let mut sockets = Vec::new();
        let mut readers = Vec::new();
        let begin = Instant::now();
        for n in 0..streams {
            let due = begin + Duration::from_micros(n * 1_000_000 / CONNECTS_PER_SECOND);
            thread::sleep(due.saturating_duration_since(Instant::now()));
            let mut socket = TcpStream::connect(server.addr).expect("connect");
            socket
                .write_all(b"GET /events HTTP/1.1\r\nHost: load\r\n\r\n")
                .expect("send");
            // One descriptor per client, shared: its thread reads, and we
            // shut it down at the end.
            let socket = Arc::new(socket);
            sockets.push(Arc::clone(&socket));
            let started = &started_streams;
            let reader = thread::Builder::new()
                .stack_size(64 * 1024)
                .spawn_scoped(scope, move || read_arrivals(&socket, started))
                .expect("a client thread");
            readers.push(reader);
        }
        let connected_in = begin.elapsed();
        let all_started = common::wait_for_within(Duration::from_secs(60), || {
            (started_streams.load(Ordering::SeqCst) == sockets.len()).then_some(())
        });
        assert!(all_started.is_some(), "every stream got its first event");
        thread::sleep(SETTLE);

        let window_start = Instant::now();
        let (cpu_before, threads) = (server.cpu_ticks(), server.threads());
        let first_event_ms = probe_first_events(&server, window_start + window);
        let (cpu_after, loaded_kb) = (server.cpu_ticks(), server.rss_kb());
        let window_end = Instant::now();

        for socket in &sockets {
            let _ = socket.shutdown(Shutdown::Both);
        }
        let arrivals: Vec<Vec<Arrival>> = readers
            .into_iter()
            .map(|r| r.join().expect("client"))
            .collect();
        let report = Report {
            connected_in,
            window: (window_start, window_end),
            first_event_ms,
            threads,
            idle_kb,
            loaded_kb,
            cpu_ms: (cpu_after - cpu_before) * 10,
        };
        (arrivals, report)
    });
    let missed = report.print(&arrivals);
    assert_eq!(missed, 0, "every client got every tick");
}

/// Reads one stream until it ends, noting each clock event's arrival.
fn read_arrivals(socket: &TcpStream, started: &AtomicUsize) -> Vec<Arrival> {
    let mut reader = BufReader::new(socket);
    let mut arrivals = Vec::new();
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|read| read > 0) {
        if let Some(id) = line
            .strip_prefix("id: ")
            .and_then(|id| id.trim_end().parse().ok())
        {
            if arrivals.is_empty() {
                started.fetch_add(1, Ordering::SeqCst);
            }
            arrivals.push((Instant::now(), id));
        }
        line.clear();
    }
    arrivals
}

/// Opens a fresh stream every 100 ms until `until`, timing its first event.
fn probe_first_events(server: &Server, until: Instant) -> Vec<f64> {
    let mut times = Vec::new();
    while Instant::now() < until {
        let start = Instant::now();
        let mut stream = EventStream::open(server, "/events");
        stream.next_tick();
        times.push(start.elapsed().as_secs_f64() * 1000.0);
        drop(stream);
        thread::sleep(Duration::from_millis(100));
    }
    times
}

struct Report {
    connected_in: Duration,
    window: (Instant, Instant),
    first_event_ms: Vec<f64>,
    threads: usize,
    idle_kb: u64,
    loaded_kb: u64,
    cpu_ms: u64,
}

impl Report {
    /// Prints the table; returns the number of missed events.
    fn print(&self, arrivals: &[Vec<Arrival>]) -> u64 {
        let (start, end) = self.window;
        let (mut received, mut missed) = (0, 0);
        let mut deviations_ms = Vec::new();
        for stream in arrivals {
            // Ids step by exactly the interval: a bigger step is a miss.
            for pair in stream.windows(2) {
                let ((before, before_id), (at, id)) = (pair[0], pair[1]);
                if at < start || at > end {
                    continue;
                }
                missed += (id - before_id) / INTERVAL_MS - 1;
                if before >= start {
                    let gap = at.duration_since(before).as_secs_f64() * 1000.0;
                    deviations_ms.push((gap - INTERVAL_MS as f64).abs());
                }
            }
            received += stream
                .iter()
                .filter(|(at, _)| (start..=end).contains(at))
                .count() as u64;
            // A stream that stopped early misses the ticks after its last.
            let last = stream.last().map_or(start, |(at, _)| *at);
            let silent_ms = end.saturating_duration_since(last).as_millis() as u64;
            missed += silent_ms.saturating_sub(INTERVAL_MS) / INTERVAL_MS;
        }
        let streams = arrivals.len() as u64;
        let window_s = end.duration_since(start).as_secs_f64();
        let per_stream_kb = (self.loaded_kb.saturating_sub(self.idle_kb)) as f64 / streams as f64;
        let cpu_per_1000 = self.cpu_ms as f64 * 1000.0 / received.max(1) as f64;
        println!();
        println!(
            "load: {streams} streams, --interval {INTERVAL_MS}, a {window_s:.1} s window, {} cores",
            cores()
        );
        println!(
            "  connected in                  {:.2} s ({CONNECTS_PER_SECOND} a second)",
            self.connected_in.as_secs_f64()
        );
        println!(
            "  events received / expected    {received} / {}",
            received + missed
        );
        println!("  missed events                 {missed}");
        println!(
            "  gap deviation p50/p99/max     {:.2} / {:.2} / {:.2} ms",
            percentile(&deviations_ms, 50),
            percentile(&deviations_ms, 99),
            percentile(&deviations_ms, 100)
        );
        println!(
            "  first event, new stream       p50 {:.2} ms, p99 {:.2} ms ({} probes)",
            percentile(&self.first_event_ms, 50),
            percentile(&self.first_event_ms, 99),
            self.first_event_ms.len()
        );
        println!("  server threads                {}", self.threads);
        println!(
            "  server RSS idle / loaded      {:.1} MB / {:.1} MB, {per_stream_kb:.2} KB per stream",
            self.idle_kb as f64 / 1024.0,
            self.loaded_kb as f64 / 1024.0
        );
        println!(
            "  server CPU per 1,000 events   {cpu_per_1000:.1} ms ({} ms in the window)",
            self.cpu_ms
        );
        missed
    }
}

fn percentile(samples: &[f64], percent: usize) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = (sorted.len() * percent).div_ceil(100).max(1) - 1;
    sorted.get(rank).copied().unwrap_or(f64::NAN)
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn cores() -> usize {
    thread::available_parallelism().map_or(1, usize::from)
}
