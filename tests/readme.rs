//! The README's wire listings are the bytes of the program that sends them.
//! Each listing follows a line `<!-- wire: SENDER NAME -->` and writes every
//! line end out (`\r\n` or `\n`). SENDER says whose bytes they are:
//!
//! - `curl`: a request, sent as it is (NAME `request`, the one every exchange
//!   below sends, with its target or a `Last-Event-ID` changed where it says);
//! - `sse-clock`: the full server, `src/main.rs`;
//! - `one-screen`: the one-screen server, `src/bin/one-screen.rs`.
//!
//! NAME says which of the sender's answers the listing shows:
//!
//! ```text
//! stream-head    the head of the answer to GET /events
//! opening        the first block of that stream
//! tick           a later block (checked twice: the first tick and the next)
//! clients        the first `clients` event once a second stream has opened
//! resumed        the first blocks after `Last-Event-ID` three ticks back,
//!                as many as the listing shows
//! page-head      the head of GET /
//! not-found      the whole answer to GET /nope
//! full-stream    a full server's whole answer to GET /events (sse-clock only)
//! full-body      the same answer's body, after its head (sse-clock only)
//! full-page      a full server's whole answer to GET / (sse-clock only)
//! ```
//!
//! Every listing is compared byte for byte with what its sender sends; a
//! listing with a sender or name not in these lists fails. Only what must
//! vary is matched by its shape instead: the `Date`, ids and times, the
//! `retry:` value, the `clients` count, the numbers in a resume comment, and
//! the page's `Content-Length`. A block with a named event the listing does
//! not show (an `event:` line whose type is not in the listing) is skipped,
//! as a page that does not listen for it skips it: a new named event, such as
//! `event: load` between ticks, fails no listing.
//!
//! The `one-screen` listings need the binary cargo builds from
//! `src/bin/one-screen.rs` (`CARGO_BIN_EXE_one-screen`); while a README has
//! such listings and that binary is missing, this fails.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::thread;
use std::time::Duration;

use common::{Server, TIMEOUT, is_http_date, unix_ms_now};

const README: &str = include_str!("../README.md");

/// The one-screen server's binary, when cargo built one.
const ONE_SCREEN: Option<&str> = option_env!("CARGO_BIN_EXE_one-screen");

/// Who sends a listing's bytes: the first word after `wire:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sender {
    Curl,
    SseClock,
    OneScreen,
}

/// One listing of the README: whose, which, and its bytes.
#[derive(Debug)]
struct Listing {
    sender: Sender,
    name: String,
    bytes: Vec<u8>,
}

/// Every listing in the README, in order: each follows a line that is
/// `<!-- wire: SENDER NAME -->` and nothing else.
fn listings() -> Vec<Listing> {
    let mut found = Vec::new();
    let mut rest = README;
    while let Some((line, after)) = rest.split_once('\n') {
        rest = after;
        let Some(label) = line.strip_prefix("<!-- wire: ") else {
            continue;
        };
        let label = label.strip_suffix(" -->").expect("a marker ends in ` -->`");
        let (sender, name) = label.split_once(' ').expect("`SENDER NAME` in a marker");
        let sender = match sender {
            "curl" => Sender::Curl,
            "sse-clock" => Sender::SseClock,
            "one-screen" => Sender::OneScreen,
            _ => panic!("`{label}`: the sender is curl, sse-clock or one-screen"),
        };
        let text = after
            .strip_prefix("```text\n")
            .unwrap_or_else(|| panic!("`{label}`: a ```text block right after the marker"));
        let text = &text[..text.find("```\n").expect("the listing's end")];
        let bytes = bytes_of(label, text);
        let name = name.to_owned();
        found.push(Listing {
            sender,
            name,
            bytes,
        });
    }
    found
}

/// The bytes a listing writes out, `\r\n` and `\n` made real.
fn bytes_of(label: &str, text: &str) -> Vec<u8> {
    let mut bytes = Vec::new();
    for line in text.lines() {
        let (content, end) = if let Some(content) = line.strip_suffix("\\r\\n") {
            (content, "\r\n")
        } else if let Some(content) = line.strip_suffix("\\n") {
            (content, "\n")
        } else {
            panic!("`{label}`: a line without its line end written out: {line:?}");
        };
        bytes.extend_from_slice(content.as_bytes());
        bytes.extend_from_slice(end.as_bytes());
    }
    bytes
}

/// The request every exchange sends: the README's `curl request` listing.
fn request() -> Vec<u8> {
    let listings = listings();
    let mut requests = listings
        .iter()
        .filter(|listing| listing.sender == Sender::Curl && listing.name == "request");
    let request = requests.next().expect("a `curl request` listing");
    request.bytes.clone()
}

/// The request with another target: `GET /nope HTTP/1.1`.
fn request_for(target: &str) -> Vec<u8> {
    let text = String::from_utf8(request()).expect("UTF-8");
    text.replacen("GET /events ", &format!("GET {target} "), 1)
        .into_bytes()
}

/// The request with `Last-Event-ID: id` as its last field.
fn request_after(id: u64) -> Vec<u8> {
    let text = String::from_utf8(request()).expect("UTF-8");
    let head = text
        .strip_suffix("\r\n")
        .expect("a head ends in an empty line");
    format!("{head}Last-Event-ID: {id}\r\n\r\n").into_bytes()
}

/// The text with every value that must vary replaced by its kind, once its
/// shape is checked: `Date: <date>`, `id: <ms>`, `data: <time>`,
/// `retry: <ms>`, the data of a `clients` event `<count>`, the numbers of a
/// resume comment `<n>`, and `Content-Length: <length>` when `length` is
/// set. Everything else stays as it is.
fn normalized(bytes: &[u8], length: bool) -> String {
    let text = String::from_utf8(bytes.to_vec()).expect("UTF-8");
    let mut out = String::new();
    let mut after_clients = false;
    for line in text.split_inclusive('\n') {
        let content = line.trim_end_matches(['\r', '\n']);
        let end = &line[content.len()..];
        let digits = |value: &str| !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
        let field = |name: &str| content.strip_prefix(name);
        let kind = match () {
            _ if field("Date: ").is_some_and(is_http_date) => "Date: <date>".to_owned(),
            _ if length && field("Content-Length: ").is_some_and(digits) => {
                "Content-Length: <length>".to_owned()
            }
            _ if field("id: ").is_some_and(digits) => "id: <ms>".to_owned(),
            _ if field("retry: ").is_some_and(digits) => "retry: <ms>".to_owned(),
            _ if after_clients && field("data: ").is_some_and(digits) => "data: <count>".into(),
            _ if field("data: ").is_some_and(is_rfc3339) => "data: <time>".to_owned(),
            _ if content.starts_with(": resuming after ") => numbers_out(content),
            _ => content.to_owned(),
        };
        after_clients = content == "event: clients";
        out.push_str(&kind);
        out.push_str(end);
    }
    out
}

/// `2026-11-25T16:10:32Z`, with or without milliseconds.
fn is_rfc3339(value: &str) -> bool {
    let shape = |pattern: &str| {
        value.len() == pattern.len()
            && value.bytes().zip(pattern.bytes()).all(|(b, p)| match p {
                b'9' => b.is_ascii_digit(),
                _ => b == p,
            })
    };
    shape("9999-99-99T99:99:99Z") || shape("9999-99-99T99:99:99.999Z")
}

/// Every run of digits replaced by `<n>`.
fn numbers_out(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if !c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with("<n>") {
            out.push_str("<n>");
        }
    }
    out
}

/// The types of the named events in `bytes`: `clients` for `event: clients`.
fn event_types(bytes: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes);
    let types = text.lines().filter_map(|line| line.strip_prefix("event: "));
    types.map(str::to_owned).collect()
}

/// How many blocks a stream listing shows: one per empty line.
fn block_count(bytes: &[u8]) -> usize {
    bytes
        .split_inclusive(|&b| b == b'\n')
        .filter(|line| *line == b"\n")
        .count()
}

fn assert_same(listing: &Listing, sent: &[u8]) {
    let length = listing.name == "page-head";
    assert_eq!(
        normalized(sent, length),
        normalized(&listing.bytes, length),
        "{:?}'s bytes (left) and the README's listing `{}` (right)",
        listing.sender,
        listing.name
    );
}

/// A running sender, the full server or the one-screen server, started by
/// `common::Server` (`--addr 127.0.0.1:0`, its `Listening on` line) and
/// killed on drop.
struct Running(Server);

impl Running {
    /// Starts `sender`; `args` go to the full server only (the one-screen
    /// server takes `--addr` alone).
    fn start(sender: Sender, args: &[&str]) -> Running {
        match sender {
            Sender::SseClock => Running(Server::start(args)),
            Sender::OneScreen => Running(Server::start_binary(ONE_SCREEN.expect(
                "the README has `one-screen` listings, but cargo built no `one-screen` binary \
                 (src/bin/one-screen.rs)",
            ))),
            Sender::Curl => panic!("curl is the client, not a server"),
        }
    }

    fn addr(&self) -> SocketAddr {
        self.0.addr
    }

    /// A connection with read and write timeouts, so that no check hangs.
    fn connect(&self) -> TcpStream {
        common::connect(self.addr())
    }

    /// Sends `request`, half-closes, and reads the answer to the close.
    fn exchange(&self, request: &[u8]) -> Vec<u8> {
        let mut socket = self.connect();
        socket.write_all(request).expect("send the request");
        socket.shutdown(Shutdown::Write).expect("half-close");
        let mut answer = Vec::new();
        socket.read_to_end(&mut answer).expect("read to the close");
        answer
    }

    /// Sends `request` and reads the answer's head.
    fn open(&self, request: &[u8]) -> (RawStream, Vec<u8>) {
        let mut socket = self.connect();
        socket.write_all(request).expect("send the request");
        let mut stream = RawStream(BufReader::new(socket));
        let head = stream.read_through(b"\r\n");
        (stream, head)
    }
}

/// A stream read as raw bytes: the head, then one block at a time.
struct RawStream(BufReader<TcpStream>);

impl RawStream {
    /// Lines up to and including an empty one (`end` alone).
    fn read_through(&mut self, end: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::new();
        loop {
            let start = bytes.len();
            let read = self.0.read_until(b'\n', &mut bytes).expect("read a line");
            assert!(
                read > 0,
                "closed early: {:?}",
                String::from_utf8_lossy(&bytes)
            );
            if bytes[start..] == *end {
                return bytes;
            }
        }
    }

    /// The next block whose named events, if any, are all of `shown`
    /// types: a block of another named event is skipped.
    fn block_of(&mut self, shown: &[String]) -> Vec<u8> {
        loop {
            let block = self.read_through(b"\n");
            if event_types(&block).iter().all(|kind| shown.contains(kind)) {
                return block;
            }
        }
    }

    /// As many such blocks as `listing` shows, one after the other.
    fn blocks_like(&mut self, listing: &Listing) -> Vec<u8> {
        let shown = event_types(&listing.bytes);
        let mut bytes = Vec::new();
        for _ in 0..block_count(&listing.bytes) {
            bytes.extend(self.block_of(&shown));
        }
        bytes
    }
}

/// Checks every listing at once, each against a sender of its own.
#[test]
fn every_listing_in_the_readme_is_its_sender_s() {
    let listings = listings();
    assert!(!listings.is_empty(), "the README has wire listings");
    thread::scope(|scope| {
        for listing in &listings {
            scope.spawn(move || check(listing));
        }
    });
}

fn check(listing: &Listing) {
    let sender = listing.sender;
    match (sender, listing.name.as_str()) {
        (Sender::Curl, "request") => check_request(listing),
        (Sender::Curl, _) => panic!("curl sends only `request`, not `{}`", listing.name),
        (_, "stream-head") => {
            let (_, head) = Running::start(sender, &[]).open(&request());
            assert_same(listing, &head);
        }
        (_, "opening") => {
            let running = Running::start(sender, &[]); // runs while the blocks are read
            let (mut stream, _) = running.open(&request());
            assert_same(listing, &stream.blocks_like(listing));
        }
        (_, "tick") => check_tick(listing),
        (_, "clients") => check_clients(listing),
        (_, "resumed") => check_resumed(listing),
        (_, "page-head") => {
            let (_, head) = Running::start(sender, &[]).open(&request_for("/"));
            assert_same(listing, &head);
        }
        (_, "not-found") => {
            let answer = Running::start(sender, &[]).exchange(&request_for("/nope"));
            assert_same(listing, &answer);
        }
        (Sender::SseClock, "full-stream" | "full-body" | "full-page") => check_full(listing),
        (_, name) => panic!("no check for a `{sender:?}` listing called `{name}`"),
    }
}

/// The request as shown gets the event stream.
fn check_request(listing: &Listing) {
    let (_, head) = Running::start(Sender::SseClock, &[]).open(&listing.bytes);
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("\r\nContent-Type: text/event-stream\r\n"),
        "{head}"
    );
}

/// The block after the opening, and the live one after it.
fn check_tick(listing: &Listing) {
    let running = Running::start(listing.sender, &[]);
    let (mut stream, _) = running.open(&request());
    stream.read_through(b"\n"); // the opening
    assert_same(listing, &stream.blocks_like(listing));
    assert_same(listing, &stream.blocks_like(listing));
}

/// The `clients` event a stream gets once a second one opens.
fn check_clients(listing: &Listing) {
    let running = Running::start(listing.sender, &["--interval", "200"]);
    let (mut stream, _) = running.open(&request());
    stream.read_through(b"\n");
    stream.read_through(b"\n");
    let (_second, _) = running.open(&request());
    let clients = (0..5)
        .map(|_| stream.read_through(b"\n"))
        .find(|block| block.starts_with(b"event: clients\n"))
        .expect("a clients event within five blocks");
    assert_same(listing, &clients);
}

/// A stream resumed three whole seconds after the id it last saw.
fn check_resumed(listing: &Listing) {
    let running = Running::start(listing.sender, &[]);
    // Three ticks missed, not four: keep clear of a second's end.
    if unix_ms_now() % 1000 > 700 {
        thread::sleep(Duration::from_millis(400));
    }
    let now = unix_ms_now();
    let last = now - now % 1000 - 3000;
    let (mut stream, _) = running.open(&request_after(last));
    assert_same(listing, &stream.blocks_like(listing));
}

/// With `--max-connections 1` taken by a stream: a newcomer's answers.
fn check_full(listing: &Listing) {
    let server = Server::start(&["--max-connections", "1"]);
    let mut holder = common::EventStream::open(&server, "/events");
    holder.next_tick();
    let running = Running(server);
    let target = if listing.name == "full-page" {
        "/"
    } else {
        "/events"
    };
    let answer = running.exchange(&request_for(target));
    let head_end = answer.windows(4).position(|end| end == b"\r\n\r\n");
    let body = head_end.map_or(&[][..], |at| &answer[at + 4..]);
    let shown = if listing.name == "full-body" {
        body
    } else {
        &answer
    };
    assert_same(listing, shown);
}

/// What may vary is matched by its shape; any other byte counts.
#[test]
fn a_changed_byte_is_caught() {
    let head =
        b"HTTP/1.1 200 OK\r\nDate: Wed, 25 Nov 2026 16:10:32 GMT\r\nConnection: close\r\n\r\n";
    let later =
        b"HTTP/1.1 200 OK\r\nDate: Thu, 26 Nov 2026 08:00:00 GMT\r\nConnection: close\r\n\r\n";
    assert_eq!(normalized(later, false), normalized(head, false));
    let mut changed = head.to_vec();
    changed.retain(|&byte| byte != b'\r');
    assert_ne!(normalized(&changed, false), normalized(head, false));
    let tick = b"id: 1795623032000\ndata: 2026-11-25T16:10:32Z\n\n";
    let other_time = b"id: 1\ndata: 2026-11-25T16:10:32.000Z\n\n";
    assert_eq!(normalized(other_time, false), normalized(tick, false));
    let other_field = b"id: 1\ndata: 2026-11-25 16:10:32Z\n\n";
    assert_ne!(normalized(other_field, false), normalized(tick, false));
    let page = b"Content-Length: 9120\r\n";
    assert_eq!(
        normalized(b"Content-Length: 1\r\n", true),
        normalized(page, true)
    );
    assert_ne!(
        normalized(b"Content-Length: 1\r\n", false),
        normalized(page, false)
    );
    assert_eq!(event_types(b"event: load\ndata: 0.5\n\n"), ["load"]);
    assert_eq!(block_count(b": hi\nretry: 1\n\nid: 1\ndata: x\n\n"), 2);
}

/// A block of a named event the listing does not show is skipped, over a
/// real socket: `event: load` between two ticks.
#[test]
fn a_named_event_the_listing_does_not_show_is_skipped() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    let sender = thread::spawn(move || {
        let (mut socket, _) = listener.accept().expect("accept");
        let blocks = "id: 1\ndata: a\n\nevent: load\ndata: 0.5\n\nid: 2\ndata: b\n\n";
        socket.write_all(blocks.as_bytes()).expect("send");
    });
    let socket = TcpStream::connect(addr).expect("connect");
    socket
        .set_read_timeout(Some(TIMEOUT))
        .expect("read timeout");
    let mut stream = RawStream(BufReader::new(socket));
    let ticks = Listing {
        sender: Sender::SseClock,
        name: "tick".into(),
        bytes: b"id: 1\ndata: a\n\nid: 2\ndata: b\n\n".to_vec(),
    };
    assert_eq!(stream.blocks_like(&ticks), ticks.bytes);
    sender.join().expect("the sender");
}
