//! The server behind a real nginx, configured with the `location` blocks
//! the README gives (read from README.md, so the documented configuration
//! is the tested one). Events must come through one by one, each within
//! 100 ms of its tick, the page must be served, and a reconnect with
//! `Last-Event-ID` must resume.
//!
//! Needs the Debian package `nginx` (`.ci/run` installs it). Without it the
//! test is skipped with a loud message, except under `CI=true`, where a
//! missing nginx is a failure.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::Duration;

use common::{EventStream, Server, find_program, free_port, unix_ms_now, wait_for_within};

const PAGE: &str = include_str!("../static/index.html");
const README: &str = include_str!("../README.md");

#[test]
fn events_pass_through_nginx_at_once_and_resume_through_it() {
    let Some(nginx) = find_program(&["nginx"]) else {
        common::missing("nginx is", "nginx");
        return;
    };
    let server = Server::start(&["--interval", "200"]);
    let proxy = Nginx::start(&nginx, &server.addr.to_string());

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
/// `upstream` instead of 127.0.0.1:8080.
fn readme_locations(upstream: &str) -> String {
    let start = README
        .find("```nginx\n")
        .expect("an nginx block in the README")
        + "```nginx\n".len();
    let end = start + README[start..].find("```").expect("the end of the block");
    README[start..end].replace("127.0.0.1:8080", upstream)
}

/// A real nginx in the foreground, with a configuration and temp files of
/// its own in a fresh directory; killed, and its directory removed, on drop.
struct Nginx {
    child: Child,
    port: u16,
    prefix: PathBuf,
}

impl Nginx {
    fn start(nginx: &Path, upstream: &str) -> Nginx {
        let port = free_port();
        let prefix =
            std::env::temp_dir().join(format!("sse-clock-nginx-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&prefix).expect("a directory for nginx");
        let dir = prefix.display();
        let config = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {dir}/nginx.pid;\n\
             error_log stderr warn;\nevents {{ worker_connections 64; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {dir}/body;\n  proxy_temp_path {dir}/proxy;\n\
             fastcgi_temp_path {dir}/fastcgi;\n  uwsgi_temp_path {dir}/uwsgi;\n  scgi_temp_path {dir}/scgi;\n\
             server {{\n    listen 127.0.0.1:{port};\n{}\n  }}\n}}\n",
            readme_locations(upstream)
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
