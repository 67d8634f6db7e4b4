//! Lesson 4b: the one request a connection carries, its head read by a deadline, routed, answered
//! under a write deadline, closed without losing the answer. Specs: RFC 9112 6.3 (where a body
//! ends), 9.3, 9.6 (closing); RFC 9110 6.6.1 (`Date`), 9.3.1-9.3.2 (GET, HEAD), 15 (statuses).
//! Every answer is a `Response`, put on the wire by `write_response`:
//!
//! ```text
//! HTTP/1.1 404 Not Found\r\n
//! Date: Wed, 25 Nov 2026 15:00:00 GMT\r\n
//! Content-Type: text/plain; charset=utf-8\r\n
//! X-Content-Type-Options: nosniff\r\n
//! Content-Length: 14\r\n
//! Connection: close\r\n
//! \r\n
//! 404 Not Found\n
//! ```

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::{self, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::time::{Duration, Instant};

use crate::clock::{self, Start, StreamPlan};
use crate::request::{Head, RequestError, read_head};
use crate::sse;
use crate::time;

/// The page, compiled into the binary so that the one file runs anywhere.
pub const PAGE: &[u8] = include_bytes!("../static/index.html");

/// The whole head must arrive this soon, or a dribbling peer holds a thread.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest a write waits for room: a peer that stops reading is dropped.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a closing connection waits for the client to close its side.
const LINGER: Duration = Duration::from_secs(2);
/// The buffer a head is read through: a browser's fits; longer takes more reads.
const READ_BUFFER_BYTES: usize = 1024;

pub struct Settings {
    pub interval_ms: u64,
    pub retry_ms: u64,
    /// Origins whose pages may subscribe from another origin (`*`: any).
    pub allow_origins: Vec<String>,
    pub head_timeout: Duration,
    pub write_timeout: Duration,
    pub keep_alive: Duration,
    /// The shortest a stream lives (0: no bound); each draws up to 1.5 times it.
    pub max_stream_age: Duration,
    pub quiet: bool,
}

pub struct Site {
    pub settings: Settings,
    /// How many streams are open: the number the `clients` event reports.
    pub clients: AtomicUsize,
    /// Log lines for the thread that writes them (`main.rs`); `None`: `--quiet`.
    pub log: Option<SyncSender<String>>,
    /// Lines dropped while that queue was full, for that thread to report.
    pub log_dropped: AtomicU64,
}

impl Site {
    /// Queues a line for stderr, or counts it dropped when the queue is full: a stderr
    /// nobody reads (a paused terminal, a stuck log shipper) never holds up a connection.
    pub fn log(&self, line: impl Into<String>) {
        let Some(queue) = &self.log else { return };
        if let Err(TrySendError::Full(_)) = queue.try_send(line.into()) {
            self.log_dropped.fetch_add(1, SeqCst);
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    Page,
    Events,
}

/// Picks what to serve: GET or HEAD of `/` (or `/index.html`) or `/events`.
pub fn route(head: &Head) -> Result<Route, RequestError> {
    match (head.method.as_str(), request_path(&head.target)) {
        ("GET" | "HEAD", "/" | "/index.html") => Ok(Route::Page),
        ("GET" | "HEAD", "/events") => Ok(Route::Events),
        ("GET" | "HEAD", _) => Err(RequestError::NotFound),
        _ => Err(RequestError::MethodNotAllowed),
    }
}

/// The path of `/events?x=1`, or of `http://host/events?x=1` (absolute-form,
/// which a server MUST accept, RFC 9112 section 3.2.2): `/events`.
fn request_path(target: &str) -> &str {
    let path = target.split('?').next().unwrap_or_default();
    let absolute = path.split_once("://").filter(|(scheme, _)| {
        scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")
    });
    match absolute {
        Some((_, rest)) => rest.find('/').and_then(|at| rest.get(at..)).unwrap_or("/"),
        None => path,
    }
}

/// An answer: `404 Not Found`, field lines ending in CRLF, a body.
pub struct Response {
    pub status: &'static str,
    pub fields: String,
    pub body: Body,
}

pub enum Body {
    /// A body of known length: `Content-Length` says where it ends.
    Sized(Cow<'static, [u8]>),
    /// An event stream that ends at once (the full-server answer).
    Events(Cow<'static, [u8]>),
    /// The clock: an event stream that runs until the viewer leaves.
    Clock(StreamPlan),
}

/// The answer to a request or its error (`None`: nobody is left to answer).
pub fn respond(request: &Result<Head, RequestError>, site: &Site, full: bool) -> Option<Response> {
    let head = match request {
        Ok(head) => head,
        Err(error) => return error_response(error),
    };
    let settings = &site.settings;
    let now_ms = time::millis(time::now());
    let start = || clock::start_after(last_event_ids(head).into_iter(), now_ms);
    match (route(head), full) {
        (Ok(Route::Page), false) => Some(sized("200 OK", "text/html", PAGE)),
        (Ok(Route::Events), false) => {
            let plan = StreamPlan {
                interval_ms: settings.interval_ms,
                retry_ms: time::jitter(settings.retry_ms),
                max_age_ms: time::jitter(settings.max_stream_age.as_secs() * 1000),
                keep_alive: settings.keep_alive,
                start: start(),
            };
            Some(stream_response(head, settings, Body::Clock(plan)))
        }
        // A full server's stream ends at once, so `EventSource` retries after `retry` (an error
        // status would end it for good, WHATWG 9.2.3) with the `Last-Event-ID` of `id:` (`sse.rs`):
        // ```text
        // : full, come back later\n
        // id: 1795618800000\n
        // retry: 3712\n
        // \n
        // ```
        (Ok(Route::Events), true) => {
            let mut block = Vec::new();
            sse::encode_comment(&mut block, "full, come back later");
            if let Start::Resume(last_ms) = start() {
                sse::encode_id(&mut block, last_ms);
            }
            sse::encode_retry(&mut block, time::jitter(settings.retry_ms));
            sse::end_block(&mut block);
            Some(stream_response(head, settings, Body::Events(block.into())))
        }
        // RFC 9110 15.6.4 and 10.2.3: come back in 5 s, the order of a browser's `retry`.
        (Ok(Route::Page), true) => {
            Some(plain_text("503 Service Unavailable", "Retry-After: 5\r\n"))
        }
        (Err(error), _) => error_response(&error),
    }
}

/// The ids to resume after: `Last-Event-ID`, or without it the query's `lastEventId`
/// (a page's own `EventSource` cannot set fields), not percent-decoded: ids are digits.
fn last_event_ids<'a>(head: &'a Head) -> Vec<&'a str> {
    let fields: Vec<&str> = head.field_values("last-event-id").collect();
    if !fields.is_empty() {
        return fields;
    }
    let query = head.target.split_once('?').map_or("", |(_, query)| query);
    let id = |param: &'a str| param.strip_prefix("lastEventId=");
    query.split('&').filter_map(id).collect()
}

/// A 200 that starts an event stream: `sse::STREAM_FIELDS`, then CORS (Fetch standard): a page on
/// another origin reads the stream only if the answer names its `Origin`, or says `*`; `Vary`:
///
/// ```text
/// Access-Control-Allow-Origin: https://example.org\r\n
/// Vary: Origin\r\n
/// ```
fn stream_response(head: &Head, settings: &Settings, body: Body) -> Response {
    let mut fields = sse::STREAM_FIELDS.to_owned();
    let allowed = &settings.allow_origins;
    let origin = head.field_values("origin").next().unwrap_or_default();
    if allowed.iter().any(|allowed| allowed == "*") {
        fields.push_str("Access-Control-Allow-Origin: *\r\n");
    } else if !allowed.is_empty() {
        if allowed.iter().any(|allowed| allowed == origin) {
            let _ = write!(fields, "Access-Control-Allow-Origin: {origin}\r\n");
        }
        fields.push_str("Vary: Origin\r\n");
    }
    Response {
        status: "200 OK",
        fields,
        body,
    }
}

/// A request error's answer: a body that repeats the status, nothing else.
fn error_response(error: &RequestError) -> Option<Response> {
    // RFC 9110 section 15.5.6: a 405 says which methods do work.
    let allow = (*error == RequestError::MethodNotAllowed).then_some("Allow: GET, HEAD\r\n");
    Some(plain_text(error.status()?, allow.unwrap_or_default()))
}

/// A one-line `text/plain` answer, `404 Not Found\n`, with `more` field lines.
fn plain_text(status: &'static str, more: &str) -> Response {
    let mut response = sized(status, "text/plain", format!("{status}\n").into_bytes());
    response.fields.push_str(more);
    response
}

/// An answer with a body of known length; `nosniff`: browsers take our type.
fn sized(status: &'static str, media_type: &str, body: impl Into<Cow<'static, [u8]>>) -> Response {
    let fields =
        format!("Content-Type: {media_type}; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\n");
    Response {
        status,
        fields,
        body: Body::Sized(body.into()),
    }
}

/// The response head, as in the 404 above. `Connection: close` (RFC 9112
/// 9.6) also ends a stream's body, having no length (section 6.3, rule 8).
fn encode_head(response: &Response, date: &str) -> Vec<u8> {
    let mut head = format!("HTTP/1.1 {}\r\nDate: {date}\r\n", response.status);
    head.push_str(&response.fields);
    if let Body::Sized(body) = &response.body {
        let _ = write!(head, "Content-Length: {}\r\n", body.len());
    }
    head.push_str("Connection: close\r\n\r\n");
    head.into_bytes()
}

/// Reads the request head, all of it before `deadline`.
pub fn read_request(socket: &TcpStream, deadline: Instant) -> Result<Head, RequestError> {
    let reader = Deadlined { socket, deadline };
    read_head(&mut BufReader::with_capacity(READ_BUFFER_BYTES, reader))
}

/// Answers one request, closes, and logs the README's line: `Head::request_line`,
/// or `-` for a head refused whole (400, 408, 414, 431, 501, 505).
pub fn serve(
    socket: &TcpStream,
    peer: SocketAddr,
    site: &Site,
    request: Result<Head, RequestError>,
    full: bool,
    started: Instant,
) {
    let Some(response) = respond(&request, site, full) else {
        return close_gently(socket); // the peer left before a whole head
    };
    let head_only = matches!(&request, Ok(head) if head.method == "HEAD");
    let (request_line, why) = match request {
        // Only what a full server answers differently is logged as `full`.
        Ok(head) if full && route(&head).is_ok() => (head.request_line, Some("full")),
        Ok(head) => (head.request_line, None),
        Err(RequestError::Malformed(why)) => ("-".into(), Some(why)),
        Err(_) => ("-".into(), None),
    };
    let code = response.status.split(' ').next().unwrap_or_default();
    let why = why.map(|why| format!(" ({why})")).unwrap_or_default();
    let sent = write_response(socket, response, head_only, site);
    close_gently(socket);
    // Not a float: float formatting alone adds 16 KB to the binary.
    let took = started.elapsed();
    let (seconds, ms) = (took.as_secs(), took.subsec_millis());
    let line = format!("{peer} \"{request_line}\" {code} {sent}{why} {seconds}.{ms:03}s");
    site.log(line);
}

/// Writes head and body in one block (a second small write could wait for the peer's ACK)
/// within the write timeout, HEAD no body (RFC 9110 9.3.2); returns what went out.
fn write_response(socket: &TcpStream, response: Response, head_only: bool, site: &Site) -> String {
    let timeout = site.settings.write_timeout;
    if let Err(error) = socket.set_write_timeout(Some(timeout)) {
        return format!("0 bytes ({error})");
    }
    let date = time::format_http_date(time::millis(time::now()));
    let mut bytes = encode_head(&response, &date);
    let Response { fields, body, .. } = response;
    drop((date, fields)); // in `bytes` now: a stream keeps only what it sends
    let body = match body {
        _ if head_only => Cow::Borrowed(&[][..]),
        Body::Sized(body) | Body::Events(body) => body,
        Body::Clock(plan) => {
            // One block, one write: no small writes for the kernel to hold back and join.
            let _ = socket.set_nodelay(true); // if it fails, so will the first write
            let send = |block: &[u8]| write_within(socket, block, timeout);
            return clock::stream_clock(send, bytes, &plan, &site.clients);
        }
    };
    bytes.extend_from_slice(&body);
    match write_within(socket, &bytes, timeout) {
        Ok(()) => format!("{} bytes", body.len()),
        Err(error) => format!("0 bytes ({error})"),
    }
}

/// Puts a whole block on the wire within `timeout` from now, however it is
/// split: the socket's timeout (all of `timeout`) bounds the first `write`,
/// each later one what is left (1 µs at least): no slow read holds on.
fn write_within(mut socket: &TcpStream, mut rest: &[u8], timeout: Duration) -> io::Result<()> {
    let (since, mut split) = (Instant::now(), false);
    while !rest.is_empty() {
        if split {
            let left = (since + timeout).saturating_duration_since(Instant::now());
            socket.set_write_timeout(Some(left.max(Duration::from_micros(1))))?;
        }
        match socket.write(rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(written) => rest = rest.get(written..).unwrap_or_default(),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
        split |= !rest.is_empty();
    }
    let restored = split.then(|| socket.set_write_timeout(Some(timeout)));
    restored.unwrap_or(Ok(()))
}

/// Ends a connection without losing the answer (RFC 9112 9.6): a FIN, then
/// read until the client closes, since unread bytes make a reset that can destroy it.
fn close_gently(socket: &TcpStream) {
    let _ = socket.shutdown(Shutdown::Write);
    let deadline = Instant::now() + LINGER;
    let mut reader = Deadlined { socket, deadline };
    let mut ignored = [0u8; 512];
    while let Ok(1..) = reader.read(&mut ignored) {}
}

/// A socket reader whose reads share one deadline, however slowly bytes come.
struct Deadlined<'a> {
    socket: &'a TcpStream,
    deadline: Instant,
}

impl Read for Deadlined<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        self.socket.set_read_timeout(Some(left))?;
        self.socket.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn site(allow_origins: &[&str]) -> Site {
        Site {
            settings: Settings {
                interval_ms: 1000,
                retry_ms: 3000,
                allow_origins: allow_origins.iter().map(|&o| o.to_owned()).collect(),
                head_timeout: HEAD_TIMEOUT,
                write_timeout: WRITE_TIMEOUT,
                keep_alive: clock::KEEP_ALIVE,
                max_stream_age: Duration::ZERO,
                quiet: true,
            },
            clients: AtomicUsize::new(0),
            log: None,
            log_dropped: AtomicU64::new(0),
        }
    }

    fn parsed(request: &[u8]) -> Result<Head, RequestError> {
        read_head(&mut &request[..])
    }

    /// The head and body of the answer to `request`, as text.
    fn answer(request: &[u8], site: &Site, full: bool) -> (String, String) {
        let response = respond(&parsed(request), site, full).expect("an answer");
        let head = encode_head(&response, "DATE");
        let body = match response.body {
            Body::Sized(body) | Body::Events(body) => body.into_owned(),
            Body::Clock(_) => b"(the clock)".to_vec(),
        };
        let text = |bytes: Vec<u8>| String::from_utf8(bytes).expect("UTF-8");
        (text(head), text(body))
    }

    #[test]
    fn routes_ignore_the_query_and_accept_absolute_form() {
        let route_of = |request: &[u8]| route(&parsed(request).expect("valid"));
        assert_eq!(
            route_of(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
            Ok(Route::Page)
        );
        let index = b"HEAD /index.html HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(route_of(index), Ok(Route::Page));
        let query = b"GET /events?x=1 HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(route_of(query), Ok(Route::Events));
        let absolute = b"GET HTTP://x:8080/events?y HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(route_of(absolute), Ok(Route::Events));
        let bare = b"GET http://x HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(route_of(bare), Ok(Route::Page));
        let nope = b"GET /events/ HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(route_of(nope), Err(RequestError::NotFound));
        let lower = b"get / HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(route_of(lower), Err(RequestError::MethodNotAllowed));
    }

    #[test]
    fn an_error_answer_is_exactly_these_bytes() {
        let (head, body) = answer(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", &site(&[]), false);
        let expected = "HTTP/1.1 404 Not Found\r\nDate: DATE\r\n\
            Content-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\n\
            Content-Length: 14\r\nConnection: close\r\n\r\n";
        assert_eq!(
            (head.as_str(), body.as_str()),
            (expected, "404 Not Found\n")
        );
    }

    #[test]
    fn a_405_says_which_methods_work() {
        let (head, _) = answer(b"POST / HTTP/1.1\r\nHost: x\r\n\r\n", &site(&[]), false);
        assert!(
            head.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
            "{head}"
        );
        assert!(head.contains("\r\nAllow: GET, HEAD\r\n"), "{head}");
    }

    #[test]
    fn a_full_server_tells_a_stream_to_come_back_and_a_page_request_503() {
        let site = site(&[]);
        let (head, body) = answer(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n", &site, true);
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n") && !head.contains("Length"));
        assert!(
            body.starts_with(": full, come back later\nretry: "),
            "{body}"
        );
        assert!(body.ends_with("\n\n"), "{body}");
        let (head, body) = answer(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", &site, true);
        assert!(head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
        assert!(head.contains("\r\nRetry-After: 5\r\n"));
        assert_eq!(body, "503 Service Unavailable\n");
    }

    #[test]
    fn a_stream_head_has_no_length_and_carries_the_cors_fields_asked_for() {
        let request = b"GET /events HTTP/1.1\r\nHost: x\r\nOrigin: https://a.example\r\n\r\n";
        let (head, _) = answer(request, &site(&[]), false);
        let stream = "HTTP/1.1 200 OK\r\nDate: DATE\r\nContent-Type: text/event-stream\r\n\
            Cache-Control: no-cache, no-transform\r\nX-Accel-Buffering: no\r\n";
        assert_eq!(head, format!("{stream}Connection: close\r\n\r\n"));
        let (head, _) = answer(request, &site(&["https://a.example"]), false);
        let named = "Access-Control-Allow-Origin: https://a.example\r\nVary: Origin\r\n";
        assert_eq!(head, format!("{stream}{named}Connection: close\r\n\r\n"));
        let (head, _) = answer(request, &site(&["https://b.example"]), false);
        assert_eq!(
            head,
            format!("{stream}Vary: Origin\r\nConnection: close\r\n\r\n")
        );
        let (head, _) = answer(request, &site(&["*"]), true);
        assert!(head.contains("\r\nAccess-Control-Allow-Origin: *\r\nConnection"));
    }

    #[test]
    fn a_get_with_a_body_is_answered_as_usual() {
        let with_length = b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc";
        assert!(
            answer(with_length, &site(&[]), false)
                .0
                .starts_with("HTTP/1.1 200 OK\r\n")
        );
        let chunked = b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        assert!(
            answer(chunked, &site(&[]), false)
                .0
                .starts_with("HTTP/1.1 200 OK\r\n")
        );
    }

    #[test]
    fn the_last_event_id_field_comes_first_and_the_query_only_without_it() {
        let ids = |request: &[u8]| {
            let head = parsed(request).expect("valid");
            last_event_ids(&head).join(",")
        };
        let both = b"GET /events?lastEventId=1 HTTP/1.1\r\nHost: x\r\nLast-Event-ID: 2\r\n\r\n";
        assert_eq!(ids(both), "2");
        let query = b"GET /events?x=1&lastEventId=1&lastEventId=%31 HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(ids(query), "1,%31", "two ids: start_after ignores them");
        let absolute = b"GET http://x/events?lastEventId=3 HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(ids(absolute), "3");
        for none in [
            &b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            b"GET /events?lasteventid=1&lastEventId HTTP/1.1\r\nHost: x\r\n\r\n",
        ] {
            assert_eq!(ids(none), "");
        }
        let resumed = clock::start_after(ids(query).split(','), u64::MAX);
        assert!(matches!(resumed, clock::Start::Ignored(_)));
    }

    #[test]
    fn a_peer_that_left_gets_no_answer() {
        assert!(respond(&Err(RequestError::Closed), &site(&[]), false).is_none());
    }

    #[test]
    fn every_write_has_a_deadline_even_to_a_peer_that_never_reads() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let _peer = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (socket, _) = listener.accept().expect("accept");
        let mut site = site(&[]);
        site.settings.write_timeout = Duration::from_millis(300);
        let big = Response {
            status: "200 OK",
            fields: String::new(),
            body: Body::Sized(Cow::Owned(vec![b'x'; 64 << 20])),
        };
        let started = Instant::now();
        let sent = write_response(&socket, big, false, &site);
        assert!(sent.starts_with("0 bytes ("), "{sent}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }

    /// A peer that reads a little every 100 ms lets every `write` go on,
    /// so a timeout per `write` would hold the thread for minutes (slow read).
    #[test]
    fn a_block_gets_the_write_timeout_in_all_however_its_writes_are_split() {
        use std::io::Read;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let mut peer = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (socket, _) = listener.accept().expect("accept");
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop = std::sync::Arc::clone(&done);
        let reader = std::thread::spawn(move || {
            let mut chunk = vec![0; 64 << 10];
            while !stop.load(std::sync::atomic::Ordering::SeqCst)
                && peer.read(&mut chunk).is_ok_and(|n| n > 0)
            {
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let timeout = Duration::from_millis(500);
        socket.set_write_timeout(Some(timeout)).expect("timeout");
        let started = Instant::now();
        let written = write_within(&socket, &vec![b'x'; 64 << 20], timeout);
        let took = started.elapsed();
        let kind = written.expect_err("64 MiB at 640 KB/s takes 100 s").kind();
        assert!(matches!(
            kind,
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
        ));
        assert!(took < Duration::from_millis(1500), "{took:?}");
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        reader.join().expect("the reader");
    }
}
