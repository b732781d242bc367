//! Mail settings parsed where they are read: the SMTP URL and the mailboxes, so that a typo stops
//! the service at start-up with the setting's name.

use lettre::message::Mailbox;

use super::SmtpTls;

/// Parses `Name <address>` or a bare address.
pub fn parse_mailbox(value: &str) -> Result<Mailbox, String> {
    value
        .parse::<Mailbox>()
        .map_err(|e| format!("not an email address: {e}"))
}

/// SMTP connection settings from `smtp_url` and `mail.tls`.
#[derive(Debug, Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub credentials: Option<(String, String)>,
}

impl SmtpSettings {
    /// `smtp://[user:pass@]host[:port]` (default port 25, opportunistic STARTTLS) or
    /// `smtps://...` (default port 465, implicit TLS); `tls` overrides the mode.
    pub fn parse(url: &str, tls: Option<SmtpTls>) -> Result<Self, String> {
        let parsed = url::Url::parse(url).map_err(|_| "not a URL".to_string())?;
        let (default_tls, default_port) = match parsed.scheme() {
            "smtp" => (SmtpTls::Opportunistic, 25),
            "smtps" => (SmtpTls::Tls, 465),
            _ => return Err("expected smtp:// or smtps://".into()),
        };
        let host = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or("the URL has no host")?
            .trim_matches(|c| c == '[' || c == ']')
            .to_string();
        let decode = |s: &str| {
            percent_decode(s).ok_or_else(|| "the credentials are not valid UTF-8".to_string())
        };
        let credentials = if parsed.username().is_empty() {
            None
        } else {
            Some((
                decode(parsed.username())?,
                decode(parsed.password().unwrap_or_default())?,
            ))
        };
        Ok(Self {
            host,
            port: parsed.port().unwrap_or(default_port),
            tls: tls.unwrap_or(default_tls),
            credentials,
        })
    }
}

fn percent_decode(s: &str) -> Option<String> {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls_give_host_port_tls_and_credentials() {
        let s = SmtpSettings::parse("smtp://user%40x:p%2Fw@mail.example.com:2525", None).unwrap();
        assert_eq!(s.host, "mail.example.com");
        assert_eq!(s.port, 2525);
        assert_eq!(s.tls, SmtpTls::Opportunistic);
        assert_eq!(s.credentials, Some(("user@x".into(), "p/w".into())));

        let s = SmtpSettings::parse("smtps://mail.example.com", None).unwrap();
        assert_eq!((s.port, s.tls), (465, SmtpTls::Tls));

        let s = SmtpSettings::parse("smtp://127.0.0.1:1025", Some(SmtpTls::None)).unwrap();
        assert_eq!((s.port, s.tls, s.credentials), (1025, SmtpTls::None, None));

        assert!(SmtpSettings::parse("http://x", None).is_err());
        assert!(SmtpSettings::parse("smtp://", None).is_err());
    }
}
