//! The README's wire listings are the server's bytes. Each listing follows
//! a `<!-- wire: NAME -->` line, writes every line end out (`\r\n` or `\n`),
//! and is compared byte for byte with what the running server sends. Only
//! what must vary is matched by its shape instead: the `Date`, ids and
//! times, the `retry:` value, the `clients` count, the numbers in a
//! resume comment. Change a byte the server sends without changing the
//! README, or the other way round, and this fails; so does a listing that
//! no check here reads (each check records the listings it compares).

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Mutex;
use std::thread;
use std::time::Duration;

use common::{EventStream, Server, is_http_date, unix_ms_now};

const README: &str = include_str!("../README.md");

/// The bytes of the listing called `name`.
fn listing(name: &str) -> Vec<u8> {
    let marker = format!("<!-- wire: {name} -->\n```text\n");
    let start = README
        .find(&marker)
        .unwrap_or_else(|| panic!("no listing `{name}` in the README"));
    let text = &README[start + marker.len()..];
    let text = &text[..text.find("```\n").expect("the listing's end")];
    let mut bytes = Vec::new();
    for line in text.lines() {
        let (content, end) = if let Some(content) = line.strip_suffix("\\r\\n") {
            (content, "\r\n")
        } else if let Some(content) = line.strip_suffix("\\n") {
            (content, "\n")
        } else {
            panic!("`{name}`: a line without its line end written out: {line:?}");
        };
        bytes.extend_from_slice(content.as_bytes());
        bytes.extend_from_slice(end.as_bytes());
    }
    bytes
}

/// The text with every value that must vary replaced by its kind, once its
/// shape is checked: `Date: <date>`, `id: <ms>`, `data: <time>`,
/// `retry: <ms>`, the data of a `clients` event `<count>`, and the numbers
/// of a resume comment `<n>`. Everything else stays as it is.
fn normalized(bytes: &[u8]) -> String {
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

/// The listings a check has read, sent or compared with the server's bytes.
type Checked = Mutex<BTreeSet<String>>;

/// The listing `name`, recorded as checked.
fn checked_listing(checked: &Checked, name: &str) -> Vec<u8> {
    let mut names = checked
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    names.insert(name.to_owned());
    listing(name)
}

fn assert_listing(checked: &Checked, name: &str, sent: &[u8]) {
    let listing = checked_listing(checked, name);
    assert_eq!(
        normalized(sent),
        normalized(&listing),
        "the server's bytes (left) and the README's listing `{name}` (right)"
    );
}

/// A stream read as raw bytes: the head, then one block at a time.
struct RawStream(BufReader<TcpStream>);

impl RawStream {
    fn open(server: &Server, request: &[u8]) -> (RawStream, Vec<u8>) {
        let mut socket = server.connect();
        socket.write_all(request).expect("send the request");
        let mut stream = RawStream(BufReader::new(socket));
        let head = stream.read_through(b"\r\n");
        (stream, head)
    }

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

    fn block(&mut self) -> Vec<u8> {
        self.read_through(b"\n")
    }

    /// The next block that is not a named event (`event:`, no `id:`), such as
    /// `clients`: any write's ticks may be followed by some (`clock.rs`).
    fn unnamed_block(&mut self) -> Vec<u8> {
        loop {
            let block = self.block();
            let has = |field: &[u8]| block.split(|&b| b == b'\n').any(|l| l.starts_with(field));
            let named = has(b"event: ") && !has(b"id: ");
            if !named {
                return block;
            }
        }
    }
}

/// Every `<!-- wire: NAME -->` in the README, in order.
fn listing_names() -> BTreeSet<String> {
    let marker = "<!-- wire: ";
    README
        .split(marker)
        .skip(1)
        .filter_map(|rest| rest.split_once(" -->"))
        .map(|(name, _)| name.to_owned())
        .collect()
}

/// Runs every check at once, then asks that none of the README's listings
/// went unread: a new listing needs a check that compares it.
#[test]
fn every_listing_in_the_readme_is_the_server_s() {
    let checks: [fn(&Checked); 4] = [
        the_request_head_opening_block_and_a_tick_are_the_readme_s,
        a_clients_event_is_the_readme_s,
        a_resumed_opening_is_the_readme_s,
        the_full_server_answers_and_an_error_answer_are_the_readme_s,
    ];
    let checked = &Checked::default();
    thread::scope(|scope| {
        for check in checks {
            scope.spawn(move || check(checked));
        }
    });
    let checked = checked.lock().expect("the checks ended").clone();
    assert_eq!(
        checked,
        listing_names(),
        "checked (left), in the README (right)"
    );
}

fn the_request_head_opening_block_and_a_tick_are_the_readme_s(checked: &Checked) {
    let server = Server::start(&[]);
    let (mut stream, head) = RawStream::open(&server, &checked_listing(checked, "request"));
    assert_listing(checked, "stream-head", &head);
    assert_listing(checked, "opening", &stream.block());
    assert_listing(checked, "tick", &stream.unnamed_block());
    assert_listing(checked, "tick", &stream.unnamed_block()); // and the live one after it
}

fn a_clients_event_is_the_readme_s(checked: &Checked) {
    let server = Server::start(&["--interval", "200"]);
    let (mut stream, _) = RawStream::open(&server, &checked_listing(checked, "request"));
    stream.block();
    stream.unnamed_block();
    let _second = EventStream::open(&server, "/events");
    let clients = (0..10)
        .map(|_| stream.block())
        .find(|block| block.starts_with(b"event: clients\n"))
        .expect("a clients event within ten blocks");
    assert_listing(checked, "clients", &clients);
}

fn a_resumed_opening_is_the_readme_s(checked: &Checked) {
    let server = Server::start(&[]);
    // Three ticks missed, not four: keep clear of a second's end.
    if unix_ms_now() % 1000 > 700 {
        thread::sleep(Duration::from_millis(400));
    }
    let now = unix_ms_now();
    let last = now - now % 1000 - 3000;
    let request =
        format!("GET /events HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nLast-Event-ID: {last}\r\n\r\n");
    let (mut stream, _) = RawStream::open(&server, request.as_bytes());
    let mut opening = stream.block();
    for _ in 0..3 {
        opening.extend(stream.unnamed_block());
    }
    assert_listing(checked, "resumed", &opening);
}

fn the_full_server_answers_and_an_error_answer_are_the_readme_s(checked: &Checked) {
    let server = Server::start(&["--max-connections", "1"]);
    let not_found = server.exchange(b"GET /nope HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n");
    assert_listing(checked, "not-found", not_found.as_bytes());
    server.wait_until_idle();
    let mut holder = EventStream::open(&server, "/events");
    holder.next_tick();
    let mut full = server.connect();
    full.write_all(&checked_listing(checked, "request"))
        .expect("send");
    let mut answer = Vec::new();
    full.read_to_end(&mut answer).expect("read to the close");
    assert_listing(checked, "full-stream", &answer);
    let busy = server.exchange(b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n");
    assert_listing(checked, "full-page", busy.as_bytes());
}

#[test]
fn a_changed_byte_is_caught() {
    let mut changed = listing("stream-head");
    changed.retain(|&byte| byte != b'\r');
    assert_ne!(normalized(&changed), normalized(&listing("stream-head")));
    let other_time = b"id: 1\ndata: 2026-11-25T16:10:32.000Z\n\n";
    assert_eq!(normalized(other_time), normalized(&listing("tick")));
    let other_field = b"id: 1\ndata: 2026-11-25 16:10:32Z\n\n";
    assert_ne!(normalized(other_field), normalized(&listing("tick")));
}
