//! Lesson 2a: the server's time. The system clock is read at every use, so a step (NTP on a board
//! with no battery-backed clock, `date -s`, a suspend) shows at once, and `step_note` tells a
//! stream it happened. Times are written as RFC 3339 (5.6) in `data` and as RFC 9110's
//! IMF-fixdate (5.6.7) in `Date`. Random draws keep streams from acting all at once.

use std::fmt::Write as _;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::time::{Duration, Instant, UNIX_EPOCH};

use chrono::{DateTime, Datelike, Utc};

/// Wall and monotonic clock more than this apart since the last wake: a step (NTP slews less).
const LEAST_STEP: Duration = Duration::from_secs(1);

/// The wall clock, read at every use (cheap: Linux answers it without a system call).
pub fn now() -> Duration {
    UNIX_EPOCH.elapsed().unwrap_or_default()
}

pub fn millis(time: Duration) -> u64 {
    u64::try_from(time.as_millis()).unwrap_or(u64::MAX)
}

/// A Unix time in ms, to the second (`time()` shows `15:00:00`), by chrono (only here).
fn calendar(unix_ms: u64) -> DateTime<Utc> {
    let seconds = i64::try_from(unix_ms / 1000).unwrap_or_default();
    DateTime::from_timestamp(seconds, 0).unwrap_or_default()
}

/// RFC 3339 in UTC: `2026-11-25T15:00:00Z`, or `2026-11-25T15:00:00.250Z`.
pub fn format_rfc3339(text: &mut String, unix_ms: u64, with_millis: bool) {
    let t = calendar(unix_ms);
    let (year, month, day) = (t.year(), t.month(), t.day());
    let _ = write!(text, "{year:04}-{month:02}-{day:02}T{}", t.time());
    if with_millis {
        let _ = write!(text, ".{:03}", unix_ms % 1000);
    }
    text.push('Z');
}

/// The HTTP date (RFC 9110 5.6.7, "IMF-fixdate") for `Date`: `Wed, 25 Nov 2026 15:00:00 GMT`.
pub fn format_http_date(unix_ms: u64) -> String {
    let t = calendar(unix_ms);
    let months = "JanFebMarAprMayJunJulAugSepOctNovDec";
    let at = t.month0() as usize * 3;
    let month = months.get(at..at + 3).unwrap_or_default();
    let (weekday, day, year, time) = (t.weekday(), t.day(), t.year(), t.time());
    format!("{weekday}, {day:02} {month} {year:04} {time} GMT")
}

/// A random number below `bound` (or 0): fresh hash keys, fine for load, not secrets.
pub fn random_below(bound: u64) -> u64 {
    RandomState::new().build_hasher().finish() % bound.max(1)
}

/// A stream's own draw up to 1.5 × `ms` (`retry:`, age): not all at once.
pub fn jitter(ms: u64) -> u64 {
    ms + random_below(ms / 2 + 1)
}

/// How far the wall clock moved beyond what the monotonic clock counted since the last wake, as a
/// comment, when over `LEAST_STEP`. A late wake moves both alike; a suspend, only the wall clock.
pub fn step_note(was: (Duration, Instant), wall: Duration, mono: Instant) -> Option<String> {
    let expected = was.0.saturating_add(mono.saturating_duration_since(was.1));
    let size = wall.abs_diff(expected);
    let sign = if wall < expected { '-' } else { '+' };
    // Tenths of a second from whole ms: float formatting adds 16 KB to the binary.
    let tenths = (size.as_millis() + 50) / 100;
    let (secs, tenth) = (tenths / 10, tenths % 10);
    (size > LEAST_STEP).then(|| format!("the server's clock stepped by {sign}{secs}.{tenth} s"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_written_as_rfc3339_and_as_http_dates() {
        let mut text = String::new();
        format_rfc3339(&mut text, 1_795_618_800_250, false);
        assert_eq!(text, "2026-11-25T15:00:00Z");
        text.clear();
        format_rfc3339(&mut text, 1_795_618_800_250, true);
        assert_eq!(text, "2026-11-25T15:00:00.250Z");
        let date = format_http_date(1_795_618_800_250);
        assert_eq!(date, "Wed, 25 Nov 2026 15:00:00 GMT");
        assert_eq!(format_http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    }

    #[test]
    fn a_step_of_the_wall_clock_is_told_apart_from_a_late_wake() {
        let (wall, mono) = (Duration::from_secs(1_000_000), Instant::now());
        let later = mono + Duration::from_secs(5);
        let late_wake = wall + Duration::from_secs(5);
        assert_eq!(step_note((wall, mono), late_wake, later), None);
        let small = wall + Duration::from_millis(5900);
        assert_eq!(step_note((wall, mono), small, later), None, "0.9 s: slewed");
        let ahead = wall + Duration::from_millis(3_604_950);
        let said = step_note((wall, mono), ahead, later);
        assert_eq!(
            said.as_deref(),
            Some("the server's clock stepped by +3600.0 s")
        );
        let back = wall.saturating_sub(Duration::from_millis(7_194_970));
        let said = step_note((wall, mono), back, later);
        assert_eq!(
            said.as_deref(),
            Some("the server's clock stepped by -7200.0 s")
        );
    }

    #[test]
    fn retry_is_spread_over_half_again_the_configured_time() {
        let draws: Vec<u64> = (0..200).map(|_| jitter(3000)).collect();
        assert!(draws.iter().all(|retry| (3000..=4500).contains(retry)));
        let distinct: std::collections::BTreeSet<_> = draws.iter().collect();
        assert!(distinct.len() > 100, "spread, not one value: {distinct:?}");
        assert_eq!(jitter(0), 0);
    }
}
