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
//!    itself once a place is free, again with no tick lost.
//!
//! Where the engines differ, the check says how, and prints what it
//! measured (`cargo test --test browser -- --nocapture`); the README's
//! table of engine differences comes from that output.
//!
//! Needs the Debian packages `chromium chromium-driver firefox-esr
//! webkit2gtk-driver xvfb` (`.ci/run` installs them). An engine that is
//! missing is skipped with a loud message, except under `CI=true`, where
//! it is a failure.

mod common;

use std::thread;
use std::time::Duration;

use common::browser::{Browser, Engine};
use common::page::{open_page, probe, wait_for_page, wait_for_probe};
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
    wait_for_page(browser, "open, 2 ticks", |page| {
        page.state == "open" && page.watched.ids.len() >= 2
    });
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
    let page = common::page::read_page(browser);
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
    let broke = page.watched.times_of("reconnecting")[0];
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
