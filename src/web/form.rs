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
}
