//! Serving one connection: read each request head in time, route it,
//! answer with the page, the stream or an error status, and keep the
//! connection for the next request until it is time to close it, gently.
//!
//! Specs: RFC 9112 "HTTP/1.1" (section 6.3 message length, 9.3 persistence,
//! 9.6 closing) and RFC 9110 "HTTP Semantics" (methods, statuses). The head
//! itself is read by `request.rs`; the stream is written by `sse.rs`.
//!
//! A request as a browser's `EventSource` sends it (shortened):
//!
//! ```text
//! GET /events HTTP/1.1\r\n
//! Host: 127.0.0.1:8080\r\n
//! Accept: text/event-stream\r\n
//! Cache-Control: no-cache\r\n
//! \r\n
//! ```

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::Server;
use crate::request::{Head, RequestError, Version, read_head};
use crate::slots::Connection;
use crate::{clock, sse};

/// The page, compiled into the binary so that the one file runs anywhere.
pub const PAGE: &[u8] = include_bytes!("../static/index.html");

/// The whole head must arrive within this time of the connection opening
/// (or of the previous response), however slowly it trickles in, so that a
/// silent or dribbling peer cannot hold a thread for ever.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a persistent connection may sit idle between requests before
/// it is closed. Browsers reuse a connection within moments or not at all.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// The buffer a connection reads its request heads through. A browser's
/// head is well under 1 KiB; a longer one (up to `MAX_HEAD_BYTES`) just
/// takes more reads. Small, because every connection has one while it
/// waits, and a large freed buffer stays in the process's memory.
const READ_BUFFER_BYTES: usize = 1024;

/// How long a closing connection waits for the client to close its side.
pub const LINGER: Duration = Duration::from_secs(2);

// ---------------------------------------------------------------------------
// Routing
// ---------------------------------------------------------------------------

#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    Page,
    Events,
}

/// Picks what to serve. Only GET and HEAD exist here; the query string is
/// not part of the route, so `/events?x=1` is the stream.
pub fn route(head: &Head) -> Result<Route, RequestError> {
    if head.method != "GET" && head.method != "HEAD" {
        return Err(RequestError::MethodNotAllowed);
    }
    if head.body_length > 0 {
        return Err(RequestError::BodyNotAllowed);
    }
    match request_path(&head.target) {
        "/" | "/index.html" => Ok(Route::Page),
        "/events" => Ok(Route::Events),
        _ => Err(RequestError::NotFound),
    }
}

/// The path of a request target (RFC 9112 section 3.2), without its query:
/// origin-form `/events?x=1` and absolute-form `http://host/events?x=1`
/// (which a server MUST accept, section 3.2.2) both give `/events`.
fn request_path(target: &str) -> &str {
    let without_query = target.split('?').next().unwrap_or_default();
    match strip_scheme(without_query) {
        Some(rest) => rest.find('/').and_then(|at| rest.get(at..)).unwrap_or("/"),
        None => without_query,
    }
}

/// What follows `http://` or `https://` (in any case, as URI schemes are
/// case-insensitive) at the start of an absolute-form target.
fn strip_scheme(target: &str) -> Option<&str> {
    ["http://", "https://"].iter().find_map(|scheme| {
        let (start, rest) = (target.get(..scheme.len())?, target.get(scheme.len()..)?);
        start.eq_ignore_ascii_case(scheme).then_some(rest)
    })
}

// ---------------------------------------------------------------------------
// Serving one connection (the socket edge)
// ---------------------------------------------------------------------------

/// What answering one request leaves to do.
enum Reply {
    /// Answered: the status code and what was sent, for the log, and
    /// whether the connection stays open for another request.
    Sent {
        status: &'static str,
        sent: String,
        keep_open: bool,
    },
    /// A stream: it takes the connection over until the viewer leaves.
    Stream(clock::StreamPlan),
}

/// Serves one connection: requests one after another, answered in order
/// (RFC 9112 section 9.3), until a response closes it, a stream takes it
/// over, the client leaves, or it stays idle too long. While it waits for
/// a request, its place may be reclaimed for a newcomer (see `slots.rs`).
pub fn serve(connection: &Arc<Connection>, peer: SocketAddr, server: &Server) {
    let socket = &connection.socket;
    let timeouts = &server.config.timeouts;
    let deadline = Instant::now() + timeouts.head;
    // One buffered reader for the whole connection: bytes of a pipelined
    // next request that arrive with this one wait in its buffer.
    let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, Deadlined { socket, deadline });
    loop {
        let started = Instant::now();
        let head = read_head(&mut reader);
        if !server.slots.working(connection) {
            break; // reclaimed while it waited: its socket is shut already
        }
        let (request_line, reply) = match head {
            Ok(head) => (head.request_line(), answer(socket, head, server)),
            // The client closed (or the connection broke) between requests
            // or inside one: nobody is left to answer.
            Err(RequestError::Closed) => break,
            Err(error) => ("-".to_owned(), answer_error(socket, &error, None)),
        };
        let keep_open = match reply {
            Reply::Sent {
                status,
                sent,
                keep_open,
            } => {
                log_request(server, peer, &request_line, status, &sent, started);
                keep_open
            }
            Reply::Stream(plan) => {
                drop(reader); // a stream keeps no request buffer
                let end = clock::stream_clock(socket, &plan, &server.streams);
                let sent = format!("{} events ({})", end.events, end.reason());
                log_request(server, peer, &request_line, "200", &sent, started);
                break;
            }
        };
        if !keep_open {
            break;
        }
        let answered = Instant::now();
        server.slots.waiting(connection);
        if !wait_for_next_request(&mut reader, answered + timeouts.idle) {
            break;
        }
        // The next head must be complete within HEAD_TIMEOUT of this answer.
        reader.get_mut().deadline = answered + timeouts.head;
    }
    close_gently(socket);
}

/// Waits until the next request starts to arrive (or is already buffered,
/// pipelined behind the last one). `false` means the connection stayed idle
/// until `deadline`, or the client closed it: either way, time to close.
fn wait_for_next_request(reader: &mut BufReader<Deadlined>, deadline: Instant) -> bool {
    reader.get_mut().deadline = deadline;
    reader.fill_buf().is_ok_and(|buffered| !buffered.is_empty())
}

/// Answers a parsed request with the page, an error, or a stream to start.
fn answer(socket: &TcpStream, head: Head, server: &Server) -> Reply {
    let keep_open = wants_keep_alive(&head);
    let head_only = head.method == "HEAD";
    match route(&head) {
        Ok(Route::Page) => {
            let html = "text/html; charset=utf-8";
            let fields = connection_field(head.version, keep_open);
            let sent = write_response(socket, "200 OK", fields, html, PAGE, !head_only);
            let sent = format!("{} bytes", sent.unwrap_or(0));
            Reply::Sent {
                status: "200",
                sent,
                keep_open,
            }
        }
        Ok(Route::Events) if head_only => {
            let mut head_bytes = Vec::new();
            let cors = cors_fields(&server.config.allow_origins, &head);
            sse::encode_stream_head(&mut head_bytes, &cors);
            let _ = (&*socket).write_all(&head_bytes);
            let sent = "0 events (HEAD)".to_owned();
            Reply::Sent {
                status: "200",
                sent,
                keep_open: false,
            }
        }
        Ok(Route::Events) => Reply::Stream(clock::StreamPlan {
            interval_ms: server.config.interval_ms,
            retry_ms: clock::jitter(server.config.retry_ms),
            write_timeout: server.config.timeouts.write,
            keep_alive: server.config.timeouts.keep_alive,
            extra_fields: cors_fields(&server.config.allow_origins, &head),
            start: clock::start_after(head.field_values("last-event-id"), clock::unix_ms_now()),
        }),
        Err(error) => answer_error(socket, &error, Some(&head)),
    }
}

/// The CORS fields of a stream's answer (Fetch standard, "CORS protocol").
/// A page on another origin may read the stream only if the answer names
/// that page's origin, which the browser sent in `Origin`:
///
/// ```text
/// Access-Control-Allow-Origin: https://example.org\r\n
/// Vary: Origin\r\n
/// ```
///
/// With `--allow-origin *` the field says `*`, for any page. With a list,
/// an origin on the list is named and any other is not, and `Vary: Origin`
/// tells caches that the answer depends on who asked. Without the option,
/// no CORS fields: browsers then keep other origins' pages out.
fn cors_fields(allowed: &[String], head: &Head) -> String {
    if allowed.is_empty() {
        return String::new();
    }
    if allowed.iter().any(|origin| origin == "*") {
        return "Access-Control-Allow-Origin: *\r\n".to_owned();
    }
    let origin = head.field_values("origin").next().unwrap_or_default();
    match allowed.iter().find(|allowed| *allowed == origin) {
        Some(allowed) => format!("Access-Control-Allow-Origin: {allowed}\r\nVary: Origin\r\n"),
        None => "Vary: Origin\r\n".to_owned(),
    }
}

/// Section 9.3: an HTTP/1.1 connection persists unless the request says
/// `Connection: close`; an HTTP/1.0 one only if it says `keep-alive`.
fn wants_keep_alive(head: &Head) -> bool {
    let says = |option: &str| {
        head.field_values("connection")
            .flat_map(|value| value.split(','))
            .any(|token| token.trim().eq_ignore_ascii_case(option))
    };
    match head.version {
        Version::Http11 => !says("close"),
        Version::Http10 => says("keep-alive"),
    }
}

/// The `Connection` field an answer carries: `close` when the connection
/// ends after it (section 9.6), `keep-alive` for an HTTP/1.0 client that
/// asked to keep it, and nothing for HTTP/1.1, which persists by default.
fn connection_field(version: Version, keep_open: bool) -> &'static str {
    match (keep_open, version) {
        (false, _) => "Connection: close\r\n",
        (true, Version::Http10) => "Connection: keep-alive\r\n",
        (true, Version::Http11) => "",
    }
}

/// Answers a request error with its status and a short `text/plain` body
/// that repeats the status and nothing of the request. `Closed` gets
/// nothing. A 404 or 405 to a well-formed request without a body keeps the
/// connection; after anything else we cannot be sure where the request
/// ended, so the connection closes.
fn answer_error(socket: &TcpStream, error: &RequestError, head: Option<&Head>) -> Reply {
    let Some(status) = error.status() else {
        let sent = "0 bytes".to_owned();
        return Reply::Sent {
            status: "-",
            sent,
            keep_open: false,
        };
    };
    let routing_error = matches!(
        error,
        RequestError::NotFound | RequestError::MethodNotAllowed
    );
    let (keep_open, version, head_only) = match head {
        Some(head) => (
            routing_error && head.body_length == 0 && wants_keep_alive(head),
            head.version,
            head.method == "HEAD",
        ),
        None => (false, Version::Http11, false),
    };
    let mut fields = String::new();
    if *error == RequestError::MethodNotAllowed {
        fields.push_str("Allow: GET, HEAD\r\n");
    }
    fields.push_str(connection_field(version, keep_open));
    let body = format!("{status}\n");
    let text = "text/plain; charset=utf-8";
    let sent = write_response(socket, status, &fields, text, body.as_bytes(), !head_only);
    let sent = sent.unwrap_or(0);
    let sent = match error {
        RequestError::Malformed(why) => format!("{sent} bytes ({why})"),
        _ => format!("{sent} bytes"),
    };
    let code = status.split(' ').next().unwrap_or(status);
    Reply::Sent {
        status: code,
        sent,
        keep_open,
    }
}

/// A socket reader whose reads all share one deadline: each waits only for
/// the time that is left, so a peer that sends a byte every few seconds
/// still runs out of time.
struct Deadlined<'a> {
    socket: &'a TcpStream,
    deadline: Instant,
}

impl Read for Deadlined<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        read_before(self.socket, self.deadline, buf)
    }
}

/// Reads from `socket`, waiting until `deadline` at the latest; running
/// out of time is an error of kind `TimedOut`.
fn read_before(mut socket: &TcpStream, deadline: Instant, buf: &mut [u8]) -> io::Result<usize> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(io::ErrorKind::TimedOut.into());
    }
    socket.set_read_timeout(Some(left))?;
    socket.read(buf).map_err(|error| {
        if is_timeout(&error) {
            return io::ErrorKind::TimedOut.into();
        }
        error
    })
}

/// A read that ran out of time: `WouldBlock` on Unix, `TimedOut` on Windows.
fn is_timeout(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Writes a whole response of known length in one write, and returns how
/// many body bytes went out. A 404 that ends its connection:
///
/// ```text
/// HTTP/1.1 404 Not Found\r\n
/// Content-Type: text/plain; charset=utf-8\r\n
/// Content-Length: 14\r\n
/// X-Content-Type-Options: nosniff\r\n
/// Connection: close\r\n
/// \r\n
/// 404 Not Found\n
/// ```
///
/// `Content-Length` says where the body ends (RFC 9112 section 6.3), which
/// is what lets the connection carry another request after it. A HEAD
/// answer has the same fields and no body (RFC 9110 section 9.3.2).
/// `nosniff` forbids browsers to guess another type than the one we say.
/// `fields` holds any further field lines, each ending in CRLF. Head and
/// body go out in one write: two small writes in a row can wait for a
/// delayed acknowledgement (Nagle's algorithm) for tens of ms.
fn write_response(
    mut socket: &TcpStream,
    status: &str,
    fields: &str,
    content_type: &str,
    body: &[u8],
    send_body: bool,
) -> io::Result<usize> {
    let mut response = format!(
        "HTTP/1.1 {status}\r\n\
         Content-Type: {content_type}\r\n\
         Content-Length: {}\r\n\
         X-Content-Type-Options: nosniff\r\n\
         {fields}\
         \r\n",
        body.len()
    )
    .into_bytes();
    let body = if send_body { body } else { &[] };
    response.extend_from_slice(body);
    socket.write_all(&response)?;
    Ok(body.len())
}

/// How long a newcomer to a full server has to send its request head.
const TURN_AWAY_HEAD_TIMEOUT: Duration = Duration::from_secs(1);

/// Answers a newcomer that found every `--max-clients` place at work, on
/// one of a few extra threads, in a way that brings it back later rather
/// than making it give up. A stream request gets a stream that ends at
/// once, since an `EventSource` that gets any status but 200 stops for
/// good, while one whose stream ends reconnects after `retry`:
///
/// ```text
/// HTTP/1.1 200 OK\r\n
/// Content-Type: text/event-stream\r\n
/// ...                                       (the usual stream head)
/// \r\n
/// : full, come back later\n
/// retry: 3712\n
/// \n
/// ```
///
/// Any other request gets `503 Service Unavailable` with `Retry-After: 5`:
/// come back in 5 seconds (RFC 9110 section 10.2.3), a guess of the same
/// order as a browser's `retry`, long enough for a place to come free.
pub fn turn_away(socket: &TcpStream, peer: SocketAddr, server: &Server) {
    let started = Instant::now();
    let deadline = started + TURN_AWAY_HEAD_TIMEOUT;
    let head = read_head(&mut BufReader::new(Deadlined { socket, deadline }));
    let Ok(head) = head else {
        return close_gently(socket);
    };
    let (status, sent) = match route(&head) {
        Ok(Route::Events) => {
            let mut block = Vec::new();
            let cors = cors_fields(&server.config.allow_origins, &head);
            sse::encode_stream_head(&mut block, &cors);
            sse::encode_comment(&mut block, "full, come back later");
            sse::encode_retry(&mut block, clock::jitter(server.config.retry_ms));
            sse::end_block(&mut block);
            let _ = (&*socket).write_all(&block);
            ("200", "0 events (full: told to retry)".to_owned())
        }
        _ => {
            let status = "503 Service Unavailable";
            let body = format!("{status}\n");
            let text = "text/plain; charset=utf-8";
            let fields = "Retry-After: 5\r\nConnection: close\r\n";
            let sent = write_response(socket, status, fields, text, body.as_bytes(), true);
            ("503", format!("{} bytes (full)", sent.unwrap_or(0)))
        }
    };
    close_gently(socket);
    log_request(server, peer, &head.request_line(), status, &sent, started);
}

/// Ends a connection without losing the last response, as RFC 9112 section
/// 9.6 advises: shut down our sending side (a FIN: "nothing more from
/// me"), then read and discard whatever the client still sends until it
/// closes too, for at most `LINGER`. Closing straight away while bytes
/// from the client sit unread makes the kernel answer with a reset, and a
/// reset can destroy the response before the client has read it.
fn close_gently(socket: &TcpStream) {
    let _ = socket.shutdown(Shutdown::Write);
    let deadline = Instant::now() + LINGER;
    let mut ignored = [0u8; 512];
    while let Ok(1..) = read_before(socket, deadline, &mut ignored) {}
}

/// One line on stderr per answered request or finished stream: the peer,
/// the request line (`-` when there was none), the status, what was sent
/// and, in brackets, why a stream ended or a request was malformed; last,
/// how long it took.
///
/// ```text
/// 127.0.0.1:50312 "GET /events HTTP/1.1" 200 12 events (viewer left) 11.998s
/// 127.0.0.1:50318 "-" 400 16 bytes (field line without a colon) 0.001s
/// ```
fn log_request(
    server: &Server,
    peer: SocketAddr,
    request_line: &str,
    status: &str,
    sent: &str,
    started: Instant,
) {
    // Whole milliseconds, printed as seconds: no floating point, whose
    // formatting code alone added 16 KB to the binary.
    let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let line = format!(
        "{peer} \"{request_line}\" {status} {sent} {}.{:03}s",
        ms / 1000,
        ms % 1000
    );
    crate::log(server, &line);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route_of(request: &[u8]) -> Result<Route, RequestError> {
        route(&read_head(&mut &request[..]).expect("valid head"))
    }

    #[test]
    fn routes_ignore_the_query_and_accept_absolute_form() {
        assert_eq!(
            route_of(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
            Ok(Route::Page)
        );
        assert_eq!(
            route_of(b"HEAD /index.html HTTP/1.1\r\nHost: x\r\n\r\n"),
            Ok(Route::Page)
        );
        assert_eq!(
            route_of(b"GET /events?x=1 HTTP/1.1\r\nHost: x\r\n\r\n"),
            Ok(Route::Events)
        );
        let absolute = b"GET HTTP://x:8080/events?y HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(route_of(absolute), Ok(Route::Events));
        assert_eq!(
            route_of(b"GET http://x HTTP/1.1\r\nHost: x\r\n\r\n"),
            Ok(Route::Page)
        );
    }

    #[test]
    fn a_get_with_a_body_is_413_but_an_empty_one_is_fine() {
        let with_body = route_of(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc");
        assert_eq!(with_body, Err(RequestError::BodyNotAllowed));
        let empty = route_of(b"HEAD / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(empty, Ok(Route::Page));
    }

    #[test]
    fn unknown_paths_are_404_and_other_methods_405() {
        let nope = route_of(b"GET /events/ HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(nope, Err(RequestError::NotFound));
        let post = route_of(b"POST /events HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(post, Err(RequestError::MethodNotAllowed));
        let lower = route_of(b"get / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(
            lower,
            Err(RequestError::MethodNotAllowed),
            "methods are case-sensitive"
        );
    }
}
