//! sse-clock: a Server-Sent Events clock on a small, blocking, std-only
//! HTTP/1.1 server, written to be read.
//!
//! Read it in this order:
//! 1. `main.rs` (this file): binding the socket, the accept loop, one
//!    thread per connection. (`cli.rs` reads the command line into a
//!    `Config`; `slots.rs` keeps the `--max-clients` places.)
//! 2. `http.rs`: one connection: read the request in time, route it,
//!    answer, close (RFC 9112, RFC 9110).
//! 3. `request.rs`: parsing a request head within limits (RFC 9112).
//! 4. `sse.rs`: the event stream's wire format and its encoder (WHATWG
//!    HTML, "Server-sent events").
//! 5. `clock.rs`: what one viewer gets, and when: the schedule, resuming
//!    after `Last-Event-ID`, the per-connection loop.
//! 6. `static/index.html`: the page that subscribes with `EventSource`.

mod cli;
mod clock;
mod http;
mod request;
mod slots;
mod sse;

use std::env;
use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use slots::{Connection, Slots};

/// Each connection thread's stack. A thread costs its stack in address
/// space, but only the pages it touches in memory: two here (8 KB, one of
/// them glibc's thread control block), measured. Ours never goes deep (no
/// recursion, buffers on the heap), so 64 KiB is plenty, even for printing
/// a panic's full backtrace, where Rust's default of 2 MiB would reserve
/// 20 GiB of address space for 10,000 streams.
const STACK_BYTES: usize = 64 * 1024;

/// After a failed `accept` (out of file descriptors, say), wait this long
/// before trying again, so that a lasting failure cannot spin a core.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// When the server is full, say so on stderr at most this often.
const BUSY_LOG_EVERY: Duration = Duration::from_secs(10);

/// When every place is at work, up to this many extra threads read a
/// newcomer's request and answer "come back later"; past that, newcomers
/// are closed at once. So a full server answers politely, cheaply, and
/// with at most this many threads more than `--max-clients`.
const TURN_AWAY_THREADS: usize = 8;

pub use cli::Config;

/// What every connection thread shares.
pub struct Server {
    pub config: Config,
    /// Open `/events` streams: the number the `clients` event reports.
    pub streams: AtomicUsize,
    /// The `--max-clients` places, and which of them can be reclaimed.
    pub slots: Slots,
    /// Threads busy turning newcomers away, at most `TURN_AWAY_THREADS`.
    turning_away: AtomicUsize,
}

fn main() -> ExitCode {
    let config = match cli::parse_args(env::args_os().skip(1)) {
        Ok(cli::Command::Run(config)) => config,
        Ok(cli::Command::Help) => {
            say(cli::USAGE);
            return ExitCode::SUCCESS;
        }
        Ok(cli::Command::Version) => {
            say(concat!("sse-clock ", env!("CARGO_PKG_VERSION")));
            return ExitCode::SUCCESS;
        }
        Err(reason) => {
            eprintln!("sse-clock: {reason}\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    let (listener, addr) = match bind(&config.addr) {
        Ok(bound) => bound,
        Err(reason) => {
            eprintln!("sse-clock: {reason}");
            return ExitCode::FAILURE;
        }
    };
    // Scripts and tests read this line to learn the real port.
    say(&format!("Listening on http://{addr}"));
    let server = Server {
        slots: Slots::new(config.max_clients),
        config,
        streams: AtomicUsize::new(0),
        turning_away: AtomicUsize::new(0),
    };
    accept_loop(&listener, &Arc::new(server))
}

/// Prints a line on stdout; a closed stdout is no reason to panic.
fn say(line: &str) {
    let _ = writeln!(io::stdout(), "{line}");
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

// ---------------------------------------------------------------------------
// Accepting connections, one thread each
// ---------------------------------------------------------------------------

/// Accepts connections for ever. The accepting thread does nothing slow: it
/// finds the connection a place and hands it to a thread of its own.
fn accept_loop(listener: &TcpListener, server: &Arc<Server>) -> ! {
    let mut busy_logged: Option<Instant> = None;
    let mut failures = 0;
    loop {
        let (socket, peer) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(error) => {
                // Usually passing (out of file descriptors, a peer that
                // reset before we accepted): log the first of a burst,
                // pause so that a lasting failure cannot spin a core, go on.
                if failures == 0 {
                    log(
                        server,
                        &format!("accept failed: {error}; retrying every 100 ms"),
                    );
                }
                failures += 1;
                thread::sleep(ACCEPT_BACKOFF);
                continue;
            }
        };
        if failures > 0 {
            log(
                server,
                &format!("accept works again after {failures} failures"),
            );
            failures = 0;
        }
        match server.slots.admit(socket) {
            Ok(connection) => {
                let place = Place {
                    server: Arc::clone(server),
                    connection,
                };
                spawn(server, peer, move || {
                    http::serve(&place.connection, peer, &place.server)
                });
            }
            Err(socket) => {
                if busy_logged.is_none_or(|at| at.elapsed() >= BUSY_LOG_EVERY) {
                    let max = server.config.max_clients;
                    log(
                        server,
                        &format!(
                            "full: {max} connections at work (--max-clients); turning newcomers away"
                        ),
                    );
                    busy_logged = Some(Instant::now());
                }
                turn_away(socket, peer, server);
            }
        }
    }
}

/// A full server answers a newcomer on one of a few extra threads; when
/// those are all taken, the newcomer is closed at once (dropping the
/// socket), which an `EventSource` takes as a reason to retry later.
fn turn_away(socket: TcpStream, peer: SocketAddr, server: &Arc<Server>) {
    let room = |busy: usize| (busy < TURN_AWAY_THREADS).then_some(busy + 1);
    if server
        .turning_away
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, room)
        .is_ok()
    {
        let turner = TurnAway(Arc::clone(server));
        spawn(server, peer, move || {
            http::turn_away(&socket, peer, &turner.0)
        });
    }
}

/// Starts a thread for `work`. If no thread can be had (out of memory, or
/// of threads), `work` is dropped unrun, and with it whatever it owns: the
/// connection is closed and its place given back.
fn spawn(server: &Server, peer: SocketAddr, work: impl FnOnce() + Send + 'static) {
    let spawned = thread::Builder::new().stack_size(STACK_BYTES).spawn(work);
    if let Err(error) = spawned {
        log(server, &format!("{peer}: cannot start a thread: {error}"));
    }
}

/// A connection's place, held by its thread and given back when the thread
/// ends, whichever way it ends: a panic unwinds through this drop too.
struct Place {
    server: Arc<Server>,
    connection: Arc<Connection>,
}

impl Drop for Place {
    fn drop(&mut self) {
        self.server.slots.leave(&self.connection);
    }
}

/// One of the `TURN_AWAY_THREADS`, given back when its thread ends.
struct TurnAway(Arc<Server>);

impl Drop for TurnAway {
    fn drop(&mut self) {
        self.0.turning_away.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A line on stderr, unless `--quiet`. A closed stderr is no reason to panic.
fn log(server: &Server, line: &str) {
    if !server.config.quiet {
        let _ = writeln!(io::stderr(), "{line}");
    }
}
