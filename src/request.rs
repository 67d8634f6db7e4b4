//! Lesson 4a: reading one HTTP/1.1 request head within limits, and all that a
//! request can get wrong. No socket: the parser reads any `BufRead`, so a byte
//! string is a whole test case. Spec: RFC 9112 sections 2.2, 2.3, 3, 3.2, 5,
//! 6.1 and 6.3; RFC 9110 sections 2.5 (versions), 5.6.2 (tokens), 15 (statuses).

use std::io::{self, BufRead, Read, Take};

/// The most bytes a head may take, line ends included (a browser's is under 1 KiB; nginx's limit
/// for a line is 8 KiB too): a request line over it alone (8,191 B + CRLF) is `414`, a head `431`.
pub const MAX_HEAD_BYTES: usize = 8 * 1024;
/// The most of the request line kept for the log, which a stream holds to its end.
pub const MAX_LOGGED_LINE_BYTES: usize = 200;
/// The most field lines one head may carry.
pub const MAX_FIELDS: usize = 100;

/// The only fields kept; the rest are checked, so no stream holds cookies for life.
pub const FIELDS_READ: [&str; 5] = [
    "host",
    "content-length",
    "transfer-encoding",
    "last-event-id",
    "origin",
];

/// Everything that stops a request from being served, with its status.
#[derive(Debug, PartialEq, Eq)]
pub enum RequestError {
    /// The peer left before a whole head arrived: no status, nobody to read it.
    Closed,
    /// The head did not arrive in time: `408 Request Timeout`.
    Timeout,
    /// Not HTTP/1.x syntax (the text says where, for the log): `400 Bad Request`.
    Malformed(&'static str),
    /// The request line and its line end alone are over `MAX_HEAD_BYTES`: `414 URI Too Long`.
    LineTooLong,
    /// Over `MAX_HEAD_BYTES` or `MAX_FIELDS`: `431` (RFC 6585).
    HeadTooLarge,
    /// A major version other than 1, `HTTP/2.0`: `505`.
    VersionNotSupported,
    /// An unknown coding before `chunked`, `gzip, chunked`: `501` (RFC 9112 6.1).
    UnknownCoding,
    /// Not GET or HEAD: `405 Method Not Allowed`, with `Allow: GET, HEAD`.
    MethodNotAllowed,
    /// A path other than `/`, `/index.html` and `/events`: `404 Not Found`.
    NotFound,
}

impl RequestError {
    /// The status line for this error, or `None` when no answer is sent.
    pub fn status(&self) -> Option<&'static str> {
        match self {
            RequestError::Closed => None,
            RequestError::Timeout => Some("408 Request Timeout"),
            RequestError::Malformed(_) => Some("400 Bad Request"),
            RequestError::LineTooLong => Some("414 URI Too Long"),
            RequestError::HeadTooLarge => Some("431 Request Header Fields Too Large"),
            RequestError::VersionNotSupported => Some("505 HTTP Version Not Supported"),
            RequestError::UnknownCoding => Some("501 Not Implemented"),
            RequestError::MethodNotAllowed => Some("405 Method Not Allowed"),
            RequestError::NotFound => Some("404 Not Found"),
        }
    }
}

/// `Err(Malformed(why))`, the `400` of every syntax check below.
fn malformed<T>(why: &'static str) -> Result<T, RequestError> {
    Err(RequestError::Malformed(why))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

#[derive(Debug)]
pub struct Head {
    /// For the log: cut after `MAX_LOGGED_LINE_BYTES` with `…(cut)`, escaped (`escape_for_log`).
    pub request_line: String,
    pub method: String,
    pub target: String,
    pub version: Version,
    /// The fields in `FIELDS_READ`, values trimmed; names ignore case (RFC 9110 5.1).
    pub fields: Vec<(String, String)>,
}

impl Head {
    /// The values of every field called `name`.
    pub fn field_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        let named = move |(field, value): &'a (String, String)| {
            field.eq_ignore_ascii_case(name).then_some(value.as_str())
        };
        self.fields.iter().filter_map(named)
    }
}

/// Reads one request head, at most `MAX_HEAD_BYTES` (RFC 9112 section 2.1):
///
/// ```text
/// GET /events?x=1 HTTP/1.1\r\n      request-line
/// Host: example.org\r\n             field-line
/// \r\n                              end of head
/// ```
pub fn read_head(reader: &mut impl BufRead) -> Result<Head, RequestError> {
    let mut reader = reader.take(MAX_HEAD_BYTES as u64);
    let mut line = Vec::with_capacity(256); // room for a typical line: rarely grown
    // Section 2.2: a server SHOULD ignore empty lines before the request line.
    while line.is_empty() {
        read_line(&mut reader, &mut line).map_err(|error| match error {
            RequestError::HeadTooLarge => RequestError::LineTooLong,
            other => other,
        })?;
    }
    let mut head = parse_request_line(&line)?;
    for field_count in 1.. {
        read_line(&mut reader, &mut line)?;
        if line.is_empty() {
            break;
        }
        if field_count > MAX_FIELDS {
            return Err(RequestError::HeadTooLarge);
        }
        let (name, value) = parse_field_line(&line)?;
        let kept = |read: &&str| name.eq_ignore_ascii_case(read.as_bytes());
        if FIELDS_READ.iter().any(kept) {
            let text = |bytes| String::from_utf8_lossy(bytes).into_owned();
            head.fields.push((text(name), text(value)));
        }
    }
    check_host(&head)?;
    check_body_framing(&head)?;
    Ok(head)
}

/// Reads one line into `line`, without its CRLF (or bare LF, section 2.2),
/// out of what is left of the head's bytes: past them, `HeadTooLarge`.
fn read_line(reader: &mut Take<impl BufRead>, line: &mut Vec<u8>) -> Result<(), RequestError> {
    line.clear();
    let read = reader.read_until(b'\n', line);
    read.map_err(|error| match error.kind() {
        // No bytes in time: `TimedOut`, or `WouldBlock` from a socket timeout on Unix.
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => RequestError::Timeout,
        _ => RequestError::Closed,
    })?;
    if line.pop() != Some(b'\n') {
        return Err(match reader.limit() {
            0 => RequestError::HeadTooLarge,
            _ => RequestError::Closed,
        });
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(())
}

/// `request-line = method SP request-target SP HTTP-version` (section 3).
fn parse_request_line(line: &[u8]) -> Result<Head, RequestError> {
    let parts: Vec<&[u8]> = line.splitn(4, |&byte| byte == b' ').collect(); // a 4th: an SP too many
    let [method, target, version] = parts[..] else {
        return malformed("request line is not method SP target SP version");
    };
    if !is_token(method) {
        return malformed("method is not a token");
    }
    if target.is_empty() || !target.iter().all(u8::is_ascii_graphic) {
        return malformed("target is not visible ASCII");
    }
    let text = |bytes| String::from_utf8_lossy(bytes).into_owned(); // ASCII: lossless
    let kept = line.get(..MAX_LOGGED_LINE_BYTES).unwrap_or(line);
    let cut = (kept.len() < line.len()).then_some("…(cut)");
    Ok(Head {
        request_line: escape_for_log(kept) + cut.unwrap_or_default(),
        method: text(method),
        target: text(target),
        version: parse_version(version)?,
        fields: Vec::with_capacity(FIELDS_READ.len()),
    })
}

/// The bytes for a log line, as nginx writes them: `"`, `\`, control bytes and non-ASCII as
/// `\xHH`, so that a target such as `/x"_200_-_"GET_/admin` cannot end the quoted request
/// line early and make one log line read as two requests: `/x\x22_200_-_\x22GET_/admin`.
pub fn escape_for_log(bytes: &[u8]) -> String {
    let escape = |&byte: &u8| match byte {
        b'"' | b'\\' | ..b' ' | 0x7f.. => format!("\\x{byte:02X}"),
        _ => char::from(byte).into(),
    };
    bytes.iter().map(escape).collect()
}

/// `HTTP-version = "HTTP/" DIGIT "." DIGIT` (section 2.3). `HTTP/1.2` is
/// answered as 1.1: minor versions are compatible (RFC 9110 section 2.5).
fn parse_version(text: &[u8]) -> Result<Version, RequestError> {
    match text.strip_prefix(b"HTTP/") {
        Some(b"1.0") => Ok(Version::Http10),
        Some([b'1', b'.', b'1'..=b'9']) => Ok(Version::Http11),
        Some([b'0'..=b'9', b'.', b'0'..=b'9']) => Err(RequestError::VersionNotSupported),
        _ => malformed("not an HTTP version"),
    }
}

/// `field-line = field-name ":" OWS field-value OWS` (section 5; OWS: optional whitespace).
fn parse_field_line(line: &[u8]) -> Result<(&[u8], &[u8]), RequestError> {
    // Section 5.2: a server MUST reject obsolete line folding with 400, or unfold it.
    if let [b' ' | b'\t', ..] = line {
        return malformed("obsolete line folding");
    }
    let mut halves = line.splitn(2, |&byte| byte == b':');
    let (Some(name), Some(value)) = (halves.next(), halves.next()) else {
        return malformed("field line without a colon");
    };
    // Section 5.1: a server MUST reject whitespace before the colon.
    if let [.., b' ' | b'\t'] = name {
        return malformed("whitespace between field name and colon");
    }
    if !is_token(name) {
        return malformed("field name is not a token");
    }
    // RFC 9110 section 5.5: no control byte (a bare CR or NUL starts header injection);
    // with none, `trim_ascii` strips only the optional spaces and tabs (OWS).
    if value.iter().any(|&b| b.is_ascii_control() && b != b'\t') {
        return malformed("control byte in a field value");
    }
    Ok((name, value.trim_ascii()))
}

/// Section 3.2: 400 for more than one `Host` field, none in HTTP/1.1, or a
/// value with a byte that `uri-host [ ":" port ]` (RFC 3986 3.2.2) never
/// holds; its shape is not parsed further. It may be empty.
fn check_host(head: &Head) -> Result<(), RequestError> {
    let host_byte = |b: u8| b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=:[]".contains(&b);
    let hosts: Vec<&str> = head.field_values("host").collect();
    if hosts.iter().any(|host| !host.bytes().all(host_byte)) {
        return malformed("Host is not host[:port]");
    }
    match (head.version, hosts.len()) {
        (Version::Http10, 0..=1) | (Version::Http11, 1) => Ok(()),
        _ => malformed("more than one Host field, or none in HTTP/1.1"),
    }
}

/// No body is read (the connection closes), but framing that a proxy could
/// read differently is refused (RFC 9112 sections 6.1 and 6.3, rules 3-5).
fn check_body_framing(head: &Head) -> Result<(), RequestError> {
    let list = |name| {
        let values = head.field_values(name).flat_map(|value| value.split(','));
        values.map(str::trim).collect::<Vec<_>>()
    };
    let (codings, lengths) = (list("transfer-encoding"), list("content-length"));
    let chunked = |coding: &&str| coding.eq_ignore_ascii_case("chunked");
    let http10 = head.version == Version::Http10;
    match (codings.split_last(), lengths.first()) {
        (None, None) => Ok(()),
        (Some(_), Some(_)) => malformed("Content-Length with Transfer-Encoding"), // rule 3
        (Some(_), None) if http10 => malformed("Transfer-Encoding in HTTP/1.0"),
        (Some((last, [])), None) if chunked(last) => Ok(()),
        (Some((last, before)), None) if chunked(last) && !before.iter().any(chunked) => {
            Err(RequestError::UnknownCoding)
        }
        (Some(_), None) => malformed("chunked is not the final coding, once"), // rule 4
        (None, Some(first)) => {
            // Rule 5; `parse` alone would take `+5`; `5, 5` is one (RFC 9110 8.6).
            let decimal = first.bytes().all(|byte| byte.is_ascii_digit());
            match first.parse::<u64>() {
                Ok(_) if decimal && lengths.iter().all(|other| other == first) => Ok(()),
                _ => malformed("Content-Length is not one decimal number"),
            }
        }
    }
}

/// `token = 1*tchar` (RFC 9110 section 5.6.2): a method or a field name.
fn is_token(bytes: &[u8]) -> bool {
    let tchar = |byte: &u8| byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(byte);
    !bytes.is_empty() && bytes.iter().all(tchar)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Result<Head, RequestError> {
        read_head(&mut &bytes[..])
    }

    const EVENTSOURCE: &[u8] = b"GET /events HTTP/1.1\r\n\
Host: 127.0.0.1:8080\r\n\
Accept: text/event-stream\r\n\
Cache-Control: no-cache\r\n\
\r\n";

    #[test]
    fn an_eventsource_request_parses_into_its_parts() {
        let head = parse(EVENTSOURCE).expect("a valid head");
        assert_eq!(head.method, "GET");
        assert_eq!(head.target, "/events");
        assert_eq!(head.version, Version::Http11);
        assert_eq!(
            head.field_values("host").collect::<Vec<_>>(),
            ["127.0.0.1:8080"]
        );
        assert_eq!(
            head.field_values("accept").count(),
            0,
            "not a field we read: checked, not kept"
        );
        assert_eq!(head.request_line, "GET /events HTTP/1.1");
    }

    #[test]
    fn every_proper_prefix_of_a_request_is_incomplete_not_a_request() {
        for end in 0..EVENTSOURCE.len() {
            let result = parse(&EVENTSOURCE[..end]);
            assert_eq!(
                result.err(),
                Some(RequestError::Closed),
                "prefix of {end} bytes"
            );
        }
    }

    #[test]
    fn bare_lf_line_ends_and_leading_empty_lines_are_accepted() {
        let head = parse(b"\r\n\nGET / HTTP/1.1\nHost: x\n\n").expect("section 2.2 allows both");
        assert_eq!(head.target, "/");
    }

    #[test]
    fn field_values_lose_surrounding_whitespace_and_names_ignore_case() {
        let head = parse(b"GET / HTTP/1.1\r\nHOST: \t x \t\r\n\r\n").expect("valid");
        assert_eq!(head.field_values("Host").collect::<Vec<_>>(), ["x"]);
    }

    #[test]
    fn two_host_fields_are_refused_in_either_version_with_a_true_reason() {
        let why = Some(RequestError::Malformed(
            "more than one Host field, or none in HTTP/1.1",
        ));
        for version in ["1.0", "1.1"] {
            let request = format!("GET / HTTP/{version}\r\nHost: x\r\nHost: y\r\n\r\n");
            assert_eq!(parse(request.as_bytes()).err(), why, "HTTP/{version}");
        }
    }

    #[test]
    fn http_1_0_needs_no_host() {
        assert_eq!(
            parse(b"GET / HTTP/1.0\r\n\r\n").expect("valid").version,
            Version::Http10
        );
    }

    #[test]
    fn malformed_heads_are_400() {
        let cases: &[&[u8]] = &[
            b"GET /\r\n\r\n",
            b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET / HTTP/1.1 \r\nHost: x\r\n\r\n",
            b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET / HTTP/1.1\rHost: x\r\n\r\n",
            b"GET / HTTQ/1.1\r\nHost: x\r\n\r\n",
            b"GET / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nNo colon\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nX: a\0b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\n: empty name\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n",
            b"GET / HTTP/1.0\r\nHost: x@y\r\n\r\n",
        ];
        for case in cases {
            let error = parse(case).expect_err(&String::from_utf8_lossy(case));
            assert_eq!(
                error.status(),
                Some("400 Bad Request"),
                "{:?}",
                String::from_utf8_lossy(case)
            );
        }
    }

    #[test]
    fn body_framing_is_checked_though_the_body_is_never_read() {
        let framing = |version: &str, fields: &str| {
            let head = format!("GET / {version}\r\nHost: x\r\n{fields}\r\n");
            parse(head.as_bytes())
                .map(|_| ())
                .map_err(|error| error.status())
        };
        let ok = [
            "",
            "Content-Length: 0\r\n",
            "Content-Length: 12\r\n",
            "Content-Length: 5, 5\r\nContent-Length: 5\r\n",
            "Transfer-Encoding: chunked\r\n",
            "Transfer-Encoding: CHUNKED\r\n",
        ];
        for fields in ok {
            assert_eq!(framing("HTTP/1.1", fields), Ok(()), "{fields:?}");
        }
        let bad = [
            "Content-Length: 5\r\nContent-Length: 6\r\n",
            "Content-Length: 5, 6\r\n",
            "Content-Length: -1\r\n",
            "Content-Length: +1\r\n",
            "Content-Length: \r\n",
            "Content-Length: 1e3\r\n",
            "Content-Length: 99999999999999999999999\r\n",
            "Content-Length: 0\r\nTransfer-Encoding: chunked\r\n",
            "Transfer-Encoding: gzip\r\n",
            "Transfer-Encoding: chunked, gzip\r\n",
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
        ];
        for fields in bad {
            let status = framing("HTTP/1.1", fields);
            assert_eq!(status, Err(Some("400 Bad Request")), "{fields:?}");
        }
        let http10 = framing("HTTP/1.0", "Transfer-Encoding: chunked\r\n");
        assert_eq!(http10, Err(Some("400 Bad Request")), "no codings in 1.0");
        let gzip = framing("HTTP/1.1", "Transfer-Encoding: gzip, chunked\r\n");
        assert_eq!(gzip, Err(Some("501 Not Implemented")), "unknown coding");
    }

    #[test]
    fn higher_minor_versions_are_http_1_1_and_other_majors_505() {
        let version = |text: &str| {
            let head = format!("GET / {text}\r\nHost: x\r\n\r\n");
            parse(head.as_bytes()).map(|head| head.version)
        };
        assert_eq!(version("HTTP/1.0"), Ok(Version::Http10));
        assert_eq!(version("HTTP/1.1"), Ok(Version::Http11));
        assert_eq!(version("HTTP/1.2"), Ok(Version::Http11));
        assert_eq!(version("HTTP/1.9"), Ok(Version::Http11));
        for other in ["HTTP/2.0", "HTTP/0.9", "HTTP/3.1"] {
            assert_eq!(version(other), Err(RequestError::VersionNotSupported));
        }
        assert_eq!(
            version("HTTP/1.x"),
            Err(RequestError::Malformed("not an HTTP version"))
        );
    }

    /// `GET /aaa… HTTP/1.x`, `bytes` long without its CRLF, then `rest`.
    fn long_line(bytes: usize, version: &str, rest: &str) -> Vec<u8> {
        let mut head = b"GET /".to_vec();
        head.resize(bytes - " HTTP/1.1".len(), b'a');
        head.extend_from_slice(format!(" HTTP/{version}\r\n{rest}").as_bytes());
        head
    }

    #[test]
    fn a_request_line_whose_crlf_ends_past_8_kib_is_414_and_one_that_fits_a_head_that_does_not_431()
    {
        let host = "Host: x\r\n\r\n";
        assert_eq!(long_line(8191, "1.1", host).len(), 8191 + 2 + 11);
        let status = |bytes, version, rest| parse(&long_line(bytes, version, rest)).err();
        assert_eq!(status(8191, "1.1", host), Some(RequestError::LineTooLong));
        assert_eq!(status(20_000, "1.1", host), Some(RequestError::LineTooLong));
        for fits in 8188..=8190 {
            assert_eq!(status(fits, "1.1", host), Some(RequestError::HeadTooLarge));
        }
        // HTTP/1.0 needs no Host: 8,188 bytes, CRLF, CRLF is a head of 8,192.
        assert_eq!(status(8188, "1.0", "\r\n"), None);
        assert_eq!(
            status(8189, "1.0", "\r\n"),
            Some(RequestError::HeadTooLarge)
        );
    }

    #[test]
    fn the_request_line_kept_for_the_log_is_cut_after_200_bytes() {
        let long = long_line(8000, "1.1", "Host: x\r\n\r\n");
        let head = parse(&long).expect("a valid head");
        let kept = String::from_utf8_lossy(&long[..MAX_LOGGED_LINE_BYTES]);
        assert_eq!(head.request_line, format!("{kept}…(cut)"));
        assert!(
            head.request_line.capacity() < 1024,
            "not the 8 KB line's buffer"
        );
        let exact = long_line(200, "1.1", "Host: x\r\n\r\n");
        let line = parse(&exact).expect("a valid head").request_line;
        assert_eq!(line.as_bytes(), &exact[..200], "200 bytes are kept whole");
    }

    #[test]
    fn the_request_line_is_logged_with_quotes_backslashes_and_control_bytes_escaped() {
        let forged = parse(b"GET /x\"_200_-_\"GET_/admin\\ HTTP/1.1\r\nHost: x\r\n\r\n");
        let line = forged.expect("a valid head").request_line;
        assert_eq!(line, r"GET /x\x22_200_-_\x22GET_/admin\x5C HTTP/1.1");
        assert_eq!(
            escape_for_log(b"a\r\n\x1b\x7f\xc3b"),
            r"a\x0D\x0A\x1B\x7F\xC3b"
        );
    }

    #[test]
    fn a_head_over_the_limit_or_with_too_many_fields_is_431() {
        let mut big = b"GET / HTTP/1.1\r\nHost: x\r\nX: ".to_vec();
        big.resize(MAX_HEAD_BYTES + 10, b'a');
        big.extend_from_slice(b"\r\n\r\n");
        assert_eq!(parse(&big).err(), Some(RequestError::HeadTooLarge));

        let mut many = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
        for _ in 0..MAX_FIELDS {
            many.extend_from_slice(b"X: y\r\n");
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(parse(&many).err(), Some(RequestError::HeadTooLarge));
    }

    #[test]
    fn a_head_of_exactly_the_limit_is_accepted() {
        let mut exact = b"GET / HTTP/1.1\r\nHost: x\r\nX: ".to_vec();
        exact.resize(MAX_HEAD_BYTES - 4, b'a');
        exact.extend_from_slice(b"\r\n\r\n");
        assert_eq!(exact.len(), MAX_HEAD_BYTES);
        assert!(parse(&exact).is_ok());
    }
}
