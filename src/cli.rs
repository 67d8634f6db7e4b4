//! Lesson 6a: the command line and the environment, read once into a checked
//! `Config`. A mistake gets a line of reason, the usage, and the usual exit status 2.

use std::env;
use std::ffi::OsString;
use std::net::ToSocketAddrs;
use std::ops::RangeInclusive;
use std::time::Duration;

use crate::clock;
use crate::http::{self, Settings};

pub const USAGE: &str = "\
usage: sse-clock [OPTION]...      (sse-clock -h | --help | -V | --version)
  --addr HOST:PORT          where to listen (default 127.0.0.1:8080; port 0: a free one)
  --interval MS             time between ticks, 1 to 86400000 (default 1000)
  --retry MS                browsers' wait to reconnect, 0 to 86400000 (default 3000)
  --max-connections N       most connections holding a slot, 1 to 1000000 (default 1000)
  --max-per-address N       most of them from one address (IPv6: one /64; loopback not
                            counted), 1 to 1000000 (default a tenth of --max-connections)
  --max-stream-age SECONDS  each stream ends, to be resumed, after 1 to 1.5 times this,
                            0 to 86400 (default 600; 0: never)
  --allow-origin ORIGIN     pages from ORIGIN (https://example.org) may subscribe from
                            there; repeatable, or * for any
  --quiet                   nothing on stderr once listening";

/// A day in milliseconds: the longest interval or retry accepted.
pub const DAY_MS: u64 = 24 * 60 * 60 * 1000;

pub struct Config {
    pub addr: String,
    pub max_connections: usize,
    /// `None`: a tenth of `max_connections` (`main.rs`).
    pub max_per_address: Option<usize>,
    pub settings: Settings,
}

pub enum Command {
    Run(Config),
    Help,
    Version,
}

pub fn parse_args(args: impl Iterator<Item = OsString>) -> Result<Command, String> {
    // The timeouts come from the environment, so that tests can shorten them.
    let mut config = Config {
        addr: "127.0.0.1:8080".to_owned(),
        // With the 20 files the server keeps for itself, 1000 fits the usual
        // soft limit of 1024 open files, so the default is never lowered.
        max_connections: 1000,
        max_per_address: None,
        settings: Settings {
            interval_ms: 1000,
            retry_ms: 3000,
            allow_origins: Vec::new(),
            head_timeout: env_ms("SSE_CLOCK_HEAD_TIMEOUT_MS", http::HEAD_TIMEOUT)?,
            write_timeout: env_ms("SSE_CLOCK_WRITE_TIMEOUT_MS", http::WRITE_TIMEOUT)?,
            keep_alive: env_ms("SSE_CLOCK_KEEP_ALIVE_MS", clock::KEEP_ALIVE)?,
            max_stream_age: Duration::from_secs(600),
            quiet: false,
        },
    };
    let settings = &mut config.settings;
    let mut args = args.map(|arg| arg.into_string().map_err(|_| "arguments must be UTF-8"));
    while let Some(flag) = args.next() {
        let flag = flag?;
        let mut value = || match args.next() {
            Some(value) => Ok(value?),
            None => Err(format!("{flag} needs a value")),
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "-V" | "--version" => return Ok(Command::Version),
            "--quiet" => settings.quiet = true,
            "--addr" => config.addr = check_addr(value()?)?,
            "--interval" => settings.interval_ms = number(&flag, &value()?, 1..=DAY_MS)?,
            "--retry" => settings.retry_ms = number(&flag, &value()?, 0..=DAY_MS)?,
            // At most a million: `as` keeps the number whole.
            "--max-connections" | "--max-clients" => {
                config.max_connections = number(&flag, &value()?, 1..=1_000_000)? as usize;
            }
            "--max-per-address" => {
                config.max_per_address = Some(number(&flag, &value()?, 1..=1_000_000)? as usize);
            }
            "--max-stream-age" => {
                let seconds = number(&flag, &value()?, 0..=DAY_MS / 1000)?;
                settings.max_stream_age = Duration::from_secs(seconds);
            }
            "--allow-origin" => settings.allow_origins.push(check_origin(value()?)?),
            _ => return Err(format!("unknown option {flag:?}")),
        }
    }
    Ok(Command::Run(config))
}

fn number(flag: &str, text: &str, range: RangeInclusive<u64>) -> Result<u64, String> {
    let (start, end) = (range.start(), range.end());
    let number = text.parse().ok().filter(|number| range.contains(number));
    number.ok_or_else(|| format!("{flag} takes a whole number from {start} to {end}, not {text:?}"))
}

/// `HOST:PORT`, where HOST is an IP address (IPv6 in brackets) or a name.
fn check_addr(addr: String) -> Result<String, String> {
    let why = format!("--addr takes HOST:PORT, such as 127.0.0.1:8080, not {addr:?}");
    match addr.to_socket_addrs().map(|mut resolved| resolved.next()) {
        Ok(Some(_)) => Ok(addr),
        _ => Err(why),
    }
}

/// `*`, or an origin, compared as browsers send it in `Origin` (RFC 6454
/// 6.2): `https://App.Example.org:443` becomes `https://app.example.org`,
/// the scheme and host lowercase, no port when it is the scheme's default.
fn check_origin(origin: String) -> Result<String, String> {
    let canonical = match origin.to_ascii_lowercase().split_once("://") {
        _ if origin == "*" => Ok(origin.clone()),
        Some(("http", authority)) => canonical_origin("http", 80, authority),
        Some(("https", authority)) => canonical_origin("https", 443, authority),
        _ => Err("the scheme is http:// or https://"),
    };
    let example = "* or an origin such as https://example.org";
    canonical.map_err(|why| format!("--allow-origin takes {example}, not {origin:?}: {why}"))
}

/// `scheme "://" host [ ":" port ]`, from a lowercase `host [ ":" port ]`.
fn canonical_origin(scheme: &str, default: u16, authority: &str) -> Result<String, &'static str> {
    // The port follows the last colon, unless it is inside an IPv6 `[::1]`.
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => (host, Some(port)),
        _ => (authority, None),
    };
    let ipv6 = host.starts_with('[') && host.ends_with(']');
    let host_byte =
        |b| b"-._".contains(&b) || b.is_ascii_alphanumeric() || ipv6 && b"[:]".contains(&b);
    if host.is_empty() || !host.bytes().all(host_byte) {
        return Err("the host is ASCII letters, digits, - . _ or an [IPv6], with no path");
    }
    let digits = port.is_none_or(|port| port.bytes().all(|b| b.is_ascii_digit()));
    let port = port.map_or(Ok(default), str::parse).ok().filter(|_| digits);
    let port = port.ok_or("the port is a number from 0 to 65535")?;
    let port = (port != default).then(|| format!(":{port}"));
    Ok(format!("{scheme}://{host}{}", port.unwrap_or_default()))
}

fn env_ms(name: &str, default: Duration) -> Result<Duration, String> {
    match env::var(name) {
        Err(env::VarError::NotPresent) => Ok(default),
        Ok(text) => number(name, &text, 1..=DAY_MS).map(Duration::from_millis),
        Err(env::VarError::NotUnicode(_)) => Err(format!("{name} must be UTF-8")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_origin_is_kept_as_browsers_send_it_lowercase_without_its_default_port() {
        let cases = [
            ("https://App.Example.org:443", "https://app.example.org"),
            ("HTTP://example.org:80", "http://example.org"),
            ("http://example.org:443", "http://example.org:443"),
            ("https://example.org:8443", "https://example.org:8443"),
            ("https://example.org:0443", "https://example.org"),
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
            ("http://[::1]:80", "http://[::1]"),
            ("https://[::1]:8443", "https://[::1]:8443"),
            ("*", "*"),
        ];
        for (given, kept) in cases {
            assert_eq!(
                check_origin(given.to_owned()).as_deref(),
                Ok(kept),
                "{given}"
            );
        }
    }

    #[test]
    fn an_origin_that_is_not_one_is_refused_with_the_reason() {
        let cases = [
            ("ftp://example.org", "the scheme is http:// or https://"),
            ("example.org", "the scheme is http:// or https://"),
            ("https://example.org/", "with no path"),
            ("https://", "with no path"),
            ("https://user@example.org", "with no path"),
            ("https://bücher.example", "with no path"),
            ("https://a.example, https://b", "with no path"),
            (
                "https://example.org:",
                "the port is a number from 0 to 65535",
            ),
            (
                "https://example.org:+80",
                "the port is a number from 0 to 65535",
            ),
            (
                "https://example.org:65536",
                "the port is a number from 0 to 65535",
            ),
        ];
        for (given, why) in cases {
            let refused = check_origin(given.to_owned()).expect_err(given);
            let start = format!(
                "--allow-origin takes * or an origin such as https://example.org, not {given:?}: "
            );
            assert!(
                refused.starts_with(&start) && refused.ends_with(why),
                "{refused}"
            );
        }
    }
}
