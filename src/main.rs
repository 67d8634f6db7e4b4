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
    // Scripts and tests read this line to learn the real port.
    say(&format!("Listening on http://{addr}"));
    let site = Site {
        settings: config.settings,
        clock: clock::Clock::start(),
        clients: AtomicUsize::new(0),
    };
    let slots = Slots::new(config.max_connections);
    accept_loop(&listener, &slots, &Arc::new(site))
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

/// Accepts for ever: each connection gets a slot, a turn-away thread, or closed.
fn accept_loop(listener: &TcpListener, slots: &Arc<Slots>, site: &Arc<Site>) -> ! {
    let mut full_logged: Option<Instant> = None;
    let mut failures = 0;
    loop {
        let (socket, peer) = match listener.accept() {
            Ok(accepted) => accepted,
            // Usually passing (out of fds, an early reset): log, pause, go on.
            Err(error) => {
                if failures == 0 {
                    site.log(&format!("accept failed: {error}; retrying every 100 ms"));
                }
                failures += 1;
                thread::sleep(ACCEPT_BACKOFF);
                continue;
            }
        };
        if failures > 0 {
            site.log(&format!("accept works again after {failures} failures"));
            failures = 0;
        }
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
        spawn(site, peer, work);
    }
}

/// Starts a thread for `work`; without one, dropping `work` frees its slot.
fn spawn(site: &Site, peer: SocketAddr, work: Box<dyn FnOnce() + Send>) {
    let spawned = thread::Builder::new().stack_size(STACK_BYTES).spawn(work);
    if let Err(error) = spawned {
        site.log(&format!("{peer}: cannot start a thread: {error}"));
    }
}
