//! The project's page (static/index.html) as a test sees it through a
//! `Browser`: what it shows now (connection state, client count, clock,
//! whether its tab holds the stream or shares another tab's),
//! and everything it has shown since the test began to watch it: every
//! clock event's id, in arrival order, and each change of the connection
//! state (and each time the clock went stale or fresh again) with its time.
//! The page keeps only its last 20 events on screen;
//! the watch keeps them all, so a gap or a duplicate cannot scroll away
//! between two looks.

use std::thread;
use std::time::{Duration, Instant};

use super::browser::Browser;

/// How long the page may take to reach a state a test waits for.
pub const PAGE_TIMEOUT: Duration = Duration::from_secs(20);

/// What the page shows, and what it has shown since `watch`.
#[derive(Debug)]
pub struct Page {
    /// `connecting`, `open`, `reconnecting` or `closed`.
    pub state: String,
    /// The state in words, as the page shows it (`gave up, trying again in 2 s`).
    pub words: String,
    pub clients: String,
    pub clock: String,
    /// The word beside the clock: empty, or `stale: no event for 3 s`.
    pub stale: String,
    /// Whether this tab `holds the stream` or `shares another tab's`.
    pub role: String,
    pub watched: Watched,
}

/// What a watched `EventSource` delivered: ids of clock events in order,
/// and state changes as (state, ms since the watch began); the clock going
/// stale and fresh again are the states `stale` and `fresh`.
#[derive(Debug, Default)]
pub struct Watched {
    pub ids: Vec<u64>,
    pub states: Vec<(String, u64)>,
}

/// Installs the watch: MutationObservers on the page's log (each entry it
/// adds) and on its state (each `data-state` it sets), starting with the
/// entries already there, oldest first; and on the word beside the clock,
/// noting only when it comes and goes.
const WATCH: &str = "\
const [log, state, stale] = ['log', 'state', 'stale'].map((id) => document.getElementById(id));
const start = performance.now();
const watched = { ids: [], states: [] };
window.sseClockWatch = watched;
const note = (entry) => { if (entry.dataset.type === 'message') watched.ids.push(entry.dataset.id); };
const now = (name) => watched.states.push(name + ' ' + Math.round(performance.now() - start));
[...log.children].reverse().forEach(note);
new MutationObserver((records) => records.forEach((record) => record.addedNodes.forEach(note)))
  .observe(log, { childList: true });
new MutationObserver(() => now(state.dataset.state))
  .observe(state, { attributes: true, attributeFilter: ['data-state'] });
let wasStale = false;
new MutationObserver(() => {
  if (wasStale !== (stale.textContent !== '')) now((wasStale = !wasStale) ? 'stale' : 'fresh');
}).observe(stale, { childList: true, characterData: true, subtree: true });
return 'watching';";

const READ: &str = "\
const text = (id) => document.getElementById(id).textContent;
const watched = window.sseClockWatch;
return [document.getElementById('state').dataset.state, text('state'), text('clients'), text('clock'),
  text('stale'), watched.ids.join(','), watched.states.join(','), text('role')].join('|');";

/// Opens an `EventSource` on `url` from the current page, recorded like
/// the page's own (ids in order, states with times); `closed` is the state
/// after an error from which the browser will not try again.
const PROBE: &str = "\
const start = performance.now();
const source = new EventSource(URL);
const watched = { ids: [], states: [] };
window.sseClockProbe = watched;
const note = (state) => watched.states.push(state + ' ' + Math.round(performance.now() - start));
source.onopen = () => note('open');
source.onerror = () => note(source.readyState === 2 ? 'closed' : 'reconnecting');
source.onmessage = (event) => watched.ids.push(event.lastEventId);
return 'probing';";

const READ_PROBE: &str = "\
const watched = window.sseClockProbe;
return ['', '', '', '', '', watched.ids.join(','), watched.states.join(',')].join('|');";

/// Loads the page at `url` and starts watching it.
pub fn open_page(browser: &mut Browser, url: &str) {
    browser.goto(url);
    browser.run(WATCH);
}

/// What the holder of the shared stream says, and what the other tabs say.
pub const HOLDS: &str = "holds the stream";
pub const SHARES: &str = "shares another tab's";

/// Loads the page at `url` in the current tab and in `count - 1` new ones,
/// each once the one before holds or shares the stream, and watches each;
/// the tabs' handles, the current tab first, which holds the stream. The
/// last tab stays current.
pub fn open_tabs(browser: &mut Browser, url: &str, count: usize) -> Vec<String> {
    let mut tabs = Vec::new();
    for at in 0..count {
        if at > 0 {
            browser.new_tab();
        }
        tabs.push(browser.tab());
        open_page(browser, url);
        let role = if at == 0 { HOLDS } else { SHARES };
        wait_for_page(browser, role, |page| page.role == role);
    }
    tabs
}

/// Closes each tab of `tabs` but the first, which becomes current.
pub fn close_tabs_but_the_first(browser: &mut Browser, tabs: &[String]) {
    for tab in &tabs[1..] {
        browser.switch_to(tab);
        browser.close_tab();
    }
    browser.switch_to(&tabs[0]);
}

pub fn read_page(browser: &mut Browser) -> Page {
    parse_page(&browser.run_for_string(READ))
}

/// Polls the page every 50 ms until `done` holds, and returns what it
/// showed then; fails after `PAGE_TIMEOUT`, saying what it was waiting for.
pub fn wait_for_page(browser: &mut Browser, what: &str, done: impl Fn(&Page) -> bool) -> Page {
    wait_for_script(browser, READ, what, done)
}

/// Starts a probe `EventSource` on `url` in the current page.
pub fn probe(browser: &mut Browser, url: &str) {
    browser.run(&PROBE.replace("URL", &super::browser::quote(url)));
}

/// Polls the probe as `wait_for_page` polls the page.
pub fn wait_for_probe(
    browser: &mut Browser,
    what: &str,
    done: impl Fn(&Watched) -> bool,
) -> Watched {
    wait_for_script(browser, READ_PROBE, what, |page| done(&page.watched)).watched
}

fn wait_for_script(
    browser: &mut Browser,
    script: &str,
    what: &str,
    done: impl Fn(&Page) -> bool,
) -> Page {
    parse_page(&wait_for_text(browser, what, script, |text| {
        done(&parse_page(text))
    }))
}

/// Runs `script` every 50 ms until the string it returns is `done`.
pub fn wait_for_text(
    browser: &mut Browser,
    what: &str,
    script: &str,
    done: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + PAGE_TIMEOUT;
    loop {
        let text = browser.run_for_string(script);
        if done(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{:?}: never got to {what}: {text:?}",
            browser.engine
        );
        thread::sleep(Duration::from_millis(50));
    }
}

fn parse_page(text: &str) -> Page {
    let mut parts = text.split('|');
    let mut next = || parts.next().unwrap_or_default().to_owned();
    let (state, words, clients, clock) = (next(), next(), next(), next());
    let (stale, ids, states, role) = (next(), next(), next(), next());
    let ids = ids.split(',').filter_map(|id| id.parse().ok()).collect();
    let states = states
        .split(',')
        .filter_map(|change| change.rsplit_once(' '))
        .map(|(state, ms)| (state.to_owned(), ms.parse().unwrap_or_default()))
        .collect();
    Page {
        state,
        words,
        clients,
        clock,
        stale,
        role,
        watched: Watched { ids, states },
    }
}

impl Watched {
    /// Every id is the one before it plus `interval_ms`: no tick missing,
    /// none twice, none out of order.
    pub fn assert_contiguous(&self, interval_ms: u64) {
        for pair in self.ids.windows(2) {
            assert_eq!(
                pair[1],
                pair[0] + interval_ms,
                "ids run on by {interval_ms} ms: {:?}",
                self.ids
            );
        }
    }

    /// The states the page went through, in order.
    pub fn state_names(&self) -> Vec<&str> {
        self.states
            .iter()
            .map(|(state, _)| state.as_str())
            .collect()
    }

    pub fn last_id(&self) -> Option<u64> {
        self.ids.last().copied()
    }

    /// The times at which the state became `state`, in order.
    pub fn times_of(&self, state: &str) -> Vec<u64> {
        let times = self.states.iter().filter(|(name, _)| name == state);
        times.map(|&(_, ms)| ms).collect()
    }
}
