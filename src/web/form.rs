//! Form bodies (`application/x-www-form-urlencoded`), with repeated names kept: a list of
//! checkboxes arrives as several values of one name.

use poem::Body;

use crate::error::ApiError;

/// The fields of a submitted form, in order.
#[derive(Debug, Default)]
pub struct FormData(Vec<(String, String)>);

impl FormData {
    /// Reads the whole body (the HTTP layer has already bounded its size).
    pub async fn read(body: Body) -> Result<Self, ApiError> {
        let bytes = body
            .into_vec()
            .await
            .map_err(|e| ApiError::bad_request(format!("could not read the form: {e}")))?;
        Ok(Self(
            url::form_urlencoded::parse(&bytes)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        ))
    }

    /// The first value of `name`, trimmed; `None` when absent or blank.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// A period from the period picker (`<name>_n`, a number, and `<name>_unit`: `D`, `W`, `M`
    /// or `Y`) as an ISO 8601 duration (`P30D`), or the field `name` itself when it was typed as
    /// one; `None` when neither was filled. The domain checks the result.
    pub fn period(&self, name: &str) -> Option<String> {
        match self.get(&format!("{name}_n")) {
            Some(n) => {
                let unit = self
                    .get(&format!("{name}_unit"))
                    .filter(|u| matches!(*u, "D" | "W" | "M" | "Y"))
                    .unwrap_or("D");
                Some(format!("P{n}{unit}"))
            }
            None => self.get(name).map(str::to_string),
        }
    }

    /// Every non-blank value of `name`.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, v)| k == name && !v.trim().is_empty())
            .map(|(_, v)| v.trim().to_string())
            .collect()
    }

    /// Fields whose names start with `prefix`, without it (`change.email` → `email`).
    pub fn with_prefix<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a str, &'a str)> {
        self.0.iter().filter_map(move |(k, v)| {
            k.strip_prefix(prefix)
                .map(|name| (name, v.trim()))
                .filter(|(_, v)| !v.is_empty())
        })
    }
}

/// A stored period as the picker shows it: a number and one unit (`P1Y6M` as 18 months,
/// `P2W3D` as 17 days); `None` for no period, or one that mixes months and days.
pub fn period_picker(period: Option<&str>) -> Option<serde_json::Value> {
    let p: crate::period::Period = period?.parse().ok()?;
    let (n, unit) = match (p.years * 12 + p.months, p.weeks * 7 + p.days) {
        (0, 0) => (0, "D"),
        (months, 0) if months % 12 == 0 => (months / 12, "Y"),
        (months, 0) => (months, "M"),
        (0, _) if p.days == 0 => (p.weeks, "W"),
        (0, days) => (days, "D"),
        _ => return None,
    };
    Some(serde_json::json!({"n": n, "unit": unit}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn repeated_fields_are_kept() {
        let form = FormData::read(Body::from_string(
            "purpose=a&purpose=b&note=+hi+&empty=&change.email=x%40y.z".into(),
        ))
        .await
        .unwrap();
        assert_eq!(form.all("purpose"), ["a", "b"]);
        assert_eq!(form.get("note"), Some("hi"));
        assert_eq!(form.get("empty"), None);
        assert_eq!(
            form.with_prefix("change.").collect::<Vec<_>>(),
            [("email", "x@y.z")]
        );
    }

    #[tokio::test]
    async fn the_period_picker_reads_and_shows_iso_durations() {
        let form = FormData::read(Body::from_string(
            "period_n=30&period_unit=D&notice_before=P7D&bad_n=3&bad_unit=X".into(),
        ))
        .await
        .unwrap();
        assert_eq!(form.period("period").as_deref(), Some("P30D"));
        assert_eq!(form.period("notice_before").as_deref(), Some("P7D"));
        assert_eq!(form.period("bad").as_deref(), Some("P3D"));
        assert_eq!(form.period("missing"), None);
        let shown = |p: &str| {
            period_picker(Some(p)).map(|v| {
                (
                    v["n"].as_u64().unwrap(),
                    v["unit"].as_str().unwrap().to_string(),
                )
            })
        };
        assert_eq!(shown("P1Y"), Some((1, "Y".into())));
        assert_eq!(shown("P1Y6M"), Some((18, "M".into())));
        assert_eq!(shown("P2W"), Some((2, "W".into())));
        assert_eq!(shown("P2W3D"), Some((17, "D".into())));
        assert_eq!(shown("P1M3D"), None);
    }
}
