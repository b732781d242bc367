//! Editing what the company declares: purposes (with their recipients and separate-consent
//! reason) and retention rules. Admins only; the domain checks every field as the API does.

use std::collections::BTreeMap;

use poem::{
    Body, Request, Response, handler,
    http::StatusCode,
    web::{Data, Path},
};
use sea_orm::ActiveEnum;
use serde_json::{Value, json};

use super::Staff;
use crate::vocab::CountryCode;
use crate::{
    AppState,
    actions::{purposes, retention_rules},
    auth::Role,
    error::{ApiError, FieldError},
    purpose::{self, LegalBasis, PurposeFields, PurposeText, Recipient, SeparateConsentReason},
    retention::{self, RuleFields},
    web::FormData,
};

const BASES: &[&str] = &[
    "consent",
    "contract",
    "legal_obligation",
    "vital_interests",
    "public_task",
    "legitimate_interests",
];
const REASONS: &[&str] = &[
    "sensitive_data",
    "third_party_provision",
    "public_disclosure",
    "public_place_images",
    "cross_border_transfer",
];

fn choices(values: &[&str], chosen: &str) -> Vec<Value> {
    values
        .iter()
        .map(|v| json!({"value": v, "selected": *v == chosen}))
        .collect()
}

/// The purpose form's values: from a purpose being edited, or from a submitted form.
fn purpose_form(p: Option<&purpose::Purpose>, form: &FormData, errors: &[FieldError]) -> Value {
    let text = |lang: &str, title: bool| {
        p.and_then(|p| p.texts.get(lang)).map(|t| {
            if title {
                t.title.clone()
            } else {
                t.description.clone()
            }
        })
    };
    let guardian = |lang: &str| p.and_then(|p| p.texts.get(lang)?.guardian.clone());
    let pick =
        |name: &str, fallback: Option<String>| form.get(name).map(str::to_string).or(fallback);
    let basis = pick("legal_basis", p.map(|p| p.legal_basis.to_value()))
        .unwrap_or_else(|| "consent".into());
    let reason = pick(
        "separate_consent_reason",
        p.and_then(|p| p.separate_consent_reason.map(|r| r.to_value())),
    )
    .unwrap_or_default();
    json!({
        "section": "purposes",
        "editing": p.is_some(),
        "key": pick("key", p.map(|p| p.key.clone())),
        "title_en": pick("title_en", text("en", true)),
        "description_en": pick("description_en", text("en", false)),
        "guardian_en": pick("guardian_en", guardian("en")),
        "guardian_zh": pick("guardian_zh", guardian("zh-CN")),
        "title_zh": pick("title_zh", text("zh-CN", true)),
        "description_zh": pick("description_zh", text("zh-CN", false)),
        "bases": choices(BASES, &basis),
        "reasons": choices(REASONS, &reason),
        "required": form.get("required").is_some() || p.is_some_and(|p| p.required) && form.get("key").is_none(),
        "direct_marketing": form.get("direct_marketing").is_some() || p.is_some_and(|p| p.direct_marketing) && form.get("key").is_none(),
        "recipients": pick("recipients", p.map(|p| p.recipients.iter().map(|r| format!("{} | {} | {}", r.name, r.role, r.country)).collect::<Vec<_>>().join("\n"))),
        "categories": pick("categories", p.map(|p| p.data_categories.join(", "))),
        "retention_picked": crate::web::form::period_picker(
            form.period("retention_period").or_else(|| p.and_then(|p| p.retention_period.clone())).as_deref(),
        ),
        "archived": p.is_some_and(|p| p.archived_at.is_some()),
        "errors": super::errors_json(errors),
    })
}

/// The fields a submitted purpose form describes; malformed recipient lines are errors.
fn purpose_fields(form: &FormData) -> Result<PurposeFields, Vec<FieldError>> {
    let mut texts = BTreeMap::new();
    for (lang, suffix) in [("en", "en"), ("zh-CN", "zh")] {
        if let Some(title) = form.get(&format!("title_{suffix}")) {
            texts.insert(
                lang.to_string(),
                PurposeText {
                    title: title.to_string(),
                    description: form
                        .get(&format!("description_{suffix}"))
                        .unwrap_or_default()
                        .to_string(),
                    guardian: form
                        .get(&format!("guardian_{suffix}"))
                        .filter(|g| !g.trim().is_empty())
                        .map(str::to_string),
                },
            );
        }
    }
    let mut errors = Vec::new();
    let mut recipients = Vec::new();
    for line in form
        .get("recipients")
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
    {
        let parts: Vec<&str> = line.split('|').map(str::trim).collect();
        let country = parts.get(2).and_then(|c| CountryCode::parse(c));
        match (parts.as_slice(), country) {
            ([name, role, _], Some(country)) => recipients.push(Recipient {
                name: name.to_string(),
                role: role.to_string(),
                country,
            }),
            _ => errors.push(FieldError::new(
                "recipients",
                format!("“{line}”: write name | role | country code (two letters)"),
            )),
        }
    }
    let legal_basis =
        LegalBasis::try_from_value(&form.get("legal_basis").unwrap_or("consent").to_string())
            .map_err(|_| vec![FieldError::new("legal_basis", "unknown legal basis")])?;
    let reason = form
        .get("separate_consent_reason")
        .and_then(|r| SeparateConsentReason::try_from_value(&r.to_string()).ok());
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(PurposeFields {
        texts,
        legal_basis,
        required: form.get("required").is_some(),
        separate_consent: reason.is_some(),
        separate_consent_reason: reason,
        direct_marketing: form.get("direct_marketing").is_some(),
        recipients,
        data_categories: form
            .get("categories")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_string)
            .collect(),
        retention_period: form.period("retention_period"),
    })
}

/// `GET /console/purposes/new` and `/console/purposes/{key}/edit`.
#[handler]
pub async fn purpose_editor(
    req: &Request,
    key: Option<Path<String>>,
    Data(state): Data<&AppState>,
) -> Result<Response, ApiError> {
    let staff = Staff::load(state, req).await?;
    staff.require(Role::Admin)?;
    let existing = match key {
        Some(Path(key)) => Some(purpose::get(state.db.conn(), &key).await?),
        None => None,
    };
    let data = purpose_form(existing.as_ref(), &FormData::default(), &[]);
    Ok(staff.page(state, "purpose", data, StatusCode::OK))
}

/// `POST /console/purposes` (a new purpose) and `/console/purposes/{key}` (its new fields).
#[handler]
pub async fn save_purpose(
    req: &Request,
    key: Option<Path<String>>,
    body: Body,
    Data(state): Data<&AppState>,
) -> Result<Response, ApiError> {
    let staff = Staff::load(state, req).await?;
    let form = staff.form(Role::Admin, body).await?;
    let existing = match &key {
        Some(Path(key)) => Some(purpose::get(state.db.conn(), key).await?),
        None => None,
    };
    let refused = |errors: Vec<FieldError>| purpose_form(existing.as_ref(), &form, &errors);
    let fields = match purpose_fields(&form) {
        Ok(fields) => fields,
        Err(errors) => {
            return Ok(staff.page(
                state,
                "purpose",
                refused(errors),
                StatusCode::UNPROCESSABLE_ENTITY,
            ));
        }
    };
    let target = key
        .map(|Path(k)| k)
        .or_else(|| form.get("key").map(str::to_string))
        .unwrap_or_default();
    let saved = match &existing {
        Some(_) => purposes::update(&state.db, &target, fields, &staff.actor()).await,
        None => purposes::create(&state.db, &target, fields, &staff.actor()).await,
    };
    if let Err(e) = saved {
        let errors = super::refusal(e.into(), "key")?;
        return Ok(staff.page(
            state,
            "purpose",
            refused(errors),
            StatusCode::UNPROCESSABLE_ENTITY,
        ));
    }
    Ok(staff.redirect("/console/purposes"))
}

/// `POST /console/purposes/{key}/archive`: no new consent; the record stays as proof.
#[handler]
pub async fn archive_purpose(
    req: &Request,
    Path(key): Path<String>,
    body: Body,
    Data(state): Data<&AppState>,
) -> Result<Response, ApiError> {
    let staff = Staff::load(state, req).await?;
    staff.form(Role::Admin, body).await?;
    purposes::archive(&state.db, &key, &staff.actor()).await?;
    Ok(staff.redirect("/console/purposes"))
}

/// The rule form's values.
fn rule_form(r: Option<&retention::Rule>, form: &FormData, errors: &[FieldError]) -> Value {
    let pick =
        |name: &str, fallback: Option<String>| form.get(name).map(str::to_string).or(fallback);
    let titles: BTreeMap<String, String> = r
        .and_then(|r| r.titles.as_deref())
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or_default();
    let options: Vec<String> = r
        .and_then(|r| r.options.as_deref())
        .and_then(|o| serde_json::from_str(o).ok())
        .unwrap_or_default();
    let fresh = form.get("category").is_none();
    json!({
        "section": "retention",
        "editing": r.is_some(),
        "category": pick("category", r.map(|r| r.category.clone())),
        "period_picked": crate::web::form::period_picker(
            form.period("period").or_else(|| r.map(|r| r.period.clone())).as_deref(),
        ),
        "clock_start": pick("clock_start", r.map(|r| r.clock_start.clone())).unwrap_or_else(|| "created".into()),
        "anonymize": pick("action", r.map(|r| r.action.to_value())).as_deref() == Some("anonymize"),
        "notice_before_picked": crate::web::form::period_picker(
            form.period("notice_before").or_else(|| r.and_then(|r| r.notice_before.clone())).as_deref(),
        ),
        "notify_after": form.get("notify_after").is_some() || fresh && r.is_some_and(|r| r.notify_after),
        "legal_hold": form.get("legal_hold").is_some() || fresh && r.is_some_and(|r| r.legal_hold),
        "title_en": pick("title_en", titles.get("en").cloned()),
        "title_zh": pick("title_zh", titles.get("zh-CN").cloned()),
        "options": pick("options", Some(options.join(", "))),
        "errors": super::errors_json(errors),
    })
}

fn rule_fields(form: &FormData) -> RuleFields {
    let mut titles = BTreeMap::new();
    for (lang, name) in [("en", "title_en"), ("zh-CN", "title_zh")] {
        if let Some(title) = form.get(name) {
            titles.insert(lang.to_string(), title.to_string());
        }
    }
    RuleFields {
        period: form.period("period").unwrap_or_default(),
        clock_start: form.get("clock_start").unwrap_or("created").to_string(),
        action: form.get("action").unwrap_or("delete").to_string(),
        titles,
        options: form
            .get("options")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(str::to_string)
            .collect(),
        notice_before: form.period("notice_before"),
        notify_after: form.get("notify_after").is_some(),
        legal_hold: form.get("legal_hold").is_some(),
    }
}

/// `GET /console/retention/new` and `/console/retention/{category}/edit`.
#[handler]
pub async fn rule_editor(
    req: &Request,
    category: Option<Path<String>>,
    Data(state): Data<&AppState>,
) -> Result<Response, ApiError> {
    let staff = Staff::load(state, req).await?;
    staff.require(Role::Admin)?;
    let existing = match category {
        Some(Path(c)) => Some(retention::get(state.db.conn(), &c).await?),
        None => None,
    };
    let data = rule_form(existing.as_ref(), &FormData::default(), &[]);
    Ok(staff.page(state, "rule", data, StatusCode::OK))
}

/// `POST /console/retention` and `/console/retention/{category}`. Items already registered
/// are re-dated after a change, as through the API.
#[handler]
pub async fn save_rule(
    req: &Request,
    category: Option<Path<String>>,
    body: Body,
    Data(state): Data<&AppState>,
) -> Result<Response, ApiError> {
    let staff = Staff::load(state, req).await?;
    let form = staff.form(Role::Admin, body).await?;
    let existing = match &category {
        Some(Path(c)) => Some(retention::get(state.db.conn(), c).await?),
        None => None,
    };
    let target = category
        .map(|Path(c)| c)
        .or_else(|| form.get("category").map(str::to_string))
        .unwrap_or_default();
    let saved = match &existing {
        Some(_) => {
            retention_rules::update(&state.db, &target, rule_fields(&form), &staff.actor()).await
        }
        None => {
            retention_rules::create(&state.db, &target, rule_fields(&form), &staff.actor()).await
        }
    };
    if let Err(e) = saved {
        let errors = super::refusal(e.into(), "category")?;
        let data = rule_form(existing.as_ref(), &form, &errors);
        return Ok(staff.page(state, "rule", data, StatusCode::UNPROCESSABLE_ENTITY));
    }
    Ok(staff.redirect("/console/retention"))
}
