//! The law in one place: which regime applies where, the age of digital consent, the deadline
//! of a data-subject request and its extension, which objections take effect at once, separate
//! consent, and the remedies a refusal names. Pure functions over one table; every other module
//! asks here, and no country code or day count is written anywhere else. Operators override the
//! ages, the law for countries outside the table, and the calendars in configuration.
//!
//! Where each regime applies, and the age below which a person cannot consent alone:
//!
//! | countries | regime | age of digital consent | source |
//! |---|---|---|---|
//! | BE, EE, FI, LV, MT, PT, SE | GDPR | 13 | GDPR Art 8(1), as the member state set it |
//! | AT, BG, CY, ES, IT, LT | GDPR | 14 | GDPR Art 8(1), as the member state set it |
//! | CZ, DK, FR, GR, SI | GDPR | 15 | GDPR Art 8(1), as the member state set it |
//! | DE, HR, HU, IE, LU, NL, PL, RO, SK | GDPR | 16 | GDPR Art 8(1), as the member state set it |
//! | IS, NO | GDPR | 13 | GDPR Art 8(1) through the EEA Agreement |
//! | LI | GDPR | 16 | GDPR Art 8(1) through the EEA Agreement |
//! | GB | UK GDPR | 13 | UK GDPR Art 8 |
//! | CN | PIPL | 14 | PIPL Arts 28, 31: a child's data is sensitive and needs a guardian |
//! | US | none | 13 | COPPA, 16 CFR 312.5 |
//! | anywhere else | none | 16 | the GDPR default, Art 8(1) |
//!
//! What each regime asks of a request (a country under no regime follows the procedure the
//! operator chose, `requests.default_law`):
//!
//! | rule | GDPR and UK GDPR | PIPL |
//! |---|---|---|
//! | deadline | one month from receipt, counted as Regulation 1182/71 does, then the next working day (Art 12(3)) | 15 working days from verification on China's official calendar, make-up working days included (the strictest published figure; the law says "timely", Arts 45-46) |
//! | extension | by one or two further months, at most three months from receipt, decided and told with reasons within the first month (Art 12(3)) | none |
//! | objection to direct marketing | absolute: takes effect on receipt, cannot be rejected (Art 21(2)-(3)) | absolute for marketing by automated decision (Arts 24, 44) |
//! | separate consent | none beyond specific consent (Art 7(4)) | for provision to another handler (Art 23), public disclosure (Art 25), public-place images (Art 26), sensitive data (Art 29) and cross-border provision (Art 39); every consent-based purpose of a child under 14 (Arts 28, 29, 31) |
//! | remedies in a refusal | a complaint to a supervisory authority (Art 77) and a judicial remedy (Art 79), Art 12(4) | a complaint to the authorities that protect personal information (the CAC) and a lawsuit in a people's court (Art 50) |
//! | the deceased | not covered (Recital 27) | next of kin may access, copy, correct and delete (Art 49) |

pub mod calendar;

use chrono::NaiveDate;

use crate::{
    config::{AgeConfig, RequestsConfig},
    vocab::{Law, RequestType},
};
pub use calendar::Calendar;

/// The data-protection regime of a country.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Regime {
    /// The EU and, through the EEA Agreement, Iceland, Liechtenstein and Norway.
    Gdpr,
    /// The United Kingdom.
    UkGdpr,
    /// Mainland China.
    Pipl,
    /// None of the above: requests follow the operator's chosen procedure.
    None,
}

impl Regime {
    fn label(self) -> &'static str {
        match self {
            Regime::Gdpr => "GDPR",
            Regime::UkGdpr => "UK GDPR",
            Regime::Pipl => "PIPL",
            Regime::None => "none",
        }
    }
}

/// Where an age of digital consent comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, poem_openapi::Enum)]
#[oai(rename = "Law", rename_all = "snake_case")]
pub enum AgeSource {
    /// GDPR Art 8, as the member state (or EEA state) set it.
    Gdpr,
    /// UK GDPR Art 8.
    UkGdpr,
    /// PIPL Arts 28 and 31.
    Pipl,
    /// COPPA, 16 CFR 312.5.
    Coppa,
    /// An operator's override in config.
    Configured,
    /// No entry for the country: the GDPR default of 16.
    Default,
}

/// One row of the table.
struct Country {
    code: &'static str,
    regime: Regime,
    age: u32,
    source: AgeSource,
    /// How the table in the documentation names the source.
    cited: &'static str,
}

const NATIONAL: &str = "GDPR Art 8(1), as the member state set it";
const EEA: &str = "GDPR Art 8(1) through the EEA Agreement";

const fn eu(code: &'static str, age: u32) -> Country {
    Country {
        code,
        regime: Regime::Gdpr,
        age,
        source: AgeSource::Gdpr,
        cited: NATIONAL,
    }
}

const fn eea(code: &'static str, age: u32) -> Country {
    Country {
        code,
        regime: Regime::Gdpr,
        age,
        source: AgeSource::Gdpr,
        cited: EEA,
    }
}

/// The table (../LEGAL.md), in the order the documentation lists it.
const COUNTRIES: &[Country] = &[
    eu("BE", 13),
    eu("EE", 13),
    eu("FI", 13),
    eu("LV", 13),
    eu("MT", 13),
    eu("PT", 13),
    eu("SE", 13),
    eu("AT", 14),
    eu("BG", 14),
    eu("CY", 14),
    eu("ES", 14),
    eu("IT", 14),
    eu("LT", 14),
    eu("CZ", 15),
    eu("DK", 15),
    eu("FR", 15),
    eu("GR", 15),
    eu("SI", 15),
    eu("DE", 16),
    eu("HR", 16),
    eu("HU", 16),
    eu("IE", 16),
    eu("LU", 16),
    eu("NL", 16),
    eu("PL", 16),
    eu("RO", 16),
    eu("SK", 16),
    eea("IS", 13),
    eea("NO", 13),
    eea("LI", 16),
    Country {
        code: "GB",
        regime: Regime::UkGdpr,
        age: 13,
        source: AgeSource::UkGdpr,
        cited: "UK GDPR Art 8",
    },
    Country {
        code: "CN",
        regime: Regime::Pipl,
        age: 14,
        source: AgeSource::Pipl,
        cited: "PIPL Arts 28, 31: a child's data is sensitive and needs a guardian",
    },
    Country {
        code: "US",
        regime: Regime::None,
        age: 13,
        source: AgeSource::Coppa,
        cited: "COPPA, 16 CFR 312.5",
    },
];

/// The age that applies where the table has no entry (GDPR Art 8(1)).
pub const DEFAULT_CONSENT_AGE: u32 = 16;

fn country(code: &str) -> Option<&'static Country> {
    COUNTRIES.iter().find(|c| c.code.eq_ignore_ascii_case(code))
}

/// The regime of a country (ISO 3166-1 alpha-2, any case).
pub fn regime(country_code: Option<&str>) -> Regime {
    country_code
        .and_then(country)
        .map_or(Regime::None, |c| c.regime)
}

/// The age of digital consent in a country and where it comes from; an operator's override
/// wins, and a country without an entry gets `config.default_threshold`.
pub fn consent_age(config: &AgeConfig, country_code: &str) -> (u32, AgeSource) {
    let code = country_code.to_ascii_uppercase();
    if let Some(&age) = config.thresholds.get(&code) {
        return (age, AgeSource::Configured);
    }
    country(&code).map_or((config.default_threshold, AgeSource::Default), |c| {
        (c.age, c.source)
    })
}

/// The procedure a request follows: GDPR in the EU, the EEA and the UK, PIPL in China, and the
/// operator's choice (`requests.default_law`) elsewhere.
pub fn procedure(config: &RequestsConfig, country_code: Option<&str>) -> Law {
    match regime(country_code) {
        Regime::Gdpr | Regime::UkGdpr => Law::Gdpr,
        Regime::Pipl => Law::Pipl,
        Regime::None => config.default_law,
    }
}

/// Why a request from `country_code` follows the procedure it does, in a reviewer's words.
pub fn procedure_reason(config: &RequestsConfig, country_code: Option<&str>) -> String {
    let law = match procedure(config, country_code) {
        Law::Gdpr => "GDPR",
        Law::Pipl => "PIPL",
    };
    match (country_code, regime(country_code)) {
        (Some(c), Regime::Gdpr) => format!("{c}: the GDPR applies there"),
        (Some(c), Regime::UkGdpr) => format!("{c}: the UK GDPR applies there ({law} procedure)"),
        (Some(c), Regime::Pipl) => format!("{c}: PIPL applies there"),
        (Some(c), Regime::None) => format!(
            "{c}: neither the GDPR nor PIPL applies there; the operator's procedure \
             (requests.default_law: {law})"
        ),
        (None, _) => {
            format!("no country known; the operator's procedure (requests.default_law: {law})")
        }
    }
}

/// Whether the law a request follows actually applies to the person, so that what they read
/// cites it; elsewhere it is the operator's chosen procedure, not a law that binds them.
pub fn law_applies(country_code: Option<&str>) -> bool {
    regime(country_code) != Regime::None
}

/// The working calendar of a procedure: the operator's holidays for GDPR, China's official
/// calendar (with its make-up working days) for PIPL.
pub fn calendar(config: &RequestsConfig, law: Law) -> Calendar {
    match law {
        Law::Gdpr => Calendar::new(config.holidays.clone(), Vec::new()),
        Law::Pipl => Calendar::china(&config.china_holidays, &config.china_working_days),
    }
}

/// The deadline of a request received on `received` and verified on `verified`.
pub fn due_date(
    config: &RequestsConfig,
    law: Law,
    received: NaiveDate,
    verified: NaiveDate,
) -> NaiveDate {
    let calendar = calendar(config, law);
    match law {
        Law::Gdpr => calendar.months_after(received, 1),
        Law::Pipl => calendar.working_days_after(verified, config.pipl_working_days),
    }
}

/// Most months a GDPR deadline may be extended by (Art 12(3)).
pub const MAX_EXTENSION_MONTHS: u32 = 2;

/// Why an extension is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ExtensionRefused {
    #[error("only GDPR deadlines can be extended; PIPL asks for a timely answer")]
    NotUnderThisLaw,
    #[error("a deadline may be extended by one or two months (GDPR Art 12(3))")]
    TooLong,
    #[error(
        "the first month after receipt has run out ({first_month}); GDPR Art 12(3) allows an \
         extension only if the person is told within it"
    )]
    TooLate { first_month: NaiveDate },
}

impl ExtensionRefused {
    /// The key of its words in the pages' catalogue; [`Self::TooLate`] fills `{date}` with the
    /// end of the first month.
    pub fn message_key(&self) -> &'static str {
        match self {
            Self::NotUnderThisLaw => "request.extension.not_under_this_law",
            Self::TooLong => "request.extension.too_long",
            Self::TooLate { .. } => "request.extension.too_late",
        }
    }
}

/// The new deadline of a request received on `received`, extended on `today` by `months`: the
/// one-month deadline plus `months`, counted from receipt, so that the latest is three months
/// from receipt (then the next working day). Refused under PIPL, beyond two months, and after
/// the first month has run out.
pub fn extended_due_date(
    config: &RequestsConfig,
    law: Law,
    received: NaiveDate,
    today: NaiveDate,
    months: u32,
) -> Result<NaiveDate, ExtensionRefused> {
    if law != Law::Gdpr {
        return Err(ExtensionRefused::NotUnderThisLaw);
    }
    if !(1..=MAX_EXTENSION_MONTHS).contains(&months) {
        return Err(ExtensionRefused::TooLong);
    }
    let calendar = calendar(config, law);
    let first_month = calendar.months_after(received, 1);
    if today > first_month {
        return Err(ExtensionRefused::TooLate { first_month });
    }
    Ok(calendar.months_after(received, 1 + months))
}

/// What a refusal must tell the person they can do about it, in `language` (`en` or `zh-CN`).
/// Where the law of the procedure does not apply to the person (`applies` false), no article
/// is cited: they are told how to disagree and where to complain.
pub fn remedies(law: Law, applies: bool, language: &str) -> &'static str {
    let chinese = language == "zh-CN";
    if !applies {
        return if chinese {
            "如您对此有异议，请回复本邮件；您也可以向您所在地负责个人信息保护的主管部门投诉。"
        } else {
            "If you disagree, reply to this email. You may also complain to the authority that \
             protects personal data where you live."
        };
    }
    match (law, chinese) {
        (Law::Gdpr, false) => {
            "If you disagree, you have the right to lodge a complaint with a data protection \
             supervisory authority (GDPR Art 77) and to seek a judicial remedy (GDPR Art 79)."
        }
        (Law::Gdpr, true) => {
            "如您对此有异议，您有权向数据保护监管机构投诉（GDPR 第 77 条），并有权寻求司法救济（GDPR 第 79 条）。"
        }
        (Law::Pipl, false) => {
            "If you disagree, you may complain to the authorities responsible for personal \
             information protection (the Cyberspace Administration of China), and you have the \
             right to sue in a people's court (Personal Information Protection Law, Art 50)."
        }
        (Law::Pipl, true) => {
            "如您对此有异议，可以向履行个人信息保护职责的部门（国家网信部门）投诉、举报，并有权依法向人民法院提起诉讼（《个人信息保护法》第五十条）。"
        }
    }
}

/// Whether an objection to a purpose takes effect on receipt, without review: direct
/// marketing under GDPR Art 21(2)-(3), and marketing by automated decision under PIPL Arts 24
/// and 44. The operator marks which purposes are direct marketing.
pub fn objection_is_absolute(direct_marketing: bool) -> bool {
    direct_marketing
}

/// Whether a person's consent-based purposes must each be granted on its own: a child under
/// the age of digital consent in China, whose data is sensitive (PIPL Arts 28, 29, 31).
pub fn child_needs_separate_consent(country_code: Option<&str>) -> bool {
    regime(country_code) == Regime::Pipl
}

/// Whether next of kin may exercise a deceased person's rights: PIPL Art 49 allows access,
/// copy, correction and deletion; the GDPR does not cover the dead (Recital 27).
pub fn next_of_kin_may_act(law: Law) -> bool {
    law == Law::Pipl
}

/// The rights next of kin may exercise (PIPL Art 49): access, copy, correction, deletion.
pub const NEXT_OF_KIN_RIGHTS: [RequestType; 4] = [
    RequestType::Access,
    RequestType::Export,
    RequestType::Rectify,
    RequestType::Erase,
];

/// The country table as the documentation shows it, built from the data, so that a test can
/// keep the doc comment above and the README in step with it.
pub fn country_table() -> String {
    let mut rows: Vec<(Vec<&str>, &str, u32, &str)> = Vec::new();
    for c in COUNTRIES {
        match rows.last_mut() {
            Some((codes, regime, age, cited))
                if *regime == c.regime.label() && *age == c.age && *cited == c.cited =>
            {
                codes.push(c.code)
            }
            _ => rows.push((vec![c.code], c.regime.label(), c.age, c.cited)),
        }
    }
    let mut table = String::from(
        "| countries | regime | age of digital consent | source |\n|---|---|---|---|\n",
    );
    for (mut codes, regime, age, cited) in rows {
        codes.sort_unstable();
        table.push_str(&format!(
            "| {} | {regime} | {age} | {cited} |\n",
            codes.join(", ")
        ));
    }
    table.push_str(&format!(
        "| anywhere else | none | {DEFAULT_CONSENT_AGE} | the GDPR default, Art 8(1) |\n"
    ));
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn the_documented_tables_match_the_data() {
        let table = country_table();
        let readme = include_str!("../../README.md");
        assert!(
            readme.contains(&table),
            "README.md must show this table:\n{table}"
        );
        let doc: String = include_str!("mod.rs")
            .lines()
            .filter_map(|l| l.strip_prefix("//! "))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(doc.contains(&table), "the module doc must show:\n{table}");
    }

    #[test]
    fn iceland_liechtenstein_and_norway_are_gdpr_countries_with_their_own_ages() {
        let config = AgeConfig::default();
        for (code, age) in [("IS", 13), ("LI", 16), ("NO", 13)] {
            assert_eq!(regime(Some(code)), Regime::Gdpr);
            assert_eq!(consent_age(&config, code), (age, AgeSource::Gdpr));
            assert_eq!(procedure(&RequestsConfig::default(), Some(code)), Law::Gdpr);
        }
        assert_eq!(regime(Some("cn")), Regime::Pipl);
        assert_eq!(regime(Some("US")), Regime::None);
        assert_eq!(regime(None), Regime::None);
        assert_eq!(consent_age(&config, "ZZ"), (16, AgeSource::Default));
    }

    #[test]
    fn a_gdpr_extension_ends_three_months_from_receipt() {
        let config = RequestsConfig::default();
        // Received Sunday 31 January 2027: due Monday 1 March (28 February is a Sunday).
        let received = d("2027-01-31");
        assert_eq!(
            due_date(&config, Law::Gdpr, received, received),
            d("2027-03-01")
        );
        // Two more months: 30 April 2027 (April has no 31st), a Friday; not 3 May.
        assert_eq!(
            extended_due_date(&config, Law::Gdpr, received, d("2027-02-10"), 2),
            Ok(d("2027-04-30"))
        );
        assert_eq!(
            extended_due_date(&config, Law::Gdpr, received, d("2027-02-10"), 1),
            Ok(d("2027-03-31"))
        );
    }

    #[test]
    fn an_extension_after_the_first_month_or_beyond_two_months_is_refused() {
        let config = RequestsConfig::default();
        let received = d("2027-01-31");
        assert_eq!(
            extended_due_date(&config, Law::Gdpr, received, d("2027-03-01"), 1),
            Ok(d("2027-03-31")),
            "the last day of the first month still counts"
        );
        assert_eq!(
            extended_due_date(&config, Law::Gdpr, received, d("2027-03-02"), 1),
            Err(ExtensionRefused::TooLate {
                first_month: d("2027-03-01")
            })
        );
        assert_eq!(
            extended_due_date(&config, Law::Gdpr, received, d("2027-02-01"), 3),
            Err(ExtensionRefused::TooLong)
        );
        assert_eq!(
            extended_due_date(&config, Law::Pipl, received, d("2027-02-01"), 1),
            Err(ExtensionRefused::NotUnderThisLaw)
        );
    }

    #[test]
    fn pipl_deadlines_count_chinas_make_up_working_days() {
        let config = RequestsConfig::default();
        // Verified Friday 13 February 2026. Saturday the 14th is a make-up working day (day 1);
        // the Spring Festival runs 15-23 February; then 24, 25, 26, 27 and Saturday the 28th
        // (another make-up day) are days 2-6.
        let verified = d("2026-02-13");
        let calendar = calendar(&config, Law::Pipl);
        assert_eq!(calendar.working_days_after(verified, 1), d("2026-02-14"));
        assert_eq!(calendar.working_days_after(verified, 6), d("2026-02-28"));
        // Fifteen working days: 14, 24-28 February (6), 2-6 March (11), 9-12 March (15).
        assert_eq!(
            due_date(&config, Law::Pipl, verified, verified),
            d("2026-03-12")
        );
        // National Day: verified Friday 18 September 2026; Sunday the 20th is a make-up day.
        assert_eq!(
            calendar.working_days_after(d("2026-09-18"), 1),
            d("2026-09-20")
        );
        // The operator's holidays do not move a PIPL deadline, nor China's a GDPR one.
        assert!(!calendar.is_working_day(d("2026-10-05")));
        assert!(super::calendar(&config, Law::Gdpr).is_working_day(d("2026-10-05")));
    }

    #[test]
    fn refusals_name_the_remedies_of_their_law_in_the_persons_language() {
        assert!(remedies(Law::Gdpr, true, "en").contains("Art 77"));
        assert!(remedies(Law::Pipl, true, "en").contains("people's court"));
        assert!(remedies(Law::Pipl, true, "zh-CN").contains("人民法院"));
        assert!(remedies(Law::Gdpr, true, "zh-CN").contains("第 77 条"));
        assert!(!remedies(Law::Gdpr, false, "en").contains("GDPR"));
        assert!(!law_applies(Some("US")) && law_applies(Some("IS")) && !law_applies(None));
    }
}
