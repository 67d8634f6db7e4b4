//! The event stream's wire format: the response head a stream starts
//! with, and the one encoder every event goes through, which cannot break
//! the framing whatever text it is given. Pure: bytes into a `Vec`.
//!
//! Spec: WHATWG HTML, section 9.2 "Server-sent events"
//! (<https://html.spec.whatwg.org/multipage/server-sent-events.html>), in
//! particular 9.2.5 "Parsing an event stream" (the grammar: lines end in
//! CRLF, LF or CR; `name: value` fields; a blank line ends a block) and
//! 9.2.6 "Interpreting an event stream" (what the browser does with each
//! field). What a viewer receives, and when, is `clock.rs`.

use std::io::Write;

/// The response head that starts every stream (RFC 9112 section 4 for the
/// status line, section 5 for the fields), without the blank line that
/// ends it, so that other fields can follow:
///
/// - `text/event-stream` is the only type an `EventSource` accepts;
/// - `no-cache` because every byte is news, `no-transform` so that
///   proxies do not compress the stream (compressors hold bytes back);
/// - `X-Accel-Buffering: no` asks nginx not to buffer this response;
/// - `Connection: close` because the body has no length and no chunked
///   framing: it is the raw event stream and ends when either side closes
///   (RFC 9112 section 6.3, rule 8). Never `keep-alive` on a stream.
const STREAM_HEAD_FIELDS: &[u8] = b"HTTP/1.1 200 OK\r\n\
Content-Type: text/event-stream\r\n\
Cache-Control: no-cache, no-transform\r\n\
X-Accel-Buffering: no\r\n\
Connection: close\r\n";

/// Appends a stream's response head: the fields above, then
/// `extra_fields` (field lines each ending in CRLF, such as the CORS ones,
/// or nothing), then the blank line that ends the head. Every answer that
/// starts a stream, however short, goes through here, so none of them
/// can lose a field the others have.
pub fn encode_stream_head(out: &mut Vec<u8>, extra_fields: &str) {
    out.extend_from_slice(STREAM_HEAD_FIELDS);
    out.extend_from_slice(extra_fields.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// One event as the browser will see it: `event` is its type (`None` means
/// the default type, `message`, which `onmessage` receives), `id` becomes
/// `lastEventId`, `data` is `event.data`.
pub struct Event<'a> {
    pub event: Option<&'a str>,
    pub id: Option<&'a str>,
    pub data: &'a str,
}

/// An `event` or `id` value that cannot be sent: it holds CR or LF, which
/// would end the field line early and let the rest be read as new fields,
/// or NUL, which makes browsers ignore an `id`. The `&str` names the field.
#[derive(Debug, PartialEq, Eq)]
pub struct InvalidField(pub &'static str);

/// Appends one event block to `out`. An event of type `clients` with data
/// `"2"`, and one with an id and data of two lines (`"a\nb"`), become:
///
/// ```text
/// event: clients\n        id: 7\n
/// data: 2\n               data: a\n
/// \n                      data: b\n
///                         \n
/// ```
///
/// Data may hold any text: each of its lines (split at CRLF, LF or CR, the
/// line ends the parser knows) gets a `data:` line of its own, and the
/// browser joins them back with LF. The blank line is what makes the
/// browser dispatch the event. Nothing is written when a field is refused.
pub fn encode_event(out: &mut Vec<u8>, event: &Event) -> Result<(), InvalidField> {
    if let Some(name) = event.event {
        check_single_line("event", name)?;
    }
    if let Some(id) = event.id {
        check_single_line("id", id)?;
    }
    if let Some(name) = event.event {
        write_field(out, "event", name);
    }
    if let Some(id) = event.id {
        write_field(out, "id", id);
    }
    for line in split_lines(event.data) {
        write_field(out, "data", line);
    }
    out.push(b'\n');
    Ok(())
}

/// Appends comment lines, one per line of `text`:
///
/// ```text
/// : hello\n
/// ```
pub fn encode_comment(out: &mut Vec<u8>, text: &str) {
    for line in split_lines(text) {
        write_field(out, "", line);
    }
}

/// Appends the blank line that ends a block holding no event, only
/// comments or `retry`: the browser dispatches nothing, since no `data`
/// came (9.2.6), but every write stays a whole block.
pub fn end_block(out: &mut Vec<u8>) {
    out.push(b'\n');
}

/// Appends the reconnection delay in milliseconds. The browser waits this
/// long before it reconnects after the stream ends (9.2.6, "retry"):
///
/// ```text
/// retry: 3000\n
/// ```
pub fn encode_retry(out: &mut Vec<u8>, retry_ms: u64) {
    let _ = writeln!(out, "retry: {retry_ms}"); // writing to a Vec cannot fail
}

/// Writes `name: value\n`. The space after the colon matters: the parser
/// drops exactly one space there, so a value that itself starts with a
/// space survives. With an empty name this is a comment line, `: value`.
fn write_field(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.push(b'\n');
}

fn check_single_line(field: &'static str, value: &str) -> Result<(), InvalidField> {
    if value.contains(['\r', '\n', '\0']) {
        return Err(InvalidField(field));
    }
    Ok(())
}

/// Splits text at every line end the event-stream parser recognises:
/// CRLF, LF, or a lone CR.
fn split_lines(text: &str) -> impl Iterator<Item = &str> {
    text.split('\n')
        .flat_map(|line| line.strip_suffix('\r').unwrap_or(line).split('\r'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(event: &Event) -> Result<String, InvalidField> {
        let mut out = Vec::new();
        encode_event(&mut out, event)?;
        Ok(String::from_utf8(out).expect("the encoder writes UTF-8"))
    }

    fn data(data: &str) -> Event<'_> {
        Event {
            event: None,
            id: None,
            data,
        }
    }

    #[test]
    fn a_single_line_becomes_one_data_line_and_a_blank_line() {
        assert_eq!(encoded(&data("hello")), Ok("data: hello\n\n".into()));
    }

    #[test]
    fn event_and_id_come_before_data() {
        let event = Event {
            event: Some("clients"),
            id: Some("7"),
            data: "2",
        };
        assert_eq!(
            encoded(&event),
            Ok("event: clients\nid: 7\ndata: 2\n\n".into())
        );
    }

    #[test]
    fn every_kind_of_line_end_in_data_starts_a_new_data_line() {
        assert_eq!(encoded(&data("a\nb")), Ok("data: a\ndata: b\n\n".into()));
        assert_eq!(encoded(&data("a\r\nb")), Ok("data: a\ndata: b\n\n".into()));
        assert_eq!(encoded(&data("a\rb")), Ok("data: a\ndata: b\n\n".into()));
        assert_eq!(
            encoded(&data("a\n\nb")),
            Ok("data: a\ndata: \ndata: b\n\n".into())
        );
    }

    #[test]
    fn data_that_looks_like_fields_stays_data() {
        let sneaky = "1\n\nevent: admin\ndata: gotcha";
        assert_eq!(
            encoded(&data(sneaky)),
            Ok("data: 1\ndata: \ndata: event: admin\ndata: data: gotcha\n\n".into())
        );
    }

    #[test]
    fn a_leading_space_in_a_value_survives_the_one_space_the_parser_drops() {
        assert_eq!(encoded(&data(" x")), Ok("data:  x\n\n".into()));
    }

    #[test]
    fn event_and_id_values_with_cr_lf_or_nul_are_refused() {
        for bad in ["a\nb", "a\rb", "a\r\nb", "a\0b", "\n"] {
            let as_event = Event {
                event: Some(bad),
                id: None,
                data: "x",
            };
            assert_eq!(
                encoded(&as_event),
                Err(InvalidField("event")),
                "event {bad:?}"
            );
            let as_id = Event {
                event: None,
                id: Some(bad),
                data: "x",
            };
            assert_eq!(encoded(&as_id), Err(InvalidField("id")), "id {bad:?}");
        }
    }

    #[test]
    fn a_refused_event_writes_nothing() {
        let mut out = b"before".to_vec();
        let bad = Event {
            event: Some("ok"),
            id: Some("a\nb"),
            data: "x",
        };
        assert_eq!(encode_event(&mut out, &bad), Err(InvalidField("id")));
        assert_eq!(out, b"before");
    }

    #[test]
    fn comments_and_retry_are_single_lines() {
        let mut out = Vec::new();
        encode_comment(&mut out, "one\ntwo");
        encode_retry(&mut out, 3000);
        assert_eq!(out, b": one\n: two\nretry: 3000\n");
    }

    #[test]
    fn the_stream_head_is_close_delimited_and_never_keep_alive() {
        let mut out = Vec::new();
        encode_stream_head(&mut out, "");
        let head = String::from_utf8(out).expect("ASCII");
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(head.contains("\r\nContent-Type: text/event-stream\r\n"));
        assert!(head.contains("\r\nConnection: close\r\n"));
        assert!(!head.contains("Content-Length") && !head.contains("keep-alive"));
        assert!(head.ends_with("close\r\n\r\n"));
    }

    #[test]
    fn extra_fields_go_before_the_blank_line_that_ends_the_head() {
        let mut out = Vec::new();
        encode_stream_head(&mut out, "Vary: Origin\r\n");
        assert!(out.ends_with(b"Connection: close\r\nVary: Origin\r\n\r\n"));
    }
}
