//! Real browsers for the tests: Chromium, Firefox and WebKit, each driven
//! through the automation protocol its own project ships, spoken by hand
//! over a `TcpStream` (no WebDriver crate, no JSON crate):
//!
//! - Chromium: chromedriver, the W3C WebDriver protocol (JSON over HTTP).
//! - WebKit: WebKitGTK's `WebKitWebDriver`, the same protocol, driving its
//!   `MiniBrowser` in a virtual X display (Xvfb), as its `--headless` hangs.
//! - Firefox: Marionette, Firefox's own protocol (what geckodriver would
//!   translate WebDriver into): `LENGTH:JSON` messages on a TCP port.
//!
//! A test asks for `Browser::start(engine)`, goes to a URL with `goto` and
//! runs scripts in the page with `run`, in the current tab (`new_tab`,
//! `switch_to` and `close_tab` change it); dropping the `Browser` ends the
//! session and kills every process it started. Browsers take turns: `start`
//! waits until no other `Browser` of the same test process is alive, since
//! two at once on a 2-core machine are slow enough to miss deadlines.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use super::{find_program, free_port, missing};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Chromium,
    Firefox,
    WebKit,
}

pub const ENGINES: [Engine; 3] = [Engine::Chromium, Engine::Firefox, Engine::WebKit];

/// How long a driver may take to start, and a command to be answered.
const DRIVER_TIMEOUT: Duration = Duration::from_secs(30);

/// The flags a root user on a closed network needs: no sandbox, no GPU, no
/// background connections (the profile directory is added per session).
const CHROMIUM_ARGS: [&str; 9] = [
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

/// One browser with one automation session.
pub struct Browser {
    pub engine: Engine,
    protocol: Protocol,
    /// Every process `start` began, killed on drop, last started first.
    processes: Vec<Child>,
    /// A fresh profile directory, removed on drop.
    profile: PathBuf,
    /// Held for the browser's whole life; dropped last (fields drop in order).
    _turn: MutexGuard<'static, ()>,
}

enum Protocol {
    /// W3C WebDriver over HTTP, on 127.0.0.1:`port`.
    WebDriver { port: u16, session: String },
    /// Marionette: one connection, commands numbered from 1.
    Marionette {
        reader: BufReader<TcpStream>,
        last_id: u64,
    },
}

static TURN: Mutex<()> = Mutex::new(());

impl Browser {
    /// Starts the engine with a fresh profile and opens a session. `None`
    /// when the engine is not installed: the test is skipped loudly through
    /// `common::missing`, which fails under `CI=true`.
    pub fn start(engine: Engine) -> Option<Browser> {
        let programs = engine.programs()?;
        let turn = TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let name = format!("{engine:?}").to_lowercase();
        let profile = std::env::temp_dir().join(format!(
            "sse-clock-{name}-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&profile).expect("a profile directory");
        let mut browser = Browser {
            engine,
            protocol: Protocol::WebDriver {
                port: 0,
                session: String::new(),
            },
            processes: Vec::new(),
            profile,
            _turn: turn,
        };
        match engine {
            Engine::Chromium => browser.start_chromium(&programs[0], &programs[1]),
            Engine::Firefox => browser.start_firefox(&programs[0]),
            Engine::WebKit => browser.start_webkit(&programs[0], &programs[1], &programs[2]),
        }
        Some(browser)
    }

    /// Loads `url` and waits for its `load` event.
    pub fn goto(&mut self, url: &str) {
        let params = format!("{{\"url\":{}}}", quote(url));
        match self.protocol {
            Protocol::WebDriver { .. } => self.webdriver("POST", "/url", &params),
            Protocol::Marionette { .. } => self.marionette("WebDriver:Navigate", &params),
        };
    }

    /// Runs `script` as the body of a function in the page (it may `return`
    /// a value) and gives back the JSON text of what it returned. A script
    /// that throws fails the test.
    pub fn run(&mut self, script: &str) -> String {
        let params = format!("{{\"script\":{},\"args\":[]}}", quote(script));
        let answer = match self.protocol {
            Protocol::WebDriver { .. } => self.webdriver("POST", "/execute/sync", &params),
            Protocol::Marionette { .. } => self.marionette("WebDriver:ExecuteScript", &params),
        };
        let value = field(&answer, "value").unwrap_or_else(|| panic!("no value in {answer}"));
        value.to_owned()
    }

    /// `run` for a script that returns a string: that string.
    pub fn run_for_string(&mut self, script: &str) -> String {
        let value = self.run(script);
        json_string(&value).unwrap_or_else(|| panic!("not a string: {value}"))
    }

    /// The current tab's handle, which names it to `switch_to`.
    pub fn tab(&mut self) -> String {
        let answer = match self.protocol {
            Protocol::WebDriver { .. } => self.webdriver("GET", "/window", ""),
            Protocol::Marionette { .. } => self.marionette("WebDriver:GetWindowHandle", "{}"),
        };
        let value = field(&answer, "value").and_then(json_string);
        value.unwrap_or_else(|| panic!("no handle in {answer}"))
    }

    /// Opens a new tab (blank) and makes it the current one.
    pub fn new_tab(&mut self) {
        let answer = match self.protocol {
            Protocol::WebDriver { .. } => {
                self.webdriver("POST", "/window/new", "{\"type\":\"tab\"}")
            }
            Protocol::Marionette { .. } => {
                self.marionette("WebDriver:NewWindow", "{\"type\":\"tab\"}")
            }
        };
        // WebDriver: {"value":{"handle":"…","type":"tab"}}; Marionette: {"handle":"…",…}.
        let inner = field(&answer, "value").unwrap_or(&answer);
        let handle = field(inner, "handle").and_then(json_string);
        let handle = handle.unwrap_or_else(|| panic!("no handle in {answer}"));
        self.switch_to(&handle);
    }

    /// Makes the tab `handle` the current one: commands go to it.
    pub fn switch_to(&mut self, handle: &str) {
        let params = format!("{{\"handle\":{}}}", quote(handle));
        match self.protocol {
            Protocol::WebDriver { .. } => self.webdriver("POST", "/window", &params),
            Protocol::Marionette { .. } => self.marionette("WebDriver:SwitchToWindow", &params),
        };
    }

    /// Closes the current tab, as its user would; `switch_to` another next.
    pub fn close_tab(&mut self) {
        match self.protocol {
            Protocol::WebDriver { .. } => self.webdriver("DELETE", "/window", ""),
            Protocol::Marionette { .. } => self.marionette("WebDriver:CloseWindow", "{}"),
        };
    }

    /// chromedriver, which starts Chromium for the session.
    fn start_chromium(&mut self, chromium: &Path, chromedriver: &Path) {
        self.start_webdriver(|port| {
            let mut command = Command::new(chromedriver);
            command.arg(format!("--port={port}"));
            command
        });
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|arg| quote(arg)).collect();
        args.push(quote(&format!(
            "--user-data-dir={}",
            self.profile.display()
        )));
        let options = format!(
            "\"goog:chromeOptions\":{{\"binary\":{},\"args\":[{}]}}",
            quote(&chromium.to_string_lossy()),
            args.join(",")
        );
        self.new_webdriver_session(&options);
    }

    /// Xvfb on a display it picks itself (it writes the number on stdout,
    /// `-displayfd 1`), then WebKitWebDriver on that display, which starts
    /// MiniBrowser for the session.
    fn start_webkit(&mut self, driver: &Path, xvfb: &Path, minibrowser: &Path) {
        let mut display = Command::new(xvfb)
            .args(["-displayfd", "1", "-nolisten", "tcp", "-screen", "0"])
            .arg("1280x800x24")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start Xvfb");
        let stdout = display.stdout.take().expect("Xvfb's stdout is piped");
        self.processes.push(display);
        let mut number = String::new();
        BufReader::new(stdout)
            .read_line(&mut number)
            .expect("Xvfb names its display");
        let display = format!(":{}", number.trim());
        self.start_webdriver(|port| {
            let mut command = Command::new(driver);
            command
                .arg(format!("--port={port}"))
                .env("DISPLAY", &display);
            command
        });
        let options = format!(
            "\"browserName\":\"MiniBrowser\",\"webkitgtk:browserOptions\":{{\"binary\":{},\"args\":[\"--automation\"]}}",
            quote(&minibrowser.to_string_lossy())
        );
        self.new_webdriver_session(&options);
    }

    /// Starts a WebDriver server (`command(port)`) and waits until its
    /// `/status` says ready. A port that was free a moment ago may be taken
    /// by the time the driver binds it; then it exits, and another port is
    /// tried.
    fn start_webdriver(&mut self, command: impl Fn(u16) -> Command) {
        for _ in 0..5 {
            let port = free_port();
            let mut driver = command(port)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start the WebDriver server");
            let deadline = Instant::now() + DRIVER_TIMEOUT;
            while Instant::now() < deadline && driver.try_wait().is_ok_and(|exit| exit.is_none()) {
                let status = http(port, "GET", "/status", "");
                if status.is_ok_and(|(_, body)| body.contains("\"ready\":true")) {
                    self.processes.push(driver);
                    let session = String::new();
                    self.protocol = Protocol::WebDriver { port, session };
                    return;
                }
                thread::sleep(Duration::from_millis(50));
            }
            let _ = driver.kill();
            let _ = driver.wait();
        }
        panic!("{:?}: the WebDriver server never became ready", self.engine);
    }

    fn new_webdriver_session(&mut self, capabilities: &str) {
        let body = format!("{{\"capabilities\":{{\"alwaysMatch\":{{{capabilities}}}}}}}");
        let answer = self.webdriver("POST", "", &body);
        let value = field(&answer, "value").unwrap_or_default();
        let id = field(value, "sessionId").and_then(json_string);
        let id = id.unwrap_or_else(|| panic!("{:?}: no session: {answer}", self.engine));
        if let Protocol::WebDriver { session, .. } = &mut self.protocol {
            *session = id;
        }
    }

    /// One WebDriver command on the session (`path` after
    /// `/session/ID`): its answer, or the test fails with the driver's error.
    fn webdriver(&mut self, method: &str, path: &str, body: &str) -> String {
        let Protocol::WebDriver { port, session } = &self.protocol else {
            unreachable!("a WebDriver command to a Marionette session");
        };
        let path = match session.as_str() {
            "" => format!("/session{path}"),
            id => format!("/session/{id}{path}"),
        };
        let answer = http(*port, method, &path, body);
        match answer {
            Ok((200, answer)) => answer,
            Ok((status, answer)) => panic!("{:?}: {method} {path}: {status} {answer}", self.engine),
            Err(error) => panic!("{:?}: {method} {path}: {error}", self.engine),
        }
    }

    /// Firefox listening for Marionette on a port set in its profile.
    fn start_firefox(&mut self, firefox: &Path) {
        let port = free_port();
        let prefs = format!(
            "user_pref(\"marionette.port\", {port});\n\
             user_pref(\"browser.shell.checkDefaultBrowser\", false);\n\
             user_pref(\"browser.startup.page\", 0);\n\
             user_pref(\"datareporting.policy.dataSubmissionEnabled\", false);\n"
        );
        std::fs::write(self.profile.join("prefs.js"), prefs).expect("write prefs.js");
        let firefox = Command::new(firefox)
            .args(["--headless", "--marionette", "--no-remote", "-profile"])
            .arg(&self.profile)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start Firefox");
        // Pushed at once, so that drop kills it if the wait below fails.
        self.processes.push(firefox);
        let deadline = Instant::now() + DRIVER_TIMEOUT;
        let socket = loop {
            if let Ok(socket) = TcpStream::connect(("127.0.0.1", port)) {
                break socket;
            }
            let firefox = self.processes.last_mut().expect("Firefox");
            let running = firefox.try_wait().is_ok_and(|exit| exit.is_none());
            assert!(
                running && Instant::now() < deadline,
                "Firefox never listened for Marionette on port {port}"
            );
            thread::sleep(Duration::from_millis(50));
        };
        socket
            .set_read_timeout(Some(DRIVER_TIMEOUT))
            .expect("read timeout");
        let mut reader = BufReader::new(socket);
        // The server speaks first:
        // 50:{"applicationType":"gecko","marionetteProtocol":3}
        let hello = read_marionette_message(&mut reader).expect("Marionette's hello");
        assert!(
            hello.contains("marionetteProtocol"),
            "not Marionette: {hello}"
        );
        self.protocol = Protocol::Marionette { reader, last_id: 0 };
        self.marionette("WebDriver:NewSession", "{}");
    }

    /// One Marionette command and its answer:
    ///
    /// ```text
    /// 65:[0,4,"WebDriver:ExecuteScript",{"script":"return 1+1","args":[]}]
    /// 22:[1,4,null,{"value":2}]
    /// ```
    /// `[0, id, name, parameters]` asks; `[1, id, error, result]` answers,
    /// with `error` null when all went well.
    fn marionette(&mut self, name: &str, params: &str) -> String {
        let engine = self.engine;
        let Protocol::Marionette { reader, last_id } = &mut self.protocol else {
            unreachable!("a Marionette command to a WebDriver session");
        };
        *last_id += 1;
        let message = format!("[0,{last_id},{},{params}]", quote(name));
        let sent = reader
            .get_mut()
            .write_all(format!("{}:{message}", message.len()).as_bytes());
        sent.unwrap_or_else(|error| panic!("{engine:?}: send {name}: {error}"));
        loop {
            let answer = read_marionette_message(reader)
                .unwrap_or_else(|error| panic!("{engine:?}: answer to {name}: {error}"));
            let parts = items(&answer);
            if parts.len() != 4 || parts[1] != last_id.to_string() {
                continue; // not the answer to this command
            }
            assert_eq!(parts[2], "null", "{engine:?}: {name} failed");
            return parts[3].to_owned();
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        match &mut self.protocol {
            Protocol::WebDriver { port, session } if !session.is_empty() => {
                let _ = http(*port, "DELETE", &format!("/session/{session}"), "");
            }
            Protocol::Marionette { reader, last_id } => {
                // Quitting ends the session and Firefox with it.
                let message = format!(
                    "[0,{},\"Marionette:Quit\",{{\"flags\":[\"eForceQuit\"]}}]",
                    *last_id + 1
                );
                let socket = reader.get_mut();
                let _ = socket.set_read_timeout(Some(Duration::from_secs(2)));
                let _ = socket.write_all(format!("{}:{message}", message.len()).as_bytes());
                let _ = read_marionette_message(reader);
            }
            Protocol::WebDriver { .. } => {}
        }
        // Firefox exits by itself after `Marionette:Quit`; the drivers and
        // Xvfb only when told.
        let patience = match self.protocol {
            Protocol::Marionette { .. } => Duration::from_secs(2),
            Protocol::WebDriver { .. } => Duration::ZERO,
        };
        for mut process in self.processes.drain(..).rev() {
            let deadline = Instant::now() + patience;
            while Instant::now() < deadline && process.try_wait().is_ok_and(|exit| exit.is_none()) {
                thread::sleep(Duration::from_millis(20));
            }
            let _ = process.kill();
            let _ = process.wait();
        }
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

impl Engine {
    /// The programs the engine needs, or `None` after saying (loudly) which
    /// packages to install.
    fn programs(self) -> Option<Vec<PathBuf>> {
        let (found, what, packages) = match self {
            Engine::Chromium => (
                vec![
                    find_program(&["chromium", "chromium-browser"]),
                    find_program(&["chromedriver"]),
                ],
                "chromium and chromedriver are",
                "chromium chromium-driver",
            ),
            Engine::Firefox => (
                vec![find_program(&["firefox-esr", "firefox"])],
                "firefox-esr is",
                "firefox-esr",
            ),
            Engine::WebKit => (
                vec![
                    find_program(&["WebKitWebDriver"]),
                    find_program(&["Xvfb"]),
                    find_minibrowser(),
                ],
                "WebKitWebDriver, MiniBrowser and Xvfb are",
                "webkit2gtk-driver xvfb",
            ),
        };
        let found: Option<Vec<PathBuf>> = found.into_iter().collect();
        if found.is_none() {
            missing(what, packages);
        }
        found
    }
}

/// The MiniBrowser that the WebKitGTK library package installs in its
/// `webkit2gtk-4.1` folder, under a directory named for the architecture:
/// asked of dpkg rather than guessed.
fn find_minibrowser() -> Option<PathBuf> {
    let listed = Command::new("dpkg")
        .args(["-S", "webkit2gtk-4.1/MiniBrowser"])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    // Lines like `libwebkit2gtk-4.1-0:amd64: /usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser`.
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    listed
        .lines()
        .filter_map(|line| line.split_once(": ").map(|(_, path)| PathBuf::from(path)))
        .find(|path| path.ends_with("webkit2gtk-4.1/MiniBrowser") && path.is_file())
}

/// One HTTP request with a JSON body to a WebDriver server on
/// 127.0.0.1:`port`; the answer's status and its `Content-Length` body.
/// What chromedriver answers to `POST /session/ID/execute/sync` with
/// `{"script":"return 1+1","args":[]}` (with no space after its colons):
///
/// ```text
/// HTTP/1.1 200 OK\r\n
/// Content-Length:11\r\n
/// Content-Type:application/json; charset=utf-8\r\n
/// cache-control:no-cache\r\n
/// \r\n
/// {"value":2}
/// ```
fn http(port: u16, method: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
    let mut socket = TcpStream::connect(("127.0.0.1", port))?;
    socket.set_read_timeout(Some(DRIVER_TIMEOUT))?;
    let length = body.len();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: {length}\r\nConnection: close\r\n\r\n{body}"
    );
    socket.write_all(request.as_bytes())?;
    let mut reader = BufReader::new(socket);
    let mut status_line = String::new();
    reader.read_line(&mut status_line)?;
    // HTTP/1.1 200 OK
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok());
    let status = status.ok_or_else(|| std::io::Error::other(format!("{status_line:?}")))?;
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
    Ok((status, String::from_utf8_lossy(&answer).into_owned()))
}

/// One Marionette message: its length in bytes, a colon, then that much
/// JSON.
fn read_marionette_message(reader: &mut BufReader<TcpStream>) -> std::io::Result<String> {
    let mut length = Vec::new();
    reader.read_until(b':', &mut length)?;
    let length = String::from_utf8_lossy(&length);
    let length: usize = length
        .trim_end_matches(':')
        .parse()
        .map_err(std::io::Error::other)?;
    let mut message = vec![0; length];
    reader.read_exact(&mut message)?;
    Ok(String::from_utf8_lossy(&message).into_owned())
}

/// `text` as a JSON string literal, which is also a JavaScript one; every
/// character outside ASCII is escaped, so the length in bytes is certain.
pub fn quote(text: &str) -> String {
    let mut quoted = String::from("\"");
    for unit in text.encode_utf16() {
        match unit {
            0x22 => quoted.push_str("\\\""),
            0x5c => quoted.push_str("\\\\"),
            0x20..=0x7e => quoted.push(char::from(u8::try_from(unit).expect("ASCII"))),
            _ => quoted.push_str(&format!("\\u{unit:04x}")),
        }
    }
    quoted.push('"');
    quoted
}

/// The text of a JSON string literal (`"a\nb"` becomes a, newline, b);
/// `None` if `json` is not one.
pub fn json_string(json: &str) -> Option<String> {
    let inner = json.trim().strip_prefix('"')?.strip_suffix('"')?;
    let mut units = Vec::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            units.extend(c.encode_utf16(&mut [0; 2]).iter());
            continue;
        }
        let unit = match chars.next()? {
            'n' => 0x0a,
            't' => 0x09,
            'r' => 0x0d,
            'b' => 0x08,
            'f' => 0x0c,
            'u' => u16::from_str_radix(&chars.by_ref().take(4).collect::<String>(), 16).ok()?,
            other => u16::try_from(u32::from(other)).ok()?,
        };
        units.push(unit);
    }
    Some(String::from_utf16_lossy(&units))
}

/// The JSON text of `key`'s value in the object `json`, if it has one.
pub fn field<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    let members = items(json);
    members
        .chunks(2)
        .find(|pair| json_string(pair[0]).as_deref() == Some(key))
        .and_then(|pair| pair.get(1).copied())
}

/// The top-level parts of a JSON array or object, as JSON texts: the
/// elements of `[1,"a",[2]]`, or the keys and values of `{"a":1}` in turn.
pub fn items(json: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let Some(mut rest) = json.trim().get(1..) else {
        return found;
    };
    loop {
        rest = rest.trim_start();
        if rest.is_empty() || rest.starts_with([']', '}']) {
            return found;
        }
        let length = value_length(rest);
        found.push(&rest[..length]);
        rest = rest[length..].trim_start();
        rest = rest.strip_prefix([',', ':']).unwrap_or(rest);
        if length == 0 {
            return found; // not JSON: stop rather than loop
        }
    }
}

/// How many bytes the JSON value at the start of `json` takes: a string
/// to its closing quote, an array or object to its closing bracket, a
/// number or word to the next delimiter.
fn value_length(json: &str) -> usize {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (at, byte) in json.bytes().enumerate() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' if depth == 0 => return at + 1,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => depth += 1,
            b']' | b'}' if depth == 0 => return at,
            b']' | b'}' if depth == 1 => return at + 1,
            b']' | b'}' => depth -= 1,
            b',' | b':' if depth == 0 => return at,
            _ if depth == 0 && byte.is_ascii_whitespace() => return at,
            _ => {}
        }
    }
    json.len()
}
