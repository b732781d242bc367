//! The consent script's settings (`[banner]`): which purposes the banner asks about, which a
//! Global Privacy Control signal opts out of, how purposes map to Google Consent Mode, and the
//! cookie that remembers a visitor's choice.

use std::collections::BTreeMap;

use serde::Deserialize;

/// `[banner]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BannerConfig {
    /// Purposes the banner asks about (`["analytics", "ads"]`). Empty: every active purpose
    /// based on consent that the service does not need.
    pub purposes: Vec<String>,
    /// Purposes a Global Privacy Control signal opts out of: selling, sharing, targeted
    /// advertising.
    pub gpc_opt_out: Vec<String>,
    /// Google Consent Mode v2 types each purpose grants (`analytics = ["analytics_storage"]`);
    /// every type named here is `denied` until its purpose is granted.
    pub consent_mode: BTreeMap<String, Vec<String>>,
    /// Days the visitor's choice is remembered; the banner asks again after them.
    pub cookie_days: u32,
    /// The cookie's `Domain` (`example.com`, so that `shop.example.com` and `www.example.com`
    /// share one choice); empty: the page's own host.
    pub cookie_domain: String,
    /// A request header a CDN or proxy sets to the visitor's country (`CF-IPCountry`,
    /// `CloudFront-Viewer-Country`); used when the page does not say.
    pub country_header: Option<String>,
    /// The country assumed when neither the page nor that header says (`DE`); empty: the
    /// policy for everywhere else (`*`).
    pub default_country: Option<crate::vocab::CountryCode>,
}

impl Default for BannerConfig {
    fn default() -> Self {
        Self {
            purposes: Vec::new(),
            gpc_opt_out: Vec::new(),
            consent_mode: BTreeMap::new(),
            cookie_days: 365,
            cookie_domain: String::new(),
            country_header: None,
            default_country: None,
        }
    }
}
