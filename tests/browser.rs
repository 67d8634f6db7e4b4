//! The project's page in real browsers: Chromium, Firefox and WebKit, each
//! through the driver layer in `tests/common/browser.rs`, each put through
//! the same checks, one after another in one session per engine:
//!
//! 1. the page shows ticks, the `clients` count and the connection state,
//!    and when the server is stopped and started again on the same port it
//!    reconnects by itself and resumes with `Last-Event-ID`: the ids it
//!    received run on across the restart, none missing, none twice;
//! 2. an error status ends a stream for good: no retry;
//! 3. a page on another origin, allowed with `--allow-origin`, streams, and
//!    keeps streaming across a restart without a preflight; a page on an
//!    origin not allowed gets nothing;
//! 4. a cross-origin reconnect that finds the server still down;
//! 5. a full server's answer sends the page away, and it comes back by
//!    itself once a place is free, again with no tick lost;
//! 6. a port that answers `502` for a while: the browser gives up, and the
//!    page opens new streams itself, backing off, and resumes;
//! 7. a frozen server (`SIGSTOP`): the page says `stale` and replaces the
//!    stream, and once the server goes on (`SIGCONT`) resumes; ticks far
//!    apart, with only keep-alive comments between, are never stale;
//! 8. the page sits in landmarks (axe-core), its clock keeps to one line at
//!    320 px and shows the viewer's own time, and the wire view closes its
//!    stream while the tab is hidden.
//!
//! Steps 6 and 7 watch a second tab, which shares the first tab's stream,
//! and check both. Then, in a session of its own per engine: eight tabs of
//! the page all load and tick on one stream, and when the tab that holds it
//! closes, another takes over with no tick lost and none twice.
//!
//! Where the engines differ, the check says how, and prints what it
//! measured (`cargo test --test browser -- --nocapture`); tests/README.md's
//! table of engine differences comes from that output.
//!
//! Needs the Debian packages `chromium chromium-driver firefox-esr
//! webkit2gtk-driver xvfb`, and axe-core from npm in `target/npm`
//! (`.ci/run` installs them all). An engine that is
//! missing is skipped with a loud message, except under `CI=true`, where
//! it is a failure.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::browser::{Browser, Engine};
use common::page::{
    HOLDS, SHARES, close_tabs_but_the_first, open_page, open_tabs, probe, read_page, wait_for_page,
    wait_for_probe,
};
use common::{EventStream, Server, free_port, wait_for_within};

const INTERVAL_MS: u64 = 200;
const FAST: [&str; 4] = ["--interval", "200", "--retry", "300"];
/// What `--retry 300` sends: a `retry:` drawn between 300 and 1.5 × 300.
const RETRY_MS: (u64, u64) = (300, 450);
/// How much later than its `retry:` a reconnect may come and still count
/// as on time: timers, a refused connect, a busy machine.
const SLACK_MS: u64 = 200;

#[test]
fn the_page_in_chromium() {
    check_the_page_in(Engine::Chromium);
}

#[test]
fn the_page_in_firefox() {
    check_the_page_in(Engine::Firefox);
}

#[test]
fn the_page_in_webkit() {
    check_the_page_in(Engine::WebKit);
}

fn check_the_page_in(engine: Engine) {
    let Some(mut browser) = Browser::start(engine) else {
        return;
    };
    the_page_ticks_counts_clients_and_resumes_across_a_restart(&mut browser);
    an_error_status_ends_the_stream_for_good(&mut browser);
    a_page_on_an_allowed_origin_streams_across_a_restart_and_others_get_nothing(&mut browser);
    a_cross_origin_reconnect_finds_the_server_still_down(&mut browser);
    a_full_server_sends_the_page_away_and_it_comes_back_by_itself(&mut browser);
    a_port_that_answers_502_for_a_while_and_the_page_comes_back_by_itself(&mut browser);
    a_frozen_server_is_shown_stale_and_the_page_comes_back_when_it_goes_on(&mut browser);
    ticks_far_apart_with_only_keep_alives_between_are_never_stale(&mut browser);
    the_page_sits_in_landmarks_and_its_clock_keeps_to_one_line_at_320_px(&mut browser);
    the_wire_view_holds_a_connection_only_while_the_tab_is_shown(&mut browser);
}

#[test]
fn eight_tabs_share_one_stream_in_chromium() {
    check_eight_tabs_in(Engine::Chromium);
}

#[test]
fn eight_tabs_share_one_stream_in_firefox() {
    check_eight_tabs_in(Engine::Firefox);
}

#[test]
fn eight_tabs_share_one_stream_in_webkit() {
    check_eight_tabs_in(Engine::WebKit);
}

/// Eight tabs, two more than the connections a browser opens to one host
/// over HTTP/1.1: every one loads and ticks, one holds the stream and seven
/// share it, and the server counts one stream. The holder closes; another
/// tab takes the lock and opens a stream from the last id it showed, and
/// every tab left runs on, no tick missing, none twice.
fn check_eight_tabs_in(engine: Engine) {
    let Some(mut browser) = Browser::start(engine) else {
        return;
    };
    let server = Server::start(&FAST);
    eight_tabs_tick_on_one_stream_and_carry_on_when_its_holder_closes(&mut browser, &server);
    // In all, the eight tabs opened two streams: the first tab's, and then
    // one from where it stopped (and the test opened one of its own).
    drop(browser);
    let log = server.stop_and_read_log();
    let streams: Vec<&str> = log
        .lines()
        .filter(|line| line.contains(" \"GET /events"))
        .collect();
    assert_eq!(streams.len(), 3, "{engine:?}: {streams:#?}");
    let resumed = streams
        .iter()
        .filter(|line| line.contains(" \"GET /events?lastEventId="));
    assert_eq!(resumed.count(), 1, "{engine:?}: {streams:#?}");
}

fn eight_tabs_tick_on_one_stream_and_carry_on_when_its_holder_closes(
    browser: &mut Browser,
    server: &Server,
) {
    let engine = browser.engine;
    let tabs = open_tabs(browser, &format!("http://{}/", server.addr), 8);
    for tab in &tabs {
        browser.switch_to(tab);
        wait_for_page(browser, "open, 1 client, 3 ticks", |page| {
            page.state == "open" && page.clients == "1" && page.watched.ids.len() >= 3
        });
    }
    // A stream of the test's own is told, in its opening's `clients`, of
    // two: the browser's one and itself.
    let mut own = EventStream::open(server, "/events");
    let clients = loop {
        let block = own.next_block();
        if block.is_clients() {
            break block;
        }
    };
    assert_eq!(
        clients.get("data"),
        Some("2"),
        "{engine:?}: one stream, 8 tabs"
    );
    drop(own);

    // The first tab holds the stream; it closes.
    browser.switch_to(&tabs[0]);
    let closed_at = read_page(browser).watched.last_id().expect("ticks");
    browser.close_tab();
    let mut holders = 0;
    for tab in &tabs[1..] {
        browser.switch_to(tab);
        let page = wait_for_page(browser, "10 ticks after the handover", |page| {
            page.state == "open" && page.watched.last_id() >= Some(closed_at + 10 * INTERVAL_MS)
        });
        page.watched.assert_contiguous(INTERVAL_MS);
        assert!([HOLDS, SHARES].contains(&page.role.as_str()), "{page:?}");
        holders += usize::from(page.role == HOLDS);
    }
    assert_eq!(holders, 1, "{engine:?}: one tab took over");
    wait_for_page(browser, "1 client: the closed tab's stream ended", |page| {
        page.clients == "1"
    });
}

/// The shortest wait before a reconnect each engine allows, whatever
/// `retry:` says. Firefox raises anything shorter to 500 ms.
fn reconnect_floor_ms(engine: Engine) -> u64 {
    match engine {
        Engine::Firefox => 500,
        Engine::Chromium | Engine::WebKit => 0,
    }
}

/// Every gap lies within `retry` (a range, as the server draws it), raised
/// to the engine's floor, plus slack.
fn assert_waits(browser: &Browser, what: &str, gaps: &[u64], retry: (u64, u64)) {
    let floor = reconnect_floor_ms(browser.engine);
    let (least, most) = (retry.0.max(floor), retry.1.max(floor) + SLACK_MS);
    let engine = browser.engine;
    eprintln!("{engine:?}: {what}, retry {retry:?} ms: reconnected after {gaps:?} ms");
    assert!(!gaps.is_empty(), "{engine:?}: {what}: no reconnect seen");
    for &gap in gaps {
        assert!(
            (least..=most).contains(&gap),
            "{engine:?}: {what}: reconnect after {gap} ms, expected {least} to {most}"
        );
    }
}

fn the_page_ticks_counts_clients_and_resumes_across_a_restart(browser: &mut Browser) {
    let server = Server::start(&FAST);
    open_page(browser, &format!("http://{}/", server.addr));

    // The clock ticks, the page counts itself, and says it is open.
    let page = wait_for_page(browser, "open, 1 client, 3 ticks", |page| {
        page.state == "open" && page.clients == "1" && page.watched.ids.len() >= 3
    });
    assert!(
        page.clock.ends_with('Z') && page.clock.contains('T'),
        "clock shows RFC 3339: {}",
        page.clock
    );

    // Another viewer comes and goes; the page's count follows.
    let other = EventStream::open(&server, "/events");
    wait_for_page(browser, "2 clients", |page| page.clients == "2");
    drop(other);
    wait_for_page(browser, "1 client again", |page| page.clients == "1");

    // Stop the server; the page says so and keeps trying.
    let port = server.addr.port();
    drop(server);
    let page = wait_for_page(browser, "reconnecting", |page| page.state == "reconnecting");
    let last_before = page.watched.last_id().expect("ticks before the restart");
    // Down long enough for two failed reconnects in every engine, and for
    // some ticks to replay.
    thread::sleep(Duration::from_millis(1200));

    // Start it again on the same port: the page reconnects by itself.
    let addr = format!("127.0.0.1:{port}");
    let _restarted = Server::start(&[&["--addr", &addr][..], &FAST[..]].concat());
    let page = wait_for_page(browser, "open again, 10 ticks on", |page| {
        page.state == "open"
            && page
                .watched
                .last_id()
                .is_some_and(|id| id >= last_before + 10 * INTERVAL_MS)
    });
    page.watched.assert_contiguous(INTERVAL_MS);

    // While the server was down, each failed attempt set `reconnecting`
    // again; the last attempt found it and set `open`.
    let mut attempts = page.watched.times_of("reconnecting");
    let reopened = page.watched.times_of("open");
    attempts.extend(reopened.iter().find(|&&open| open > attempts[0]));
    let gaps: Vec<u64> = attempts.windows(2).map(|pair| pair[1] - pair[0]).collect();
    assert_waits(browser, "server down", &gaps, RETRY_MS);
    // No engine backs off: every attempt waited as long as the first.
    let (least, most) = (gaps.iter().min(), gaps.iter().max());
    let spread = most.zip(least).map_or(0, |(most, least)| most - least);
    assert!(
        spread <= SLACK_MS,
        "{:?}: backed off: {gaps:?}",
        browser.engine
    );
}

fn an_error_status_ends_the_stream_for_good(browser: &mut Browser) {
    let server = Server::start(&FAST);
    browser.goto(&format!("http://{}/", server.addr));
    probe(browser, "/nope");
    let probed = wait_for_probe(browser, "closed after a 404", |probe| {
        probe.states.iter().any(|(state, _)| state == "closed")
    });
    // Two reconnect delays at the longest any engine waits: still only the
    // one request.
    thread::sleep(Duration::from_millis(2 * 500));
    let requests = server.log().matches("\"GET /nope ").count();
    let states: Vec<&str> = probed.states.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(
        states,
        ["closed"],
        "{:?}: no open, no retry",
        browser.engine
    );
    assert_eq!(
        requests, 1,
        "{:?}: one request, never retried",
        browser.engine
    );
}

/// The page comes from the `site` server, the stream from the `clock`
/// server on another port: another origin, allowed by `--allow-origin`.
fn cross_origin_servers() -> (Server, Vec<String>) {
    let site = Server::start(&FAST);
    let addr = format!("127.0.0.1:{}", free_port());
    let allowed = format!("http://{}", site.addr);
    let clock_args = [
        &["--addr", &addr, "--allow-origin", &allowed][..],
        &FAST[..],
    ]
    .concat();
    (site, clock_args.iter().map(|arg| arg.to_string()).collect())
}

fn start(args: &[String]) -> Server {
    Server::start(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

fn a_page_on_an_allowed_origin_streams_across_a_restart_and_others_get_nothing(
    browser: &mut Browser,
) {
    let (site, clock_args) = cross_origin_servers();
    let clock = start(&clock_args);
    browser.goto(&format!("http://{}/", site.addr));
    probe(browser, &format!("http://{}/events", clock.addr));
    let before = wait_for_probe(browser, "3 ticks across origins", |probe| {
        probe.ids.len() >= 3
    });
    let last_before = before.last_id().expect("ticks");

    // Stopped and started again at once, within the browser's retry.
    drop(clock);
    let clock = start(&clock_args);
    let after = wait_for_probe(browser, "5 ticks after the restart", |probe| {
        probe
            .last_id()
            .is_some_and(|id| id >= last_before + 5 * INTERVAL_MS)
    });
    after.assert_contiguous(INTERVAL_MS);
    assert!(
        after
            .states
            .iter()
            .any(|(state, _)| state == "reconnecting"),
        "{:?}: the stream broke and came back: {:?}",
        browser.engine,
        after.states
    );
    // The reconnect carried `Last-Event-ID`, a field outside the CORS
    // safelist, yet no engine sent a preflight: the server (which answers
    // OPTIONS with 405) would have broken the reconnect.
    assert!(
        !clock.log().contains("\"OPTIONS "),
        "{:?}: a preflight: {}",
        browser.engine,
        clock.log()
    );

    // The same page from http://localhost:PORT, an origin not on the list:
    // no Access-Control-Allow-Origin comes back, and the browser gives up.
    browser.goto(&format!("http://localhost:{}/", site.addr.port()));
    probe(browser, &format!("http://{}/events", clock.addr));
    let refused = wait_for_probe(browser, "refused", |probe| {
        probe.states.iter().any(|(state, _)| state == "closed")
    });
    assert!(refused.ids.is_empty(), "no event from a refused origin");
}

/// Where the engines part: the server is still down when the browser
/// tries again. Chromium and WebKit try again after `retry`, as they do on
/// the same origin; Firefox counts the refused cross-origin request as a
/// CORS failure and gives up for good (on the same origin it keeps trying).
fn a_cross_origin_reconnect_finds_the_server_still_down(browser: &mut Browser) {
    let (site, clock_args) = cross_origin_servers();
    let clock = start(&clock_args);
    browser.goto(&format!("http://{}/", site.addr));
    probe(browser, &format!("http://{}/events", clock.addr));
    let before = wait_for_probe(browser, "2 ticks", |probe| probe.ids.len() >= 2);
    drop(clock);
    let failed = wait_for_probe(browser, "a failed reconnect", |probe| {
        probe
            .states
            .iter()
            .skip(1)
            .filter(|(s, _)| s != "open")
            .count()
            >= 2
    });
    let engine = browser.engine;
    let state_after = failed.states.last().expect("states").0.clone();
    eprintln!("{engine:?}: cross-origin reconnect refused: {state_after}");
    let _clock = start(&clock_args);
    if engine == Engine::Firefox {
        assert_eq!(state_after, "closed", "{engine:?} gives up");
        return; // closed is final: nothing can come after it
    }
    assert_eq!(state_after, "reconnecting", "{engine:?} tries again");
    let last_before = before.last_id().expect("ticks");
    let after = wait_for_probe(browser, "3 ticks after the restart", |probe| {
        probe
            .last_id()
            .is_some_and(|id| id >= last_before + 3 * INTERVAL_MS)
    });
    after.assert_contiguous(INTERVAL_MS);
}

fn a_full_server_sends_the_page_away_and_it_comes_back_by_itself(browser: &mut Browser) {
    // The page's first server sends a long retry (1000 to 1500 ms) ...
    let first = Server::start(&["--interval", "200", "--retry", "1000", "--max-clients", "1"]);
    open_page(browser, &format!("http://{}/", first.addr));
    let up = wait_for_page(browser, "open, 2 ticks", |page| {
        page.state == "open" && page.watched.ids.len() >= 2
    });
    // The states before may hold a first stream turned away while the
    // request for the page itself held the one place: they are not counted.
    let up_at = up.watched.states.last().map_or(0, |&(_, ms)| ms);
    // ... so that after a restart, another viewer takes the one place well
    // before the page is back.
    let addr = first.addr.to_string();
    drop(first);
    let full = Server::start(&[&["--addr", &addr, "--max-clients", "1"][..], &FAST[..]].concat());
    let holder = EventStream::open(&full, "/events");
    let turned_away = |times| {
        let log = full.log();
        let lines = log
            .lines()
            .filter(|line| line.contains("/events") && line.contains("full"));
        (lines.count() >= times).then_some(())
    };
    let away = wait_for_within(Duration::from_secs(10), || turned_away(2));
    assert!(
        away.is_some(),
        "the page was never turned away twice: {}",
        full.log()
    );
    let page = read_page(browser);
    let last_before = page.watched.last_id().expect("ticks");

    // A place comes free: the page comes back by itself, and loses nothing.
    drop(holder);
    let page = wait_for_page(browser, "open and ticking again", |page| {
        page.state == "open"
            && page
                .watched
                .last_id()
                .is_some_and(|id| id >= last_before + 3 * INTERVAL_MS)
    });
    page.watched.assert_contiguous(INTERVAL_MS);

    // Each answer `: full` opened and ended: the first came `retry` of the
    // first server after the restart, the others `retry` of the full one
    // apart.
    let broke = page
        .watched
        .times_of("reconnecting")
        .into_iter()
        .find(|&at| at > up_at);
    let broke = broke.expect("the first server's stream broke");
    let opens: Vec<u64> = page.watched.times_of("open");
    let opens: Vec<u64> = opens.into_iter().filter(|&open| open > broke).collect();
    assert_waits(
        browser,
        "first server stopped",
        &[opens[0] - broke],
        (1000, 1500),
    );
    let gaps: Vec<u64> = opens.windows(2).map(|pair| pair[1] - pair[0]).collect();
    assert_waits(browser, "full server", &gaps, RETRY_MS);
}

/// Where a proxy with no instance up answers `502`: the browser gives up for
/// good at the first one (WHATWG HTML 9.2.3), and the page opens a new
/// `EventSource` itself after 1 to 1.5 s, then 2 to 3 s, then 4 to 6 s, each
/// with the last id it showed in the query, since a new `EventSource` sends
/// no `Last-Event-ID`. The server back, the ids run on, none lost. A
/// second tab shares the first one's stream and shows the same.
fn a_port_that_answers_502_for_a_while_and_the_page_comes_back_by_itself(browser: &mut Browser) {
    let server = Server::start(&FAST);
    let tabs = open_tabs(browser, &format!("http://{}/", server.addr), 2);
    browser.switch_to(&tabs[0]); // in front, where its timers run on time
    wait_for_page(browser, "open, 3 ticks", |page| {
        page.state == "open" && page.watched.ids.len() >= 3
    });
    let addr = server.addr.to_string();
    drop(server);
    let gateway = BadGateway::start(&addr);
    let page = wait_for_page(browser, "given up, in words", |page| {
        page.state == "closed" && page.words.starts_with("gave up, trying again in ")
    });
    let last = page.watched.last_id().expect("ticks before the 502s");
    let requests = wait_for_within(Duration::from_secs(10), || {
        let requests = gateway.requests.lock().expect("requests").clone();
        (requests.len() >= 3).then_some(requests)
    });
    drop(gateway);
    let requests = requests.expect("three requests answered 502");
    let _back = Server::start(&[&["--addr", &addr][..], &FAST[..]].concat());
    assert_reopened_with_the_query(browser.engine, last, &requests);
    let ids = (last + 5 * INTERVAL_MS, INTERVAL_MS);
    assert_both_tabs_come_back(browser, &tabs, "closed", ids);
}

/// Both tabs, the one that shares the stream first: each went through
/// `state` (`closed`, `stale`) on its way, and is open again past `id`,
/// every id `interval_ms` after the one before, none lost, none twice.
/// Then the second tab closes.
fn assert_both_tabs_come_back(
    browser: &mut Browser,
    tabs: &[String],
    state: &str,
    (id, interval_ms): (u64, u64),
) {
    for tab in [&tabs[1], &tabs[0]] {
        browser.switch_to(tab);
        let page = wait_for_page(browser, "open again, ticking on", |page| {
            page.state == "open" && page.stale.is_empty() && page.watched.last_id() >= Some(id)
        });
        page.watched.assert_contiguous(interval_ms);
        let states = page.watched.state_names();
        assert!(states.contains(&state), "{:?}: {states:?}", browser.engine);
    }
    close_tabs_but_the_first(browser, tabs);
}

/// The first request after the stop is the browser's own reconnect, with
/// the field; then come the page's new streams, with the query instead,
/// 1 to 1.5 s and then 2 to 3 s apart.
fn assert_reopened_with_the_query(engine: Engine, last: u64, requests: &[(Instant, String)]) {
    assert!(
        requests[0]
            .1
            .contains(&format!("\r\nlast-event-id: {last}\r\n")),
        "{engine:?}: {:?}",
        requests[0].1
    );
    for (_, head) in &requests[1..] {
        let line = format!("get /events?lasteventid={last} http/1.1\r\n");
        assert!(head.starts_with(&line), "{engine:?}: {head:?}");
        assert!(!head.contains("last-event-id"), "{engine:?}: {head:?}");
    }
    let gaps: Vec<u64> = requests
        .windows(2)
        .map(|pair| ms(pair[1].0 - pair[0].0))
        .collect();
    eprintln!("{engine:?}: after a 502 the page tried again after {gaps:?} ms");
    for (gap, wait) in gaps.iter().zip([1000, 2000]) {
        assert!(
            (wait..=wait * 3 / 2 + SLACK_MS).contains(gap),
            "{engine:?}: waited {gap} ms, expected {wait} and up to half again: {gaps:?}"
        );
    }
}

fn ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).expect("ms")
}

/// A frozen server (`SIGSTOP`, as on a swapping board): the connection stays
/// up and nothing comes. At the default interval of 1 s the page says so
/// within about 3 s (two intervals and half a second after the last tick),
/// replaces the stream, and resumes once the server goes on (`SIGCONT`).
/// A second tab, as above, shows the same.
fn a_frozen_server_is_shown_stale_and_the_page_comes_back_when_it_goes_on(browser: &mut Browser) {
    let server = Server::start(&[]);
    let tabs = open_tabs(browser, &format!("http://{}/", server.addr), 2);
    browser.switch_to(&tabs[0]); // in front, where its timers run on time
    wait_for_page(browser, "open, 3 ticks", |page| {
        page.state == "open" && page.watched.ids.len() >= 3
    });
    signal(&server, "-STOP");
    let stopped = Instant::now();
    let page = wait_for_page(browser, "stale", |page| !page.stale.is_empty());
    let took = ms(stopped.elapsed());
    let engine = browser.engine;
    eprintln!(
        "{engine:?}: a frozen server shown stale after {took} ms: {}",
        page.stale
    );
    assert!(
        (1500..=3300).contains(&took),
        "{engine:?}: stale after {took} ms"
    );
    let words = ["stale: no event for 2 s", "stale: no event for 3 s"];
    assert!(
        words.contains(&page.stale.as_str()),
        "{engine:?}: {}",
        page.stale
    );
    let page = wait_for_page(browser, "a new stream", |page| page.state == "connecting");
    let last = page.watched.last_id().expect("ticks before the stop");
    signal(&server, "-CONT");
    let page = wait_for_page(browser, "open, fresh, 2 ticks on", |page| {
        page.state == "open" && page.stale.is_empty() && page.watched.last_id() >= Some(last + 2000)
    });
    let changes = page.watched.state_names();
    assert_eq!(
        changes.iter().filter(|&&state| state == "stale").count(),
        1,
        "{engine:?}: stale only once, while frozen: {changes:?}"
    );
    assert_both_tabs_come_back(browser, &tabs, "stale", (last + 2000, 1000));
}

/// Ticks 3 s apart with `: keep-alive` every 500 ms between (as the server
/// does every 15 s between ticks over 15 s apart). EventSource shows no
/// comment, so only the interval the page learns from the ids keeps it
/// from calling the quiet between ticks stale.
fn ticks_far_apart_with_only_keep_alives_between_are_never_stale(browser: &mut Browser) {
    let env = [("SSE_CLOCK_KEEP_ALIVE_MS", "500")];
    let server = Server::start_with_env(&["--interval", "3000"], &env);
    open_page(browser, &format!("http://{}/", server.addr));
    let page = wait_for_page(browser, "3 ticks", |page| page.watched.ids.len() >= 3);
    page.watched.assert_contiguous(3000);
    let states = page.watched.state_names();
    assert!(
        !states.contains(&"stale"),
        "{:?}: {states:?}",
        browser.engine
    );
}

fn signal(server: &Server, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &server.pid().to_string()])
        .status();
    assert!(status.is_ok_and(|status| status.success()), "kill {signal}");
}

/// A port that answers every request `502 Bad Gateway`, as nginx does with
/// no instance up, noting each request's time and head (lower-cased).
struct BadGateway {
    requests: Arc<Mutex<Vec<(Instant, String)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl BadGateway {
    fn start(addr: &str) -> BadGateway {
        let listener = TcpListener::bind(addr).expect("bind the stopped server's port");
        listener.set_nonblocking(true).expect("non-blocking");
        let requests: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (noted, stopped) = (Arc::clone(&requests), Arc::clone(&stop));
        let thread = thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                let Ok((mut socket, _)) = listener.accept() else {
                    thread::sleep(Duration::from_millis(5));
                    continue;
                };
                let came = Instant::now();
                let _ = socket.set_nonblocking(false);
                let _ = socket.set_read_timeout(Some(Duration::from_secs(2)));
                let mut head = Vec::new();
                let mut byte = [0u8];
                while !head.ends_with(b"\r\n\r\n") && matches!(socket.read(&mut byte), Ok(1)) {
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).to_lowercase();
                noted.lock().expect("requests").push((came, head));
                let _ = socket.write_all(
                    b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\n\
                      Content-Length: 4\r\nConnection: close\r\n\r\n502\n",
                );
            }
        });
        BadGateway {
            requests,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for BadGateway {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// axe-core (npm), where `.ci/run` installs it.
const AXE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/target/npm/node_modules/axe-core/axe.min.js"
);

/// axe-core's landmark rules on the page, then the page in a 320 px frame
/// (a small phone): the clock on one line, inside the frame's width, and
/// beside it the same instant in the viewer's time zone.
fn the_page_sits_in_landmarks_and_its_clock_keeps_to_one_line_at_320_px(browser: &mut Browser) {
    let server = Server::start(&FAST);
    browser.goto(&format!("http://{}/", server.addr));
    let engine = browser.engine;
    match std::fs::read_to_string(AXE) {
        Ok(axe) => {
            browser.run(&format!("{axe}\n{AXE_RUN}"));
            let verdict =
                wait_for_script(browser, "axe's verdict", "return window.axeVerdict || '';");
            assert_eq!(
                verdict, "passes: landmark-one-main region; violations: none",
                "{engine:?}"
            );
        }
        Err(_) => common::missing(
            "axe-core is",
            "npm, then npm install --prefix target/npm axe-core@4.14.1",
        ),
    }
    browser.run(NARROW);
    let shown = wait_for_script(browser, "the clock at 320 px", MEASURE);
    let [right, width, scroll, height, font, clock, local, minute] =
        <[&str; 8]>::try_from(shown.split('|').collect::<Vec<_>>()).expect("eight parts");
    let number = |text: &str| text.parse::<f64>().expect("a number");
    eprintln!(
        "{engine:?}: at 320 px the clock {clock} ends at {right} of {width} px, {height} px high; local: {local}"
    );
    assert!(
        number(right) <= number(width) && number(scroll) <= number(width),
        "{engine:?}: {shown}"
    );
    assert!(
        number(height) < 2.0 * number(font),
        "{engine:?}: one line: {shown}"
    );
    assert!(
        local != clock && local.contains(minute),
        "{engine:?}: {shown}"
    );
}

const AXE_RUN: &str =
    "axe.run(document, { runOnly: ['landmark-one-main', 'region'] }).then((result) => {
  const ids = (list) => list.map((rule) => rule.id).sort().join(' ') || 'none';
  window.axeVerdict = `passes: ${ids(result.passes)}; violations: ${ids(result.violations)}`;
});";

const NARROW: &str = "const frame = document.createElement('iframe');
frame.id = 'narrow';
frame.style = 'width: 320px; height: 600px; border: 0';
frame.src = '/';
document.body.append(frame);";

/// The clock in the frame, once it shows a tick: its right edge, the
/// frame's width and scroll width, the clock's height and font size, its
/// text, the local time and the tick's `:MM:SS`, which every time zone shares.
const MEASURE: &str = "const page = document.getElementById('narrow').contentDocument;
const clock = page?.getElementById('clock');
if (!clock || !clock.textContent.endsWith('Z')) return '';
const box = clock.getBoundingClientRect(), when = new Date(clock.textContent);
const two = (n) => String(n).padStart(2, '0');
return [box.right, page.documentElement.clientWidth, page.documentElement.scrollWidth, box.height,
  parseFloat(page.defaultView.getComputedStyle(clock).fontSize), clock.textContent,
  page.getElementById('local').textContent, `:${two(when.getMinutes())}:${two(when.getSeconds())}`].join('|');";

/// Runs `script` every 50 ms until it returns a string that is not empty.
fn wait_for_script(browser: &mut Browser, what: &str, script: &str) -> String {
    common::page::wait_for_text(browser, what, script, |text| !text.is_empty())
}

/// Hiding the tab closes the wire view's stream, and `clients` falls;
/// showing it again opens a new one. The tab is made hidden for the page
/// alone (`visibilityState` and its event), as a switch of tabs would.
fn the_wire_view_holds_a_connection_only_while_the_tab_is_shown(browser: &mut Browser) {
    let server = Server::start(&FAST);
    open_page(browser, &format!("http://{}/", server.addr));
    wait_for_page(browser, "1 client", |page| page.clients == "1");
    browser.run("document.getElementById('wire').open = true;");
    wait_for_page(browser, "2 clients: the wire view", |page| {
        page.clients == "2"
    });
    browser.run(&format!(
        "{HIDE} document.dispatchEvent(new Event('visibilitychange'));"
    ));
    wait_for_page(browser, "1 client while hidden", |page| page.clients == "1");
    browser.run(
        "delete document.visibilityState; document.dispatchEvent(new Event('visibilitychange'));",
    );
    wait_for_page(browser, "2 clients when shown", |page| page.clients == "2");
}

const HIDE: &str =
    "Object.defineProperty(document, 'visibilityState', { value: 'hidden', configurable: true });";
