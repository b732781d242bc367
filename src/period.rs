//! ISO 8601 durations in the calendar units that retention promises use: `P30D`, `P3M`, `P1Y`,
//! `P2W`, or combinations such as `P1Y6M`. Times of day (`PT12H`) are refused: retention is
//! counted in days.

use std::fmt;

use chrono::{DateTime, Utc};

/// A parsed duration of years, months, weeks and days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub years: u32,
    pub months: u32,
    pub weeks: u32,
    pub days: u32,
}

impl std::str::FromStr for Period {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || format!("`{s}` is not an ISO 8601 duration such as P30D, P3M or P1Y");
        let mut rest = s.strip_prefix('P').ok_or_else(err)?;
        if rest.is_empty() || rest.contains('T') {
            return Err(err());
        }
        let mut period = Period {
            years: 0,
            months: 0,
            weeks: 0,
            days: 0,
        };
        let mut last_unit = 0;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 || digits > 5 || digits == rest.len() {
                return Err(err());
            }
            let n: u32 = rest[..digits].parse().map_err(|_| err())?;
            let (slot, order) = match rest.as_bytes()[digits] {
                b'Y' => (&mut period.years, 1),
                b'M' => (&mut period.months, 2),
                b'W' => (&mut period.weeks, 3),
                b'D' => (&mut period.days, 4),
                _ => return Err(err()),
            };
            if order <= last_unit {
                return Err(err());
            }
            last_unit = order;
            *slot = n;
            rest = &rest[digits + 1..];
        }
        Ok(period)
    }
}

impl Period {
    /// A period of no time (`P0D`): "deleted right after processing", counted from an event.
    pub fn is_zero(self) -> bool {
        self.years == 0 && self.months == 0 && self.weeks == 0 && self.days == 0
    }

    /// The date this long after `date`; month arithmetic clamps to the month's last day
    /// (31 January + P1M = 28 or 29 February). `None` past the calendar's end.
    pub fn after(self, date: chrono::NaiveDate) -> Option<chrono::NaiveDate> {
        date.checked_add_months(self.months_total()?)?
            .checked_add_days(self.days())
    }

    /// The date this long before `date`, clamped the same way.
    pub fn before(self, date: chrono::NaiveDate) -> Option<chrono::NaiveDate> {
        date.checked_sub_months(self.months_total()?)?
            .checked_sub_days(self.days())
    }

    /// The instant this long after `t`, at the same time of day.
    pub fn after_instant(self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        Some(self.after(t.date_naive())?.and_time(t.time()).and_utc())
    }

    /// The instant this long before `t`, at the same time of day.
    pub fn before_instant(self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        Some(self.before(t.date_naive())?.and_time(t.time()).and_utc())
    }

    fn months_total(self) -> Option<chrono::Months> {
        Some(chrono::Months::new(
            self.years.checked_mul(12)?.checked_add(self.months)?,
        ))
    }

    fn days(self) -> chrono::Days {
        chrono::Days::new(u64::from(self.weeks) * 7 + u64::from(self.days))
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("P")?;
        for (n, unit) in [
            (self.years, 'Y'),
            (self.months, 'M'),
            (self.weeks, 'W'),
            (self.days, 'D'),
        ] {
            if n > 0 {
                write!(f, "{n}{unit}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_durations_parse_and_print_back() {
        for s in ["P30D", "P3M", "P1Y", "P2W", "P1Y6M", "P1Y2M3W4D"] {
            assert_eq!(s.parse::<Period>().unwrap().to_string(), s);
        }
    }

    #[test]
    fn periods_count_in_calendar_units() {
        let on = |s: &str| s.parse::<chrono::NaiveDate>().unwrap();
        let p = |s: &str| s.parse::<Period>().unwrap();
        assert_eq!(p("P3D").after(on("2026-11-22")), Some(on("2026-11-25")));
        assert_eq!(p("P1M").after(on("2027-01-31")), Some(on("2027-02-28")));
        assert_eq!(p("P1Y").after(on("2028-02-29")), Some(on("2029-02-28")));
        assert_eq!(p("P1Y2W").after(on("2026-01-01")), Some(on("2027-01-15")));
        assert_eq!(p("P30D").before(on("2026-03-01")), Some(on("2026-01-30")));
        assert_eq!(p("P1M").before(on("2026-03-31")), Some(on("2026-02-28")));
        assert_eq!(
            p("P3Y").before_instant("2029-11-22T03:00:00Z".parse().unwrap()),
            Some("2026-11-22T03:00:00Z".parse().unwrap())
        );
    }

    #[test]
    fn anything_else_is_refused() {
        for s in [
            "",
            "P",
            "30D",
            "PT12H",
            "P1H",
            "P3M1Y",
            "P1D1D",
            "P-1D",
            "P99999999D",
        ] {
            assert!(s.parse::<Period>().is_err(), "{s}");
        }
    }
}
