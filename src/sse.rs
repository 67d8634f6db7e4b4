//! Lesson 1: the event stream format, and the one encoder every event goes through, which cannot
//! break the framing whatever text it is given. Spec: WHATWG HTML, "Server-sent events" 9.2.5
//! (parsing) and 9.2.6 (fields), <https://html.spec.whatwg.org/multipage/server-sent-events.html>.
//!
//! A stream's body is blocks, with no length, until its connection ends:
//!
//! ```text
//! : hello from sse-clock; lines that start with a colon are comments\n
//! retry: 3412\n
//! event: clients\n
//! data: 1\n
//! \n
//! id: 1795618800000\n
//! data: 2026-11-25T15:00:00Z\n
//! \n
//! ```
//!
//! - `: ...` is a comment: the browser skips it.
//! - `retry:` sets how long the browser waits before reconnecting.
//! - `event:` names the event's type; without it, `message` (`onmessage`).
//! - `data:` is the event's text, `event.data` in the page.
//! - `id:` becomes `lastEventId`, sent back as `Last-Event-ID` on reconnect.
//! - The blank line dispatches (9.2.6): "Set the last event ID string of the
//!   event source to the value of the last event ID buffer" (step 1), this
//!   stream's last `id:`, empty before the first; then an event, if the block
//!   had `data` (step 2). So a resumed stream's opening, before its first
//!   tick, carries the `id:` it resumed from (`clock.rs`).

use std::io::Write;

/// `text/event-stream` is the only type an `EventSource` accepts; `no-transform` and
/// `X-Accel-Buffering: no` keep proxies from compressing or buffering.
pub const STREAM_FIELDS: &str = "Content-Type: text/event-stream\r\n\
Cache-Control: no-cache, no-transform\r\n\
X-Accel-Buffering: no\r\n";

/// One event, its fields as listed above (`event: None` is a `message`).
pub struct Event<'a> {
    pub event: Option<&'a str>,
    pub id: Option<&'a str>,
    pub data: &'a str,
}

/// A refused `event` or `id`: CR or LF would inject fields, NUL voids an id.
#[derive(Debug, PartialEq, Eq)]
pub struct InvalidField(pub &'static str);

/// Appends one event block to `out`. Type `clients` with data `"2"`, and
/// an id with data of two lines (`"a\nb"`), become:
///
/// ```text
/// event: clients\n        id: 7\n
/// data: 2\n               data: a\n
/// \n                      data: b\n
///                         \n
/// ```
/// Each line of data gets a `data:` line; the browser joins them with LF. The parser drops one
/// space after the colon, so a leading space survives. A refused field leaves `out` as it was.
pub fn encode_event(out: &mut Vec<u8>, event: &Event) -> Result<(), InvalidField> {
    let start = out.len();
    for (name, value) in [("event", event.event), ("id", event.id)] {
        let Some(value) = value else { continue };
        if value.contains(['\r', '\n', '\0']) {
            out.truncate(start);
            return Err(InvalidField(name));
        }
        let _ = writeln!(out, "{name}: {value}"); // writing to a Vec cannot fail
    }
    for line in split_lines(event.data) {
        let _ = writeln!(out, "data: {line}");
    }
    end_block(out);
    Ok(())
}

/// Appends comment lines, one per line of `text`: `: hello\n`.
pub fn encode_comment(out: &mut Vec<u8>, text: &str) {
    for line in split_lines(text) {
        let _ = writeln!(out, ": {line}");
    }
}

/// Appends `retry: 3000\n`: about how many ms the browser waits to reconnect.
pub fn encode_retry(out: &mut Vec<u8>, retry_ms: u64) {
    let _ = writeln!(out, "retry: {retry_ms}");
}

/// Appends `id: 1795618800000\n`, to keep a viewer's last event ID (see above).
pub fn encode_id(out: &mut Vec<u8>, id: u64) {
    let _ = writeln!(out, "id: {id}");
}

/// Appends the blank line that ends a block and dispatches it (see above).
pub fn end_block(out: &mut Vec<u8>) {
    out.push(b'\n');
}

/// Splits text at every line end the parser knows: CRLF (first, so that it ends one line, not two),
/// then a lone LF or CR. `"a\r"` is two lines, `a` and an empty one, exactly like `"a\n"`.
fn split_lines(text: &str) -> impl Iterator<Item = &str> {
    text.split("\r\n").flat_map(|line| line.split(['\r', '\n']))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(event: &Event) -> Result<String, InvalidField> {
        let mut out = Vec::new();
        encode_event(&mut out, event)?;
        Ok(String::from_utf8(out).expect("the encoder writes UTF-8"))
    }

    fn data(data: &str) -> String {
        let event = Event {
            event: None,
            id: None,
            data,
        };
        encoded(&event).expect("data is never refused")
    }

    #[test]
    fn a_single_line_becomes_one_data_line_and_a_blank_line() {
        assert_eq!(data("hello"), "data: hello\n\n");
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

    /// Every line end the parser knows, at the start, in the middle, at the
    /// end, and twice: each one ends a `data:` line, and a CRLF counts once.
    #[test]
    fn every_line_end_in_every_position_starts_a_new_data_line() {
        for end in ["\n", "\r", "\r\n"] {
            let cases = [
                (format!("{end}a"), "data: \ndata: a\n\n"),
                (format!("a{end}b"), "data: a\ndata: b\n\n"),
                (format!("a{end}"), "data: a\ndata: \n\n"),
                (format!("a{end}{end}b"), "data: a\ndata: \ndata: b\n\n"),
                (end.to_owned(), "data: \ndata: \n\n"),
            ];
            for (text, wire) in cases {
                assert_eq!(data(&text), wire, "{text:?}");
            }
        }
        assert_eq!(
            data("a\n\rb"),
            "data: a\ndata: \ndata: b\n\n",
            "LF CR is two"
        );
    }

    #[test]
    fn data_that_looks_like_fields_stays_data() {
        let sneaky = "1\n\nevent: admin\ndata: gotcha";
        assert_eq!(
            data(sneaky),
            "data: 1\ndata: \ndata: event: admin\ndata: data: gotcha\n\n"
        );
    }

    #[test]
    fn a_leading_space_in_a_value_survives_the_one_space_the_parser_drops() {
        assert_eq!(data(" x"), "data:  x\n\n");
    }

    #[test]
    fn event_and_id_values_with_cr_lf_or_nul_are_refused_and_write_nothing() {
        for bad in ["a\nb", "a\rb", "a\r\nb", "a\0b", "\n"] {
            for (event, id, field) in [(Some(bad), None, "event"), (None, Some(bad), "id")] {
                let mut out = b"before".to_vec();
                let refused = Event {
                    event,
                    id,
                    data: "x",
                };
                assert_eq!(
                    encode_event(&mut out, &refused),
                    Err(InvalidField(field)),
                    "{bad:?}"
                );
                assert_eq!(out, b"before");
            }
        }
    }

    #[test]
    fn a_comment_line_per_line_of_text_and_retry_in_ms() {
        let mut out = Vec::new();
        encode_comment(&mut out, "one\ntwo");
        encode_retry(&mut out, 3000);
        end_block(&mut out);
        assert_eq!(out, b": one\n: two\nretry: 3000\n\n");
    }
}
