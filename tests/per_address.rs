//! No one address can fill the server: `--max-per-address` (by default a
//! tenth of `--max-connections`). Tested as the field has it, from an address
//! that is not loopback (which is not counted): a network namespace of the
//! test's own, joined to this one by a veth pair, made as root with `ip` and
//! removed when the test ends. In it, a client opens 40 streams, the whole
//! cap, and never reads them; a viewer from another address gets its stream.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use common::{EventStream, Server};

/// A network namespace `ns` whose veth end has `inside`, joined to this
/// namespace's end, which has `outside`. Dropping it removes both.
struct Namespace {
    name: String,
    outside: String,
    inside: String,
}

impl Namespace {
    /// Makes the namespace, or says why not (not root, no `ip`).
    fn make() -> Option<Namespace> {
        if common::find_program(&["ip"]).is_none() {
            common::missing("ip is", "iproute2");
            return None;
        }
        let pid = std::process::id();
        let name = format!("sse-clock-{pid}");
        let subnet = format!("10.231.{}", pid % 250);
        let (host_end, ns_end) = (
            format!("sse{}h", pid % 100_000),
            format!("sse{}n", pid % 100_000),
        );
        let namespace = Namespace {
            name: name.clone(),
            outside: format!("{subnet}.1"),
            inside: format!("{subnet}.2"),
        };
        let steps = [
            format!("netns add {name}"),
            format!("link add {host_end} type veth peer name {ns_end} netns {name}"),
            format!("addr add {subnet}.1/24 dev {host_end}"),
            format!("link set {host_end} up"),
            format!("-n {name} addr add {subnet}.2/24 dev {ns_end}"),
            format!("-n {name} link set {ns_end} up"),
        ];
        for step in steps {
            let status = Command::new("ip").args(step.split(' ')).status();
            if !status.is_ok_and(|status| status.success()) {
                common::missing("root (to run `ip netns add`) is", "nothing: run as root");
                return None;
            }
        }
        Some(namespace)
    }

    /// Runs `program args...` inside the namespace.
    fn spawn(&self, program: &str, args: &[&str]) -> Child {
        Command::new("ip")
            .args(["netns", "exec", &self.name, program])
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("run a program in the namespace")
    }
}

impl Drop for Namespace {
    /// Removing the namespace removes its veth end, and so the pair.
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Opens `n` streams to `host port`, sends each its request, says `sent`,
/// and never reads; it ends by itself after a minute.
const HOLD_STREAMS: &str = "
import socket, sys, time
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
held = [socket.create_connection((host, port)) for _ in range(n)]
for s in held:
    s.sendall(b'GET /events HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n')
print('sent', flush=True)
time.sleep(60)
";

#[test]
fn one_address_holding_every_slot_it_can_leaves_room_for_a_viewer_from_another() {
    let Some(python) = common::find_program(&["python3"]) else {
        common::missing("python3 is", "python3");
        return;
    };
    let Some(namespace) = Namespace::make() else {
        return;
    };
    // A cap of 40: by default 4 of them for one address.
    let addr = format!("{}:0", namespace.outside);
    let server = Server::start(&[
        "--addr",
        &addr,
        "--max-connections",
        "40",
        "--interval",
        "100",
    ]);
    assert_eq!(server.addr.ip().to_string(), namespace.outside);

    let port = server.addr.port().to_string();
    let python = python.to_str().expect("a UTF-8 path");
    let mut holder = namespace.spawn(
        python,
        &["-c", HOLD_STREAMS, &namespace.outside, &port, "40"],
    );
    let mut said = String::new();
    let stdout = holder.stdout.take().expect("stdout is piped");
    BufReader::new(stdout).read_line(&mut said).expect("read");
    assert_eq!(said, "sent\n", "the 40 streams from {}", namespace.inside);

    // This test's own connections come from `outside`, another address:
    // a viewer gets its stream, and counts itself and the 4 held streams.
    let mut viewer = EventStream::open(&server, "/events");
    assert!(
        viewer.head.starts_with("HTTP/1.1 200 OK\r\n"),
        "{}",
        viewer.head
    );
    viewer.ticks_until_clients(5, 50);
    viewer.next_tick();

    // The rest from `inside` were told what a full server tells: come back.
    // (Logged once each has waited for `inside` to close, up to 2 s.)
    let turned = server.wait_for_log("(full)");
    let inside = format!("{}:", namespace.inside);
    let stream = " \"GET /events HTTP/1.1\" 200 ";
    assert!(
        turned.starts_with(&inside) && turned.contains(stream),
        "{turned}"
    );
    server.wait_for_log("full for one address (--max-per-address)");
    // Once those answers are done, a thread for each of the 4 held streams
    // and the viewer's, and no more: one address holds no more than its share.
    server.wait_until_threads_at_most(common::IDLE_THREADS + 4 + 1);
    let _ = holder.kill();
    let _ = holder.wait();
}
