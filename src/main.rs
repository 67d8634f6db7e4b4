//! sse-clock: a Server-Sent Events clock on a small, blocking, std-only
//! HTTP/1.1 server, to be read in this order (each file uses only those before):
//! `sse.rs`, the event stream format; `clock.rs`, one viewer's stream;
//! `static/index.html`, `EventSource` in a page; `request.rs` and `http.rs`,
//! one request and its answer; `slots.rs`, the connection cap; `cli.rs` and
//! this file: the command line, bind, accept, a thread per connection.

mod cli;
mod clock;
mod http;
mod request;
mod slots;
mod sse;

use std::env;
use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::thread;
use std::time::{Duration, Instant};

use http::Site;
use slots::Slots;

/// A thread's stack: no recursion, buffers on the heap, so 64 KiB is plenty;
/// Rust's default 2 MiB would reserve 20 GiB for 10,000 streams, not 625 MiB.
const STACK_BYTES: usize = 64 * 1024;

/// After a failed `accept`, wait this long, so a lasting failure cannot spin a core.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// When the server is full, say so on stderr at most this often.
const FULL_LOG_EVERY: Duration = Duration::from_secs(10);

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
    // Scripts and tests read this line to learn the real port.
    say(&format!("Listening on http://{addr}"));
    let site = Site {
        settings: config.settings,
        clock: clock::Clock::start(),
        clients: AtomicUsize::new(0),
    };
    accept_loop(&listener, &Slots::new(max_connections), &Arc::new(site))
}

/// Prints a line on stdout (a closed stdout is no reason to panic).
fn say(line: &str) -> ExitCode {
    let _ = writeln!(io::stdout(), "{line}");
    ExitCode::SUCCESS
}

fn bind(addr: &str) -> Result<(TcpListener, SocketAddr), String> {
    let listener = TcpListener::bind(addr).map_err(|error| match error.kind() {
        io::ErrorKind::AddrInUse => {
            format!("{addr} is already in use (another server on that port?)")
        }
        _ => format!("cannot listen on {addr}: {error}"),
    })?;
    let bound = listener
        .local_addr()
        .map_err(|error| format!("cannot read the bound address: {error}"))?;
    Ok((listener, bound))
}

/// Makes room for `max` connections in the table of open files, and returns
/// the cap that fits the soft limit on open files. Each connection is one
/// descriptor, its socket; besides, the server holds stdin, stdout, stderr
/// and the listener (open already), a socket per turn-away thread, and
/// `CLOSING_FILES`. Duplicating the listener grows the table once, now, while
/// this is the only thread: grown later, with threads sharing it, each
/// doubling stalls `accept` for an RCU grace period (10 to 20 ms). The copy
/// that fails with EMFILE finds the limit: a descriptor is the lowest free
/// number, so the last copy's is the limit minus one.
fn reserve_files(listener: &TcpListener, max: usize) -> usize {
    let others = slots::TURN_AWAY_THREADS + CLOSING_FILES;
    let mut copies = Vec::new();
    let error = loop {
        if copies.len() == max + others {
            return max; // dropping `copies` closes them; the table stays grown
        }
        match listener.try_clone() {
            Ok(copy) => copies.push(copy),
            Err(error) => break error,
        }
    };
    let fits = copies.len().saturating_sub(others).max(1);
    let open = copies.last().unwrap_or(listener).as_raw_fd() + 1;
    let needed = usize::try_from(open).unwrap_or(0) + max + others - copies.len();
    let _ = writeln!(
        io::stderr(),
        "sse-clock: --max-connections lowered from {max} to {fits}: with {open} files open, \
         another failed ({error}); for {max}, allow {needed}: `ulimit -n {needed}`, \
         or `LimitNOFILE={needed}` under systemd"
    );
    fits
}

/// Accepts for ever: each connection gets a slot, a turn-away thread, or closed.
fn accept_loop(listener: &TcpListener, slots: &Arc<Slots>, site: &Arc<Site>) -> ! {
    let mut full_logged: Option<Instant> = None;
    let (mut accepting, mut starting) = (Burst("accept", 0), Burst("starting a thread", 0));
    loop {
        let (socket, peer) = match listener.accept() {
            Ok(accepted) => accepted,
            // Usually passing (out of descriptors, an early reset): log, pause, go on.
            Err(error) => {
                // EMFILE or ENFILE: a connection still silent gives its descriptor up.
                if let Some(23 | 24) = error.raw_os_error() {
                    slots.reclaim_oldest();
                }
                accepting.fail(site, &error, "retrying every 100 ms");
                thread::sleep(ACCEPT_BACKOFF);
                continue;
            }
        };
        accepting.end(site);
        let shared = Arc::clone(site);
        let work: Box<dyn FnOnce() + Send> = match slots.admit(socket) {
            Ok(slot) => Box::new(move || slots::serve(slot, peer, &shared)),
            Err(socket) => {
                if full_logged.is_none_or(|at| at.elapsed() >= FULL_LOG_EVERY) {
                    site.log(
                        "full: every slot is at work (--max-connections); turning newcomers away",
                    );
                    full_logged = Some(Instant::now());
                }
                // No turn-away thread free: dropping the socket closes it.
                let Some(turn) = slots.claim_turn_away() else {
                    continue;
                };
                Box::new(move || slots::turn_away(turn, socket, peer, &shared))
            }
        };
        // Without a thread, dropping `work` closes the connection and frees its slot.
        match thread::Builder::new().stack_size(STACK_BYTES).spawn(work) {
            Ok(_) => starting.end(site),
            Err(error) => starting.fail(site, &error, "closing newcomers until one starts"),
        }
    }
}

/// How many times in a row `.0` has failed: a burst of failures (out of
/// descriptors, of threads) is logged when it starts and when it ends.
struct Burst(&'static str, u64);

impl Burst {
    fn fail(&mut self, site: &Site, error: &io::Error, then: &str) {
        if self.1 == 0 {
            site.log(&format!("{} failed: {error}; {then}", self.0));
        }
        self.1 += 1;
    }

    fn end(&mut self, site: &Site) {
        if self.1 > 0 {
            site.log(&format!("{} works again after {} failures", self.0, self.1));
            self.1 = 0;
        }
    }
}
