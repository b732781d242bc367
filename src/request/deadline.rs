//! Legal deadlines for data-subject requests (LEGAL.md, "Deadlines").
//!
//! GDPR Art 12(3): one month from receipt, counted as Regulation 1182/71 does: the same calendar
//! date in the next month, the month's last day when it has no such date (31 January → 28 or 29
//! February), then the next working day when that is a weekend or a public holiday. An
//! extension adds at most two further months, counted the same way from the original due date.
//! PIPL names no day count; we apply the strictest published figure, 15 working days from
//! verification (configurable).

use chrono::{Datelike, Months, NaiveDate, Weekday};

/// The working calendar: weekends and the configured public holidays are days off.
#[derive(Debug, Clone, Copy)]
pub struct Calendar<'a> {
    holidays: &'a [NaiveDate],
}

impl<'a> Calendar<'a> {
    pub fn new(holidays: &'a [NaiveDate]) -> Self {
        Self { holidays }
    }

    pub fn is_working_day(&self, day: NaiveDate) -> bool {
        !matches!(day.weekday(), Weekday::Sat | Weekday::Sun) && !self.holidays.contains(&day)
    }

    /// `day` itself when it is a working day, otherwise the next one.
    pub fn on_or_after(&self, mut day: NaiveDate) -> NaiveDate {
        while !self.is_working_day(day) {
            day = day.succ_opt().unwrap_or(day);
            if day == NaiveDate::MAX {
                break;
            }
        }
        day
    }

    /// `months` calendar months after `from` (clamped to the month's last day), moved to the
    /// next working day.
    pub fn months_after(&self, from: NaiveDate, months: u32) -> NaiveDate {
        // chrono clamps to the last day of a shorter month, which is the 1182/71 rule.
        let date = from
            .checked_add_months(Months::new(months))
            .unwrap_or(NaiveDate::MAX);
        self.on_or_after(date)
    }

    /// The `n`th working day after `from` (the day of `from` itself does not count).
    pub fn working_days_after(&self, from: NaiveDate, n: u32) -> NaiveDate {
        let mut day = from;
        let mut left = n;
        while left > 0 {
            match day.succ_opt() {
                Some(next) => day = next,
                None => break,
            }
            if self.is_working_day(day) {
                left -= 1;
            }
        }
        day
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    const NONE: Calendar<'static> = Calendar { holidays: &[] };

    #[test]
    fn a_month_is_the_same_date_next_month() {
        // 2026-03-10 is a Tuesday; 2026-04-10 a Friday.
        assert_eq!(NONE.months_after(d("2026-03-10"), 1), d("2026-04-10"));
    }

    #[test]
    fn the_31st_of_january_ends_on_the_last_day_of_february() {
        // 2027-02-28 is a Sunday: the deadline rolls to Monday 1 March.
        assert_eq!(NONE.months_after(d("2027-01-31"), 1), d("2027-03-01"));
        // 2028 is a leap year and 29 February 2028 is a Tuesday.
        assert_eq!(NONE.months_after(d("2028-01-31"), 1), d("2028-02-29"));
        // 2026-02-28 is a Saturday.
        assert_eq!(NONE.months_after(d("2026-01-30"), 1), d("2026-03-02"));
    }

    #[test]
    fn a_leap_day_receipt_counts_to_the_29th_of_march() {
        // 2028-03-29 is a Wednesday.
        assert_eq!(NONE.months_after(d("2028-02-29"), 1), d("2028-03-29"));
    }

    #[test]
    fn weekends_and_holidays_move_the_deadline_forward() {
        // 2026-11-22 is a Sunday; 2026-12-22 a Tuesday.
        assert_eq!(NONE.months_after(d("2026-11-22"), 1), d("2026-12-22"));
        let holidays = [d("2026-12-22"), d("2026-12-23")];
        let calendar = Calendar::new(&holidays);
        assert_eq!(calendar.months_after(d("2026-11-22"), 1), d("2026-12-24"));
        // Received 25 April 2026 (Saturday): 25 May 2026 is a Monday.
        assert_eq!(NONE.months_after(d("2026-04-25"), 1), d("2026-05-25"));
        // 2026-10-31 + 1 month = 2026-11-30 (Monday).
        assert_eq!(NONE.months_after(d("2026-10-31"), 1), d("2026-11-30"));
    }

    #[test]
    fn an_extension_of_two_months_counts_from_the_original_date() {
        // 2026-12-22 + 2 months = 2027-02-22 (Monday).
        assert_eq!(NONE.months_after(d("2026-12-22"), 2), d("2027-02-22"));
        // 2026-12-31 + 2 months = 2027-02-28 (Sunday) → 2027-03-01.
        assert_eq!(NONE.months_after(d("2026-12-31"), 2), d("2027-03-01"));
    }

    #[test]
    fn fifteen_working_days_skip_weekends_and_holidays() {
        // Verified Monday 2026-11-23: three weeks of working days end Monday 2026-12-14.
        assert_eq!(
            NONE.working_days_after(d("2026-11-23"), 15),
            d("2026-12-14")
        );
        // Verified on a Saturday: the first working day is Monday.
        assert_eq!(NONE.working_days_after(d("2026-11-21"), 1), d("2026-11-23"));
        // China's National Day week (1-7 October 2026) as configured holidays.
        let golden_week: Vec<NaiveDate> = (1..=7)
            .map(|day| NaiveDate::from_ymd_opt(2026, 10, day).unwrap())
            .collect();
        let calendar = Calendar::new(&golden_week);
        // Verified Wednesday 30 September: 1 October-7 October are off, 8 October is day 1.
        assert_eq!(
            calendar.working_days_after(d("2026-09-30"), 1),
            d("2026-10-08")
        );
        assert_eq!(
            calendar.working_days_after(d("2026-09-30"), 15),
            d("2026-10-28")
        );
    }
}
