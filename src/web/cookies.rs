//! Reading and writing cookies, without a cookie jar: pages set at most a few, each with the
//! attributes written out here once.

use poem::{Request, http::header};

/// The name a cookie goes by: behind https, with the `__Host-` prefix, which browsers accept only
/// from this host, with `Secure` and `Path=/`, so no sibling subdomain or plain-http page can set
/// or shadow it.
pub fn name(base: &str, secure: bool) -> String {
    if secure {
        format!("__Host-{base}")
    } else {
        base.to_string()
    }
}

/// The value of cookie `base` (under its [`name`]) in the request, if any.
pub fn get(req: &Request, base: &str, secure: bool) -> Option<String> {
    let name = name(base, secure);
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// How a cookie is sent back.
pub struct Cookie<'a> {
    /// The base name; see [`name`].
    pub name: &'a str,
    pub value: &'a str,
    /// The area's path; `/` behind https, as the `__Host-` prefix requires.
    pub path: &'a str,
    /// Seconds until it expires; `Some(0)` deletes it; `None` lasts the browser session.
    pub max_age: Option<i64>,
    /// `Secure` when the portal is served over https.
    pub secure: bool,
    /// `Strict` or `Lax`.
    pub same_site: &'a str,
}

impl Cookie<'_> {
    /// The `Set-Cookie` header value. Always `HttpOnly`: no script of ours reads cookies.
    pub fn header(&self) -> String {
        let path = if self.secure { "/" } else { self.path };
        let mut out = format!(
            "{}={}; Path={path}; HttpOnly; SameSite={}",
            name(self.name, self.secure),
            self.value,
            self.same_site
        );
        if let Some(age) = self.max_age {
            out.push_str(&format!("; Max-Age={age}"));
        }
        if self.secure {
            out.push_str("; Secure");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_among_others() {
        let req = Request::builder()
            .header(header::COOKIE, "a=1; consentry_portal=abc; b=2")
            .finish();
        assert_eq!(get(&req, "consentry_portal", false).as_deref(), Some("abc"));
        assert_eq!(get(&req, "consentry_portal", true), None);
        assert_eq!(get(&req, "missing", false), None);
    }

    #[test]
    fn session_cookies_carry_their_protections() {
        let c = Cookie {
            name: "s",
            value: "v",
            path: "/portal",
            max_age: Some(60),
            secure: true,
            same_site: "Lax",
        };
        assert_eq!(
            c.header(),
            "__Host-s=v; Path=/; HttpOnly; SameSite=Lax; Max-Age=60; Secure"
        );
        let plain = Cookie { secure: false, ..c };
        assert_eq!(
            plain.header(),
            "s=v; Path=/portal; HttpOnly; SameSite=Lax; Max-Age=60"
        );
    }
}
