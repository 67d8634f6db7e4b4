//! Persistent connections (RFC 9112 section 9.3): several requests on one
//! connection, pipelined ones answered in order, `Connection: close`
//! honoured, and the two timeouts that bound a connection's quiet time.

mod common;

use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Server, read_head_response, read_response, read_to_close};

const PAGE: &str = include_str!("../static/index.html");

fn open(server: &Server) -> (TcpStream, BufReader<TcpStream>) {
    let socket = server.connect();
    let reader = BufReader::new(socket.try_clone().expect("clone"));
    (socket, reader)
}

/// Reads until the server closes: nothing more may come.
fn assert_closed(reader: &mut BufReader<TcpStream>) {
    let mut rest = String::new();
    reader.read_to_string(&mut rest).expect("read to the close");
    assert_eq!(rest, "", "nothing after the last answer");
}

#[test]
fn an_http_1_1_connection_carries_request_after_request() {
    let server = Server::start(&[]);
    let (mut socket, mut reader) = open(&server);
    socket
        .write_all(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
        .expect("send");
    let (head, body) = read_response(&mut reader);
    assert!(
        head.starts_with("HTTP/1.1 200 OK\r\n") && !head.contains("Connection"),
        "{head}"
    );
    assert_eq!(body, PAGE);

    // A 404 to a well-formed request leaves the connection open too.
    socket
        .write_all(b"GET /nope HTTP/1.1\r\nHost: test\r\n\r\n")
        .expect("send");
    let (head, _) = read_response(&mut reader);
    assert!(
        head.starts_with("HTTP/1.1 404 Not Found\r\n") && !head.contains("Connection"),
        "{head}"
    );

    socket
        .write_all(b"GET /index.html HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .expect("send");
    let (head, body) = read_response(&mut reader);
    assert!(head.ends_with("\r\nConnection: close\r\n\r\n"), "{head}");
    assert_eq!(body, PAGE);
    assert_closed(&mut reader);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = Server::start(&[]);
    let (mut socket, mut reader) = open(&server);
    let three = "GET /nope HTTP/1.1\r\nHost: test\r\n\r\n\
                 HEAD / HTTP/1.1\r\nHost: test\r\n\r\n\
                 GET /index.html HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n";
    socket
        .write_all(three.as_bytes())
        .expect("send three requests at once");
    let (first, body) = read_response(&mut reader);
    assert!(first.starts_with("HTTP/1.1 404 Not Found\r\n"), "{first}");
    assert_eq!(body, "404 Not Found\n");
    let second = read_head_response(&mut reader);
    assert!(
        second.starts_with("HTTP/1.1 200 OK\r\nContent-Type: text/html"),
        "{second}"
    );
    let (third, body) = read_response(&mut reader);
    assert!(
        third.starts_with("HTTP/1.1 200 OK\r\n") && third.contains("Connection: close"),
        "{third}"
    );
    assert_eq!(body, PAGE);
    assert_closed(&mut reader);
    server.wait_for_log("\"GET /index.html HTTP/1.1\" 200");
    let log = server.log();
    let order: Vec<&str> = log
        .lines()
        .filter_map(|line| line.split('"').nth(1))
        .collect();
    assert_eq!(
        order,
        [
            "GET /nope HTTP/1.1",
            "HEAD / HTTP/1.1",
            "GET /index.html HTTP/1.1"
        ]
    );
}

#[test]
fn http_1_0_keeps_the_connection_only_when_asked() {
    let server = Server::start(&[]);
    let answer = server.exchange(b"HEAD / HTTP/1.0\r\n\r\n");
    assert!(
        answer.ends_with("\r\nConnection: close\r\n\r\n"),
        "{answer}"
    );

    let (mut socket, mut reader) = open(&server);
    socket
        .write_all(b"HEAD / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .expect("send");
    let head = read_head_response(&mut reader);
    assert!(
        head.ends_with("\r\nConnection: keep-alive\r\n\r\n"),
        "{head}"
    );
    socket
        .write_all(b"HEAD / HTTP/1.0\r\n\r\n")
        .expect("send a second request");
    let head = read_head_response(&mut reader);
    assert!(head.ends_with("\r\nConnection: close\r\n\r\n"), "{head}");
    assert_closed(&mut reader);
}

#[test]
fn a_malformed_request_ends_the_connection_and_what_follows_is_not_read() {
    let server = Server::start(&[]);
    let (mut socket, mut reader) = open(&server);
    // After a malformed head nobody can say where the next request starts,
    // so the one behind it is never answered.
    let two = "GET / HTTP/1.1\r\nHost : test\r\n\r\nGET / HTTP/1.1\r\nHost: test\r\n\r\n";
    socket.write_all(two.as_bytes()).expect("send");
    let (head, _) = read_response(&mut reader);
    assert!(
        head.starts_with("HTTP/1.1 400 Bad Request\r\n") && head.contains("Connection: close"),
        "{head}"
    );
    assert_closed(&mut reader);
}

#[test]
fn a_body_the_server_will_not_read_ends_the_connection() {
    let server = Server::start(&[]);
    let answer =
        server.exchange(b"POST /events HTTP/1.1\r\nHost: test\r\nContent-Length: 3\r\n\r\nabc");
    assert!(
        answer.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
        "{answer}"
    );
    assert!(answer.contains("\r\nConnection: close\r\n"), "{answer}");
}

#[test]
fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let server = Server::start_with_env(&[], &[("SSE_CLOCK_IDLE_TIMEOUT_MS", "300")]);
    let (mut socket, mut reader) = open(&server);
    socket
        .write_all(b"HEAD / HTTP/1.1\r\nHost: test\r\n\r\n")
        .expect("send");
    read_head_response(&mut reader);
    let answered = Instant::now();
    assert_closed(&mut reader);
    let idle = answered.elapsed();
    assert!(
        idle >= Duration::from_millis(290),
        "not before the idle timeout: {idle:?}"
    );
}

#[test]
fn a_head_trickled_in_a_byte_at_a_time_still_times_out() {
    let server = Server::start_with_env(&[], &[("SSE_CLOCK_HEAD_TIMEOUT_MS", "600")]);
    let mut socket = server.connect();
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("read timeout");
    let started = Instant::now();
    let mut answer = Vec::new();
    // Each byte arrives well within any per-read timeout; only a deadline
    // for the whole head stops this peer.
    for byte in b"GET / HTTP/1.1\r\nX-Slow: ".iter().cycle().take(100) {
        let _ = socket.write_all(&[*byte]); // fails once the server has closed
        let closed = socket.read_to_end(&mut answer).is_ok();
        if closed || !answer.is_empty() {
            break;
        }
    }
    let waited = started.elapsed();
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
        "{answer:?} after {waited:?}"
    );
    assert!(
        waited >= Duration::from_millis(590),
        "not before the deadline: {waited:?}"
    );
    drop(socket);
    server.wait_for_log("\"-\" 408 ");
}

#[test]
fn the_next_head_is_due_within_the_head_timeout_of_the_last_answer() {
    let env = [
        ("SSE_CLOCK_HEAD_TIMEOUT_MS", "500"),
        ("SSE_CLOCK_IDLE_TIMEOUT_MS", "5000"),
    ];
    let server = Server::start_with_env(&[], &env);
    let (mut socket, mut reader) = open(&server);
    socket
        .write_all(b"HEAD / HTTP/1.1\r\nHost: test\r\n\r\n")
        .expect("send");
    read_head_response(&mut reader);
    let answered = Instant::now();
    socket
        .write_all(b"GET / HT")
        .expect("start a second request, never finish it");
    let mut answer = String::new();
    reader
        .read_to_string(&mut answer)
        .expect("read to the close");
    assert!(
        answer.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
        "{answer}"
    );
    assert!(
        answered.elapsed() >= Duration::from_millis(490),
        "{:?}",
        answered.elapsed()
    );
    let _ = read_to_close(&mut socket);
}
