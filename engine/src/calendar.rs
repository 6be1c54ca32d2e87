//! STAND-IN, replaced by the calendar helper's module.
use jiff::{Timestamp, tz::TimeZone};
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Period {
    Day,
    Week,
    Month,
}
#[derive(Clone, Debug)]
pub struct Calendar {
    tz: TimeZone,
}
#[derive(Debug)]
pub struct CalendarError(String);
impl std::fmt::Display for CalendarError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for CalendarError {}
impl Calendar {
    pub fn new(tz: &str) -> Result<Calendar, CalendarError> {
        TimeZone::get(tz).map(|tz| Calendar { tz }).map_err(|e| CalendarError(format!("unknown time zone {tz:?}: {e}")))
    }
    pub fn period_index(&self, p: Period, secs: i64) -> i32 {
        let z = self.tz.to_datetime(Timestamp::from_second(secs).unwrap_or(Timestamp::UNIX_EPOCH));
        let d = z.date();
        let days = (d - jiff::civil::date(1970, 1, 1)).get_days();
        match p {
            Period::Day => days,
            Period::Week => (days + 3).div_euclid(7),
            Period::Month => (i32::from(d.year()) - 1970) * 12 + i32::from(d.month()) - 1,
        }
    }
    pub fn period_label(&self, p: Period, i: i32) -> String {
        format!("{p:?}{i}")
    }
}
#[derive(Debug, Default, Clone)]
pub struct PeriodCache;
impl PeriodCache {
    pub fn index(&mut self, c: &Calendar, p: Period, secs: i64) -> i32 {
        c.period_index(p, secs)
    }
}
#[derive(Debug)]
pub struct ParseTimeError(String);
impl std::fmt::Display for ParseTimeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
pub fn parse_rfc3339(s: &str) -> Result<i64, ParseTimeError> {
    s.parse::<Timestamp>().map(|t| t.as_second()).map_err(|e| ParseTimeError(e.to_string()))
}
