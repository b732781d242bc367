//! The record of processing activities (GDPR Art 30, PIPL Art 55's assessment record) generated
//! from the purposes, the retention rules and the registry of systems that hold each category:
//! the first document a regulator asks for.

use super::Rule;
use crate::{
    law::{self, Regime},
    purpose::{LegalBasis, Purpose, Recipient},
    system::System,
};

/// One line of the register: one purpose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub purpose: String,
    pub title: String,
    pub legal_basis: LegalBasis,
    pub data_categories: Vec<String>,
    pub recipients: Vec<Recipient>,
    /// The purpose's own period (ISO 8601).
    pub purpose_retention: Option<String>,
    /// The rule of each of the purpose's categories that has one.
    pub category_retention: Vec<CategoryRetention>,
    /// The systems in service that hold each of the purpose's categories.
    pub holders: Vec<CategoryHolders>,
    pub separate_consent_reason: Option<String>,
    /// Countries data goes to outside the EU/EEA (a GDPR Chapter V transfer).
    pub outside_eea: Vec<String>,
    /// Countries data goes to outside mainland China (PIPL Art 38-39).
    pub outside_china: Vec<String>,
    pub archived: bool,
}

/// How long one category is kept.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CategoryRetention {
    pub category: String,
    pub period: String,
    /// `created`, or the event that starts the clock.
    pub clock_start: String,
}

/// Where one category is kept: the names of the systems that hold it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CategoryHolders {
    pub category: String,
    pub systems: Vec<String>,
}

/// The register, one line per purpose, in the language asked for where texts exist.
pub fn lines(
    purposes: &[Purpose],
    rules: &[Rule],
    systems: &[System],
    language: &str,
) -> Vec<Line> {
    purposes
        .iter()
        .map(|p| {
            let countries = |keep: &dyn Fn(&str) -> bool| {
                let mut list: Vec<String> = p
                    .recipients
                    .iter()
                    .map(|r| r.country.to_string())
                    .filter(|c| keep(c))
                    .collect();
                list.sort();
                list.dedup();
                list
            };
            let category_retention = p
                .data_categories
                .iter()
                .filter_map(|c| {
                    let rule = rules.iter().find(|r| &r.category == c)?;
                    Some(CategoryRetention {
                        category: c.clone(),
                        period: rule.period.clone(),
                        clock_start: rule.clock_start.clone(),
                    })
                })
                .collect();
            let holders = p
                .data_categories
                .iter()
                .filter_map(|c| {
                    let names: Vec<String> = systems
                        .iter()
                        .filter(|s| s.retired_at.is_none() && s.categories.contains(c))
                        .map(|s| s.name.clone())
                        .collect();
                    (!names.is_empty()).then(|| CategoryHolders {
                        category: c.clone(),
                        systems: names,
                    })
                })
                .collect();
            Line {
                purpose: p.key.clone(),
                title: p
                    .text(language)
                    .map(|t| t.title.clone())
                    .unwrap_or_default(),
                legal_basis: p.legal_basis,
                data_categories: p.data_categories.clone(),
                recipients: p.recipients.clone(),
                purpose_retention: p.retention_period.clone(),
                category_retention,
                holders,
                separate_consent_reason: p
                    .separate_consent_reason
                    .map(|r| sea_orm::ActiveEnum::to_value(&r)),
                outside_eea: countries(&|c| law::regime(Some(c)) != Regime::Gdpr),
                outside_china: countries(&|c| c != "CN"),
                archived: p.archived_at.is_some(),
            }
        })
        .collect()
}

/// The register as CSV, safe to open in a spreadsheet (see [`crate::spreadsheet`]).
pub fn csv(lines: &[Line]) -> Result<Vec<u8>, csv::Error> {
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record([
        "purpose",
        "title",
        "legal_basis",
        "data_categories",
        "recipients",
        "retention",
        "systems",
        "separate_consent_reason",
        "transfers_outside_eea",
        "transfers_outside_china",
        "archived",
    ])?;
    for l in lines {
        let cells = [
            l.purpose.clone(),
            l.title.clone(),
            sea_orm::ActiveEnum::to_value(&l.legal_basis),
            l.data_categories.join("; "),
            l.recipients
                .iter()
                .map(|r| format!("{} ({}, {})", r.name, r.role, r.country))
                .collect::<Vec<_>>()
                .join("; "),
            l.purpose_retention
                .iter()
                .map(|period| format!("purpose: {period}"))
                .chain(
                    l.category_retention
                        .iter()
                        .map(|r| format!("{}: {} from {}", r.category, r.period, r.clock_start)),
                )
                .collect::<Vec<_>>()
                .join("; "),
            l.holders
                .iter()
                .map(|h| format!("{}: {}", h.category, h.systems.join(", ")))
                .collect::<Vec<_>>()
                .join("; "),
            l.separate_consent_reason.clone().unwrap_or_default(),
            l.outside_eea.join("; "),
            l.outside_china.join("; "),
            l.archived.to_string(),
        ];
        out.write_record(
            cells
                .iter()
                .map(|c| crate::spreadsheet::safe(c).into_owned()),
        )?;
    }
    out.into_inner().map_err(|e| e.into_error().into())
}
