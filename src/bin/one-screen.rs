//! Lesson 0: the tutorial's Go server (`data:` and the time, then sleep a second, for ever) done
//! right: ticks on the clock's whole seconds, `id:` and `retry:` to resume without loss, a thread
//! that ends when its viewer leaves. `cargo run --bin one-screen`. Specs: WHATWG HTML 9.2, RFC 9112.
//! Left out here, and where the full server (`cargo run`) has it:
//! - `src/sse.rs`: any text in an event; `src/time.rs`: steps of the wall clock;
//! - `src/clock.rs`: `--interval`, `event: clients`, keep-alives for proxies, a stream's age;
//! - `src/request.rs`: the whole request grammar, and its statuses (408, 414, 431, 505...);
//! - `src/http.rs`: one deadline per head, HEAD, `?lastEventId=`, CORS, a close that loses nothing;
//! - `src/slots.rs`: a cap on connections; `src/cli.rs`: options; `src/main.rs`: small stacks.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::{env, process, thread, time::Duration, time::UNIX_EPOCH};

use chrono::{DateTime, Datelike, Utc};

const PAGE: &[u8] = include_bytes!("../../static/index.html"); // runs from any directory
const MAX_HEAD_BYTES: u64 = 8 * 1024; // a browser's request head is under 1 KiB
const TIMEOUT: Duration = Duration::from_secs(10); // for a read, or a write: then drop the peer
const MAX_REPLAY: u64 = 300; // the most missed ticks a resumed viewer is sent: bounded

fn main() {
    let listener = match &env::args().skip(1).collect::<Vec<_>>()[..] {
        [] => TcpListener::bind("127.0.0.1:8080"),
        [flag, addr] if flag == "--addr" => TcpListener::bind(addr),
        _ => Err(io::Error::other("usage: one-screen [--addr HOST:PORT]")),
    };
    let Ok(listener) = listener.map_err(|e| writeln!(io::stderr(), "one-screen: {e}")) else {
        process::exit(2);
    };
    let addr = listener.local_addr().expect("a bound socket's address");
    println!("Listening on http://{addr}"); // port 0 picks a free port: this line says which
    for socket in listener.incoming() {
        let Ok(socket) = socket else {
            thread::sleep(Duration::from_millis(100)); // out of files, say: pause, go on
            continue;
        };
        let serving = move || serve(&socket).map_err(|e| writeln!(io::stderr(), "ended: {e}"));
        let _ = thread::Builder::new().spawn(serving); // a thread per connection, or closed
    }
}

/// One request (RFC 9112 3: `method SP request-target SP HTTP-version`), one answer, the close.
fn serve(socket: &TcpStream) -> io::Result<()> {
    let (request_line, last_event_id) = read_head(socket)?; // none: close, unanswered
    socket.set_write_timeout(Some(TIMEOUT))?; // a peer that stops reading: a write fails
    let (method, path) = match request_line.split(' ').collect::<Vec<_>>()[..] {
        [method, target, "HTTP/1.1" | "HTTP/1.0"] => (method, target.split('?').next()),
        _ => ("", None),
    };
    let status = match (method, path) {
        ("GET", Some("/")) => return write_sized(socket, "200 OK", "text/html", PAGE),
        ("GET", Some("/events")) => return stream_ticks(socket, last_event_id),
        ("GET", _) => "404 Not Found",
        ("", _) => "400 Bad Request",
        _ => "501 Not Implemented", // RFC 9110 9.1: a method this server lacks
    };
    let body = format!("{status}\n");
    write_sized(socket, status, "text/plain", body.as_bytes())
}

/// Reads `GET /events HTTP/1.1\r\nLast-Event-ID: 1795618800000\r\n\r\n` through a buffer
/// (a `read` may bring part of a line, or more), at most `MAX_HEAD_BYTES`, `TIMEOUT` a read.
fn read_head(socket: &TcpStream) -> io::Result<(String, Option<u64>)> {
    socket.set_read_timeout(Some(TIMEOUT))?;
    let mut reader = BufReader::new(socket.take(MAX_HEAD_BYTES));
    let (mut request_line, mut last_event_id) = (String::new(), None);
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?; // a timeout, or bytes that are not UTF-8: an error
        let (ended, line) = (line.ends_with('\n'), line.trim_end_matches(['\r', '\n']));
        match line.split_once(':') {
            _ if !ended => return Err(io::ErrorKind::UnexpectedEof.into()), // closed, or too long
            _ if request_line.is_empty() => request_line = line.to_owned(),
            _ if line.is_empty() => return Ok((request_line, last_event_id)), // the head's end
            Some((name, value)) if name.eq_ignore_ascii_case("Last-Event-ID") => {
                last_event_id = value.trim().parse().ok(); // not decimal ms: start fresh
            }
            _ => {} // a field this server does not use
        }
    }
}

/// An answer whose `Content-Length` says where its body ends, head and body in one write.
fn write_sized(mut socket: &TcpStream, status: &str, kind: &str, body: &[u8]) -> io::Result<()> {
    let ((_, date), length) = (format_times(now_ms()), body.len());
    let head = format!(
        "HTTP/1.1 {status}\r\n\
         Date: {date}\r\n\
         Content-Type: {kind}; charset=utf-8\r\n\
         Content-Length: {length}\r\n\
         Connection: close\r\n\
         \r\n"
    ); // a 404's body: `404 Not Found\n`
    socket.write_all(&[head.as_bytes(), body].concat())
}

/// The head (no length: the body ends with the connection), `retry:`, then whole seconds'
/// ticks from this one, or from the one after `Last-Event-ID`, until a write fails.
fn stream_ticks(mut socket: &TcpStream, last_event_id: Option<u64>) -> io::Result<()> {
    let now = now_ms();
    let (_, date) = format_times(now);
    let mut block = format!(
        "HTTP/1.1 200 OK\r\n\
         Date: {date}\r\n\
         Content-Type: text/event-stream\r\n\
         Cache-Control: no-cache\r\n\
         Connection: close\r\n\
         \r\n\
         retry: 3000\n\
         \n"
    ); // retry: ms a browser waits to reconnect; a setting, so its blank line dispatches nothing
    let resume = last_event_id.filter(|&id| id <= now); // one from the future: start fresh
    let mut tick = resume.map_or(now - now % 1000, |id| id - id % 1000 + 1000);
    loop {
        let now = now_ms();
        tick = tick.max((now - now % 1000).saturating_sub((MAX_REPLAY - 1) * 1000)); // this one too
        while tick <= now {
            let (time, _) = format_times(tick);
            // id: 1795618800000\n  data: 2026-11-25T15:00:00Z\n  \n (which dispatches it)
            block.push_str(&format!("id: {tick}\ndata: {time}\n\n"));
            tick += 1000;
        }
        // One block, one write (nothing to flush); an error (viewer left or stalled) ends the thread.
        socket.write_all(block.as_bytes())?;
        block.clear();
        // Sleep until the next whole second, not for a second: a fixed sleep adds the time
        // each wake and write takes to every period, so the ticks would drift.
        thread::sleep(Duration::from_millis(tick.saturating_sub(now_ms())));
    }
}

/// Now, in ms since 1970 (0 before it).
fn now_ms() -> u64 {
    u64::try_from(UNIX_EPOCH.elapsed().unwrap_or_default().as_millis()).unwrap_or(u64::MAX)
}

/// A Unix time in ms, to the second, by chrono (only here): as RFC 3339 for `data:`,
/// `2026-11-25T15:00:00Z`, and for `Date:` (RFC 9110 5.6.7), `Wed, 25 Nov 2026 15:00:00 GMT`.
fn format_times(unix_ms: u64) -> (String, String) {
    let seconds = i64::try_from(unix_ms / 1000).unwrap_or_default();
    let t: DateTime<Utc> = DateTime::from_timestamp(seconds, 0).unwrap_or_default();
    let at = t.month0() as usize * 3;
    let month = &"JanFebMarAprMayJunJulAugSepOctNovDec"[at..at + 3]; // `at` is 0 to 33
    let (weekday, day, year, time) = (t.weekday(), t.day(), t.year(), t.time());
    let rfc3339 = format!("{}T{time}Z", t.date_naive());
    let date = format!("{weekday}, {day:02} {month} {year} {time} GMT");
    (rfc3339, date)
}
