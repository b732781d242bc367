//! The age gate: the age below which a person cannot consent alone, per country, and the
//! outcome for a birth date or a declared age band.
//!
//! The ages come from the table in [`crate::law`]: GDPR Art 8 as each member and EEA state set
//! it, UK GDPR 13, China 14 (PIPL Arts 28 and 31), United States 13 (COPPA), 16 (the GDPR
//! default) anywhere else. Operators override entries in config.
//!
//! Ages are counted in whole years on the day of the check; a person born on 29 February has
//! their birthday on 1 March in common years (before it they have not reached the new age).
//!
//! The gate is pure: it reads only the configuration and [`crate::law`], so the subject room
//! can assess a person without importing anything above it. Guardian consent, which records
//! decisions in the ledger, is a room of its own ([`crate::guardian`]).

pub mod api;

use chrono::{Datelike, NaiveDate};
use poem_openapi::Enum;

use crate::config::AgeConfig;

pub use crate::law::AgeSource as Law;

/// Whether a person may consent alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum Outcome {
    Allowed,
    GuardianRequired,
}

/// An age band declared instead of a birth date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum AgeBand {
    #[oai(rename = "under_13")]
    Under13,
    #[oai(rename = "13_15")]
    From13To15,
    #[oai(rename = "16_17")]
    From16To17,
    #[oai(rename = "18_plus")]
    Adult,
}

impl AgeBand {
    /// The youngest and oldest age in the band.
    fn bounds(self) -> (u32, u32) {
        match self {
            AgeBand::Under13 => (0, 12),
            AgeBand::From13To15 => (13, 15),
            AgeBand::From16To17 => (16, 17),
            AgeBand::Adult => (18, u32::MAX),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AgeBand::Under13 => "under_13",
            AgeBand::From13To15 => "13_15",
            AgeBand::From16To17 => "16_17",
            AgeBand::Adult => "18_plus",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            AgeBand::Under13,
            AgeBand::From13To15,
            AgeBand::From16To17,
            AgeBand::Adult,
        ]
        .into_iter()
        .find(|b| b.as_str() == s)
    }
}

/// The threshold and its source for a country (ISO 3166-1 alpha-2, any case); see
/// [`crate::law`].
pub fn threshold(config: &AgeConfig, country: &str) -> (u32, Law) {
    crate::law::consent_age(config, country)
}

/// Whole years between `birth` and `on`.
pub fn age_on(birth: NaiveDate, on: NaiveDate) -> Option<u32> {
    if birth > on {
        return None;
    }
    let had_birthday = (on.month(), on.day()) >= (birth.month(), birth.day());
    u32::try_from(on.year() - birth.year() - i32::from(!had_birthday)).ok()
}

/// What the age gate knows about a person.
#[derive(Debug, Clone, Copy)]
pub enum AgeEvidence {
    BirthDate(NaiveDate),
    Band(AgeBand),
}

/// The gate's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Assessment {
    /// Exact age, when a birth date was given.
    pub age: Option<u32>,
    pub threshold: u32,
    pub law: Law,
    pub outcome: Outcome,
}

/// Assesses a person in `country` on `today`. A band that straddles the threshold counts as
/// under it: the gate does not guess in a child's disfavour.
pub fn assess(
    config: &AgeConfig,
    country: &str,
    evidence: AgeEvidence,
    today: NaiveDate,
) -> Option<Assessment> {
    let (threshold, law) = threshold(config, country);
    let (age, old_enough) = match evidence {
        AgeEvidence::BirthDate(birth) => {
            let age = age_on(birth, today)?;
            (Some(age), age >= threshold)
        }
        AgeEvidence::Band(band) => (None, band.bounds().0 >= threshold),
    };
    Some(Assessment {
        age,
        threshold,
        law,
        outcome: if old_enough {
            Outcome::Allowed
        } else {
            Outcome::GuardianRequired
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn birthdays_count_on_the_day() {
        assert_eq!(age_on(d("2012-11-22"), d("2026-11-21")), Some(13));
        assert_eq!(age_on(d("2012-11-22"), d("2026-11-22")), Some(14));
        assert_eq!(age_on(d("2030-01-01"), d("2026-11-22")), None);
    }

    #[test]
    fn a_leap_day_birthday_comes_on_the_first_of_march_in_common_years() {
        assert_eq!(age_on(d("2012-02-29"), d("2026-02-28")), Some(13));
        assert_eq!(age_on(d("2012-02-29"), d("2026-03-01")), Some(14));
        assert_eq!(age_on(d("2012-02-29"), d("2028-02-29")), Some(16));
    }

    #[test]
    fn thresholds_follow_the_table_and_config() {
        let mut config = AgeConfig::default();
        assert_eq!(threshold(&config, "cn"), (14, Law::Pipl));
        assert_eq!(threshold(&config, "FR"), (15, Law::Gdpr));
        assert_eq!(threshold(&config, "ZZ"), (16, Law::Default));
        config.thresholds.insert("FR".into(), 16);
        assert_eq!(threshold(&config, "FR"), (16, Law::Configured));
    }

    #[test]
    fn bands_straddling_the_threshold_need_a_guardian() {
        let config = AgeConfig::default();
        let today = d("2026-11-22");
        let band = |b, c| {
            assess(&config, c, AgeEvidence::Band(b), today)
                .unwrap()
                .outcome
        };
        assert_eq!(band(AgeBand::From13To15, "BE"), Outcome::Allowed);
        assert_eq!(band(AgeBand::From13To15, "FR"), Outcome::GuardianRequired);
        assert_eq!(band(AgeBand::From16To17, "DE"), Outcome::Allowed);
        assert_eq!(band(AgeBand::Under13, "US"), Outcome::GuardianRequired);
    }
}
