//! The page's wire view (`<details id="wire">` in `static/index.html`), in
//! every engine the browser tests drive. Opening it reads a second
//! `/events` stream with `fetch` and shows the body's raw lines, each with
//! its line end written out; closing it aborts that request, so the
//! server's `clients` count falls by one; and the lines it shows are the
//! ones a raw socket reads from `/events` at the same time.
//!
//! Two streams never carry quite the same bytes: each has its own tick ids
//! and times (its own phase), its own jittered `retry:`, and the client
//! count it was told. Before comparing, both sides go through the same
//! `normalise`, which names those values instead of showing them.
//!
//! sse-clock ends lines with LF and never splits a line between writes.
//! What the page must get right beyond that (CRLF, and a CRLF or a
//! character split between two chunks) is checked against a small
//! scripted server (`ScriptedServer`); so are the log entries that name
//! their lines on the wire, which need both streams to carry the same ids.
//!
//! An engine that is not installed is skipped loudly, except under
//! `CI=true`, where it is a failure (see `common::browser`).

mod common;

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::browser::{Browser, ENGINES, Engine, items, json_string};
use common::{Server, unix_ms_now};

const INTERVAL_MS: u64 = 500;
const INTERVAL: Duration = Duration::from_millis(INTERVAL_MS);

/// How long the page may take for what does not depend on the interval:
/// loading, and its `EventSource` opening.
const PAGE_TIMEOUT: Duration = Duration::from_secs(20);

/// How many raw lines the wire view keeps (`WIRE_LINES` in the page).
const WIRE_LINES: usize = 48;

#[test]
fn opening_the_wire_shows_the_comment_retry_and_an_event_with_line_ends_within_two_intervals() {
    for engine in ENGINES {
        let Some(mut browser) = Browser::start(engine) else {
            continue;
        };
        let server = Server::start(&["--interval", &INTERVAL_MS.to_string()]);
        show_page(&mut browser, &server);

        let opened = Instant::now();
        open_wire(&mut browser, true);
        let rows = wait_for_rows(
            &mut browser,
            opened + 2 * INTERVAL,
            "comment, retry, event",
            |rows| {
                let starts = |prefix: &str| rows.iter().any(|row| row.raw.starts_with(prefix));
                let blank = rows.iter().any(|row| row.raw.is_empty());
                starts(": ") && starts("retry: ") && starts("id: ") && starts("data: ") && blank
            },
        );
        // The server ends every line of the body with LF, and the page
        // shows each as the two characters `\n`; the blank line that
        // dispatches an event is a row of its own.
        for row in &rows {
            assert_eq!(row.end, "\\n", "{engine:?}: line end of {row:?}");
        }
        let head = text_of(&mut browser, "wire-head");
        let expected = "response.status: 200\n\
            Content-Type: text/event-stream\n\
            Cache-Control: no-cache, no-transform";
        assert!(
            head.starts_with(expected),
            "{engine:?}: head shown: {head:?}"
        );
    }
}

#[test]
fn closing_the_wire_aborts_its_stream_and_the_clients_count_falls_by_one() {
    for engine in ENGINES {
        let Some(mut browser) = Browser::start(engine) else {
            continue;
        };
        let server = Server::start(&["--interval", &INTERVAL_MS.to_string()]);
        show_page(&mut browser, &server);

        open_wire(&mut browser, true);
        wait_for_clients(&mut browser, "2", Instant::now() + PAGE_TIMEOUT);
        // The server notices a viewer that left when a write to it fails,
        // within two intervals; the page's own stream then carries the new
        // count with its next tick.
        let closed = Instant::now();
        open_wire(&mut browser, false);
        wait_for_clients(&mut browser, "1", closed + 4 * INTERVAL);
    }
}

#[test]
fn the_wire_shows_line_for_line_what_a_raw_socket_reads_at_the_same_time() {
    for engine in ENGINES {
        let Some(mut browser) = Browser::start(engine) else {
            continue;
        };
        let server = Server::start(&["--interval", &INTERVAL_MS.to_string()]);
        show_page(&mut browser, &server);

        // The raw client first, so that it is already reading when the
        // wire view's stream starts: every tick the page shows then has a
        // counterpart on the socket. The page counting 2 shows it has begun.
        let mut raw = RawStream::open(&server);
        wait_for_clients(&mut browser, "2", Instant::now() + PAGE_TIMEOUT);
        open_wire(&mut browser, true);
        let deadline = Instant::now() + PAGE_TIMEOUT;
        let rows = wait_for_rows(&mut browser, deadline, "8 ticks from line 1", |rows| {
            let ticks = rows
                .iter()
                .filter(|row| row.raw.starts_with("id: "))
                .count();
            rows.first().is_some_and(|row| row.number == 1) && ticks >= 8
        });
        let shown: Vec<String> = rows.iter().map(|row| row.raw.clone()).collect();
        for row in &rows {
            assert_eq!(row.end, "\\n", "{engine:?}: line end of {row:?}");
        }

        // Read the socket up to the tick the page shows last (or one
        // interval before it, if the two streams have different phases).
        let last_shown = blocks(&shown).iter().rev().find_map(|block| tick_id(block));
        let last_shown = last_shown.expect("the page shows ticks");
        let mut read = Vec::new();
        while !read_up_to(&read, last_shown) {
            read.push(raw.next_line());
        }

        compare(engine, &shown, &read);
        assert_bounded(engine, &mut browser);
    }
}

#[test]
fn crlf_and_lines_split_between_chunks_show_as_they_came_and_log_entries_name_their_lines() {
    for engine in ENGINES {
        let Some(mut browser) = Browser::start(engine) else {
            continue;
        };
        let server = ScriptedServer::start();
        browser.goto(&format!("http://{}/", server.addr));
        open_wire(&mut browser, true);
        let deadline = Instant::now() + PAGE_TIMEOUT;
        let rows = wait_for_rows(&mut browser, deadline, "6 ticks from line 1", |rows| {
            let ticks = rows
                .iter()
                .filter(|row| row.raw.starts_with("id: "))
                .count();
            rows.first().is_some_and(|row| row.number == 1) && ticks >= 6
        });

        // Every line ended in CRLF, shown as such, even where the CR came
        // in one chunk and the LF in the next; a character split between
        // chunks arrives whole.
        for row in &rows {
            assert_eq!(row.end, "\\r\\n", "{engine:?}: line end of {row:?}");
        }
        let lines: Vec<String> = rows.iter().map(|row| row.raw.clone()).collect();
        for block in blocks(&lines)
            .iter()
            .filter(|block| tick_id(block).is_some())
        {
            let id = tick_id(block).expect("a tick");
            let expected = [
                format!("id: {id}"),
                format!("data: caf\u{e9} {id}"),
                String::new(),
            ];
            assert_eq!(block[..], expected[..], "{engine:?}: a tick");
        }
        // Each piece of a tick was a chunk of its own in at least one tick:
        // a time beside the `data:` line and the blank line as well.
        let stamped = |row: &Row| !row.time.is_empty();
        let split = rows
            .windows(3)
            .any(|three| three[0].raw.starts_with("id: ") && three.iter().all(stamped));
        assert!(split, "{engine:?}: no tick came in three chunks: {rows:#?}");

        // The page's EventSource and its wire view get the same ticks, so
        // log entries name the lines on the wire that make their event.
        let marked = browser.run(
            "return [...document.querySelectorAll('#log li[data-wire]')].map((entry) => \
             [entry.dataset.type, entry.dataset.id, entry.dataset.wire]);",
        );
        let marked = items(&marked);
        assert!(
            marked.len() >= 2,
            "{engine:?}: log entries marked: {marked:?}"
        );
        let rows = read_rows(&mut browser);
        for entry in marked {
            let parts: Vec<String> = items(entry).into_iter().filter_map(json_string).collect();
            let [kind, id, wire] = <[String; 3]>::try_from(parts).expect("three parts");
            let (first, last) = wire
                .split_once('\u{2013}')
                .expect("lines as FIRST\u{2013}LAST");
            let (first, last): (u64, u64) = (first.parse().expect("a"), last.parse().expect("b"));
            let named: Vec<&str> = rows
                .iter()
                .filter(|row| (first..=last).contains(&row.number))
                .map(|row| row.raw.as_str())
                .collect();
            assert_eq!(kind, "message", "{engine:?}");
            assert_eq!(
                named,
                [
                    format!("id: {id}"),
                    format!("data: caf\u{e9} {id}"),
                    String::new()
                ],
                "{engine:?}: lines {wire} for log entry {id}"
            );
        }
    }
}

/// Compares the page's lines with the socket's, block by block. The
/// opening blocks must match. After them each side may carry a named event
/// the other lacks (`clients`: each stream reports a change of the count at
/// its own next tick), so named events (`event:`, no `id:`) are left out on
/// both sides; then every tick the page shows must match the socket's tick
/// of the same time.
fn compare(engine: Engine, shown: &[String], read: &[String]) {
    let shown = blocks(shown);
    let read = blocks(read);
    assert_eq!(
        normalise(&shown[0]),
        normalise(&read[0]),
        "{engine:?}: opening block, page / socket"
    );
    let ticks = |blocks: &[Vec<String>]| -> Vec<Vec<String>> {
        blocks[1..]
            .iter()
            .filter(|block| {
                let has = |field: &str| block.iter().any(|line| line.starts_with(field));
                let named = has("event: ") && !has("id: ");
                !named
            })
            .cloned()
            .collect()
    };
    let (shown, read) = (ticks(&shown), ticks(&read));
    let first_shown = tick_id(&shown[0]).expect("the page's first tick has an id");
    let start = read
        .iter()
        .position(|block| tick_id(block).is_some_and(|id| same_time(id, first_shown)))
        .unwrap_or_else(|| panic!("{engine:?}: no tick on the socket at {first_shown}"));
    assert!(shown.len() >= 8, "{engine:?}: ticks shown: {}", shown.len());
    for (page, socket) in shown.iter().zip(&read[start..]) {
        assert_eq!(
            normalise(page),
            normalise(socket),
            "{engine:?}: page / socket"
        );
        let (page_id, socket_id) = (tick_id(page), tick_id(socket));
        assert!(
            page_id
                .zip(socket_id)
                .is_some_and(|(page, socket)| same_time(socket, page)),
            "{engine:?}: page tick {page_id:?} beside socket tick {socket_id:?}"
        );
    }
    assert!(
        read.len() - start >= shown.len(),
        "{engine:?}: the socket read fewer ticks than the page shows"
    );
}

/// Two ticks of streams with the same interval are the same tick when
/// they fall within one interval of each other: `socket` up to one
/// interval before `page` (the socket's stream began first).
fn same_time(socket: u64, page: u64) -> bool {
    socket <= page && page - socket < INTERVAL_MS
}

/// Whether the socket has read a whole block with a tick at the time of
/// the page's last tick `page_id`.
fn read_up_to(read: &[String], page_id: u64) -> bool {
    let blocks = blocks(read);
    blocks
        .iter()
        .filter_map(|block| tick_id(block))
        .any(|id| id + INTERVAL_MS > page_id)
}

/// Lets the view run past `WIRE_LINES` lines: it then holds exactly the
/// newest `WIRE_LINES`, numbered without a gap.
fn assert_bounded(engine: Engine, browser: &mut Browser) {
    let deadline = Instant::now() + PAGE_TIMEOUT;
    let rows = wait_for_rows(browser, deadline, "line 1 dropped", |rows| {
        rows.first().is_some_and(|row| row.number > 1)
    });
    assert_eq!(rows.len(), WIRE_LINES, "{engine:?}: rows kept");
    for pair in rows.windows(2) {
        assert_eq!(
            pair[1].number,
            pair[0].number + 1,
            "{engine:?}: rows {pair:?}"
        );
    }
}

/// A block's lines, with what differs from stream to stream named rather
/// than shown: a tick's id and time, the jittered `retry:`, a client count.
fn normalise(block: &[String]) -> Vec<String> {
    block
        .iter()
        .map(|line| {
            let Some((field, value)) = line.split_once(": ") else {
                return line.clone();
            };
            let number = !value.is_empty() && value.bytes().all(|byte| byte.is_ascii_digit());
            let time = value.ends_with('Z') && value.get(10..11) == Some("T");
            match field {
                "id" if number => "id: ID".to_owned(),
                "retry" if number => "retry: RETRY".to_owned(),
                "data" if number => "data: COUNT".to_owned(),
                "data" if time => "data: TIME".to_owned(),
                _ => line.clone(),
            }
        })
        .collect()
}

/// Lines cut into blocks, each ending with its blank line; an unfinished
/// block at the end is left out.
fn blocks(lines: &[String]) -> Vec<Vec<String>> {
    let mut blocks = Vec::new();
    let mut block = Vec::new();
    for line in lines {
        block.push(line.clone());
        if line.is_empty() {
            blocks.push(std::mem::take(&mut block));
        }
    }
    blocks
}

fn tick_id(block: &[String]) -> Option<u64> {
    block
        .iter()
        .find_map(|line| line.strip_prefix("id: "))
        .and_then(|id| id.parse().ok())
}

/// A client of `/events` on a bare socket: the body line by line, exactly
/// as it arrives.
struct RawStream {
    reader: BufReader<TcpStream>,
}

impl RawStream {
    fn open(server: &Server) -> RawStream {
        let mut socket = server.connect();
        let request = "GET /events HTTP/1.1\r\nHost: test\r\nAccept: text/event-stream\r\n\r\n";
        socket.write_all(request.as_bytes()).expect("send request");
        let mut stream = RawStream {
            reader: BufReader::new(socket),
        };
        while stream.read_line() != "\r\n" {} // the head
        stream
    }

    /// The next line of the body without its line end, which must be the
    /// LF the server writes.
    fn next_line(&mut self) -> String {
        let line = self.read_line();
        let text = line.strip_suffix('\n').expect("lines end in LF");
        assert!(!text.contains('\r'), "a CR in {line:?}");
        text.to_owned()
    }

    fn read_line(&mut self) -> String {
        let mut line = String::new();
        let read = self.reader.read_line(&mut line).expect("read a line");
        assert!(read > 0, "the stream ended");
        line
    }
}

/// One row of `#wire-bytes`: the line's number in its stream, the arrival
/// time of the chunk that ended it (on the first line a chunk ends, else
/// blank), its text, and its line end as the page writes it (`\n` for LF).
#[derive(Debug)]
struct Row {
    number: u64,
    time: String,
    raw: String,
    end: String,
}

const READ_ROWS: &str = "return [...document.querySelectorAll('#wire-bytes > span')].map((row) =>
  [row.dataset.line, ...['.time', '.raw', '.end'].map((part) => row.querySelector(part).textContent)]);";

fn read_rows(browser: &mut Browser) -> Vec<Row> {
    let json = browser.run(READ_ROWS);
    let rows = items(&json).into_iter().map(|row| {
        let parts: Vec<String> = items(row)
            .into_iter()
            .map(|part| json_string(part).unwrap_or_else(|| panic!("a string: {part}")))
            .collect();
        let [number, time, raw, end] = <[String; 4]>::try_from(parts).expect("four parts a row");
        let number = number.parse().expect("a line number");
        let time = time.trim_end().to_owned();
        Row {
            number,
            time,
            raw,
            end,
        }
    });
    rows.collect()
}

/// Looks at the wire view every 20 ms until its rows satisfy `done`; fails
/// if the last look before `deadline` did not find that.
fn wait_for_rows(
    browser: &mut Browser,
    deadline: Instant,
    what: &str,
    done: impl Fn(&[Row]) -> bool,
) -> Vec<Row> {
    loop {
        let looked = Instant::now();
        let rows = read_rows(browser);
        if done(&rows) {
            return rows;
        }
        assert!(
            looked < deadline,
            "{:?}: the wire view never showed {what}: {rows:#?}",
            browser.engine
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// Loads the page and waits until its `EventSource` is open and counts
/// itself as the one client.
fn show_page(browser: &mut Browser, server: &Server) {
    browser.goto(&format!("http://{}/", server.addr));
    wait_for_clients(browser, "1", Instant::now() + PAGE_TIMEOUT);
}

/// Opens (or closes) the `<details>`, as a click on its summary would.
fn open_wire(browser: &mut Browser, open: bool) {
    browser.run(&format!("document.getElementById('wire').open = {open};"));
}

fn wait_for_clients(browser: &mut Browser, count: &str, deadline: Instant) {
    loop {
        let looked = Instant::now();
        let shown = text_of(browser, "clients");
        if shown == count {
            return;
        }
        assert!(
            looked < deadline,
            "{:?}: clients shows {shown}, not {count}",
            browser.engine
        );
        thread::sleep(Duration::from_millis(20));
    }
}

fn text_of(browser: &mut Browser, id: &str) -> String {
    browser.run_for_string(&format!(
        "return document.getElementById('{id}').textContent;"
    ))
}

/// A stand-in for sse-clock, to see the page handle what sse-clock never
/// sends: CRLF line ends, a character split between two writes, and a
/// CRLF split between two writes. It serves the page (the same file the
/// binary includes) and, on `/events`, ticks whose ids are multiples of
/// `SCRIPTED_INTERVAL_MS`, so every stream gets the same ids.
struct ScriptedServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

const SCRIPTED_INTERVAL_MS: u64 = 200;
const PAGE: &[u8] = include_bytes!("../static/index.html");

impl ScriptedServer {
    fn start() -> ScriptedServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
        let addr = listener.local_addr().expect("local address");
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        thread::spawn(move || {
            for socket in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    return;
                }
                // A stream ends when the browser is gone and a write fails.
                thread::spawn(move || socket.and_then(answer_scripted));
            }
        });
        ScriptedServer { addr, stop }
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wakes the accepting thread
    }
}

/// One request: the page, or a stream whose ticks each go out in three
/// writes 30 ms apart:
///
/// ```text
/// id: 1795515047000\r\ndata: caf\xc3        (é is C3 A9 in UTF-8)
/// \xa9 1795515047000\r\n\r                 (the last CR without its LF)
/// \n
/// ```
fn answer_scripted(mut socket: TcpStream) -> io::Result<()> {
    socket.set_nodelay(true)?;
    let mut reader = BufReader::new(socket.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut line = String::new();
    while !matches!(line.as_str(), "\r\n" | "\n") {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
    }
    if !request_line.starts_with("GET /events ") {
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            PAGE.len()
        );
        return socket.write_all(&[head.as_bytes(), PAGE].concat());
    }
    socket.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\
          Cache-Control: no-cache\r\nConnection: close\r\n\r\n: scripted\r\n\r\n",
    )?;
    loop {
        let now = unix_ms_now();
        let tick = (now / SCRIPTED_INTERVAL_MS + 1) * SCRIPTED_INTERVAL_MS;
        thread::sleep(Duration::from_millis(tick - now));
        let block = format!("id: {tick}\r\ndata: caf\u{e9} {tick}\r\n\r\n");
        let inside_e = block.find('\u{e9}').expect("an é") + 1;
        let before_last_lf = block.len() - 1;
        let bytes = block.as_bytes();
        for piece in [
            &bytes[..inside_e],
            &bytes[inside_e..before_last_lf],
            &bytes[before_last_lf..],
        ] {
            socket.write_all(piece)?;
            thread::sleep(Duration::from_millis(30));
        }
    }
}
