//! The server behind a real nginx, configured with the `location` blocks
//! the README gives (read from README.md, so the documented configuration
//! is the tested one). Events must come through one by one, each within
//! 100 ms of its tick, the page must be served, and a reconnect with
//! `Last-Event-ID` must resume.
//!
//! With the instance down, nginx answers `/events` with the README's short
//! event stream instead of a `502`, echoing `Last-Event-ID` as `id:` only
//! when it is digits.
//!
//! Then in each browser engine: two instances behind the README's
//! `upstream` block and the same `location` blocks; the instance that
//! holds the page's stream is killed, and the page carries on from the
//! other one with no tick lost and none repeated. And the only instance
//! behind nginx is stopped and started again: nginx's short stream keeps
//! the browser coming back, and the ids run on across the restart, in the
//! tab that holds the stream and in a second one that shares it.
//!
//! Needs the Debian package `nginx`, and for scale-out the browsers
//! (`.ci/run` installs them all). Without them the tests are skipped with
//! a loud message, except under `CI=true`, where a missing one is a failure.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::Duration;

use common::browser::{Browser, Engine};
use common::page::{close_tabs_but_the_first, open_page, open_tabs, wait_for_page};
use common::{EventStream, Server, find_program, free_port, unix_ms_now, wait_for_within};

const PAGE: &str = include_str!("../static/index.html");
const README: &str = include_str!("../README.md");

/// The first line of the README's `@events_down` stream.
const COME_BACK: &str = ": no instance answers or you hold too many streams, come back later\n";

/// Every viewer behind nginx has the proxy's address, loopback, which the
/// server does not count; the README's `limit_conn` bounds each client's
/// streams at nginx instead (100 there, 2 here), and over it nginx answers
/// `@events_down`'s stream, which an `EventSource` retries, never an error.
#[test]
fn one_client_holds_at_most_its_share_of_streams_through_nginx() {
    let Some(nginx) = find_program(&["nginx"]) else {
        common::missing("nginx is", "nginx");
        return;
    };
    let server = Server::start(&["--interval", "200"]);
    let limit = "limit_conn sse_clock_per_client 100;";
    let locations = readme_locations(&server.addr.to_string());
    assert!(locations.contains(limit), "{limit} in the README's block");
    let proxy = Nginx::start(
        &nginx,
        "",
        &locations.replace(limit, &limit.replace("100", "2")),
    );
    let mut held = [open_stream(&proxy, ""), open_stream(&proxy, "")];
    for stream in &mut held {
        stream.next_tick();
    }
    let mut third = proxy.connect();
    third
        .write_all(b"GET /events HTTP/1.0\r\nHost: proxied\r\nLast-Event-ID: 17\r\n\r\n")
        .expect("send");
    let answer = common::read_to_close(&mut third);
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(
        answer.ends_with(&format!("\r\n\r\n{COME_BACK}retry: 3000\nid: 17\n\n")),
        "{answer}"
    );
    drop(held);
    let back = common::wait_for(|| {
        let mut stream = open_stream(&proxy, "");
        (stream.next_block().get("data").is_some()).then_some(())
    });
    assert!(back.is_some(), "a stream again once the others closed");
}

#[test]
fn events_pass_through_nginx_at_once_and_resume_through_it() {
    let Some(nginx) = find_program(&["nginx"]) else {
        common::missing("nginx is", "nginx");
        return;
    };
    let server = Server::start(&["--interval", "200"]);
    let proxy = Nginx::start(&nginx, "", &readme_locations(&server.addr.to_string()));

    // The page, through the proxy.
    let mut socket = proxy.connect();
    socket
        .write_all(b"GET / HTTP/1.0\r\nHost: proxied\r\n\r\n")
        .expect("send");
    let answer = common::read_to_close(&mut socket);
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.ends_with(PAGE), "the page, whole");

    // Events one by one: each arrives within 100 ms of its own tick time,
    // which a buffering proxy would miss by seconds.
    let mut stream = open_stream(&proxy, "");
    assert!(
        stream.head.contains("Content-Type: text/event-stream"),
        "{}",
        stream.head
    );
    let (first, _) = stream.next_tick();
    let mut last = first;
    for k in 1..=10 {
        let (id, _) = stream.next_tick();
        let late = unix_ms_now().saturating_sub(id);
        assert_eq!(id, first + k * 200, "every tick, in order");
        assert!(
            late <= 100,
            "tick {k} came {late} ms after its time: buffered?"
        );
        last = id;
    }
    drop(stream);

    // A reconnect through the proxy resumes after the last id it saw.
    thread::sleep(Duration::from_millis(500));
    let mut resumed = open_stream(&proxy, &format!("Last-Event-ID: {last}\r\n"));
    for k in 1..=5 {
        assert_eq!(resumed.next_tick().0, last + k * 200, "resumed tick {k}");
    }

    // The instance down: nginx's own stream that ends, `id:` only for digits.
    drop((resumed, server));
    let id = format!("id: {last}\n");
    for (field, id_line) in [
        (format!("Last-Event-ID: {last}\r\n"), id.as_str()),
        (String::new(), ""),
        ("Last-Event-ID: 1<b>x</b>\r\n".into(), ""),
        (format!("Last-Event-ID: {last} 1\r\n"), ""),
        ("Last-Event-ID: 123456789012345678901\r\n".into(), ""),
    ] {
        let mut socket = proxy.connect();
        let request = format!("GET /events HTTP/1.0\r\nHost: proxied\r\n{field}\r\n");
        socket.write_all(request.as_bytes()).expect("send");
        let answer = common::read_to_close(&mut socket);
        let (head, body) = answer.split_once("\r\n\r\n").expect("a head");
        let head = format!("{head}\r\n");
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        for line in [
            "Content-Type: text/event-stream",
            "X-Content-Type-Options: nosniff",
        ] {
            assert!(head.contains(&format!("\r\n{line}\r\n")), "{line}: {head}");
        }
        let expected = format!("{COME_BACK}retry: 3000\n{id_line}\n");
        assert_eq!(body, expected, "after {field:?}");
    }
}

#[test]
fn a_page_through_nginx_carries_on_when_its_instance_dies_or_restarts_in_chromium() {
    check_behind_nginx(Engine::Chromium);
}

#[test]
fn a_page_through_nginx_carries_on_when_its_instance_dies_or_restarts_in_firefox() {
    check_behind_nginx(Engine::Firefox);
}

#[test]
fn a_page_through_nginx_carries_on_when_its_instance_dies_or_restarts_in_webkit() {
    check_behind_nginx(Engine::WebKit);
}

const ARGS: [&str; 4] = ["--interval", "200", "--retry", "300"];

fn check_behind_nginx(engine: Engine) {
    let Some(nginx) = find_program(&["nginx"]) else {
        common::missing("nginx is", "nginx");
        return;
    };
    let Some(mut browser) = Browser::start(engine) else {
        return;
    };
    check_scale_out(&nginx, &mut browser);
    check_restart_of_the_only_instance(&nginx, &mut browser);
}

fn check_scale_out(nginx: &Path, browser: &mut Browser) {
    let engine = browser.engine;
    let args = ARGS;
    let mut instances = vec![Server::start(&args), Server::start(&args)];
    let addrs: Vec<String> = instances
        .iter()
        .map(|server| server.addr.to_string())
        .collect();
    let proxy = Nginx::start(
        nginx,
        &readme_upstream(&addrs),
        &readme_locations("sse_clock"),
    );
    open_page(browser, &format!("http://127.0.0.1:{}/", proxy.port));
    wait_for_page(browser, "open, 1 client, 3 ticks", |page| {
        page.state == "open" && page.clients == "1" && page.watched.ids.len() >= 3
    });

    // The instance holding the stream runs one thread more than the other,
    // once the page's own request has been answered.
    let holder = wait_for_within(Duration::from_secs(5), || {
        let threads: Vec<usize> = instances.iter().map(Server::threads).collect();
        (0..2).find(|&at| threads[at] == threads[1 - at] + 1)
    });
    let holder = holder.expect("one instance holds the page's stream");
    let idle_threads = instances[1 - holder].threads();
    let page = common::page::read_page(browser);
    let last_before = page.watched.last_id().expect("ticks");
    drop(instances.remove(holder));

    // The browser reconnects through nginx, which finds the killed
    // instance refusing and passes the request, `Last-Event-ID` and all,
    // to the other: it replays what was missed and goes on.
    let page = wait_for_page(browser, "open again, 5 ticks on", |page| {
        page.state == "open"
            && page
                .watched
                .last_id()
                .is_some_and(|id| id >= last_before + 5 * 200)
    });
    page.watched.assert_contiguous(200);
    assert_eq!(
        page.clients, "1",
        "{engine:?}: counted by the instance left"
    );
    let threads = instances[0].threads();
    assert_eq!(
        threads,
        idle_threads + 1,
        "the stream is on the other instance"
    );
}

/// The only instance behind nginx (the README's `location` blocks alone)
/// stops; nginx answers each reconnect with its short stream, `retry: 3000`,
/// so the browser never gives up; the instance starts again on the same
/// address, and the ids run on, none lost, none twice. A second tab shares
/// the first one's stream, and shows the same.
fn check_restart_of_the_only_instance(nginx: &Path, browser: &mut Browser) {
    let engine = browser.engine;
    let server = Server::start(&ARGS);
    let addr = server.addr.to_string();
    let proxy = Nginx::start(nginx, "", &readme_locations(&addr));
    let tabs = open_tabs(browser, &format!("http://127.0.0.1:{}/", proxy.port), 2);
    browser.switch_to(&tabs[0]); // the holder in front, where its timers run on time
    let page = wait_for_page(browser, "open, 3 ticks", |page| {
        page.state == "open" && page.watched.ids.len() >= 3
    });
    let down_at = page.watched.states.len();
    drop(server);
    // Two answers from nginx: each opens, ends, and the browser waits 3 s.
    let page = wait_for_page(browser, "two of nginx's short streams", |page| {
        let states = &page.watched.states[down_at..];
        states.iter().filter(|(state, _)| state == "open").count() >= 2
    });
    let last = page.watched.last_id().expect("ticks before the stop");
    let _back = Server::start(&[&["--addr", &addr][..], &ARGS[..]].concat());
    for tab in [&tabs[0], &tabs[1]] {
        browser.switch_to(tab);
        let page = wait_for_page(browser, "open again, 5 ticks on", |page| {
            page.state == "open" && page.watched.last_id() >= Some(last + 5 * 200)
        });
        page.watched.assert_contiguous(200);
        let states = page.watched.state_names();
        assert!(
            states.iter().filter(|&&state| state == "open").count() >= 3,
            "{engine:?}: nginx's short streams: {states:?}"
        );
        assert!(
            !states.contains(&"closed"),
            "{engine:?}: never gave up: {states:?}"
        );
    }
    close_tabs_but_the_first(browser, &tabs);
}

/// `GET /events` through the proxy, as HTTP/1.0 so that nginx sends the
/// stream as it comes rather than in chunked framing.
fn open_stream(proxy: &Nginx, fields: &str) -> EventStream {
    let mut socket = proxy.connect();
    let request = format!("GET /events HTTP/1.0\r\nHost: proxied\r\n{fields}\r\n");
    socket.write_all(request.as_bytes()).expect("send");
    EventStream::after_request(socket)
}

/// The `location` blocks from the README's nginx section, pointed at
/// `upstream` (an address, or the name of an `upstream` block) instead of
/// 127.0.0.1:8080.
fn readme_locations(upstream: &str) -> String {
    readme_nginx_block("location").replace("127.0.0.1:8080", upstream)
}

/// The `upstream` block from the README's section on several instances,
/// with the instances' real addresses in place of its example ones.
fn readme_upstream(addrs: &[String]) -> String {
    let mut block = readme_nginx_block("upstream");
    for (example, addr) in ["127.0.0.1:8080;", "127.0.0.1:8081;"].iter().zip(addrs) {
        assert!(
            block.contains(example),
            "{example} in the README's upstream"
        );
        block = block.replace(example, &format!("{addr};"));
    }
    block
}

/// The first ```` ```nginx ```` block of the README that starts with `word`.
fn readme_nginx_block(word: &str) -> String {
    let fence = format!("```nginx\n{word}");
    let start = README.find(&fence).expect("the nginx block in the README") + "```nginx\n".len();
    let end = start + README[start..].find("```").expect("the end of the block");
    README[start..end].to_owned()
}

/// A real nginx in the foreground, with a configuration and temp files of
/// its own in a fresh directory; killed, and its directory removed, on drop.
struct Nginx {
    child: Child,
    port: u16,
    prefix: PathBuf,
}

impl Nginx {
    /// Starts nginx with `upstreams` (blocks for the `http` context) and a
    /// `server` made of `locations`.
    fn start(nginx: &Path, upstreams: &str, locations: &str) -> Nginx {
        let port = free_port();
        let prefix =
            std::env::temp_dir().join(format!("sse-clock-nginx-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&prefix).expect("a directory for nginx");
        let dir = prefix.display();
        let http = readme_nginx_block("limit_conn_zone");
        let config = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {dir}/nginx.pid;\n\
             error_log stderr warn;\nevents {{ worker_connections 64; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {dir}/body;\n  proxy_temp_path {dir}/proxy;\n\
             fastcgi_temp_path {dir}/fastcgi;\n  uwsgi_temp_path {dir}/uwsgi;\n  scgi_temp_path {dir}/scgi;\n\
             {http}\n{upstreams}\n  server {{\n    listen 127.0.0.1:{port};\n{locations}\n  }}\n}}\n"
        );
        std::fs::write(prefix.join("nginx.conf"), config).expect("write nginx.conf");
        let child = Command::new(nginx)
            .arg("-p")
            .arg(&prefix)
            .args(["-c", "nginx.conf", "-e", "stderr"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        let proxy = Nginx {
            child,
            port,
            prefix,
        };
        let up = wait_for_within(Duration::from_secs(10), || {
            TcpStream::connect(("127.0.0.1", port)).ok()
        });
        assert!(up.is_some(), "nginx did not start listening");
        proxy
    }

    fn connect(&self) -> TcpStream {
        let socket = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to nginx");
        socket
            .set_read_timeout(Some(common::TIMEOUT))
            .expect("read timeout");
        socket
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.prefix);
    }
}
