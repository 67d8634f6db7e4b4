//! `--allow-origin`: the CORS fields a page on another origin needs to
//! read the stream, sent only when configured.

mod common;

use common::{EventStream, Server, run_to_exit};

fn stream_head(server: &Server, origin: Option<&str>) -> String {
    let fields = origin.map_or(String::new(), |origin| format!("Origin: {origin}\r\n"));
    let mut stream = EventStream::open_with(server, "/events", &fields);
    stream.next_block();
    stream.head
}

#[test]
fn without_the_option_no_cors_fields_are_sent() {
    let server = Server::start(&[]);
    let head = stream_head(&server, Some("https://elsewhere.example"));
    assert!(
        !head.contains("Access-Control") && !head.contains("Vary"),
        "{head}"
    );
}

#[test]
fn a_listed_origin_is_named_and_others_are_not() {
    let server = Server::start(&[
        "--allow-origin",
        "https://a.example",
        "--allow-origin",
        "http://b.example:8000",
    ]);
    for origin in ["https://a.example", "http://b.example:8000"] {
        let head = stream_head(&server, Some(origin));
        let fields = format!(
            "\r\nAccess-Control-Allow-Origin: {origin}\r\nVary: Origin\r\nConnection: close\r\n\r\n"
        );
        assert!(head.ends_with(&fields), "{origin}: {head}");
    }
    for origin in [
        Some("https://c.example"),
        Some("https://a.example.evil"),
        None,
    ] {
        let head = stream_head(&server, origin);
        assert!(
            !head.contains("Access-Control-Allow-Origin"),
            "{origin:?}: {head}"
        );
        assert!(
            head.ends_with("\r\nVary: Origin\r\nConnection: close\r\n\r\n"),
            "{origin:?}: {head}"
        );
    }
}

#[test]
fn an_origin_given_in_capitals_and_with_its_default_port_matches_what_browsers_send() {
    let server = Server::start(&["--allow-origin", "https://App.Example.org:443"]);
    let head = stream_head(&server, Some("https://app.example.org"));
    assert!(
        head.contains("\r\nAccess-Control-Allow-Origin: https://app.example.org\r\n"),
        "{head}"
    );
}

#[test]
fn a_star_lets_any_origin_in() {
    let server = Server::start(&["--allow-origin", "*"]);
    let head = stream_head(&server, Some("https://anyone.example"));
    assert!(
        head.ends_with("\r\nAccess-Control-Allow-Origin: *\r\nConnection: close\r\n\r\n"),
        "{head}"
    );
}

#[test]
fn an_origin_with_a_path_or_another_scheme_is_refused_at_start() {
    for bad in [
        "https://a.example/",
        "ftp://a.example",
        "a.example",
        "https://",
        "https://a.example, https://b",
    ] {
        let output = run_to_exit(&["--allow-origin", bad]);
        assert_eq!(output.status.code(), Some(2), "{bad}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.starts_with("sse-clock: --allow-origin takes * or an origin"),
            "{stderr}"
        );
    }
}

#[test]
fn the_full_server_answer_and_head_carry_the_cors_fields_too() {
    let origin = "https://a.example";
    let server = Server::start(&["--max-connections", "1", "--allow-origin", origin]);
    let fields = format!(
        "\r\nAccess-Control-Allow-Origin: {origin}\r\nVary: Origin\r\nConnection: close\r\n\r\n"
    );

    let answer = server.exchange(
        format!("HEAD /events HTTP/1.1\r\nHost: test\r\nOrigin: {origin}\r\n\r\n").as_bytes(),
    );
    assert!(answer.ends_with(&fields), "HEAD: {answer}");
    server.wait_until_idle(); // the HEAD's thread has given its slot back

    // The one slot is taken by a stream; the next viewer is told to come
    // back. Without the CORS fields its browser would give up for good.
    let mut holder = EventStream::open(&server, "/events");
    holder.next_tick();
    let mut turned = EventStream::open_with(&server, "/events", &format!("Origin: {origin}\r\n"));
    assert_eq!(turned.next_block().get(""), Some("full, come back later"));
    assert!(
        turned.head.ends_with(&fields),
        "turned away: {}",
        turned.head
    );
}
