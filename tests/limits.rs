//! `--max-clients`: the cap on open connections, and what a connection
//! past it gets.

mod common;

use common::{EventStream, Server, read_to_close, wait_for};

#[test]
fn a_connection_past_the_cap_gets_503_and_the_streams_go_on() {
    let server = Server::start(&["--interval", "50", "--max-clients", "2"]);
    let mut first = EventStream::open(&server, "/events");
    let mut second = EventStream::open(&server, "/events");
    first.next_tick();
    second.next_tick();

    // The third is answered at once, before it even sends a request.
    let answer = read_to_close(&mut server.connect());
    assert!(
        answer.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{answer}"
    );
    assert!(answer.contains("\r\nRetry-After: 5\r\n"), "{answer}");
    server.wait_for_log("refusing new ones with 503");

    let (before, _) = first.next_tick();
    assert_eq!(
        first.next_tick().0,
        before + 50,
        "existing streams keep every tick"
    );
    second.next_tick();

    // A place is given back when a connection ends.
    drop(second);
    let third = wait_for(|| {
        let stream = EventStream::open(&server, "/events");
        stream
            .head
            .starts_with("HTTP/1.1 200 OK\r\n")
            .then_some(stream)
    });
    assert!(third.is_some(), "a freed place is taken by the next viewer");
}
