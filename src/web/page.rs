//! Page templates and the words on them.
//!
//! Pages are Handlebars files under `templates/<area>/`, each wrapped in
//! `templates/partials/page.hbs`; files named `_<name>.hbs` are partials used by the pages. Their words live in `templates/messages.json`, one
//! entry per key with an English and a Simplified Chinese text, written as `{{t "key"}}` (with
//! `{name}` placeholders filled from the helper's hash: `{{t "due" date=...}}`). Everything is
//! loaded and checked at start-up: a missing translation stops the service, not a visitor.

use std::{path::Path, sync::Arc};

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use handlebars::{
    Context, Handlebars, Helper, HelperDef, RenderContext, RenderError, RenderErrorReason,
    ScopedJson, handlebars_helper,
};
use poem::{Response, http::StatusCode};
use serde_json::Value;

use crate::words::{Catalogue, TemplateError, broken, fill, read};

/// The two languages of the pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Zh,
}

impl Lang {
    pub fn tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh-CN",
        }
    }

    /// The language for a locale or `lang` parameter; `None` for one we have no pages in.
    pub fn parse(tag: &str) -> Option<Lang> {
        let t = tag.trim().to_ascii_lowercase();
        if t == "en" || t.starts_with("en-") {
            Some(Lang::En)
        } else if crate::notify::templates::language_for(&t) == "zh-CN" {
            Some(Lang::Zh)
        } else {
            None
        }
    }

    /// The first language of an `Accept-Language` header that we have pages in, by weight.
    pub fn from_accept_language(header: &str) -> Option<Lang> {
        let mut tags: Vec<(f32, Lang)> = header
            .split(',')
            .filter_map(|part| {
                let mut pieces = part.split(';');
                let lang = Lang::parse(pieces.next()?)?;
                let weight = pieces
                    .find_map(|p| p.trim().strip_prefix("q="))
                    .and_then(|q| q.parse::<f32>().ok())
                    .unwrap_or(1.0);
                (weight > 0.0).then_some((weight, lang))
            })
            .collect();
        tags.sort_by(|a, b| b.0.total_cmp(&a.0));
        tags.first().map(|(_, l)| *l)
    }

    pub fn other(self) -> Lang {
        match self {
            Lang::En => Lang::Zh,
            Lang::Zh => Lang::En,
        }
    }
}

/// Where templates find the page's language.
const LANG_KEY: &str = "_lang";

/// The compiled page templates and their words.
pub struct Pages {
    registry: Handlebars<'static>,
    /// The catalogue, for the few words composed outside a template (a form field's error).
    words: Arc<Catalogue>,
}

impl Pages {
    /// Loads `templates/partials/page.hbs`, every `templates/<area>/*.hbs` of `areas` and
    /// `templates/messages.json`; fails on the first missing, broken or half-translated one.
    pub fn load(dir: &Path, areas: &[&str]) -> Result<Self, TemplateError> {
        let mut registry = Handlebars::new();
        let words = Catalogue::load(dir)?;
        registry.register_helper(
            "t",
            Box::new(Translate {
                words: words.clone(),
            }),
        );
        let in_language = |say: Say| {
            Box::new(InLanguage {
                words: words.clone(),
                say,
            })
        };
        registry.register_helper("term", in_language(term));
        registry.register_helper("by", in_language(by));
        registry.register_helper("day", in_language(|_, value, lang| day_of(value, lang)));
        registry.register_helper("when", in_language(|_, value, lang| when(value, lang)));
        registry.register_helper("country", in_language(|_, code, lang| country(code, lang)));
        registry.register_helper(
            "period",
            in_language(|_, value, lang| period_words(value, lang)),
        );
        registry.register_helper("eq", Box::new(eq));
        registry.register_helper("concat", Box::new(concat));
        registry.register_helper("json", Box::new(pretty_json));
        let layout = dir.join("partials").join("page.hbs");
        registry
            .register_partial("page", read(&layout)?)
            .map_err(|e| broken(&layout, e))?;
        let errors = dir.join("partials").join("form_errors.hbs");
        registry
            .register_partial("form_errors", read(&errors)?)
            .map_err(|e| broken(&errors, e))?;
        for area in areas {
            let folder = dir.join(area);
            let entries = std::fs::read_dir(&folder).map_err(|_| TemplateError::Missing {
                path: folder.display().to_string(),
            })?;
            for entry in entries.flatten() {
                let path = entry.path();
                let Some(name) = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.strip_suffix(".hbs"))
                else {
                    continue;
                };
                let source = read(&path)?;
                match name.strip_prefix('_') {
                    Some(partial) => registry.register_partial(partial, source),
                    None => registry.register_template_string(&format!("{area}/{name}"), source),
                }
                .map_err(|e| broken(&path, e))?;
            }
        }
        Ok(Self { registry, words })
    }

    /// The catalogue's words for `key` in `lang`, with each `{name}` filled from `args`; the key
    /// itself when the catalogue lacks it (a test checks every key the code names).
    pub fn words(&self, key: &str, lang: Lang, args: &[(&str, &str)]) -> String {
        let Some(text) = self.words.get(key, lang.tag()) else {
            tracing::error!(key, "a message is missing from messages.json");
            return key.to_string();
        };
        fill(text, args)
    }

    /// Whether the catalogue has `key` (for tests of the words the code names).
    pub fn has_words(&self, key: &str) -> bool {
        self.words.get(key, Lang::En.tag()).is_some()
    }

    /// Renders `template` (`portal/home`) in `lang` as an HTML response.
    pub fn render(
        &self,
        template: &str,
        lang: Lang,
        mut data: Value,
        status: StatusCode,
    ) -> Response {
        if let Some(fields) = data.as_object_mut() {
            fields.insert(LANG_KEY.into(), lang.tag().into());
            fields.insert("_zh".into(), (lang == Lang::Zh).into());
        }
        match self.registry.render(template, &data) {
            Ok(html) => html_response(status, html),
            Err(e) => {
                tracing::error!(template, error = %e, "a page did not render");
                html_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "<!DOCTYPE html><title>Error</title><p>Something went wrong. 出错了。</p>"
                        .into(),
                )
            }
        }
    }

    /// Whether a template exists (for tests of the shipped set).
    pub fn has(&self, template: &str) -> bool {
        self.registry.has_template(template)
    }
}

fn html_response(status: StatusCode, html: String) -> Response {
    Response::builder()
        .status(status)
        .content_type("text/html; charset=utf-8")
        .body(html)
}

fn lang_of(ctx: &Context) -> Lang {
    match ctx.data()[LANG_KEY].as_str() {
        Some("zh-CN") => Lang::Zh,
        _ => Lang::En,
    }
}

/// `{{t "key" name=value}}`: the words for `key` in the page's language, with `{name}` filled.
struct Translate {
    words: Arc<Catalogue>,
}

impl HelperDef for Translate {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        ctx: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let key = h
            .param(0)
            .and_then(|p| p.value().as_str())
            .unwrap_or_default();
        let Some(text) = self.words.get(key, lang_of(ctx).tag()) else {
            return Err(
                RenderErrorReason::Other(format!("no message `{key}` in messages.json")).into(),
            );
        };
        let values: Vec<(&str, String)> = h
            .hash()
            .iter()
            .map(|(name, value)| {
                let value = match value.value() {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (*name, value)
            })
            .collect();
        let args: Vec<(&str, &str)> = values.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let text = fill(text, &args);
        Ok(ScopedJson::Derived(Value::String(text)))
    }
}

/// How a helper says a value in a language, with the catalogue at hand.
type Say = fn(&Catalogue, &str, Lang) -> String;

/// A helper whose words depend on the page's language: `{{term code}}` (a service code such as
/// a request type or status), `{{by actor}}` (who did something), `{{day value}}` (a date or
/// instant: `14 December 2026`, `2026年12月14日`), `{{when value}}` (an instant to the minute,
/// UTC), `{{country "US"}}`, `{{period "P3M"}}` (a retention period in words). Each also works
/// as a subexpression.
struct InLanguage {
    words: Arc<Catalogue>,
    say: Say,
}

impl HelperDef for InLanguage {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        ctx: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let value = h
            .param(0)
            .and_then(|p| p.value().as_str())
            .unwrap_or_default();
        Ok(ScopedJson::Derived(Value::String((self.say)(
            &self.words,
            value,
            lang_of(ctx),
        ))))
    }
}

/// The catalogue's words for a stored code.
fn term(words: &Catalogue, code: &str, lang: Lang) -> String {
    words.term(code, lang.tag()).to_string()
}

/// Who did something, as an audit actor is stored (`api_key:<id>`, `cli`, `main_app`...) or
/// already resolved to a member of staff's address by the handler.
fn by(words: &Catalogue, actor: &str, lang: Lang) -> String {
    let lang = lang.tag();
    match actor.split_once(':') {
        _ if actor.contains('@') => actor.to_string(),
        Some((kind, id)) => fill(
            words.get(&format!("who.{kind}"), lang).unwrap_or(kind),
            // A key's or an account's id is long and random; a system's key is its name.
            &[(
                "id",
                match kind {
                    "data_system" => id,
                    _ => id.get(..8).unwrap_or(id),
                },
            )],
        ),
        None => words.term(actor, lang).to_string(),
    }
}

fn day_of(value: &str, lang: Lang) -> String {
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .ok()
        .or_else(|| parse_instant(value).map(|t| t.date_naive()))
        .map_or_else(|| value.to_string(), |d| day(d, lang))
}

fn when(value: &str, lang: Lang) -> String {
    parse_instant(value).map_or_else(
        || value.to_string(),
        |t| format!("{} {} UTC", day(t.date_naive(), lang), t.format("%H:%M")),
    )
}

fn country(code: &str, lang: Lang) -> String {
    COUNTRIES
        .iter()
        .find(|(c, _, _)| *c == code)
        .map_or(code, |(_, en, zh)| if lang == Lang::Zh { zh } else { en })
        .to_string()
}

/// A date in the reader's language: `14 December 2026` or `2026年12月14日`.
pub fn day(date: NaiveDate, lang: Lang) -> String {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    match lang {
        Lang::En => format!(
            "{} {} {}",
            date.day(),
            MONTHS[date.month0() as usize],
            date.year()
        ),
        Lang::Zh => format!("{}年{}月{}日", date.year(), date.month(), date.day()),
    }
}

fn parse_instant(value: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(value)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

handlebars_helper!(eq: |a: Value, b: Value| a == b);
handlebars_helper!(concat: |a: str, b: str| format!("{a}{b}"));
handlebars_helper!(pretty_json: |v: Value| serde_json::to_string_pretty(&v).unwrap_or_default());

/// Countries people choose from when filing without an account, and that recipients are
/// named by: (ISO 3166-1 code, English, Simplified Chinese).
pub const COUNTRIES: &[(&str, &str, &str)] = &[
    ("CN", "China (mainland)", "中国大陆"),
    ("HK", "Hong Kong", "中国香港"),
    ("SG", "Singapore", "新加坡"),
    ("JP", "Japan", "日本"),
    ("KR", "South Korea", "韩国"),
    ("US", "United States", "美国"),
    ("CA", "Canada", "加拿大"),
    ("GB", "United Kingdom", "英国"),
    ("IE", "Ireland", "爱尔兰"),
    ("DE", "Germany", "德国"),
    ("FR", "France", "法国"),
    ("NL", "Netherlands", "荷兰"),
    ("BE", "Belgium", "比利时"),
    ("ES", "Spain", "西班牙"),
    ("IT", "Italy", "意大利"),
    ("PT", "Portugal", "葡萄牙"),
    ("AT", "Austria", "奥地利"),
    ("PL", "Poland", "波兰"),
    ("SE", "Sweden", "瑞典"),
    ("DK", "Denmark", "丹麦"),
    ("FI", "Finland", "芬兰"),
    ("NO", "Norway", "挪威"),
    ("CH", "Switzerland", "瑞士"),
    ("AU", "Australia", "澳大利亚"),
    ("IN", "India", "印度"),
];

/// A retention period in words: `P30D` → `30 days` / `30天`.
pub fn period_words(value: &str, lang: Lang) -> String {
    let Ok(p) = value.parse::<crate::period::Period>() else {
        return value.to_string();
    };
    if p.is_zero() {
        return match lang {
            Lang::En => "deleted right after use".into(),
            Lang::Zh => "使用后立即删除".into(),
        };
    }
    let parts = [
        (p.years, "year", "年"),
        (p.months, "month", "个月"),
        (p.weeks, "week", "周"),
        (p.days, "day", "天"),
    ];
    let words: Vec<String> = parts
        .iter()
        .filter(|(n, _, _)| *n > 0)
        .map(|(n, en, zh)| match lang {
            Lang::En => format!("{n} {en}{}", if *n == 1 { "" } else { "s" }),
            Lang::Zh => format!("{n}{zh}"),
        })
        .collect();
    match lang {
        Lang::En => words.join(" "),
        Lang::Zh => words.concat(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The words the code composes outside templates are all in the catalogue, in both
    /// languages, with their arguments filled.
    #[test]
    fn every_key_the_code_names_is_in_the_catalogue() {
        let pages = Pages::load(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("templates"),
            crate::web::AREAS,
        )
        .unwrap();
        let named = crate::staff::password::Weakness::ALL
            .iter()
            .map(|w| w.message_key())
            .chain([
                crate::law::ExtensionRefused::NotUnderThisLaw.message_key(),
                crate::law::ExtensionRefused::TooLong.message_key(),
                crate::law::ExtensionRefused::TooLate {
                    first_month: chrono::NaiveDate::MIN,
                }
                .message_key(),
                "password.differ",
                "signin.bad_credentials",
                "signin.bad_code",
                "signin.locked",
            ]);
        for key in named {
            assert!(pages.has_words(key), "{key}");
        }
        assert_eq!(
            pages.words("signin.locked", Lang::Zh, &[("time", "09:30")]),
            "失败次数过多，请在 UTC 09:30 之后重试。"
        );
    }

    #[test]
    fn languages_come_from_locales_and_accept_language() {
        assert_eq!(Lang::parse("zh-Hans-CN"), Some(Lang::Zh));
        assert_eq!(Lang::parse("en-GB"), Some(Lang::En));
        assert_eq!(Lang::parse("de"), None);
        assert_eq!(
            Lang::from_accept_language("de-DE, zh-CN;q=0.8, en;q=0.5"),
            Some(Lang::Zh)
        );
        assert_eq!(Lang::from_accept_language("zh;q=0, en-US"), Some(Lang::En));
        assert_eq!(Lang::from_accept_language("fr"), None);
    }

    #[test]
    fn periods_read_as_words() {
        assert_eq!(period_words("P30D", Lang::En), "30 days");
        assert_eq!(period_words("P1Y6M", Lang::En), "1 year 6 months");
        assert_eq!(period_words("P3M", Lang::Zh), "3个月");
        assert_eq!(period_words("P0D", Lang::Zh), "使用后立即删除");
    }

    #[test]
    fn dates_read_as_people_write_them() {
        let d = NaiveDate::from_ymd_opt(2026, 12, 14).unwrap();
        assert_eq!(day(d, Lang::En), "14 December 2026");
        assert_eq!(day(d, Lang::Zh), "2026年12月14日");
    }

    #[test]
    fn the_shipped_pages_load_with_every_word_translated() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
        let pages = Pages::load(&dir, &["portal", "console"]).expect("the shipped pages load");
        assert!(pages.has("portal/home"));
        // Every word a template names exists in both languages (a missing one fails the render).
        for folder in ["portal", "console", "partials"] {
            for entry in std::fs::read_dir(dir.join(folder)).unwrap().flatten() {
                let source = std::fs::read_to_string(entry.path()).unwrap();
                for piece in source.split("{{t \"").skip(1) {
                    let key = piece.split('"').next().unwrap();
                    assert!(
                        pages.has_words(key),
                        "{}: no message `{key}`",
                        entry.path().display()
                    );
                }
            }
        }
    }
}
