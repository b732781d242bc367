//! The rights portal under `/portal`: where a person sees and changes consents, reads the policy
//! and what changed, files and follows requests and downloads their data; where a guardian
//! decides for a child; where a marketing email's unsubscribe link lands.
//!
//! Each page area is a module with its handlers; they call the same domain functions as the JSON
//! API, so no rule lives here. Every handler starts from a [`Visitor`] (language, session, CSRF)
//! and answers a page; errors become pages in the visitor's language ([`pages_for_errors`]).

mod guardian;
mod home;
mod policy;
mod requests;
mod unsubscribe;

use std::sync::Arc;

use chrono::TimeDelta;
use poem::{Endpoint, EndpointExt, Request, Response, Route, get, http::StatusCode, post};
use serde_json::Value;

pub use super::browser::query_param;
use super::{
    Lang,
    browser::{Browser, PORTAL, pages_for_errors},
};
use crate::{
    AppState,
    auth::session::{self, Lifetimes},
    error::ApiError,
    subject::{self, Subject},
};

/// The portal's routes, answering pages for every error.
pub fn routes(state: AppState) -> impl Endpoint<Output = Response> {
    let state = Arc::new(state);
    Route::new()
        .at("/", get(home::show))
        .at("/session", get(home::sign_in))
        .at("/signout", post(home::sign_out))
        .at("/consents/:purpose", post(home::decide))
        .at("/history", get(home::history))
        .at("/history/:event/receipt", get(home::download_receipt))
        .at("/policies/:key", get(policy::current))
        .at("/policies/:key/versions/:version", get(policy::version))
        .at("/policies/:key/diff", get(policy::changes))
        .at("/requests", get(requests::index).post(requests::file))
        .at("/requests/new", get(requests::choose))
        .at("/requests/new/:kind", get(requests::details_form))
        .at(
            "/requests/by-email",
            get(requests::by_email_form).post(requests::by_email),
        )
        .at("/requests/:id", get(requests::detail))
        .at(
            "/requests/:id/verify",
            get(requests::code_form).post(requests::verify),
        )
        .at("/requests/:id/resend", post(requests::resend))
        .at("/requests/:id/export", get(requests::export_page))
        .at("/requests/:id/export/file", get(requests::export_file))
        .at(
            "/guardian/confirm",
            get(guardian::show).post(guardian::confirm),
        )
        .at(
            "/guardian/choices",
            get(guardian::choices).post(guardian::change),
        )
        .at(
            "/unsubscribe",
            get(unsubscribe::show).post(unsubscribe::confirm),
        )
        .around({
            let state = state.clone();
            move |ep, req| crate::web::csrf::guard(ep, req, state.clone(), &PORTAL)
        })
        .around(move |ep, req| pages_for_errors(ep, req, state.clone(), &PORTAL))
}

/// The person looking at a page: their browser, and their record when signed in.
pub struct Visitor {
    pub browser: Browser,
    pub subject: Option<Subject>,
}

impl std::ops::Deref for Visitor {
    type Target = Browser;

    fn deref(&self) -> &Browser {
        &self.browser
    }
}

impl std::ops::DerefMut for Visitor {
    fn deref_mut(&mut self) -> &mut Browser {
        &mut self.browser
    }
}

impl Visitor {
    /// Reads the cookies and the session; an erased person's session counts for nothing.
    pub async fn load(state: &AppState, req: &Request) -> Result<Self, ApiError> {
        let session = Browser::session_cookie(state, req, &PORTAL);
        let subject = match &session {
            Some(token) => {
                match session::subject_of(state.db.conn(), token, lifetimes(state)).await? {
                    Some(id) => subject::by_id(state.db.conn(), &id)
                        .await?
                        .filter(|s| s.erased_at.is_none()),
                    None => None,
                }
            }
            None => None,
        };
        let session = session.filter(|_| subject.is_some());
        let own = subject
            .as_ref()
            .and_then(|s| s.locale.as_deref())
            .and_then(Lang::parse);
        Ok(Self {
            browser: Browser::new(state, req, &PORTAL, session, own),
            subject,
        })
    }

    /// The signed-in person, or the sign-in page's error.
    pub fn signed_in(&self) -> Result<&Subject, ApiError> {
        self.subject
            .as_ref()
            .ok_or_else(|| ApiError::unauthorized("sign in first").with_reason("signed_out"))
    }

    /// Renders `portal/<template>` inside the layout.
    pub fn page(
        self,
        state: &AppState,
        template: &str,
        data: Value,
        status: StatusCode,
    ) -> Response {
        let signed_in = self.subject.is_some();
        self.browser
            .render(state, template, data, status, signed_in)
    }

    /// A 303 to `to` (after a form), with any cookies this visit sets.
    pub fn redirect(self, to: &str) -> Response {
        self.browser.redirect(to)
    }
}

fn lifetimes(state: &AppState) -> Lifetimes {
    Lifetimes {
        absolute: TimeDelta::minutes(state.config.portal.session_minutes.into()),
        idle: TimeDelta::minutes(state.config.portal.idle_minutes.into()),
    }
}
