//! Working days, for deadlines that roll past days off or count working days.
//!
//! GDPR (Art 12(3)): one month from receipt, counted as Regulation 1182/71 does: the same
//! calendar date in the next month, the month's last day when it has no such date (31 January →
//! 28 or 29 February), then the next working day when that is a weekend or a public holiday.
//! PIPL names no day count; we apply the strictest published figure, 15 working days from
//! verification (configurable), on mainland China's official calendar: the State Council's
//! yearly notice names public holidays and the weekend days that are worked instead
//! (调休上班). The notice for 2026 ships here; later years are added in configuration
//! (`requests.china_holidays`, `requests.china_working_days`) when the State Council publishes
//! them.

use chrono::{Datelike, Months, NaiveDate, Weekday};

/// Public holidays of 2026 (国务院办公厅关于2026年部分节假日安排的通知, 4 November 2025): New
/// Year 1-3 January, Spring Festival 15-23 February, Qingming 4-6 April, Labour Day 1-5 May,
/// Dragon Boat 19-21 June, Mid-Autumn 25-27 September, National Day 1-7 October.
const CHINA_2026_HOLIDAYS: &[(u32, u32, u32)] = &[
    (1, 1, 3),
    (2, 15, 23),
    (4, 4, 6),
    (5, 1, 5),
    (6, 19, 21),
    (9, 25, 27),
    (10, 1, 7),
];

/// Weekend days worked instead in 2026, by the same notice.
const CHINA_2026_WORKING_DAYS: &[(u32, u32)] =
    &[(1, 4), (2, 14), (2, 28), (5, 9), (9, 20), (10, 10)];

/// A working calendar: weekends and holidays are days off, except the weekend days listed as
/// working days.
#[derive(Debug, Clone, Default)]
pub struct Calendar {
    holidays: Vec<NaiveDate>,
    working_days: Vec<NaiveDate>,
}

impl Calendar {
    pub fn new(holidays: Vec<NaiveDate>, working_days: Vec<NaiveDate>) -> Self {
        Self {
            holidays,
            working_days,
        }
    }

    /// Mainland China's official calendar: the shipped years plus the configured ones.
    pub fn china(holidays: &[NaiveDate], working_days: &[NaiveDate]) -> Self {
        let day = |m, d| NaiveDate::from_ymd_opt(2026, m, d);
        let mut all_holidays: Vec<NaiveDate> = CHINA_2026_HOLIDAYS
            .iter()
            .flat_map(|&(m, first, last)| (first..=last).filter_map(move |d| day(m, d)))
            .collect();
        all_holidays.extend_from_slice(holidays);
        let mut all_working: Vec<NaiveDate> = CHINA_2026_WORKING_DAYS
            .iter()
            .filter_map(|&(m, d)| day(m, d))
            .collect();
        all_working.extend_from_slice(working_days);
        Self::new(all_holidays, all_working)
    }

    pub fn is_working_day(&self, day: NaiveDate) -> bool {
        if self.working_days.contains(&day) {
            return true;
        }
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

    fn none() -> Calendar {
        Calendar::default()
    }

    #[test]
    fn a_month_is_the_same_date_next_month() {
        // 2026-03-10 is a Tuesday; 2026-04-10 a Friday.
        assert_eq!(none().months_after(d("2026-03-10"), 1), d("2026-04-10"));
    }

    #[test]
    fn the_31st_of_january_ends_on_the_last_day_of_february() {
        // 2027-02-28 is a Sunday: the deadline rolls to Monday 1 March.
        assert_eq!(none().months_after(d("2027-01-31"), 1), d("2027-03-01"));
        // 2028 is a leap year and 29 February 2028 is a Tuesday.
        assert_eq!(none().months_after(d("2028-01-31"), 1), d("2028-02-29"));
        // 2026-02-28 is a Saturday.
        assert_eq!(none().months_after(d("2026-01-30"), 1), d("2026-03-02"));
    }

    #[test]
    fn a_leap_day_receipt_counts_to_the_29th_of_march() {
        // 2028-03-29 is a Wednesday.
        assert_eq!(none().months_after(d("2028-02-29"), 1), d("2028-03-29"));
    }

    #[test]
    fn weekends_and_holidays_move_the_deadline_forward() {
        // 2026-11-22 is a Sunday; 2026-12-22 a Tuesday.
        assert_eq!(none().months_after(d("2026-11-22"), 1), d("2026-12-22"));
        let calendar = Calendar::new(vec![d("2026-12-22"), d("2026-12-23")], vec![]);
        assert_eq!(calendar.months_after(d("2026-11-22"), 1), d("2026-12-24"));
        // Received 25 April 2026 (Saturday): 25 May 2026 is a Monday.
        assert_eq!(none().months_after(d("2026-04-25"), 1), d("2026-05-25"));
        // 2026-10-31 + 1 month = 2026-11-30 (Monday).
        assert_eq!(none().months_after(d("2026-10-31"), 1), d("2026-11-30"));
    }

    #[test]
    fn several_months_clamp_to_the_last_day_then_roll_forward() {
        // 2026-12-22 + 2 months = 2027-02-22 (Monday).
        assert_eq!(none().months_after(d("2026-12-22"), 2), d("2027-02-22"));
        // 2026-12-31 + 2 months = 2027-02-28 (Sunday) → 2027-03-01.
        assert_eq!(none().months_after(d("2026-12-31"), 2), d("2027-03-01"));
    }

    #[test]
    fn fifteen_working_days_skip_weekends_and_holidays() {
        // Verified Monday 2026-11-23: three weeks of working days end Monday 2026-12-14.
        assert_eq!(
            none().working_days_after(d("2026-11-23"), 15),
            d("2026-12-14")
        );
        // Verified on a Saturday: the first working day is Monday.
        assert_eq!(
            none().working_days_after(d("2026-11-21"), 1),
            d("2026-11-23")
        );
        // China's National Day week (1-7 October 2026) as configured holidays.
        let golden_week: Vec<NaiveDate> = (1..=7)
            .map(|day| NaiveDate::from_ymd_opt(2026, 10, day).unwrap())
            .collect();
        let calendar = Calendar::new(golden_week, vec![]);
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
