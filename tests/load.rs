//! Load benchmarks, ignored by default. Run them with
//!
//! ```text
//! cargo test --release --test load streams -- --ignored --nocapture
//! STREAMS=10000 cargo test --release --test load streams -- --ignored --nocapture
//! PEER_SERVER='/path/to/other-server 127.0.0.1:{port}' \
//!   cargo test --release --test load streams -- --ignored --nocapture
//! cargo test --release --test load idle -- --ignored --nocapture
//! ```
//!
//! `streams_get_every_tick_on_time` starts the release binary, opens
//! `STREAMS` (default 1,000) `/events` clients at 3,000 connects a second,
//! lets them settle, and measures a window of `WINDOW` seconds (default
//! 10): every event each client receives, how late after the time it names
//! each one arrives, new streams' time to first event, and the server's
//! threads, memory and CPU from `/proc/<pid>`. It fails if any client
//! missed an event from sse-clock.
//!
//! `PEER_SERVER` names another SSE server to measure the same way in the
//! same run, after sse-clock, so that the two columns of the table compare
//! like with like. It is a command line split at spaces (no shell, no
//! quotes), started as is, with `{port}` replaced by a free loopback port;
//! it must serve a stream of one event a second at `GET /events` on that
//! port. `PEER_DIR` sets its working directory, `PEER_NAME` its column's
//! title (by default the program's file name).
//!
//! This process and the server each need a little more than STREAMS open
//! files (`ulimit -n`) and threads.

mod common;

use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use chrono::DateTime;
use common::Server;

const INTERVAL_MS: u64 = 1000;
const CONNECTS_PER_SECOND: u64 = 3000;
const SETTLE: Duration = Duration::from_secs(2);
/// Between the two servers: time for the first one's sockets to close.
const PAUSE: Duration = Duration::from_secs(3);

#[test]
#[ignore = "a benchmark: run with --release --ignored --nocapture"]
fn streams_get_every_tick_on_time() {
    let streams = env_number("STREAMS", 1000);
    let window = Duration::from_secs(env_number("WINDOW", 10));
    let ours = {
        let target = Target::sse_clock(streams);
        measure(&target, streams, window)
    };
    let mut columns = vec![ours];
    if let Some(peer) = Target::peer_from_env() {
        thread::sleep(PAUSE);
        columns.push(measure(&peer, streams, window));
    }
    print_table(streams, window, &columns);
    assert_eq!(
        columns[0].missed, 0,
        "every sse-clock client got every tick"
    );
}

#[test]
#[ignore = "takes a minute: run with --release --ignored --nocapture"]
fn an_idle_server_uses_no_cpu() {
    let server = Server::start(&["--quiet"]);
    server.wait_until_idle();
    let pid = server.pid();
    let (cpu_before, wakeups_before) = (cpu_ticks(pid), wakeups(pid));
    thread::sleep(Duration::from_secs(60));
    let (cpu_after, wakeups_after) = (cpu_ticks(pid), wakeups(pid));
    let cpu_ms = (cpu_after - cpu_before) * 10;
    let woke = wakeups_after - wakeups_before;
    println!("\nidle: no streams for 60 s: {cpu_ms} ms of CPU, {woke} thread wakeups");
    assert_eq!(cpu_ms, 0, "an idle server uses no CPU");
}

// ---------------------------------------------------------------------------
// The servers under test
// ---------------------------------------------------------------------------

/// A running server to measure, killed when dropped.
struct Target {
    name: String,
    addr: SocketAddr,
    pid: u32,
    /// sse-clock, which `Server` kills when dropped.
    _ours: Option<Server>,
    /// The peer, which `Target` kills when dropped.
    peer: Option<Child>,
}

impl Target {
    /// The release build of sse-clock, with room for every stream.
    fn sse_clock(streams: u64) -> Target {
        let max_connections = (streams + 100).to_string();
        let server = Server::start(&[
            "--quiet",
            "--interval",
            "1000",
            "--max-connections",
            &max_connections,
        ]);
        server.wait_until_idle();
        Target {
            name: "sse-clock".to_owned(),
            addr: server.addr,
            pid: server.pid(),
            _ours: Some(server),
            peer: None,
        }
    }

    /// The server `PEER_SERVER` names, if it is set, once it accepts
    /// connections.
    fn peer_from_env() -> Option<Target> {
        let command_line = std::env::var("PEER_SERVER").ok()?;
        let port = common::free_port().to_string();
        let mut words = command_line
            .split_whitespace()
            .map(|word| word.replace("{port}", &port));
        let program = words.next().expect("PEER_SERVER names a program");
        let mut command = Command::new(&program);
        command
            .args(words)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Ok(dir) = std::env::var("PEER_DIR") {
            command.current_dir(dir);
        }
        let child = command.spawn().expect("start PEER_SERVER");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("an address");
        let up = common::wait_for(|| TcpStream::connect(addr).ok());
        assert!(up.is_some(), "PEER_SERVER does not listen on {addr}");
        let name = std::env::var("PEER_NAME").unwrap_or_else(|_| {
            let file_name = std::path::Path::new(&program).file_name();
            file_name.map_or(program.clone(), |name| name.to_string_lossy().into_owned())
        });
        Some(Target {
            name,
            addr,
            pid: child.id(),
            _ours: None,
            peer: Some(child),
        })
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Some(child) = &mut self.peer {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

// ---------------------------------------------------------------------------
// One measurement: connect, settle, measure a window
// ---------------------------------------------------------------------------

/// One message event as a client received it.
#[derive(Clone, Copy)]
struct Arrival {
    /// When it arrived, on the monotonic clock: for gaps and the window.
    at: Instant,
    /// When it arrived, on the wall clock, in Unix ms.
    wall_ms: f64,
    /// The time its `data` names, in Unix ms (see `named_ms`).
    named_ms: Option<i64>,
}

/// What one server did during one window.
struct Figures {
    name: String,
    connected_in: Duration,
    window: Duration,
    received: u64,
    missed: u64,
    gap_deviation_ms: Vec<f64>,
    boundary_lag_ms: Vec<f64>,
    first_event_ms: Vec<f64>,
    threads: usize,
    idle_kb: u64,
    loaded_kb: u64,
    cpu_ms: u64,
}

fn measure(target: &Target, streams: u64, window: Duration) -> Figures {
    let idle_kb = rss_kb(target.pid);
    // Connect at a steady 3,000 a second; a thread per client reads.
    let started_streams = AtomicUsize::new(0);
    thread::scope(|scope| {
        let mut sockets = Vec::new();
        let mut readers = Vec::new();
        let begin = Instant::now();
        for n in 0..streams {
            let due = begin + Duration::from_micros(n * 1_000_000 / CONNECTS_PER_SECOND);
            thread::sleep(due.saturating_duration_since(Instant::now()));
            let socket = open_stream(target.addr);
            // One descriptor per client, shared: its thread reads, and we
            // shut it down at the end.
            let socket = Arc::new(socket);
            sockets.push(Arc::clone(&socket));
            let started = &started_streams;
            let reader = thread::Builder::new()
                .stack_size(64 * 1024)
                .spawn_scoped(scope, move || {
                    let mut arrivals = Vec::new();
                    read_events(&socket, |arrival| {
                        if arrivals.is_empty() {
                            started.fetch_add(1, Ordering::SeqCst);
                        }
                        arrivals.push(arrival);
                        true
                    });
                    arrivals
                })
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
        let (cpu_before, threads) = (cpu_ticks(target.pid), self::threads(target.pid));
        let first_event_ms = probe_first_events(target.addr, window_start + window);
        let (cpu_after, loaded_kb) = (cpu_ticks(target.pid), rss_kb(target.pid));
        let window_end = Instant::now();

        for socket in &sockets {
            let _ = socket.shutdown(Shutdown::Both);
        }
        let arrivals: Vec<Vec<Arrival>> = readers
            .into_iter()
            .map(|r| r.join().expect("client"))
            .collect();
        let mut figures = Figures {
            name: target.name.clone(),
            connected_in,
            window: window_end - window_start,
            received: 0,
            missed: 0,
            gap_deviation_ms: Vec::new(),
            boundary_lag_ms: Vec::new(),
            first_event_ms,
            threads,
            idle_kb,
            loaded_kb,
            cpu_ms: (cpu_after - cpu_before) * 10,
        };
        figures.count(&arrivals, (window_start, window_end));
        figures
    })
}

/// Connects and asks for the stream.
fn open_stream(addr: SocketAddr) -> TcpStream {
    let mut socket = TcpStream::connect(addr).expect("connect");
    socket
        .write_all(b"GET /events HTTP/1.1\r\nHost: load\r\nAccept: text/event-stream\r\n\r\n")
        .expect("send");
    socket
}

/// Opens a fresh stream every 100 ms until `until`, timing its first event
/// from the moment it connects. A probe that gets none within 5 s counts as
/// infinitely late.
fn probe_first_events(addr: SocketAddr, until: Instant) -> Vec<f64> {
    let mut times = Vec::new();
    while Instant::now() < until {
        let start = Instant::now();
        let socket = open_stream(addr);
        socket
            .set_read_timeout(Some(common::TIMEOUT))
            .expect("read timeout");
        let mut first = f64::INFINITY;
        read_events(&socket, |arrival| {
            first = arrival.at.duration_since(start).as_secs_f64() * 1000.0;
            false
        });
        times.push(first);
        drop(socket);
        thread::sleep(Duration::from_millis(100));
    }
    times
}

impl Figures {
    /// Counts the events that arrived within the window.
    fn count(&mut self, arrivals: &[Vec<Arrival>], (start, end): (Instant, Instant)) {
        let interval = INTERVAL_MS as i64;
        for stream in arrivals {
            let within: Vec<&Arrival> = stream
                .iter()
                .filter(|arrival| (start..=end).contains(&arrival.at))
                .collect();
            self.received += within.len() as u64;
            for arrival in &within {
                if let Some(named_ms) = arrival.named_ms {
                    self.boundary_lag_ms.push(arrival.wall_ms - named_ms as f64);
                }
            }
            for pair in stream.windows(2) {
                let (before, after) = (pair[0], pair[1]);
                if !(start..=end).contains(&after.at) {
                    continue;
                }
                // The times named step by exactly the interval: a bigger
                // step is a second the viewer never saw.
                if let (Some(was), Some(is)) = (before.named_ms, after.named_ms) {
                    self.missed += ((is - was) / interval - 1).max(0) as u64;
                }
                if before.at >= start {
                    let gap = after.at.duration_since(before.at).as_secs_f64() * 1000.0;
                    self.gap_deviation_ms.push((gap - INTERVAL_MS as f64).abs());
                }
            }
            // A stream that stopped early misses the ticks after its last.
            let last = stream.last().map_or(start, |arrival| arrival.at);
            let silent_ms = end.saturating_duration_since(last).as_millis() as u64;
            self.missed += silent_ms.saturating_sub(INTERVAL_MS) / INTERVAL_MS;
        }
    }

    fn per_stream_kb(&self, streams: u64) -> f64 {
        self.loaded_kb.saturating_sub(self.idle_kb) as f64 / streams as f64
    }

    fn cpu_per_1000_events(&self) -> f64 {
        self.cpu_ms as f64 * 1000.0 / self.received.max(1) as f64
    }
}

// ---------------------------------------------------------------------------
// Reading a stream the way EventSource does
// ---------------------------------------------------------------------------

/// Reads a response head, then its event stream (WHATWG HTML 9.2.6), and
/// hands each message event to `dispatch` as it arrives, until the stream
/// ends, fails, or `dispatch` returns false. An event counts as arrived
/// when the blank line that dispatches it does, as in a browser.
fn read_events(socket: &TcpStream, mut dispatch: impl FnMut(Arrival) -> bool) {
    let mut reader = BufReader::new(socket);
    let Some(chunked) = read_head(&mut reader) else {
        return;
    };
    let mut body: Box<dyn BufRead> = match chunked {
        true => Box::new(BufReader::new(Chunked::new(reader))),
        false => Box::new(reader),
    };
    let (mut line, mut is_message) = (String::new(), true);
    let mut data: Option<String> = None;
    while body.read_line(&mut line).is_ok_and(|read| read > 0) {
        let field_line = line.trim_end_matches(['\n', '\r']);
        if field_line.is_empty() {
            if let Some(data) = data.take().filter(|_| is_message) {
                let arrival = Arrival {
                    at: Instant::now(),
                    wall_ms: wall_ms_now(),
                    named_ms: named_ms(&data),
                };
                if !dispatch(arrival) {
                    return;
                }
            }
            is_message = true;
        } else if let Some(value) = field_line.strip_prefix("data:") {
            data = Some(value.strip_prefix(' ').unwrap_or(value).to_owned());
        } else if let Some(value) = field_line.strip_prefix("event:") {
            is_message = matches!(value.trim_start(), "" | "message");
        }
        line.clear();
    }
}

/// Reads the response head; returns whether the body is chunked, or None
/// when the answer is not a 200 stream.
fn read_head(reader: &mut impl BufRead) -> Option<bool> {
    let (mut line, mut chunked) = (String::new(), false);
    reader.read_line(&mut line).ok()?;
    if line.split(' ').nth(1) != Some("200") {
        return None;
    }
    loop {
        line.clear();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let field = line.to_ascii_lowercase();
        if field.starts_with("transfer-encoding:") && field.contains("chunked") {
            chunked = true;
        }
        if line == "\r\n" || line == "\n" {
            return Some(chunked);
        }
    }
}

/// The time an event's data names, in Unix ms: the data read as an RFC
/// 3339 date. Both sse-clock (`data: 2026-11-25T15:33:38Z`, the same
/// second as its id at whole-second intervals) and the Go tutorial server
/// (`data: 2026-11-25T15:33:38Z`, from `time.Now()` as it writes, and no
/// id) send one; it is the second a viewer's page shows.
fn named_ms(data: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(data)
        .ok()
        .map(|time| time.timestamp_millis())
}

/// A body sent with `Transfer-Encoding: chunked` (RFC 9112 section 7.1),
/// read as the bytes it carries. Go's `net/http` sends each flush as one
/// chunk: its size in hex, the bytes, a CRLF.
///
/// ```text
/// 1d\r\n
/// data: 2026-11-25T15:33:38Z\n
/// \n
/// \r\n
/// ```
struct Chunked<R> {
    inner: R,
    /// Bytes of the current chunk not read yet.
    left: usize,
    /// Whether a chunk has ended, so a CRLF comes before the next size.
    ended: bool,
}

impl<R: BufRead> Chunked<R> {
    fn new(inner: R) -> Self {
        Chunked {
            inner,
            left: 0,
            ended: false,
        }
    }
}

impl<R: BufRead> Read for Chunked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            let mut line = String::new();
            if self.ended {
                self.inner.read_line(&mut line)?; // the CRLF after a chunk
                line.clear();
            }
            self.inner.read_line(&mut line)?;
            let size = line.split(';').next().unwrap_or_default().trim();
            self.left = usize::from_str_radix(size, 16)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "chunk size"))?;
            if self.left == 0 {
                return Ok(0); // the last chunk
            }
            self.ended = true;
        }
        let most = buf.len().min(self.left);
        let read = self.inner.read(&mut buf[..most])?;
        self.left -= read;
        Ok(read)
    }
}

// ---------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------

fn print_table(streams: u64, window: Duration, columns: &[Figures]) {
    println!();
    println!(
        "load: {streams} streams, --interval {INTERVAL_MS}, {} s windows, {} cores",
        window.as_secs(),
        cores()
    );
    let row = |label: &str, cell: &dyn Fn(&Figures) -> String| {
        let cells: String = columns
            .iter()
            .map(|figures| format!(" {:>25}", cell(figures)))
            .collect();
        println!("  {label:<34}{cells}");
    };
    row("", &|f| f.name.clone());
    row("connected in (s)", &|f| {
        format!("{:.2}", f.connected_in.as_secs_f64())
    });
    row("window (s)", &|f| format!("{:.1}", f.window.as_secs_f64()));
    row("events received / expected", &|f| {
        format!("{} / {}", f.received, f.received + f.missed)
    });
    row("missed events", &|f| f.missed.to_string());
    row("gap deviation p50/p99/max (ms)", &|f| {
        three(&f.gap_deviation_ms)
    });
    row("boundary lag p50/p99/max (ms)", &|f| {
        three(&f.boundary_lag_ms)
    });
    row("first event p50/p99 (ms)", &|f| {
        let times = &f.first_event_ms;
        format!(
            "{:.2} / {:.2}",
            percentile(times, 50),
            percentile(times, 99)
        )
    });
    row("first event probes", &|f| {
        f.first_event_ms.len().to_string()
    });
    row("server threads", &|f| f.threads.to_string());
    row("server RSS idle / loaded (MB)", &|f| {
        format!(
            "{:.1} / {:.1}",
            f.idle_kb as f64 / 1024.0,
            f.loaded_kb as f64 / 1024.0
        )
    });
    row("RSS per stream (KB)", &|f| {
        format!("{:.2}", f.per_stream_kb(streams))
    });
    row("CPU in the window (ms)", &|f| f.cpu_ms.to_string());
    row("CPU per 1,000 events (ms)", &|f| {
        format!("{:.1}", f.cpu_per_1000_events())
    });
}

fn three(samples: &[f64]) -> String {
    format!(
        "{:.2} / {:.2} / {:.2}",
        percentile(samples, 50),
        percentile(samples, 99),
        percentile(samples, 100)
    )
}

fn percentile(samples: &[f64], percent: usize) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = (sorted.len() * percent).div_ceil(100).max(1) - 1;
    sorted.get(rank).copied().unwrap_or(f64::NAN)
}

// ---------------------------------------------------------------------------
// /proc/<pid>: any process, ours or the peer
// ---------------------------------------------------------------------------

/// A number from a `Name:  value` line of `/proc/<pid>/status`.
fn status_number(pid: u32, name: &str) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    let value = status
        .lines()
        .find_map(|line| line.strip_prefix(name))
        .unwrap_or_else(|| panic!("no {name} line"));
    let number = value.trim().trim_end_matches(" kB");
    number.parse().expect("a number")
}

fn rss_kb(pid: u32) -> u64 {
    status_number(pid, "VmRSS:")
}

fn threads(pid: u32) -> usize {
    status_number(pid, "Threads:") as usize
}

/// User plus system CPU time of all the process's threads, in clock ticks
/// (1/100 s on Linux): fields 14 and 15 of `/proc/<pid>/stat`.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc stat");
    // The fields after the parenthesised command name; utime and stime are
    // 12 and 13 of these.
    let after_name = stat.rsplit_once(") ").expect("a command name").1;
    let fields: Vec<&str> = after_name.split(' ').collect();
    let ticks = |at: usize| fields[at].parse::<u64>().expect("a tick count");
    ticks(11) + ticks(12)
}

/// How many times the process's threads have gone to sleep and been woken
/// so far: the sum of their `voluntary_ctxt_switches` in
/// `/proc/<pid>/task/*/status`.
fn wakeups(pid: u32) -> u64 {
    let tasks = fs::read_dir(format!("/proc/{pid}/task")).expect("read /proc tasks");
    let mut switches = 0;
    for task in tasks.map_while(Result::ok) {
        let Ok(status) = fs::read_to_string(task.path().join("status")) else {
            continue; // the thread ended meanwhile
        };
        let count = status
            .lines()
            .find_map(|line| line.strip_prefix("voluntary_ctxt_switches:"));
        switches += count
            .and_then(|n| n.trim().parse::<u64>().ok())
            .unwrap_or(0);
    }
    switches
}

fn wall_ms_now() -> f64 {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("after 1970");
    now.as_secs_f64() * 1000.0
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
