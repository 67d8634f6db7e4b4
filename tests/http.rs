//! The page, the other routes, and what malformed requests get, checked as
//! the exact bytes that come back over a real socket.

mod common;

use std::io::Write;

use common::{EventStream, Server, read_to_close, without_date};

const PAGE: &[u8] = include_bytes!("../static/index.html");

/// Splits an answer into its head (without the blank line) and body.
fn split(answer: &str) -> (&str, &str) {
    answer
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of head in {answer:?}"))
}

#[test]
fn the_page_is_served_with_its_length_and_type() {
    let server = Server::start(&[]);
    for path in ["/", "/index.html", "/?utm=x"] {
        let answer = without_date(&server.get(path));
        let (head, body) = split(&answer);
        let expected_head = format!(
            "HTTP/1.1 200 OK\r\n\
             Content-Type: text/html; charset=utf-8\r\n\
             X-Content-Type-Options: nosniff\r\n\
             Content-Length: {}\r\n\
             Connection: close",
            PAGE.len()
        );
        assert_eq!(head, expected_head, "{path}");
        assert_eq!(body.as_bytes(), PAGE, "{path}");
    }
}

#[test]
fn head_gets_the_same_head_and_no_body() {
    let server = Server::start(&[]);
    let get = without_date(&server.get("/"));
    let head = server.exchange(b"HEAD / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    assert_eq!(without_date(&head), format!("{}\r\n\r\n", split(&get).0));
}

#[test]
fn an_unknown_path_is_404_in_plain_text() {
    let server = Server::start(&[]);
    let answer = without_date(&server.get("/nope"));
    assert_eq!(
        answer,
        "HTTP/1.1 404 Not Found\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         X-Content-Type-Options: nosniff\r\n\
         Content-Length: 14\r\n\
         Connection: close\r\n\
         \r\n\
         404 Not Found\n"
    );
}

#[test]
fn error_bodies_never_echo_the_request() {
    let server = Server::start(&[]);
    let answer = server.get("/<script>alert(1)</script>");
    assert!(answer.starts_with("HTTP/1.1 404 Not Found\r\n"), "{answer}");
    assert!(!answer.contains("script"), "{answer}");
}

#[test]
fn other_methods_are_405_with_allow() {
    let server = Server::start(&[]);
    for method in ["POST", "PUT", "DELETE", "OPTIONS", "get"] {
        let answer =
            server.exchange(format!("{method} /events HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes());
        let (head, body) = split(&answer);
        assert!(
            head.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
            "{method}: {head}"
        );
        assert!(
            answer.contains("\r\nAllow: GET, HEAD\r\n"),
            "{method}: {head}"
        );
        assert_eq!(body, "405 Method Not Allowed\n");
    }
}

#[test]
fn malformed_requests_get_400_and_a_close() {
    let server = Server::start(&[]);
    let cases: &[&[u8]] = &[
        b"GET /\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost : test\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: test\r\n folded\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: te\0st\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: test\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        b"GET / HTTP/1.1\r\nHost: test\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
    ];
    for case in cases {
        let answer = server.exchange(case);
        assert!(
            answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{case:?}: {answer}"
        );
        assert!(
            answer.ends_with("\r\n\r\n400 Bad Request\n"),
            "{case:?}: {answer}"
        );
    }
}

#[test]
fn a_body_on_get_of_either_framing_is_ignored_and_an_unknown_coding_is_501() {
    let server = Server::start(&[]);
    let bodies: [&[u8]; 2] = [
        b"GET / HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n\r\nhello",
        b"GET / HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    ];
    for request in bodies {
        let answer = server.exchange(request);
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.as_bytes().ends_with(PAGE), "the page, whole");
    }
    let gzip = b"GET / HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n";
    let answer = server.exchange(gzip);
    assert!(
        answer.starts_with("HTTP/1.1 501 Not Implemented\r\n"),
        "{answer}"
    );
    let http10 = b"GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    let answer = server.exchange(http10);
    assert!(
        answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{answer}"
    );
}

#[test]
fn a_higher_http_1_minor_version_is_served_as_1_1_and_another_major_is_505() {
    let server = Server::start(&[]);
    for version in ["HTTP/1.2", "HTTP/1.9"] {
        let answer = server.exchange(format!("GET / {version}\r\nHost: test\r\n\r\n").as_bytes());
        assert!(
            answer.starts_with("HTTP/1.1 200 OK\r\n"),
            "{version}: {answer}"
        );
    }
    for version in ["HTTP/2.0", "HTTP/0.9"] {
        let answer = server.exchange(format!("GET / {version}\r\nHost: test\r\n\r\n").as_bytes());
        assert!(
            answer.starts_with("HTTP/1.1 505 HTTP Version Not Supported\r\n"),
            "{version}: {answer}"
        );
    }
}

#[test]
fn a_long_request_line_is_414_and_a_long_head_431() {
    let server = Server::start(&[]);
    let long_target = format!("GET /{} HTTP/1.1\r\nHost: test\r\n\r\n", "a".repeat(9000));
    let answer = server.exchange(long_target.as_bytes());
    assert!(
        answer.starts_with("HTTP/1.1 414 URI Too Long\r\n"),
        "{answer}"
    );

    let long_field = format!(
        "GET / HTTP/1.1\r\nHost: test\r\nX: {}\r\n\r\n",
        "a".repeat(9000)
    );
    let answer = server.exchange(long_field.as_bytes());
    assert!(
        answer.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        "{answer}"
    );
}

#[test]
fn http_1_0_without_host_and_absolute_form_targets_are_served() {
    let server = Server::start(&[]);
    let answer = server.exchange(b"HEAD / HTTP/1.0\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    let answer = server.exchange(b"HEAD http://test/index.html HTTP/1.1\r\nHost: test\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
}

#[test]
fn a_peer_that_closes_without_a_whole_request_gets_nothing() {
    let server = Server::start(&[]);
    let mut socket = server.connect();
    socket
        .write_all(b"GET / HTTP/1.1\r\nHo")
        .expect("send half a head");
    socket
        .shutdown(std::net::Shutdown::Write)
        .expect("half-close");
    assert_eq!(read_to_close(&mut socket), "");
    // Nothing answered, nothing logged, and its thread is gone.
    assert_eq!(server.stop_and_read_log(), "");
}

#[test]
fn each_request_is_logged_on_one_line() {
    let server = Server::start(&[]);
    server.get("/nope");
    let line = server.wait_for_log("\"GET /nope HTTP/1.1\"");
    let (peer, rest) = line.split_once(' ').expect("peer first");
    assert!(peer.starts_with("127.0.0.1:"), "{line}");
    assert!(
        rest.starts_with("\"GET /nope HTTP/1.1\" 404 14 bytes "),
        "{line}"
    );
    assert!(rest.ends_with('s'), "duration last: {line}");
}

#[test]
fn a_long_request_line_is_logged_cut_after_200_bytes() {
    let server = Server::start(&[]);
    let query = "x".repeat(8000);
    let mut stream = EventStream::open(&server, &format!("/events?{query}"));
    stream.next_tick();
    drop(stream);
    let line = server.wait_for_log("\"GET /events?");
    let kept = format!("GET /events?{}", &query[..200 - "GET /events?".len()]);
    assert!(line.contains(&format!(" \"{kept}…(cut)\" 200 ")), "{line}");
}

#[test]
fn a_malformed_request_is_logged_with_the_reason() {
    let server = Server::start(&[]);
    server.exchange(b"GET / HTTP/1.1\r\nHost: test\r\nNo colon here\r\n\r\n");
    let line = server.wait_for_log(" 400 ");
    assert!(
        line.contains(" \"-\" 400 16 bytes (field line without a colon) "),
        "{line}"
    );
}

#[test]
fn quiet_logs_nothing() {
    for (args, lines) in [(&[][..], 3), (&["--quiet"][..], 0)] {
        let server = Server::start(args);
        server.get("/nope");
        server.get("/");
        server.exchange(b"BREW / HTTP/1.1\r\nHost: test\r\n\r\n");
        let log = server.stop_and_read_log();
        assert_eq!(log.lines().count(), lines, "{args:?}: {log}");
    }
}
