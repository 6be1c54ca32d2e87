//! Organisation calendar: maps instants (Unix seconds, UTC) to local days, ISO
//! weeks and months in one IANA time zone, and back to DST-correct bounds.
//!
//! This module owns every "which period is this moment in" question the
//! engine asks (streaks, challenge windows, per-period caps, windowed
//! leaderboards):
//!
//! * [`Calendar`] turns an instant into a [`Period`] index and an index back
//!   into its `[start, end)` bounds, a label such as `2026-03-29` / `2026-03`,
//!   or a [`jiff::ZonedDateTime`].
//! * [`PeriodCache`] is the hot path: it remembers the bounds of the last
//!   period seen per [`Period`] so that time-ordered instants are answered by
//!   two comparisons, without touching the time zone database.
//! * [`parse_rfc3339`] turns a timestamp with an explicit UTC offset into
//!   Unix seconds.
//!
//! Indexes: day `d` = days since 1970-01-01 in local civil time; week =
//! `floor((d + 3) / 7)` (ISO weeks, Monday first, week 0 starts Monday
//! 1969-12-29); month = `(year - 1970) * 12 + month - 1`. Consecutive periods
//! have consecutive indexes.
//!
//! The time zone database is the one bundled into jiff
//! (`tzdb-bundle-always`), so results never depend on the host.
//!
//! DST rules:
//! * A local day can last 23 or 25 hours; when local midnight falls in a gap
//!   the day starts at the first instant after the gap (jiff's
//!   `start_of_day`), and a day skipped entirely (Pacific/Apia 2011-12-30) has
//!   empty bounds.
//! * Indexes never go backwards in time. A few real zones once fell back
//!   *across* midnight (America/St_Johns 1987-2010 went from 00:01 back to
//!   23:01), which makes the civil date repeat the previous day. Those
//!   repeated minutes keep the later day's index, so every index's instants
//!   form exactly its `[start, end)` bounds.
//! * Instants outside jiff's range (about years -9999..=9999) are clamped to
//!   it; the first and last periods then extend to `i64::MIN` / `i64::MAX`.

use std::error::Error;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use jiff::civil::{Date, Time};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{Timestamp, ZonedDateTime};

const SECS_PER_DAY: i64 = 86_400;

/// 2200-01-01T00:00:00Z. Fall-backs across midnight are precomputed up to
/// here; later ones (only from a zone's yearly POSIX rule) are checked per
/// lookup.
const SCAN_HORIZON: i64 = 7_258_118_400;

/// A calendar period in the organisation's time zone.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Period {
    /// A local civil day, midnight to midnight.
    Day,
    /// An ISO week, Monday 00:00 to the next Monday 00:00.
    Week,
    /// A calendar month.
    Month,
}

impl Period {
    /// Every period, in slot order.
    pub const ALL: [Period; 3] = [Period::Day, Period::Week, Period::Month];

    const fn slot(self) -> usize {
        match self {
            Period::Day => 0,
            Period::Week => 1,
            Period::Month => 2,
        }
    }
}

/// The time zone name given to [`Calendar::new`] is not in the bundled
/// database.
#[derive(Debug)]
pub struct CalendarError {
    time_zone: String,
    source: jiff::Error,
}

impl CalendarError {
    /// The time zone name that was rejected.
    pub fn time_zone(&self) -> &str {
        &self.time_zone
    }
}

impl fmt::Display for CalendarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown time zone {:?}: {}", self.time_zone, self.source)
    }
}

impl Error for CalendarError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&self.source)
    }
}

/// A timestamp given to [`parse_rfc3339`] could not be parsed.
#[derive(Debug)]
pub struct ParseTimeError {
    input: String,
    source: jiff::Error,
}

impl fmt::Display for ParseTimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid RFC 3339 timestamp {:?}: {}", self.input, self.source)
    }
}

impl Error for ParseTimeError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&self.source)
    }
}

/// Parses an RFC 3339 timestamp with an explicit offset (`Z` or `+02:00`)
/// into Unix seconds, truncating fractional seconds toward negative infinity
/// (`1969-12-31T23:59:59.5Z` is `-1`).
///
/// A timestamp without an offset is rejected: it names no instant. jiff's
/// parser accepts the RFC 9557 superset too (a space or lowercase `t` as the
/// separator, a trailing `[Europe/Amsterdam]` annotation, `+0200`).
pub fn parse_rfc3339(s: &str) -> Result<i64, ParseTimeError> {
    if let Some(secs) = parse_canonical(s.as_bytes()) {
        return Ok(secs);
    }
    let ts: Timestamp = s.parse().map_err(|source| ParseTimeError { input: s.to_owned(), source })?;
    // jiff keeps the sub-second part with the sign of the whole timestamp, so
    // `as_second` truncates toward zero; step down for negative fractions.
    let secs = ts.as_second();
    Ok(if ts.subsec_nanosecond() < 0 { secs - 1 } else { secs })
}

thread_local! {
    /// The date (`YYYY-MM-DD`, as bytes) [`parse_canonical`] checked last, and its day number:
    /// moments come in time order, so most share their date with the one before. A memo of a
    /// pure function: it changes what is computed again, never what is answered. The bytes of
    /// a date start with a digit, so the initial zeros match none.
    static LAST_DATE: std::cell::Cell<((u64, u16), i64)> = const { std::cell::Cell::new(((0, 0), 0)) };
}

/// The fast path of [`parse_rfc3339`], for the form nearly every client sends:
/// `YYYY-MM-DDTHH:MM:SS`, an optional `.` and 1 to 9 digits, then `Z` or `±HH:MM`, with a year
/// from 0001 to 9998, no leap second and an offset under 24 hours. `None` for anything else,
/// which jiff then parses (or refuses); where both parse, they agree (a test checks it).
fn parse_canonical(b: &[u8]) -> Option<i64> {
    let digits = |at: usize, n: usize| -> Option<i64> {
        let mut v = 0;
        for &c in b.get(at..at + n)? {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + i64::from(c - b'0');
        }
        Some(v)
    };
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    if !(at(4, b'-') && at(7, b'-') && at(10, b'T') && at(13, b':') && at(16, b':')) {
        return None;
    }
    let date = (u64::from_le_bytes(b[..8].try_into().ok()?), u16::from_le_bytes([b[8], b[9]]));
    let (last, last_days) = LAST_DATE.get();
    let days = if date == last {
        last_days
    } else {
        let (year, month, day) = (digits(0, 4)?, digits(5, 2)?, digits(8, 2)?);
        if !(1..=9998).contains(&year) || !(1..=12).contains(&month) {
            return None;
        }
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
        let month_days = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
        if day < 1 || day > month_days[month as usize - 1] {
            return None;
        }
        let days = days_from_civil(year, month, day);
        LAST_DATE.set((date, days));
        days
    };
    let (hour, minute, second) = (digits(11, 2)?, digits(14, 2)?, digits(17, 2)?);
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut i = 19;
    if at(i, b'.') {
        let fraction = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if !(1..=9).contains(&fraction) {
            return None;
        }
        i += 1 + fraction;
    }
    let offset = match b.get(i)? {
        b'Z' if b.len() == i + 1 => 0,
        sign @ (b'+' | b'-') if b.len() == i + 6 && at(i + 3, b':') => {
            let (h, m) = (digits(i + 1, 2)?, digits(i + 4, 2)?);
            if h > 23 || m > 59 {
                return None;
            }
            let seconds = h * 3600 + m * 60;
            if *sign == b'-' { -seconds } else { seconds }
        }
        _ => return None,
    };
    let local = days * SECS_PER_DAY + hour * 3600 + minute * 60 + second;
    Some(local - offset)
}

/// Instants just after a fall-back transition that crossed local midnight,
/// during which the civil date repeats the previous day. They keep `day`.
#[derive(Copy, Clone, Debug)]
struct FoldWindow {
    start: i64,
    end: i64,
    day: i64,
}

/// Maps instants to periods of one IANA time zone. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Calendar {
    /// Unique per [`Calendar::new`] call (shared by clones), so a
    /// [`PeriodCache`] notices when it is handed a different calendar.
    id: u64,
    name: Arc<str>,
    tz: TimeZone,
    /// Sorted by `start`, non-overlapping in practice; empty for almost
    /// every zone. Covers transitions before `horizon`.
    folds: Arc<[FoldWindow]>,
    horizon: i64,
    /// Day indexes of `Timestamp::MIN` and `Timestamp::MAX`.
    first_day: i64,
    last_day: i64,
}

impl Calendar {
    /// Builds the calendar of an IANA time zone such as `Europe/Amsterdam`.
    ///
    /// Scans the zone's transitions up to 2200 once to find fall-backs
    /// across midnight.
    pub fn new(tz: &str) -> Result<Calendar, CalendarError> {
        Calendar::with_horizon(tz, SCAN_HORIZON)
    }

    fn with_horizon(tz: &str, horizon: i64) -> Result<Calendar, CalendarError> {
        let zone = TimeZone::get(tz).map_err(|source| CalendarError { time_zone: tz.to_owned(), source })?;
        let folds = fold_windows(&zone, horizon);
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let mut calendar = Calendar {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            name: Arc::from(tz),
            tz: zone,
            folds: folds.into(),
            horizon,
            first_day: 0,
            last_day: 0,
        };
        calendar.first_day = calendar.day(Timestamp::MIN.as_second());
        calendar.last_day = calendar.day(Timestamp::MAX.as_second());
        Ok(calendar)
    }

    /// The time zone name this calendar was built from.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The jiff time zone.
    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }

    /// The index of the period containing `unix_secs` in local time.
    pub fn period_index(&self, period: Period, unix_secs: i64) -> i32 {
        let day = self.day(unix_secs);
        to_i32(match period {
            Period::Day => day,
            Period::Week => week_of_day(day),
            Period::Month => month_of_day(day),
        })
    }

    /// `[start, end)` of period `index` in Unix seconds; `end` is the start of
    /// `index + 1`. A day whose local midnight falls in a DST gap starts at
    /// the first instant after the gap.
    pub fn period_bounds(&self, period: Period, index: i32) -> (i64, i64) {
        let index = i64::from(index);
        (self.day_start(first_day(period, index)), self.day_start(first_day(period, index + 1)))
    }

    /// The first instant of period `index`, in this time zone (clamped to
    /// jiff's range for the unbounded first and last periods).
    pub fn period_start(&self, period: Period, index: i32) -> ZonedDateTime {
        let start = self.period_bounds(period, index).0;
        timestamp(start).to_zoned_datetime(self.tz.clone())
    }

    /// The local start date of period `index`: `2026-03-29` for days and
    /// weeks (the Monday), `2026-03` for months.
    pub fn period_label(&self, period: Period, index: i32) -> String {
        let index = i64::from(index);
        match period {
            Period::Day | Period::Week => {
                let (y, m, d) = civil_from_days(first_day(period, index));
                format!("{}-{m:02}-{d:02}", year_label(y))
            }
            Period::Month => {
                let (y, m) = month_from_index(index);
                format!("{}-{m:02}", year_label(y))
            }
        }
    }

    /// The index of the period of `period` containing local date `date` (`YYYY-MM-DD`), or
    /// `None` if it is not such a date.
    pub fn period_of_date(&self, period: Period, date: &str) -> Option<i32> {
        let d: Date = date.parse().ok()?;
        let day = days_from_civil(i64::from(d.year()), i64::from(d.month()), i64::from(d.day()));
        Some(to_i32(match period {
            Period::Day => day,
            Period::Week => week_of_day(day),
            Period::Month => month_of_day(day),
        }))
    }

    /// Local day index of an instant (clamped to jiff's range).
    fn day(&self, unix_secs: i64) -> i64 {
        let ts = timestamp(unix_secs);
        let secs = ts.as_second();
        let local = secs + i64::from(self.tz.to_offset(ts).seconds());
        let day = local.div_euclid(SECS_PER_DAY);
        match self.fold_window(secs) {
            Some(w) if secs < w.end => day.max(w.day),
            _ => day,
        }
    }

    /// The last fall-back across midnight that started at or before `secs`.
    fn fold_window(&self, secs: i64) -> Option<FoldWindow> {
        if secs < self.horizon {
            let after = self.folds.partition_point(|w| w.start <= secs);
            return after.checked_sub(1).map(|i| self.folds[i]);
        }
        let transition = self.tz.preceding(timestamp(secs.saturating_add(1))).next()?;
        let at = transition.timestamp();
        let before = self.tz.to_offset(timestamp(at.as_second() - 1));
        fold_window(at.as_second(), i64::from(before.seconds()), i64::from(transition.offset().seconds()))
    }

    /// First instant whose day index is at least `day`.
    fn day_start(&self, day: i64) -> i64 {
        if day <= self.first_day {
            return i64::MIN;
        }
        if day > self.last_day {
            return i64::MAX;
        }
        let (y, m, d) = civil_from_days(day);
        let midnight = match (i16::try_from(y), i8::try_from(m), i8::try_from(d)) {
            (Ok(y), Ok(m), Ok(d)) => Date::new(y, m, d).map(|date| date.to_datetime(Time::MIN)),
            _ => return i64::MAX,
        };
        let Ok(midnight) = midnight else {
            return i64::MAX;
        };
        let local = day * SECS_PER_DAY;
        match self.tz.to_ambiguous_timestamp(midnight).offset() {
            AmbiguousOffset::Unambiguous { offset } => local - i64::from(offset.seconds()),
            // Midnight happens twice: the day starts at the first one.
            AmbiguousOffset::Fold { before, .. } => local - i64::from(before.seconds()),
            // Midnight is skipped: the day starts at the transition. jiff's
            // `start_of_day` gives `local - before`, which is the transition
            // itself whenever the gap begins exactly at midnight (every such
            // gap since 1970); earlier gaps began before midnight.
            AmbiguousOffset::Gap { before, .. } => {
                let compatible = local - i64::from(before.seconds());
                self.tz
                    .preceding(timestamp(compatible.saturating_add(1)))
                    .next()
                    .map(|t| t.timestamp().as_second())
                    .filter(|&t| t <= compatible)
                    .unwrap_or(compatible)
            }
        }
    }
}

/// Fast, time-ordered lookups: remembers the `[start, end)` bounds of the
/// last period returned per [`Period`] and answers instants inside them
/// without the time zone database. Always agrees with
/// [`Calendar::period_index`]; handing it a different calendar empties it.
#[derive(Clone, Debug, Default)]
pub struct PeriodCache {
    /// `Calendar::id` the slots belong to; 0 (no calendar) when empty.
    calendar: u64,
    slots: [Slot; 3],
}

/// An empty slot has `start == end` and never matches.
#[derive(Copy, Clone, Debug, Default)]
struct Slot {
    start: i64,
    end: i64,
    index: i32,
}

impl PeriodCache {
    /// An empty cache.
    pub fn new() -> PeriodCache {
        PeriodCache::default()
    }

    /// Same as `calendar.period_index(period, unix_secs)`, cached.
    #[inline]
    pub fn index(&mut self, calendar: &Calendar, period: Period, unix_secs: i64) -> i32 {
        let slot = self.slots[period.slot()];
        if self.calendar == calendar.id && slot.start <= unix_secs && unix_secs < slot.end {
            slot.index
        } else {
            self.refill(calendar, period, unix_secs)
        }
    }

    #[inline(never)]
    fn refill(&mut self, calendar: &Calendar, period: Period, unix_secs: i64) -> i32 {
        if self.calendar != calendar.id {
            *self = PeriodCache { calendar: calendar.id, slots: Default::default() };
        }
        let index = calendar.period_index(period, unix_secs);
        let (start, end) = calendar.period_bounds(period, index);
        self.slots[period.slot()] = Slot { start, end, index };
        index
    }
}

/// The fall-back transitions before `horizon` after which the local date
/// goes back a day.
fn fold_windows(tz: &TimeZone, horizon: i64) -> Vec<FoldWindow> {
    let mut windows = Vec::new();
    let mut before = i64::from(tz.to_offset(Timestamp::MIN).seconds());
    for transition in tz.following(Timestamp::MIN) {
        let at = transition.timestamp().as_second();
        if at >= horizon {
            break;
        }
        let after = i64::from(transition.offset().seconds());
        windows.extend(fold_window(at, before, after));
        before = after;
    }
    windows
}

/// If the transition at `at` from offset `before` to `after` goes back
/// across local midnight, the instants after it whose civil date repeats the
/// previous day.
fn fold_window(at: i64, before: i64, after: i64) -> Option<FoldWindow> {
    // The last local second before the transition, and its day.
    let day = (at - 1 + before).div_euclid(SECS_PER_DAY);
    // When the new offset reaches that day's midnight again.
    let end = day * SECS_PER_DAY - after;
    (end > at).then_some(FoldWindow { start: at, end, day })
}

/// `unix_secs` as RFC 3339 in UTC (`2026-12-07T10:00:00Z`), clamped to jiff's range.
pub fn format_rfc3339(unix_secs: i64) -> String {
    timestamp(unix_secs).to_string()
}

/// `unix_secs` as a jiff timestamp, clamped to jiff's range.
pub(crate) fn timestamp(unix_secs: i64) -> Timestamp {
    Timestamp::from_second(unix_secs).unwrap_or(if unix_secs < 0 { Timestamp::MIN } else { Timestamp::MAX })
}

fn to_i32(x: i64) -> i32 {
    i32::try_from(x).unwrap_or(if x < 0 { i32::MIN } else { i32::MAX })
}

fn week_of_day(day: i64) -> i64 {
    (day + 3).div_euclid(7)
}

fn month_of_day(day: i64) -> i64 {
    let (y, m, _) = civil_from_days(day);
    (y - 1970) * 12 + m - 1
}

fn month_from_index(index: i64) -> (i64, i64) {
    (1970 + index.div_euclid(12), index.rem_euclid(12) + 1)
}

/// The day index of the first day of period `index`.
fn first_day(period: Period, index: i64) -> i64 {
    match period {
        Period::Day => index,
        Period::Week => index * 7 - 3,
        Period::Month => {
            let (y, m) = month_from_index(index);
            days_from_civil(y, m, 1)
        }
    }
}

fn year_label(y: i64) -> String {
    if (0..=9999).contains(&y) { format!("{y:04}") } else { format!("{y:+05}") }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian `(year, month, day)` of a day index (Howard
/// Hinnant's `civil_from_days`).
pub(crate) fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ZONES: [&str; 8] = [
        "Europe/Amsterdam",
        "America/New_York",
        "Asia/Kolkata",
        "UTC",
        "Australia/Lord_Howe",
        "America/Sao_Paulo",
        "America/St_Johns",
        "Pacific/Apia",
    ];

    fn cal(tz: &str) -> Calendar {
        Calendar::new(tz).expect("time zone in bundled database")
    }

    fn at(s: &str) -> i64 {
        parse_rfc3339(s).expect("valid test timestamp")
    }

    fn hours(bounds: (i64, i64)) -> i64 {
        (bounds.1 - bounds.0) / 3600
    }

    fn day_of(c: &Calendar, s: &str) -> i32 {
        c.period_index(Period::Day, at(s))
    }

    #[test]
    fn amsterdam_spring_forward_day_lasts_23_hours() {
        let c = cal("Europe/Amsterdam");
        let day = day_of(&c, "2026-03-29T12:00:00+02:00");
        assert_eq!(c.period_label(Period::Day, day), "2026-03-29");
        let bounds = c.period_bounds(Period::Day, day);
        assert_eq!(bounds.0, at("2026-03-29T00:00:00+01:00"));
        assert_eq!(bounds.1, at("2026-03-30T00:00:00+02:00"));
        assert_eq!(hours(bounds), 23);
    }

    #[test]
    fn amsterdam_fall_back_day_lasts_25_hours() {
        let c = cal("Europe/Amsterdam");
        let day = day_of(&c, "2026-10-25T02:30:00+01:00");
        assert_eq!(c.period_label(Period::Day, day), "2026-10-25");
        let bounds = c.period_bounds(Period::Day, day);
        assert_eq!(bounds.0, at("2026-10-25T00:00:00+02:00"));
        assert_eq!(bounds.1, at("2026-10-26T00:00:00+01:00"));
        assert_eq!(hours(bounds), 25);
        // Both 02:30s of the repeated hour are on the 25th.
        assert_eq!(day_of(&c, "2026-10-25T02:30:00+02:00"), day);
    }

    #[test]
    fn amsterdam_late_evening_and_just_after_midnight_are_consecutive_days() {
        let c = cal("Europe/Amsterdam");
        let evening = day_of(&c, "2026-03-28T23:30:00+01:00");
        let night = day_of(&c, "2026-03-29T00:30:00+01:00");
        assert_eq!(night, evening + 1);
        assert_eq!(c.period_label(Period::Day, evening), "2026-03-28");
        // 23:30 local is 22:30 UTC: still the 28th although UTC is too.
        assert_eq!(day_of(&c, "2026-10-24T23:59:59+02:00") + 1, day_of(&c, "2026-10-25T00:00:00+02:00"));
    }

    #[test]
    fn amsterdam_weeks_and_months_absorb_dst_changes() {
        let c = cal("Europe/Amsterdam");
        let t = at("2026-03-29T12:00:00+02:00");
        let week = c.period_index(Period::Week, t);
        assert_eq!(c.period_label(Period::Week, week), "2026-03-23");
        assert_eq!(hours(c.period_bounds(Period::Week, week)), 7 * 24 - 1);
        let march = c.period_index(Period::Month, t);
        assert_eq!(march, (2026 - 1970) * 12 + 2);
        assert_eq!(c.period_label(Period::Month, march), "2026-03");
        assert_eq!(hours(c.period_bounds(Period::Month, march)), 31 * 24 - 1);
        let october = c.period_index(Period::Month, at("2026-10-25T12:00:00+01:00"));
        assert_eq!(october, march + 7);
        assert_eq!(hours(c.period_bounds(Period::Month, october)), 31 * 24 + 1);
        let start = c.period_start(Period::Month, october);
        assert_eq!(start.to_string(), "2026-10-01T00:00:00+02:00[Europe/Amsterdam]");
    }

    #[test]
    fn new_york_days_follow_eastern_time_across_dst() {
        let c = cal("America/New_York");
        let spring = day_of(&c, "2026-03-08T12:00:00-04:00");
        assert_eq!(c.period_label(Period::Day, spring), "2026-03-08");
        assert_eq!(hours(c.period_bounds(Period::Day, spring)), 23);
        let fall = day_of(&c, "2026-11-01T12:00:00-05:00");
        assert_eq!(hours(c.period_bounds(Period::Day, fall)), 25);
        // 03:00 UTC on the 9th is still the 8th in New York.
        assert_eq!(day_of(&c, "2026-03-09T03:00:00Z"), spring);
        assert_eq!(day_of(&c, "2026-03-09T04:00:00Z"), spring + 1);
    }

    #[test]
    fn kolkata_days_turn_at_half_past_six_utc() {
        let c = cal("Asia/Kolkata");
        let before = day_of(&c, "2026-06-14T18:29:59Z");
        let after = day_of(&c, "2026-06-14T18:30:00Z");
        assert_eq!(after, before + 1);
        assert_eq!(c.period_label(Period::Day, after), "2026-06-15");
        assert_eq!(c.period_bounds(Period::Day, after), (at("2026-06-14T18:30:00Z"), at("2026-06-15T18:30:00Z")));
    }

    #[test]
    fn utc_day_index_is_days_since_epoch_including_before_1970() {
        let c = cal("UTC");
        for t in [0, 86_399, 86_400, -1, -86_400, -86_401, 1_774_747_800] {
            assert_eq!(i64::from(c.period_index(Period::Day, t)), t.div_euclid(86_400));
        }
        // 1969-12-31 is a Wednesday in ISO week 0, which starts 1969-12-29.
        assert_eq!(c.period_index(Period::Week, -1), 0);
        assert_eq!(c.period_label(Period::Week, 0), "1969-12-29");
        assert_eq!(c.period_index(Period::Week, -3 * 86_400 - 1), -1);
        assert_eq!(c.period_index(Period::Month, -1), -1);
        assert_eq!(c.period_label(Period::Month, -1), "1969-12");
        assert_eq!(c.period_bounds(Period::Day, 0), (0, 86_400));
    }

    #[test]
    fn week_turns_between_sunday_2359_and_monday_0000_local() {
        for (tz, sunday, monday) in [
            ("Europe/Amsterdam", "2026-03-29T23:59:59+02:00", "2026-03-30T00:00:00+02:00"),
            ("America/New_York", "2026-11-01T23:59:59-05:00", "2026-11-02T00:00:00-05:00"),
            ("Asia/Kolkata", "2026-01-04T23:59:59+05:30", "2026-01-05T00:00:00+05:30"),
        ] {
            let c = cal(tz);
            let a = c.period_index(Period::Week, at(sunday));
            let b = c.period_index(Period::Week, at(monday));
            assert_eq!(b, a + 1, "{tz}");
            assert_eq!(c.period_bounds(Period::Week, b).0, at(monday), "{tz}");
            assert_eq!(&c.period_label(Period::Week, b), &monday[..10], "{tz}");
        }
    }

    #[test]
    fn month_ends_including_leap_february() {
        let c = cal("Europe/Amsterdam");
        let feb = c.period_index(Period::Month, at("2028-02-29T23:59:59+01:00"));
        let mar = c.period_index(Period::Month, at("2028-03-01T00:00:00+01:00"));
        assert_eq!(mar, feb + 1);
        assert_eq!(c.period_label(Period::Month, feb), "2028-02");
        assert_eq!(hours(c.period_bounds(Period::Month, feb)), 29 * 24);
        let feb_2026 = c.period_index(Period::Month, at("2026-02-15T12:00:00+01:00"));
        assert_eq!(hours(c.period_bounds(Period::Month, feb_2026)), 28 * 24);
        let dec = c.period_index(Period::Month, at("2026-12-31T23:59:59+01:00"));
        let jan = c.period_index(Period::Month, at("2027-01-01T00:00:00+01:00"));
        assert_eq!(jan, dec + 1);
        assert_eq!(c.period_label(Period::Month, jan), "2027-01");
        assert_eq!(c.period_bounds(Period::Month, dec).1, at("2027-01-01T00:00:00+01:00"));
    }

    #[test]
    fn day_whose_midnight_is_skipped_starts_after_the_gap() {
        // Sao Paulo jumped from 00:00 to 01:00 on 2015-10-18.
        let c = cal("America/Sao_Paulo");
        let day = day_of(&c, "2015-10-18T12:00:00-02:00");
        let start = c.period_start(Period::Day, day);
        assert_eq!(start.to_string(), "2015-10-18T01:00:00-02:00[America/Sao_Paulo]");
        let jiff_start = start.start_of_day().expect("in range");
        assert_eq!(jiff_start.timestamp(), start.timestamp());
        assert_eq!(hours(c.period_bounds(Period::Day, day)), 23);
    }

    #[test]
    fn day_whose_midnight_falls_inside_a_gap_starts_at_the_transition() {
        // Toronto jumped from 23:30 EST to 00:30 EDT on 1919-03-31: the 31st
        // begins at 00:30, not at 01:00 as jiff's start_of_day says.
        let c = cal("America/Toronto");
        let t = at("1919-03-31T00:45:00-04:00");
        let day = c.period_index(Period::Day, t);
        assert_eq!(c.period_label(Period::Day, day), "1919-03-31");
        let (start, _) = c.period_bounds(Period::Day, day);
        assert_eq!(start, at("1919-03-31T00:30:00-04:00"));
        let jiff_start = timestamp(t).to_zoned_datetime(c.time_zone().clone()).start_of_day().expect("in range");
        assert_eq!(jiff_start.timestamp().as_second(), at("1919-03-31T01:00:00-04:00"));
        assert_eq!(day_of(&c, "1919-03-30T23:29:59-05:00"), day - 1);
    }

    #[test]
    fn day_skipped_entirely_has_empty_bounds() {
        // Samoa skipped 2011-12-30 when it crossed the date line.
        let c = cal("Pacific/Apia");
        let thursday = day_of(&c, "2011-12-29T23:59:59-10:00");
        let saturday = day_of(&c, "2011-12-31T00:00:00+14:00");
        assert_eq!(saturday, thursday + 2);
        let (start, end) = c.period_bounds(Period::Day, thursday + 1);
        assert_eq!(start, end);
        assert_eq!(start, at("2011-12-31T00:00:00+14:00"));
    }

    #[test]
    fn index_never_goes_back_when_a_fall_back_crosses_midnight() {
        // St. John's fell back from 00:01 NDT to 23:01 NST on 2006-10-29.
        let c = cal("America/St_Johns");
        let sunday = day_of(&c, "2006-10-29T00:00:30-02:30");
        assert_eq!(c.period_label(Period::Day, sunday), "2006-10-29");
        // Civil time now reads Saturday 23:30 again; the index stays Sunday.
        let repeated = day_of(&c, "2006-10-28T23:30:00-03:30");
        assert_eq!(repeated, sunday);
        let (start, end) = c.period_bounds(Period::Day, sunday);
        assert_eq!(start, at("2006-10-29T00:00:00-02:30"));
        assert_eq!(end, at("2006-10-30T00:00:00-03:30"));
        assert_eq!(day_of(&c, "2006-10-28T23:59:59-02:30"), sunday - 1);
        let lazy = Calendar::with_horizon("America/St_Johns", i64::MIN).expect("zone");
        assert_eq!(day_of(&lazy, "2006-10-28T23:30:00-03:30"), sunday);
    }

    #[test]
    fn extreme_instants_are_clamped_not_panicking() {
        let c = cal("Europe/Amsterdam");
        for period in Period::ALL {
            let lo = c.period_index(period, i64::MIN);
            let hi = c.period_index(period, i64::MAX);
            assert!(lo < hi);
            assert_eq!(c.period_bounds(period, lo).0, i64::MIN);
            assert_eq!(c.period_bounds(period, hi).1, i64::MAX);
            assert_eq!(c.period_bounds(period, i32::MAX), (i64::MAX, i64::MAX));
            assert_eq!(c.period_bounds(period, i32::MIN), (i64::MIN, i64::MIN));
            let mut cache = PeriodCache::new();
            assert_eq!(cache.index(&c, period, i64::MIN), lo);
            assert_eq!(cache.index(&c, period, i64::MAX), hi);
            let _ = c.period_start(period, i32::MIN);
            let _ = c.period_label(period, i32::MIN);
        }
    }

    #[test]
    fn cache_handed_another_calendar_forgets_the_old_bounds() {
        let amsterdam = cal("Europe/Amsterdam");
        let kolkata = cal("Asia/Kolkata");
        let t = at("2026-06-14T20:00:00Z"); // 22:00 in Amsterdam, 01:30 next day in Kolkata
        let mut cache = PeriodCache::new();
        let a = cache.index(&amsterdam, Period::Day, t);
        let k = cache.index(&kolkata, Period::Day, t);
        assert_eq!(k, a + 1);
        assert_eq!(k, kolkata.period_index(Period::Day, t));
        assert_eq!(cache.index(&amsterdam.clone(), Period::Day, t), a);
    }

    #[test]
    fn unknown_time_zone_error_names_it() {
        let err = Calendar::new("Mars/Olympus_Mons").expect_err("not a zone");
        assert_eq!(err.time_zone(), "Mars/Olympus_Mons");
        assert!(err.to_string().contains("Mars/Olympus_Mons"), "{err}");
        assert!(err.source().is_some());
    }

    #[test]
    fn rfc3339_accepts_z_and_numeric_offsets() {
        assert_eq!(at("2026-03-29T01:00:00Z"), 1_774_746_000);
        assert_eq!(at("2026-03-29T03:00:00+02:00"), 1_774_746_000);
        assert_eq!(at("2026-03-28T20:30:00-04:30"), 1_774_746_000);
    }

    #[test]
    fn rfc3339_truncates_fractions_toward_negative_infinity() {
        assert_eq!(at("2026-03-29T01:00:00.999Z"), 1_774_746_000);
        assert_eq!(at("1970-01-01T00:00:00.5Z"), 0);
        assert_eq!(at("1969-12-31T23:59:59.5Z"), -1);
        assert_eq!(at("1969-12-31T23:59:59Z"), -1);
    }

    #[test]
    fn rfc3339_rejects_missing_offset_and_says_so() {
        let err = parse_rfc3339("2026-03-29T01:00:00").expect_err("no offset");
        let msg = err.to_string();
        assert!(msg.contains("2026-03-29T01:00:00") && msg.contains("offset"), "{msg}");
        let err = parse_rfc3339("2026-02-30T00:00:00Z").expect_err("no such day");
        assert!(err.to_string().contains("day"), "{err}");
        assert!(parse_rfc3339("yesterday").is_err());
        assert!(parse_rfc3339("").is_err());
    }

    #[test]
    fn civil_day_arithmetic_round_trips() {
        for day in (-4_000_000..4_000_000).step_by(997) {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(days_from_civil(2028, 2, 29) + 1), (2028, 3, 1));
    }

    fn zone() -> impl Strategy<Value = &'static str> {
        proptest::sample::select(ZONES.to_vec())
    }

    /// Mostly 1900-2100, sometimes anywhere.
    fn instant() -> impl Strategy<Value = i64> {
        prop_oneof![
            9 => -2_208_988_800_i64..4_102_444_800,
            1 => any::<i64>(),
        ]
    }

    fn period() -> impl Strategy<Value = Period> {
        proptest::sample::select(Period::ALL.to_vec())
    }

    /// What jiff makes of `s`, the reference the fast path must agree with.
    fn jiff_secs(s: &str) -> Option<i64> {
        let ts: Timestamp = s.parse().ok()?;
        Some(if ts.subsec_nanosecond() < 0 { ts.as_second() - 1 } else { ts.as_second() })
    }

    #[test]
    fn canonical_timestamps_parse_like_jiff_and_others_fall_back() {
        for s in [
            "2026-03-02T10:00:00Z",
            "2026-03-02T10:00:00.123456789+01:00",
            "1969-12-31T23:59:59.5Z",
            "2000-02-29T00:00:00-05:30",
            "0001-01-01T00:00:00+23:59",
            "9998-12-31T23:59:59-23:59",
        ] {
            assert_eq!(parse_canonical(s.as_bytes()), jiff_secs(s), "{s}");
            assert!(parse_canonical(s.as_bytes()).is_some(), "{s}");
        }
        // Not the canonical form: left to jiff, which accepts some and refuses others.
        for s in [
            "2026-03-02 10:00:00Z",
            "2026-03-02t10:00:00Z",
            "2026-03-02T10:00:00+0100",
            "2026-03-02T10:00:60Z",
            "2026-02-29T10:00:00Z",
            "2026-03-02T10:00:00",
            "2026-03-02T10:00:00.Z",
            "2026-03-02T10:00:00.1234567890Z",
            "2026-03-02T10:00:00Z[Europe/Amsterdam]",
            "2026-13-02T10:00:00Z",
            "+2026-03-02T10:00:00Z",
        ] {
            assert_eq!(parse_canonical(s.as_bytes()), None, "{s}");
        }
        assert_eq!(parse_rfc3339("2026-03-02 10:00:00Z").ok(), jiff_secs("2026-03-02 10:00:00Z"));
        assert!(parse_rfc3339("2026-02-29T10:00:00Z").is_err());
    }

    proptest! {
        #[test]
        fn fast_path_agrees_with_jiff_wherever_it_answers(
            y in 0i64..10_000, mo in 0i64..14, d in 0i64..33, h in 0i64..26, mi in 0i64..62, se in 0i64..62,
            frac in proptest::option::of(0u32..1_000_000_000), zone in proptest::option::of((any::<bool>(), 0i64..26, 0i64..62)),
        ) {
            let mut s = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{se:02}");
            if let Some(f) = frac {
                s += &format!(".{f}");
            }
            match zone {
                None => s.push('Z'),
                Some((neg, oh, om)) => s += &format!("{}{oh:02}:{om:02}", if neg { '-' } else { '+' }),
            }
            if let Some(fast) = parse_canonical(s.as_bytes()) {
                prop_assert_eq!(Some(fast), jiff_secs(&s), "{}", s);
            }
        }

        #[test]
        fn fast_path_agrees_with_jiff_over_runs_of_the_same_date(
            dates in proptest::collection::vec((1990i64..2040, 0i64..14, 0i64..33), 1..6),
            times in proptest::collection::vec((0usize..6, 0i64..26, 0i64..62, 0i64..62, any::<bool>()), 1..40),
        ) {
            // Consecutive moments of one date, others in between, invalid dates among them: the
            // memo of the last date must answer exactly what a fresh parse would.
            for (date, h, mi, se, zulu) in times {
                let (y, mo, d) = dates[date % dates.len()];
                let zone = if zulu { "Z" } else { "+01:00" };
                let s = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{se:02}{zone}");
                let fast = parse_canonical(s.as_bytes());
                prop_assert!(fast.is_none() || fast == jiff_secs(&s), "{}: {:?} against {:?}", s, fast, jiff_secs(&s));
            }
        }

        #[test]
        fn cached_index_equals_uncached_for_time_ordered_instants(
            tz in zone(),
            start in -2_208_988_800_i64..4_102_444_800,
            steps in proptest::collection::vec(0_i64..200_000, 1..400),
        ) {
            let c = cal(tz);
            let mut cache = PeriodCache::new();
            let mut t = start;
            for step in steps {
                t += step;
                for p in Period::ALL {
                    prop_assert_eq!(cache.index(&c, p, t), c.period_index(p, t), "{} {:?} {}", tz, p, t);
                }
            }
        }

        #[test]
        fn cached_index_equals_uncached_for_unordered_instants(
            tz in zone(),
            base in -2_208_988_800_i64..4_102_444_800,
            offsets in proptest::collection::vec(-5_000_000_i64..5_000_000, 1..300),
            wild in proptest::collection::vec(instant(), 0..20),
        ) {
            let c = cal(tz);
            let mut cache = PeriodCache::new();
            for t in offsets.iter().map(|o| base + o).chain(wild) {
                for p in Period::ALL {
                    prop_assert_eq!(cache.index(&c, p, t), c.period_index(p, t), "{} {:?} {}", tz, p, t);
                }
            }
        }

        #[test]
        fn bounds_contain_the_instant_and_tile_without_gaps(
            tz in zone(), p in period(), t in instant(),
        ) {
            let c = cal(tz);
            let i = c.period_index(p, t);
            let (start, end) = c.period_bounds(p, i);
            prop_assert!(start <= t && (t < end || end == i64::MAX), "{} {:?} {} [{}, {})", tz, p, t, start, end);
            if i < i32::MAX {
                prop_assert_eq!(c.period_bounds(p, i + 1).0, end);
            }
            if start != i64::MIN {
                prop_assert_eq!(c.period_index(p, start), i);
                prop_assert_eq!(c.period_index(p, start - 1), i - 1);
            }
        }

        #[test]
        fn bounds_and_cache_hold_around_dst_transitions(
            tz in zone(),
            year_start in -2_208_988_800_i64..4_102_444_800,
            nth in 0_usize..4,
            delta in -7_200_i64..7_200,
        ) {
            let c = cal(tz);
            let transition = c.time_zone().following(timestamp(year_start)).nth(nth);
            let at = transition.map_or(year_start, |t| t.timestamp().as_second());
            let mut cache = PeriodCache::new();
            for t in [at + delta - 60, at + delta, at + delta + 60, at - 1, at] {
                for p in Period::ALL {
                    let i = c.period_index(p, t);
                    prop_assert_eq!(cache.index(&c, p, t), i);
                    let (start, end) = c.period_bounds(p, i);
                    prop_assert!(start <= t && t < end, "{} {:?} {} [{}, {})", tz, p, t, start, end);
                    prop_assert_eq!(c.period_bounds(p, i + 1).0, end);
                }
            }
        }

        #[test]
        fn lookups_past_the_scan_horizon_match_precomputed_ones(
            tz in zone(), p in period(), t in instant(),
        ) {
            let lazy = Calendar::with_horizon(tz, i64::MIN).expect("zone");
            let c = cal(tz);
            prop_assert_eq!(lazy.period_index(p, t), c.period_index(p, t));
        }

        #[test]
        fn index_is_monotone_in_time(tz in zone(), p in period(), a in instant(), b in instant()) {
            let c = cal(tz);
            let (a, b) = (a.min(b), a.max(b));
            prop_assert!(c.period_index(p, a) <= c.period_index(p, b));
        }

        #[test]
        fn labels_match_jiffs_local_date(
            tz in proptest::sample::select(vec!["Europe/Amsterdam", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]),
            t in -2_208_988_800_i64..4_102_444_800,
        ) {
            let c = cal(tz);
            let local = timestamp(t).to_zoned_datetime(c.time_zone().clone());
            let date = local.date().to_string();
            prop_assert_eq!(c.period_label(Period::Day, c.period_index(Period::Day, t)), date.clone());
            prop_assert_eq!(c.period_label(Period::Month, c.period_index(Period::Month, t)), date[..7].to_string());
            let monday = local.date().iso_week_date().first_of_week().expect("in range").date().to_string();
            prop_assert_eq!(c.period_label(Period::Week, c.period_index(Period::Week, t)), monday);
        }
    }
}
