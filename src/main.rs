//! sse-clock: a Server-Sent Events clock on a small, blocking, std-only
//! HTTP/1.1 server, written to be read.
//!
//! Read it in this order:
//! 1. `main.rs` (this file): binding the socket, the accept loop, the
//!    connection cap, one thread per connection. (`cli.rs` reads the
//!    command line into a `Config`.)
//! 2. `http.rs`: one connection: read the request in time, route it,
//!    answer, close (RFC 9112, RFC 9110).
//! 3. `request.rs`: parsing a request head within limits (RFC 9112).
//! 4. `sse.rs`: the event stream itself (WHATWG HTML, "Server-sent events").
//! 5. `static/index.html`: the page that subscribes with `EventSource`.

mod cli;
mod http;
mod request;
mod sse;

use std::env;
use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// Each connection thread's stack. A thread costs its stack in address
/// space, but only the pages it touches in memory; ours never goes deep (no
/// recursion, buffers on the heap), so 64 KiB is plenty, where Rust's
/// default of 2 MiB would reserve 2 GiB of address space for 1,024 clients.
const STACK_BYTES: usize = 64 * 1024;

/// After a failed `accept` (out of file descriptors, say), wait this long
/// before trying again, so that a lasting failure cannot spin a core.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// When the server is full, say so on stderr at most this often.
const BUSY_LOG_EVERY: Duration = Duration::from_secs(10);

pub use cli::Config;

/// What every connection thread shares.
pub struct Server {
    pub config: Config,
    /// Open `/events` streams: the number the `clients` event reports.
    pub streams: AtomicUsize,
    /// Open connections of any kind, at most `config.max_clients`.
    connections: AtomicUsize,
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
        config,
        streams: AtomicUsize::new(0),
        connections: AtomicUsize::new(0),
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
/// takes a place for the connection and hands it to a thread of its own.
fn accept_loop(listener: &TcpListener, server: &Arc<Server>) -> ! {
    let mut busy_logged: Option<Instant> = None;
    loop {
        let (socket, peer) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(error) => {
                // Usually passing: out of file descriptors, or a peer that
                // reset before we accepted. Log, pause, carry on.
                log(server, &format!("accept failed: {error}"));
                thread::sleep(ACCEPT_BACKOFF);
                continue;
            }
        };
        let Some(slot) = Slot::take(server) else {
            if busy_logged.is_none_or(|at| at.elapsed() >= BUSY_LOG_EVERY) {
                let max = server.config.max_clients;
                log(
                    server,
                    &format!("{max} connections open (--max-clients); refusing new ones with 503"),
                );
                busy_logged = Some(Instant::now());
            }
            http::refuse_busy(socket);
            continue;
        };
        spawn_connection(socket, peer, slot);
    }
}

/// Starts the thread that serves one connection. If no thread can be had
/// (out of memory or of threads), the connection is closed and the place
/// given back, both by dropping the closure that would have owned them.
fn spawn_connection(socket: TcpStream, peer: SocketAddr, slot: Slot) {
    let server = Arc::clone(&slot.server);
    let spawned = thread::Builder::new()
        .stack_size(STACK_BYTES)
        .spawn(move || http::serve(socket, peer, &slot.server));
    if let Err(error) = spawned {
        log(&server, &format!("{peer}: cannot start a thread: {error}"));
    }
}

/// One of the `--max-clients` places, held by a connection's thread. The
/// place is given back when the slot is dropped at the end of that thread,
/// whichever way it ends: a panic unwinds through the drop too.
struct Slot {
    server: Arc<Server>,
}

impl Slot {
    fn take(server: &Arc<Server>) -> Option<Slot> {
        let max = server.config.max_clients;
        let room = |open: usize| (open < max).then_some(open + 1);
        server
            .connections
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, room)
            .ok()?;
        Some(Slot {
            server: Arc::clone(server),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.server.connections.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A line on stderr, unless `--quiet`. A closed stderr is no reason to panic.
fn log(server: &Server, line: &str) {
    if !server.config.quiet {
        let _ = writeln!(io::stderr(), "{line}");
    }
}
