//! Lesson 6a: the command line and the environment, read once at start-up
//! into a checked `Config`. A mistake gets one line of reason, the usage,
//! and exit status 2 (`main.rs`), as most tools do for a usage error.

use std::env;
use std::ffi::OsString;
use std::net::ToSocketAddrs;
use std::ops::RangeInclusive;
use std::time::Duration;

use crate::clock;
use crate::http::{self, Settings};

pub const USAGE: &str = "\
usage: sse-clock [--addr HOST:PORT] [--interval MS] [--retry MS] [--max-connections N]
                 [--max-stream-age SECONDS] [--allow-origin ORIGIN]... [--quiet]
       sse-clock -h | --help | -V | --version

  --addr HOST:PORT   where to listen (default 127.0.0.1:8080; port 0 picks a free port)
  --interval MS      time between clock events, 1 to 86400000 (default 1000)
  --retry MS         how long browsers wait before reconnecting, 0 to 86400000 (default 3000)
  --max-connections N
                     most connections open at once, 1 to 1000000 (default 1024);
                     --max-clients N, its old name, still works
  --max-stream-age S each stream ends, to be resumed at once, after S to 1.5 S
                     seconds, 0 to 86400 (default 600; 0: never)
  --allow-origin O   let pages from origin O (such as https://example.org) subscribe
                     to /events from another origin; repeatable, or * for any
  --quiet            nothing on stderr once listening: no request lines, no notices
  -h, --help         print this help
  -V, --version      print the version";

/// A day in milliseconds: the longest interval or retry accepted.
pub const DAY_MS: u64 = 24 * 60 * 60 * 1000;

pub struct Config {
    pub addr: String,
    pub max_connections: usize,
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
        max_connections: 1024,
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
    let mut args = args.map(|arg| {
        arg.into_string()
            .map_err(|_| "arguments must be UTF-8".to_owned())
    });
    while let Some(flag) = args.next() {
        let flag = flag?;
        let mut value = || {
            args.next()
                .unwrap_or_else(|| Err(format!("{flag} needs a value")))
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "-V" | "--version" => return Ok(Command::Version),
            "--quiet" => settings.quiet = true,
            "--addr" => config.addr = check_addr(value()?)?,
            "--interval" => settings.interval_ms = number(&flag, &value()?, 1..=DAY_MS)?,
            "--retry" => settings.retry_ms = number(&flag, &value()?, 0..=DAY_MS)?,
            "--max-connections" | "--max-clients" => {
                let max = number(&flag, &value()?, 1..=1_000_000)?;
                config.max_connections = usize::try_from(max).unwrap_or(usize::MAX);
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
    match text.parse() {
        Ok(number) if range.contains(&number) => Ok(number),
        _ => Err(format!(
            "{flag} takes a whole number from {} to {}, not {text:?}",
            range.start(),
            range.end()
        )),
    }
}

/// `HOST:PORT`, where HOST is an IP address (IPv6 in brackets) or a name.
fn check_addr(addr: String) -> Result<String, String> {
    match addr.to_socket_addrs().map(|mut resolved| resolved.next()) {
        Ok(Some(_)) => Ok(addr),
        _ => Err(format!(
            "--addr takes HOST:PORT, such as 127.0.0.1:8080, not {addr:?}"
        )),
    }
}

/// `*`, or an origin as browsers send it in `Origin`: `http` or `https`,
/// `://`, a host, an optional port, nothing after (RFC 6454 section 6.2).
fn check_origin(origin: String) -> Result<String, String> {
    let authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    let valid = origin == "*"
        || authority.is_some_and(|authority| {
            !authority.is_empty()
                && authority
                    .bytes()
                    .all(|byte| byte.is_ascii_graphic() && !b"/?#,@".contains(&byte))
        });
    if !valid {
        return Err(format!(
            "--allow-origin takes * or an origin such as https://example.org, not {origin:?}"
        ));
    }
    Ok(origin)
}

fn env_ms(name: &str, default: Duration) -> Result<Duration, String> {
    match env::var(name) {
        Err(env::VarError::NotPresent) => Ok(default),
        Ok(text) => number(name, &text, 1..=DAY_MS).map(Duration::from_millis),
        Err(env::VarError::NotUnicode(_)) => Err(format!("{name} must be UTF-8")),
    }
}
