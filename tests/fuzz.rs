//! A deterministic fuzz test of the front door. A small seeded generator
//! mutates valid requests (truncation, byte flips, huge and repeated
//! fields, stray control bytes, random bytes) and sends 20,000 of them,
//! each on its own connection. Every one must get well-formed answers or a
//! clean close, never a reset or a hang; the server must stay up, and its
//! threads must come back to the idle count afterwards.

mod common;

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::thread;

use common::Server;

const CASES: usize = 20_000;
const CLIENTS: usize = 4;

/// xorshift64*: tiny, seeded, the same sequence on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n).expect("fits")).expect("fits")
    }

    fn byte(&mut self) -> u8 {
        self.next().to_le_bytes()[0]
    }
}

/// Requests to start from: each route, both versions, a resume, bodies of
/// both framings and an unknown coding, a second request behind the first.
const VALID: &[&str] = &[
    "GET / HTTP/1.1\r\nHost: fuzz\r\n\r\n",
    "HEAD /index.html HTTP/1.1\r\nHost: fuzz\r\nAccept: */*\r\n\r\n",
    "GET /events HTTP/1.1\r\nHost: fuzz\r\nAccept: text/event-stream\r\n\r\n",
    "GET /events?x=1 HTTP/1.1\r\nHost: fuzz\r\nLast-Event-ID: 1795511605000\r\n\r\n",
    "GET /nope HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n\r\n",
    "POST /events HTTP/1.1\r\nHost: fuzz\r\nContent-Length: 5\r\n\r\nhello",
    "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    "GET http://fuzz/ HTTP/1.1\r\nHost: fuzz\r\n\r\nHEAD / HTTP/1.1\r\nHost: fuzz\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: fuzz\r\nContent-Length: 3\r\n\r\nabc",
    "GET / HTTP/1.1\r\nHost: fuzz\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: fuzz\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
];

fn mutate(rng: &mut Rng) -> Vec<u8> {
    let mut request = VALID[rng.below(VALID.len())].as_bytes().to_vec();
    let at = rng.below(request.len() + 1);
    match rng.below(8) {
        0 => request.truncate(at),
        1 => {
            for _ in 0..=rng.below(4) {
                let at = rng.below(request.len());
                request[at] = rng.byte();
            }
        }
        2 => {
            let value = "v".repeat(rng.below(20_000));
            request.splice(at..at, format!("X-Huge: {value}\r\n").into_bytes());
        }
        3 => {
            let field = b"X-Again: 1\r\n".repeat(rng.below(300));
            request.splice(at..at, field);
        }
        4 => {
            let stray = [b'\r', b'\n', 0, b' ', b'\t', b':', 0x7f, 0xff][rng.below(8)];
            request.insert(at, stray);
        }
        5 => request = (0..rng.below(3000)).map(|_| rng.byte()).collect(),
        6 => {
            request.splice(at..at, b"\r\n".repeat(rng.below(5000)));
        }
        _ => {} // unchanged: the valid ones must keep working too
    }
    request
}

/// Sends one request, half-closes, and reads everything the server says
/// until it closes. Returns the status code of the first answer, or "close"
/// for a clean close without one.
fn try_one(server: &Server, request: &[u8]) -> String {
    let mut socket = server.connect();
    // The server may close before it has read everything (a head that is
    // too large, say); a failed write is then expected.
    let _ = socket.write_all(request);
    let _ = socket.shutdown(Shutdown::Write);
    // Read to the close; a stream never closes by itself (the viewer is
    // still reading), so once its head and first block are in, stop.
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match socket.read(&mut chunk) {
            Ok(0) => break,
            Ok(read) => answer.extend_from_slice(&chunk[..read]),
            Err(error) => {
                let kind = error.kind();
                assert!(
                    kind != ErrorKind::WouldBlock && kind != ErrorKind::TimedOut,
                    "hung on {request:?}"
                );
                panic!("{error} (not a clean close) after {request:?}");
            }
        }
        let text = String::from_utf8_lossy(&answer);
        let body = text.split_once("\r\n\r\n").map(|(_, body)| body);
        if text.contains("text/event-stream") && body.is_some_and(|body| body.contains("\n\n")) {
            break;
        }
    }
    if answer.is_empty() {
        return "close".to_owned();
    }
    let text = String::from_utf8_lossy(&answer);
    let status_line = text.lines().next().unwrap_or_default();
    let code = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3));
    let well_formed = code.is_some_and(|code| code.bytes().all(|byte| byte.is_ascii_digit()))
        && status_line.len() > "HTTP/1.1 200 ".len();
    assert!(well_formed, "answer {status_line:?} to {request:?}");
    code.unwrap_or_default().to_owned()
}

#[test]
fn twenty_thousand_mutated_requests_get_a_status_or_a_clean_close() {
    // A stream notices that its client closed at its next writes, so a
    // short interval keeps the stream requests among the cases short.
    let server = Server::start(&["--quiet", "--interval", "10"]);
    server.wait_until_idle();
    let idle_threads = server.threads();
    let outcomes: Vec<BTreeMap<String, usize>> = thread::scope(|scope| {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let server = &server;
                scope.spawn(move || {
                    let mut rng = Rng(0x5eed_0000 + u64::try_from(client).expect("fits"));
                    let mut outcomes = BTreeMap::new();
                    for _ in 0..CASES / CLIENTS {
                        let outcome = try_one(server, &mutate(&mut rng));
                        *outcomes.entry(outcome).or_insert(0) += 1;
                    }
                    outcomes
                })
            })
            .collect();
        clients
            .into_iter()
            .map(|client| client.join().expect("a client thread"))
            .collect()
    });
    let mut total = BTreeMap::new();
    for (outcome, count) in outcomes.into_iter().flatten() {
        *total.entry(outcome).or_insert(0) += count;
    }
    eprintln!("outcomes of {CASES} mutated requests: {total:?}");
    assert_eq!(total.values().sum::<usize>(), CASES);
    // The mutations reach every kind of answer, not just one.
    for status in ["200", "400", "404", "405", "414", "431", "501", "close"] {
        assert!(total.contains_key(status), "no {status} among {total:?}");
    }
    // Still up and serving, and back to its idle threads.
    assert!(server.get("/").starts_with("HTTP/1.1 200 OK\r\n"));
    server.wait_until_idle();
    assert_eq!(server.threads(), idle_threads);
}
