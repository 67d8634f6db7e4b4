//! Test support: start the built `sse-clock` on port 0, learn its address
//! from the `Listening on` line, speak raw bytes to it, kill it on drop.
#![allow(dead_code)] // each test file uses a different part of this

pub mod browser;
pub mod page;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ChildStderr, ChildStdout, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime};

/// The threads of a server with no connection: the accepting one, and the
/// one that writes the log (none under `--quiet`, nor in the one-screen server).
pub const IDLE_THREADS: usize = 2;

/// How long any test waits for bytes before it fails.
pub const TIMEOUT: Duration = Duration::from_secs(5);

pub const BINARY: &str = env!("CARGO_BIN_EXE_sse-clock");

/// The command that starts the server, word by word: the binary cargo just
/// built, or, when `SSE_CLOCK_TEST_SERVER` is set, its words split on
/// whitespace (so no word can hold a space). `.ci/run` sets it to a
/// qemu-user prefix and a cross-built binary, such as
/// `qemu-aarch64 -L /usr/aarch64-linux-gnu target/aarch64-unknown-linux-gnu/release/sse-clock`.
/// Under qemu-user, `/proc/<pid>` describes qemu running the server, whose
/// own threads count too: tests that read it are not run there.
pub fn server_words() -> Vec<String> {
    let words = std::env::var("SSE_CLOCK_TEST_SERVER").unwrap_or_default();
    let words: Vec<String> = words.split_whitespace().map(str::to_owned).collect();
    if words.is_empty() {
        vec![BINARY.to_owned()]
    } else {
        words
    }
}

/// The server's command, ready for its arguments.
fn server_command() -> Command {
    let words = server_words();
    let mut command = Command::new(&words[0]);
    command.args(&words[1..]);
    command
}

/// A running server. Dropping it kills the process, so no test leaves one
/// behind, even when it fails.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    log: Arc<Mutex<String>>,
    log_reader: Option<JoinHandle<()>>,
    /// Stderr, when nothing reads it into `log`.
    stderr: Option<ChildStderr>,
    /// Its threads with no connection: `IDLE_THREADS`, one fewer under `--quiet`.
    idle_threads: usize,
    _stdout: BufReader<ChildStdout>,
}

impl Server {
    /// Starts `sse-clock --addr 127.0.0.1:0 ARGS...` and waits for its
    /// `Listening on http://HOST:PORT` line.
    pub fn start(args: &[&str]) -> Server {
        Server::start_with_env(args, &[])
    }

    /// The same, with environment variables set (the timeouts).
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut command = server_command();
        command
            .args(["--addr", "127.0.0.1:0"])
            .args(args)
            .envs(env.iter().copied());
        Server::launch(command)
    }

    /// The same, with its stderr into a pipe that nobody reads until
    /// `take_stderr`: a paused terminal, a stuck log shipper.
    pub fn start_with_stderr_unread(args: &[&str]) -> Server {
        let mut command = server_command();
        command.args(["--addr", "127.0.0.1:0"]).args(args);
        Server::launch_with(command, false)
    }

    /// The unread stderr of `start_with_stderr_unread`.
    pub fn take_stderr(&mut self) -> ChildStderr {
        self.stderr.take().expect("stderr left unread")
    }

    /// Starts another binary of this package, such as
    /// `env!("CARGO_BIN_EXE_one-screen")`, with `--addr 127.0.0.1:0` only.
    pub fn start_binary(binary: &str) -> Server {
        let mut command = Command::new(binary);
        command.args(["--addr", "127.0.0.1:0"]);
        let mut server = Server::launch(command);
        server.idle_threads = 1; // it has no log thread
        server
    }

    /// The same, allowed only `limit` open file descriptors (set by a
    /// shell's `ulimit -n`, which then becomes the server with `exec`).
    pub fn start_with_fd_limit(args: &[&str], limit: u32) -> Server {
        let mut command = Command::new("bash");
        let script = format!("ulimit -n {limit} && exec \"$0\" \"$@\"");
        command
            .args(["-c", &script])
            .args(server_words())
            .args(["--addr", "127.0.0.1:0"])
            .args(args);
        Server::launch(command)
    }

    fn launch(command: Command) -> Server {
        Server::launch_with(command, true)
    }

    /// Starts `command`, reading its stderr into the log if `read_log`.
    fn launch_with(mut command: Command, read_log: bool) -> Server {
        let quiet = command.get_args().any(|arg| arg == "--quiet");
        let idle_threads = if quiet {
            IDLE_THREADS - 1
        } else {
            IDLE_THREADS
        };
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("start {:?}: {error}", command.get_program()));
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read the first line");
        let addr = line
            .strip_prefix("Listening on http://")
            .and_then(|rest| rest.trim_end().parse().ok())
            .unwrap_or_else(|| panic!("first line should be `Listening on http://ADDR`: {line:?}"));
        // Collect stderr (the request log) on a thread, so the pipe never
        // fills and tests can look at what was logged.
        let log = Arc::new(Mutex::new(String::new()));
        let mut stderr = child.stderr.take();
        let sink = Arc::clone(&log);
        let log_reader = read_log.then(|| stderr.take()).flatten().map(|stderr| {
            thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    let mut log = sink.lock().expect("log lock");
                    log.push_str(&line);
                    log.push('\n');
                }
            })
        });
        Server {
            idle_threads,
            stderr,
            child,
            addr,
            log,
            log_reader,
            _stdout: stdout,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A connection with read and write timeouts, so that no test hangs.
    pub fn connect(&self) -> TcpStream {
        connect(self.addr)
    }

    /// Sends raw request bytes, then half-closes ("no more requests"), and
    /// reads every answer up to the server's close.
    pub fn exchange(&self, request: &[u8]) -> String {
        let mut socket = self.connect();
        socket.write_all(request).expect("send request");
        socket
            .shutdown(std::net::Shutdown::Write)
            .expect("half-close");
        read_to_close(&mut socket)
    }

    /// `GET path` with `Connection: close`, answered in full.
    pub fn get(&self, path: &str) -> String {
        let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
        let mut socket = self.connect();
        socket.write_all(request.as_bytes()).expect("send request");
        read_to_close(&mut socket)
    }

    /// Everything the server has logged so far.
    pub fn log(&self) -> String {
        self.log.lock().expect("log lock").clone()
    }

    /// Waits until every connection thread has finished (and so has
    /// logged), stops the server, and returns all it wrote on stderr.
    pub fn stop_and_read_log(mut self) -> String {
        self.wait_until_idle();
        // The log's thread writes what the connections queued as they ended:
        // wait until nothing more has come for 200 ms (at most `TIMEOUT`).
        let deadline = Instant::now() + TIMEOUT;
        let mut seen = self.log();
        while Instant::now() < deadline {
            thread::sleep(Duration::from_millis(200));
            let now = self.log();
            if now == seen {
                break;
            }
            seen = now;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(reader) = self.log_reader.take() {
            reader.join().expect("log reader");
        }
        self.log()
    }

    /// Waits until a log line contains `needle`, and returns that line.
    pub fn wait_for_log(&self, needle: &str) -> String {
        self.wait_for_log_within(needle, TIMEOUT)
    }

    /// The same, for a longer (or shorter) time than `TIMEOUT`.
    pub fn wait_for_log_within(&self, needle: &str, time: Duration) -> String {
        let found = wait_for_within(time, || {
            self.log()
                .lines()
                .find(|line| line.contains(needle))
                .map(str::to_owned)
        });
        found.unwrap_or_else(|| panic!("no log line with {needle:?} in:\n{}", self.log()))
    }

    /// The server's thread count, from `/proc/<pid>/status`.
    pub fn threads(&self) -> usize {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc status");
        let line = status
            .lines()
            .find(|line| line.starts_with("Threads:"))
            .expect("Threads line");
        line["Threads:".len()..].trim().parse().expect("a number")
    }

    /// The server's resident memory in KiB, from `/proc/<pid>/status`.
    pub fn rss_kb(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc status");
        let line = status
            .lines()
            .find(|line| line.starts_with("VmRSS:"))
            .expect("VmRSS line");
        line["VmRSS:".len()..]
            .trim()
            .trim_end_matches(" kB")
            .parse()
            .expect("a number")
    }

    /// CPU time the server has used so far, in clock ticks (1/100 s on
    /// Linux): user plus system time, from `/proc/<pid>/stat`.
    pub fn cpu_ticks(&self) -> u64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).expect("read /proc stat");
        // The fields after the parenthesised command name; utime and stime
        // are fields 14 and 15 of the whole line, 12 and 13 of these.
        let after_name = stat.rsplit_once(") ").expect("a command name").1;
        let fields: Vec<&str> = after_name.split(' ').collect();
        let ticks = |at: usize| fields[at].parse::<u64>().expect("a tick count");
        ticks(11) + ticks(12)
    }

    /// Waits until the server runs only its idle threads again.
    pub fn wait_until_idle(&self) {
        self.wait_until_threads_at_most(self.idle_threads);
    }

    /// Waits until the server runs at most `most` threads, and fails if it
    /// does not get there within `TIMEOUT`.
    pub fn wait_until_threads_at_most(&self, most: usize) {
        let settled = wait_for(|| (self.threads() <= most).then_some(()));
        let threads = self.threads();
        assert!(
            settled.is_some(),
            "server still has {threads} threads, wanted at most {most}"
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A connection to `addr` with read and write timeouts, so that no test hangs.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let socket = TcpStream::connect(addr).expect("connect");
    socket
        .set_read_timeout(Some(TIMEOUT))
        .expect("read timeout");
    socket
        .set_write_timeout(Some(TIMEOUT))
        .expect("write timeout");
    socket
}

/// Polls `check` every few ms until it returns something, for `TIMEOUT`.
pub fn wait_for<T>(check: impl FnMut() -> Option<T>) -> Option<T> {
    wait_for_within(TIMEOUT, check)
}

/// Polls `check` every few ms until it returns something, for `time`.
pub fn wait_for_within<T>(time: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + time;
    loop {
        if let Some(found) = check() {
            return Some(found);
        }
        if Instant::now() > deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Reads until the server closes the connection.
pub fn read_to_close(socket: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    socket
        .read_to_end(&mut answer)
        .expect("read until the server closes");
    String::from_utf8_lossy(&answer).into_owned()
}

/// Reads one response with a `Content-Length` body from a connection that
/// may carry more: the head (up to and including the blank line) and body.
pub fn read_response(reader: &mut BufReader<TcpStream>) -> (String, String) {
    read_answer(reader, true)
}

/// Reads one response to a HEAD request: a head whose `Content-Length`
/// describes a body that is not sent.
pub fn read_head_response(reader: &mut BufReader<TcpStream>) -> String {
    read_answer(reader, false).0
}

fn read_answer(reader: &mut BufReader<TcpStream>, with_body: bool) -> (String, String) {
    let mut head = String::new();
    while !head.ends_with("\r\n\r\n") {
        let read = reader.read_line(&mut head).expect("read a response head");
        assert!(read > 0, "connection closed inside a head: {head:?}");
    }
    let length = head
        .lines()
        .find_map(|line| line.strip_prefix("Content-Length: "))
        .map_or(0, |length| length.parse().expect("a length"))
        * usize::from(with_body);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).expect("read the body");
    (head, String::from_utf8_lossy(&body).into_owned())
}

/// Runs the binary with `args` to its exit, killing it after `TIMEOUT`.
pub fn run_to_exit(args: &[&str]) -> Output {
    let mut child = server_command()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("start {:?}: {error}", server_words()));
    let deadline = Instant::now() + TIMEOUT;
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("sse-clock {args:?} did not exit");
        }
        thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().expect("collect output")
}

pub fn unix_ms_now() -> u64 {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("after 1970");
    u64::try_from(now.as_millis()).expect("fits")
}

/// One block of an event stream: its lines as (field, value) pairs, with
/// `""` as the field of a comment line.
#[derive(Debug, Clone)]
pub struct Block(pub Vec<(String, String)>);

impl Block {
    pub fn get(&self, field: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(name, _)| name == field)
            .map(|(_, value)| value.as_str())
    }

    pub fn is_clients(&self) -> bool {
        self.get("event") == Some("clients")
    }

    /// A named event (`event:`, no `id:`), such as `clients`: one a server may add
    /// after any write's ticks (`clock.rs`), which a test of something else skips.
    pub fn is_named(&self) -> bool {
        self.get("event").is_some() && self.get("id").is_none()
    }
}

/// A `/events` response read the way a strict client would: the head
/// first, then one block at a time.
pub struct EventStream {
    pub head: String,
    reader: BufReader<TcpStream>,
}

impl EventStream {
    /// Sends `GET path` and reads the response head.
    pub fn open(server: &Server, path: &str) -> EventStream {
        EventStream::open_with(server, path, "")
    }

    /// Sends `GET path` with extra field lines (each ending in CRLF), as a
    /// reconnecting browser adds `Last-Event-ID`, and reads the head.
    pub fn open_with(server: &Server, path: &str, fields: &str) -> EventStream {
        let mut socket = server.connect();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: test\r\nAccept: text/event-stream\r\n{fields}\r\n"
        );
        socket.write_all(request.as_bytes()).expect("send request");
        EventStream::after_request(socket)
    }

    /// Reads the response head from a socket whose request is already sent.
    pub fn after_request(socket: TcpStream) -> EventStream {
        let mut reader = BufReader::new(socket);
        let mut head = String::new();
        while !head.ends_with("\r\n\r\n") {
            let read = reader.read_line(&mut head).expect("read the response head");
            assert!(read > 0, "connection closed inside the head: {head:?}");
        }
        EventStream { head, reader }
    }

    /// The next block: lines up to a blank line. Every line must end in a
    /// single LF, since that is what the server writes.
    pub fn next_block(&mut self) -> Block {
        let mut fields = Vec::new();
        loop {
            let mut line = String::new();
            let read = self
                .reader
                .read_line(&mut line)
                .expect("read an event line");
            assert!(read > 0, "stream closed; block so far: {fields:?}");
            let line = line.strip_suffix('\n').expect("lines end in LF");
            assert!(!line.contains('\r'), "no CR in {line:?}");
            if line.is_empty() {
                return Block(fields);
            }
            let (name, value) = line
                .split_once(": ")
                .unwrap_or_else(|| panic!("`name: value` expected, got {line:?}"));
            fields.push((name.to_owned(), value.to_owned()));
        }
    }

    /// The next block that is not a named event: a tick, a comment, or an opening.
    pub fn next_unnamed_block(&mut self) -> Block {
        loop {
            let block = self.next_block();
            if !block.is_named() {
                return block;
            }
        }
    }

    /// The next clock tick (skipping named events, such as `clients`): its id and data.
    pub fn next_tick(&mut self) -> (u64, String) {
        loop {
            let block = self.next_block();
            if block.get("event").is_some() {
                continue; // a named event, such as a resumed opening with its `id:`
            }
            if let (Some(id), Some(data)) = (block.get("id"), block.get("data")) {
                return (id.parse().expect("numeric id"), data.to_owned());
            }
        }
    }

    /// Reads blocks until a `clients` event carries `count`; returns how
    /// many ticks went by before it.
    pub fn ticks_until_clients(&mut self, count: usize, most_ticks: usize) -> usize {
        let mut ticks = 0;
        loop {
            let block = self.next_block();
            if block.is_clients() && block.get("data") == Some(count.to_string().as_str()) {
                return ticks;
            }
            if block.get("id").is_some() {
                ticks += 1;
                assert!(
                    ticks <= most_ticks,
                    "no `clients: {count}` within {most_ticks} ticks"
                );
            }
        }
    }

    pub fn socket(&self) -> &TcpStream {
        self.reader.get_ref()
    }
}

/// For a test that needs a program the machine may lack (a browser,
/// nginx): without it, say so loudly and let the test skip, except under
/// `CI=true`, where a missing program is a failure.
pub fn missing(what: &str, install: &str) {
    let message = format!("{what} not installed (Debian: apt-get install {install})");
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true: {message}"
    );
    // Straight to stderr: the test harness would swallow eprintln!.
    let _ = writeln!(std::io::stderr(), "\n*** SKIPPED: {message} ***\n");
}

/// The first of `names` found on `PATH` or in /usr/sbin (where Debian
/// puts nginx).
pub fn find_program(names: &[&str]) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([std::path::PathBuf::from("/usr/sbin")])
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("local address").port()
}

/// The answer without its `Date` field, after checking that the field is
/// there, second in the head, and an IMF-fixdate (RFC 9110 section 5.6.7):
/// `Date: Wed, 25 Nov 2026 15:00:00 GMT`.
pub fn without_date(answer: &str) -> String {
    let (status_line, rest) = answer.split_once("\r\n").expect("a status line");
    let (date, rest) = rest.split_once("\r\n").expect("a field line");
    let value = date
        .strip_prefix("Date: ")
        .unwrap_or_else(|| panic!("Date second in the head: {answer:?}"));
    assert!(is_http_date(value), "IMF-fixdate: {value:?}");
    format!("{status_line}\r\n{rest}")
}

/// `Sun, 06 Nov 1994 08:49:37 GMT`: day name, 2-digit day, month name,
/// 4-digit year, time, GMT.
pub fn is_http_date(value: &str) -> bool {
    let days = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    let months = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec";
    let parts: Vec<&str> = value.split(' ').collect();
    let digits =
        |text: &str, len: usize| text.len() == len && text.bytes().all(|b| b.is_ascii_digit());
    let [day_name, day, month, year, time, "GMT"] = parts[..] else {
        return false;
    };
    let time: Vec<&str> = time.split(':').collect();
    day_name
        .strip_suffix(',')
        .is_some_and(|name| days.contains(&name))
        && digits(day, 2)
        && month.len() == 3
        && months.split(' ').any(|m| m == month)
        && digits(year, 4)
        && time.len() == 3
        && time.iter().all(|part| digits(part, 2))
}
