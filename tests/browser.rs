//! The project's own page in a real headless Chromium, driven through
//! chromedriver's W3C WebDriver HTTP interface (plain JSON over a
//! `TcpStream`). The page must show the clock and the client count, and
//! when the server is stopped and started again on the same port, it must
//! reconnect by itself and resume with `Last-Event-ID`: the ids it
//! received are contiguous across the restart, none missing, none twice.
//!
//! Needs the Debian packages `chromium` and `chromium-driver` (`.ci/run`
//! installs them). Without them the test is skipped with a loud message,
//! except under `CI=true`, where a missing browser is a failure.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{EventStream, Server, find_program, free_port};

const INTERVAL_MS: u64 = 200;

/// The browser tests take turns: each starts a chromedriver, and one also a
/// server, on ports found free a moment before, which two tests at once
/// could be handed twice.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn take_turn() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How long the page may take to reach a state the test waits for.
const PAGE_TIMEOUT: Duration = Duration::from_secs(20);

#[test]
fn the_page_ticks_counts_clients_and_resumes_across_a_restart_without_loss() {
    let _turn = take_turn();
    let Some(browser) = Browser::start() else {
        return;
    };
    let args = ["--interval", "200", "--retry", "300"];
    let server = Server::start(&args);
    let page_url = format!("http://{}/", server.addr);
    browser.navigate(&page_url);
    let mut seen = Seen::default();

    // The clock ticks and the page counts itself.
    let page = browser.wait_for(&mut seen, "open, 1 client, 3 ticks", |page| {
        page.state == "open" && page.clients == "1" && page.ids.len() >= 3
    });
    assert!(
        page.clock.ends_with('Z') && page.clock.contains('T'),
        "clock shows RFC 3339: {}",
        page.clock
    );

    // Another viewer comes and goes; the page's count follows.
    let other = EventStream::open(&server, "/events");
    browser.wait_for(&mut seen, "2 clients", |page| page.clients == "2");
    drop(other);
    browser.wait_for(&mut seen, "1 client again", |page| page.clients == "1");

    // Stop the server; the browser notices and waits to reconnect.
    let port = server.addr.port();
    drop(server);
    browser.wait_for(&mut seen, "reconnecting", |page| {
        page.state == "reconnecting"
    });
    let last_before = *seen.ids.last().expect("ticks before the restart");
    // Stay down for a few ticks, so that there is something to replay.
    thread::sleep(Duration::from_millis(4 * INTERVAL_MS));

    // Start it again on the same port: the page reconnects by itself.
    let addr = format!("127.0.0.1:{port}");
    let _restarted = Server::start(&[&["--addr", &addr][..], &args[..]].concat());
    let resumed_past = last_before + 10 * INTERVAL_MS;
    browser.wait_for(&mut seen, "open again, 10 ticks on", |page| {
        page.state == "open" && page.ids.first().is_some_and(|&id| id > resumed_past)
    });
    seen.assert_contiguous();
    let replayed = seen.ids.range(last_before + 1..).count();
    assert!(replayed >= 10, "ticks after the restart: {replayed}");
}

#[test]
fn a_page_on_an_allowed_origin_subscribes_across_origins_and_others_cannot() {
    let _turn = take_turn();
    let Some(browser) = Browser::start() else {
        return;
    };
    let port = free_port();
    let allowed = format!("http://localhost:{port}");
    let addr = format!("127.0.0.1:{port}");
    let _server = Server::start(&[
        "--addr",
        &addr,
        "--interval",
        "200",
        "--allow-origin",
        &allowed,
    ]);

    // A page from http://localhost:PORT reads http://127.0.0.1:PORT/events.
    browser.navigate(&format!("{allowed}/"));
    browser.subscribe(&format!("http://{addr}/events"));
    let got = browser.wait_for_subscription(|data, _| data.ends_with('Z'));
    assert!(got.0.contains('T'), "a clock value across origins: {got:?}");

    // A page from http://127.0.0.1:PORT, not on the list, is refused: the
    // browser gets no Access-Control-Allow-Origin and closes the stream.
    browser.navigate(&format!("http://{addr}/"));
    browser.subscribe(&format!("{allowed}/events"));
    let refused = browser.wait_for_subscription(|_, state| state == "2");
    assert_eq!(refused.0, "", "no event from a refused origin");
}

/// Every tick id the page has shown, gathered over many looks at its
/// bounded log, with a check at each look that the log itself has no gap
/// and no duplicate.
#[derive(Default)]
struct Seen {
    ids: BTreeSet<u64>,
}

impl Seen {
    fn add(&mut self, page: &Page) {
        // The log shows the newest first: each id one interval before the
        // one above it. A duplicate or a gap would break this.
        for pair in page.ids.windows(2) {
            assert_eq!(pair[0], pair[1] + INTERVAL_MS, "page log {:?}", page.ids);
        }
        self.ids.extend(&page.ids);
    }

    fn assert_contiguous(&self) {
        let ids: Vec<u64> = self.ids.iter().copied().collect();
        for pair in ids.windows(2) {
            assert_eq!(
                pair[1],
                pair[0] + INTERVAL_MS,
                "a gap between {} and {}",
                pair[0],
                pair[1]
            );
        }
    }
}

/// What the page shows, read through one script.
struct Page {
    state: String,
    clients: String,
    clock: String,
    /// The ids of the clock events in the page's log, newest first.
    ids: Vec<u64>,
}

const READ_PAGE: &str = "\
const text = (id) => document.getElementById(id).textContent;
const ids = [...document.querySelectorAll('#log li[data-type=message]')].map((li) => li.dataset.id);
return [document.getElementById('state').dataset.state, text('clients'), text('clock'), ids.join(',')].join('|');";

/// A headless Chromium under chromedriver, with one WebDriver session.
struct Browser {
    driver: Child,
    port: u16,
    session: String,
    profile: PathBuf,
}

impl Browser {
    /// Starts chromedriver and a session, or returns `None` (after saying
    /// so loudly) when the browser is not installed outside CI.
    fn start() -> Option<Browser> {
        let (Some(chromium), Some(chromedriver)) = (
            find_program(&["chromium", "chromium-browser"]),
            find_program(&["chromedriver"]),
        ) else {
            common::missing("chromium and chromedriver are", "chromium chromium-driver");
            return None;
        };
        // A port that was free a moment ago may be taken by the time
        // chromedriver binds it; then it exits, and another port is tried.
        let mut browser = (0..5)
            .find_map(|_| Browser::start_driver(&chromedriver))
            .expect("chromedriver became ready on one of five ports");
        browser.session = browser.new_session(&chromium);
        Some(browser)
    }

    /// Starts chromedriver on a free port and waits until it says it is
    /// ready; `None` if it exits or does not get there in time.
    fn start_driver(chromedriver: &Path) -> Option<Browser> {
        let port = free_port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let profile =
            std::env::temp_dir().join(format!("sse-clock-browser-{}-{port}", std::process::id()));
        let mut browser = Browser {
            driver,
            port,
            session: String::new(),
            profile,
        };
        let deadline = Instant::now() + PAGE_TIMEOUT;
        while Instant::now() < deadline
            && browser.driver.try_wait().is_ok_and(|exit| exit.is_none())
        {
            let status = browser.try_request("GET", "/status", "");
            if status.is_ok_and(|answer| answer.contains("\"ready\":true")) {
                return Some(browser);
            }
            thread::sleep(Duration::from_millis(50));
        }
        None // dropping `browser` kills the driver
    }

    /// The flags a root user on a closed network needs (see the machine
    /// notes): no sandbox, no GPU, no background connections, a fresh profile.
    fn new_session(&self, chromium: &Path) -> String {
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ];
        let mut args: Vec<String> = args.iter().map(|arg| format!("\"{arg}\"")).collect();
        args.push(format!("\"--user-data-dir={}\"", self.profile.display()));
        let body = format!(
            "{{\"capabilities\":{{\"alwaysMatch\":{{\"goog:chromeOptions\":{{\"binary\":\"{}\",\"args\":[{}]}}}}}}}}",
            chromium.display(),
            args.join(",")
        );
        let answer = self.request("POST", "/session", &body);
        json_string(&answer, "sessionId").unwrap_or_else(|| panic!("no session: {answer}"))
    }

    fn navigate(&self, url: &str) {
        let path = format!("/session/{}/url", self.session);
        self.request("POST", &path, &format!("{{\"url\":\"{url}\"}}"));
    }

    fn read_page(&self) -> Page {
        let script = READ_PAGE.replace('\n', " ").replace('"', "\\\"");
        let value = self.run_script(&script, "");
        let mut parts = value.split('|').map(str::to_owned);
        let mut next = || parts.next().unwrap_or_default();
        let (state, clients, clock, ids) = (next(), next(), next(), next());
        let ids = ids.split(',').filter_map(|id| id.parse().ok()).collect();
        Page {
            state,
            clients,
            clock,
            ids,
        }
    }

    /// Opens an `EventSource` on `url` from the current page, noting the
    /// first event's data and the state after an error.
    fn subscribe(&self, url: &str) {
        let script = "window.probe = { data: '', state: '' }; \
            const source = new EventSource(arguments[0]); \
            source.onmessage = (event) => { window.probe.data ||= event.data; }; \
            source.onerror = () => { window.probe.state = String(source.readyState); }; \
            return 'subscribed';";
        self.run_script(script, url);
    }

    /// Waits until the subscription's (data, state) satisfy `done`.
    fn wait_for_subscription(&self, done: impl Fn(&str, &str) -> bool) -> (String, String) {
        let deadline = Instant::now() + PAGE_TIMEOUT;
        loop {
            let seen = self.run_script("return window.probe.data + '|' + window.probe.state;", "");
            let (data, state) = seen.split_once('|').unwrap_or_default();
            if done(data, state) {
                return (data.to_owned(), state.to_owned());
            }
            assert!(
                Instant::now() < deadline,
                "subscription never got there: {seen}"
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs `script` in the page with one string argument; returns the
    /// string it returns.
    fn run_script(&self, script: &str, argument: &str) -> String {
        let path = format!("/session/{}/execute/sync", self.session);
        let body = format!("{{\"script\":\"{script}\",\"args\":[\"{argument}\"]}}");
        let answer = self.request("POST", &path, &body);
        json_string(&answer, "value").unwrap_or_else(|| panic!("no value: {answer}"))
    }

    /// Looks at the page every 50 ms, gathering the ids it shows, until
    /// `done` holds; fails after `PAGE_TIMEOUT`.
    fn wait_for(&self, seen: &mut Seen, what: &str, done: impl Fn(&Page) -> bool) -> Page {
        let deadline = Instant::now() + PAGE_TIMEOUT;
        loop {
            let page = self.read_page();
            seen.add(&page);
            if done(&page) {
                return page;
            }
            assert!(
                Instant::now() < deadline,
                "page never reached: {what} (state {}, clients {}, ids {:?})",
                page.state,
                page.clients,
                page.ids
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// One WebDriver command: an HTTP request with a JSON body, answered
    /// with a `Content-Length` body.
    fn request(&self, method: &str, path: &str, body: &str) -> String {
        let answer = self.try_request(method, path, body);
        answer.unwrap_or_else(|error| panic!("{method} {path} to chromedriver: {error}"))
    }

    fn try_request(&self, method: &str, path: &str, body: &str) -> std::io::Result<String> {
        let mut socket = TcpStream::connect(("127.0.0.1", self.port))?;
        socket.set_read_timeout(Some(PAGE_TIMEOUT))?;
        let port = self.port;
        let length = body.len();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
             Content-Length: {length}\r\nConnection: close\r\n\r\n{body}"
        );
        socket.write_all(request.as_bytes())?;
        let mut reader = BufReader::new(socket);
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line)?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().map_err(std::io::Error::other)?;
                }
            }
        }
        let mut answer = vec![0; length];
        reader.read_exact(&mut answer)?;
        Ok(String::from_utf8_lossy(&answer).into_owned())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let path = format!("/session/{}", self.session);
            let _ = TcpStream::connect(("127.0.0.1", self.port))
                .map(|_| self.request("DELETE", &path, ""));
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// The string value of the first `"key":"..."` in a JSON text (enough for
/// chromedriver's answers, whose strings here hold no escaped quotes).
fn json_string(json: &str, key: &str) -> Option<String> {
    let start = json.find(&format!("\"{key}\":\""))? + key.len() + 4;
    let end = start + json[start..].find('"')?;
    Some(json[start..end].to_owned())
}
