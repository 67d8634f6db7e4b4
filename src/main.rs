//! sse-clock, the full server: read its files in the README's order. This one, lesson 6b:
//! bind, room for every connection, the log's thread, the accept loop, a thread per connection.

mod cli;
mod clock;
mod http;
mod request;
mod slots;
mod sse;
mod time;

use std::io::{self, ErrorKind, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};
use std::{env, iter, thread};

use http::Site;
use slots::Slots;

/// A thread's stack: no recursion, buffers on the heap, so 64 KiB is plenty;
/// Rust's default 2 MiB would reserve 20 GiB for 10,000 streams, not 625 MiB.
const STACK_BYTES: usize = 64 * 1024;

/// After a failed `accept`, wait this long, so a lasting failure cannot spin a core.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// When the server is full, say so on stderr at most this often.
const FULL_LOG_EVERY: Duration = Duration::from_secs(10);
/// Log lines waiting for stderr: past this many, a line is dropped and counted, never waited for.
const LOG_QUEUE_LINES: usize = 1000;
/// Descriptors kept for reclaimed connections whose threads are still closing them.
const CLOSING_FILES: usize = 8;

fn main() -> ExitCode {
    let config = match cli::parse_args(env::args_os().skip(1)) {
        Ok(cli::Command::Run(config)) => config,
        Ok(cli::Command::Help) => return say(cli::USAGE),
        Ok(cli::Command::Version) => return say(concat!("sse-clock ", env!("CARGO_PKG_VERSION"))),
        Err(reason) => {
            let _ = writeln!(io::stderr(), "sse-clock: {reason}\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    let (listener, addr) = match bind(&config.addr) {
        Ok(bound) => bound,
        Err(reason) => {
            let _ = writeln!(io::stderr(), "sse-clock: {reason}");
            return ExitCode::FAILURE;
        }
    };
    let max_connections = reserve_files(&listener, config.max_connections);
    say(&format!("Listening on http://{addr}")); // how scripts learn the real port
    let (queue, lines) = mpsc::sync_channel(LOG_QUEUE_LINES);
    let quiet = config.settings.quiet;
    let site = Arc::new(Site {
        settings: config.settings,
        clients: AtomicUsize::new(0),
        log: (!quiet).then_some(queue),
        log_dropped: AtomicU64::new(0),
    });
    if !quiet {
        let site = Arc::clone(&site);
        thread::spawn(move || write_log(&lines, &site)); // at start: a panic if it cannot
    }
    // By default a tenth of the slots: no one address can lock the others out.
    let share = config.max_per_address.unwrap_or(max_connections / 10);
    accept_loop(&listener, &Slots::new(max_connections, share.max(1)), &site)
}

/// Prints a line on stdout (a closed stdout is no reason to panic).
fn say(line: &str) -> ExitCode {
    let _ = writeln!(io::stdout(), "{line}");
    ExitCode::SUCCESS
}

fn bind(addr: &str) -> Result<(TcpListener, SocketAddr), String> {
    let listener = TcpListener::bind(addr).map_err(|error| match error.kind() {
        ErrorKind::AddrInUse => format!("{addr} is already in use (another server on that port?)"),
        _ => format!("cannot listen on {addr}: {error}"),
    })?;
    let bound = listener.local_addr();
    let bound = bound.map_err(|error| format!("cannot read the bound address: {error}"))?;
    Ok((listener, bound))
}

/// Makes room for `max` connections in the table of open files, or returns the cap that fits the
/// soft limit: a socket per connection, besides stdin, stdout, stderr, the listener, one per
/// turn-away thread, `CLOSING_FILES`. Copies of the listener grow the table once, now, while this
/// is the only thread (later, each doubling stalls `accept` 10 to 20 ms while every core syncs);
/// the first that fails (EMFILE) finds the limit: the last copy's number + 1.
fn reserve_files(listener: &TcpListener, max: usize) -> usize {
    let others = slots::TURN_AWAY_THREADS + CLOSING_FILES;
    let copies = iter::repeat_with(|| listener.try_clone()).take(max + others);
    let copies: Vec<TcpListener> = copies.map_while(Result::ok).collect();
    let short = max + others - copies.len();
    if short == 0 {
        return max; // dropping `copies` closes them; the table stays grown
    }
    let fits = copies.len().saturating_sub(others).max(1);
    let open = copies.last().unwrap_or(listener).as_raw_fd() + 1;
    let needed = usize::try_from(open).unwrap_or(0) + short;
    let _ = writeln!(
        io::stderr(),
        "sse-clock: --max-connections lowered from {max} to {fits}: with {open} files open, \
         no more may be; for {max}, allow {needed}: `ulimit -n {needed}`, \
         or `LimitNOFILE={needed}` under systemd"
    );
    fits
}

/// Writes the log's lines to stderr, on a thread of its own: a stderr nobody reads stops this
/// thread alone. Once stderr takes lines again, it says how many were dropped meanwhile.
fn write_log(lines: &Receiver<String>, site: &Site) {
    let mut stderr = io::stderr(); // a closed stderr is no reason to panic: errors ignored
    for line in lines {
        let _ = writeln!(stderr, "{line}");
        let dropped = site.log_dropped.swap(0, Ordering::SeqCst);
        if dropped > 0 {
            let _ = writeln!(
                stderr,
                "{dropped} log lines dropped (stderr was not read in time)"
            );
        }
    }
}

/// Accepts for ever: each connection gets a slot, a turn-away thread, or closed.
fn accept_loop(listener: &TcpListener, slots: &Arc<Slots>, site: &Arc<Site>) -> ! {
    let mut full_logged: Option<Instant> = None;
    let (mut accepting, mut starting) = (0, 0); // failures in a row
    loop {
        let accepted = listener.accept();
        // Out of descriptors (EMFILE, ENFILE): a connection still silent gives its up.
        if let Err(Some(23 | 24)) = accepted.as_ref().map_err(io::Error::raw_os_error) {
            slots.reclaim_oldest();
        }
        log_failures(site, "accept", &mut accepting, &accepted);
        // Usually passing (out of descriptors, an early reset): pause, go on.
        let Ok((socket, peer)) = accepted else {
            thread::sleep(ACCEPT_BACKOFF);
            continue;
        };
        let shared = Arc::clone(site);
        let work: Box<dyn FnOnce() + Send> = match slots.admit(socket, peer.ip()) {
            Ok(slot) => Box::new(move || slots::serve(slot, peer, &shared)),
            Err((socket, why)) => {
                if full_logged.is_none_or(|at| at.elapsed() >= FULL_LOG_EVERY) {
                    site.log(format!("{why}; turning newcomers away"));
                    full_logged = Some(Instant::now());
                }
                match slots.claim_turn_away() {
                    Some(turn) => Box::new(move || slots::turn_away(turn, socket, peer, &shared)),
                    None => continue, // no turn-away thread free: dropping the socket closes it
                }
            }
        };
        // Without a thread, dropping `work` closes the connection and frees its slot.
        let spawned = thread::Builder::new().stack_size(STACK_BYTES).spawn(work);
        log_failures(site, "starting a thread", &mut starting, &spawned);
    }
}

/// Logs the first of a run of failures (out of descriptors, of threads) and the
/// success that ends it, never a line per connection; `failed` counts the run.
fn log_failures<T>(site: &Site, what: &str, failed: &mut u64, result: &io::Result<T>) {
    match result {
        Err(error) if *failed == 0 => site.log(format!("{what} failed: {error}")),
        Ok(_) if *failed > 0 => site.log(format!("{what} works again after {failed} failures")),
        _ => {}
    }
    *failed = result.as_ref().map_or(*failed + 1, |_| 0);
}
