//! The privacy team's console under `/console`: staff sign in with a password and a second
//! factor, and do every admin task of the API in the browser.
//!
//! Roles are enforced here on the server exactly as in the API ([`Staff::require`]): a viewer's
//! pages show no writing buttons, and a forged POST gets 403. Every write is audited with the
//! staff member as actor. Handlers call the same domain functions as the API handlers.

mod operations;
mod records;
mod requests;
mod settings;
mod signin;
mod subjects;
mod systems;

use std::sync::Arc;

use chrono::TimeDelta;
use poem::{Endpoint, EndpointExt, Request, Response, Route, get, http::StatusCode, post};
use serde_json::Value;

use super::{
    FormData,
    browser::{Browser, CONSOLE, pages_for_errors},
};
use crate::{
    AppState,
    audit::Actor,
    auth::Role,
    error::{ApiError, FieldError},
    staff::{self, StaffUser, sessions},
};

/// The console's routes, answering pages for every error and sending visitors who are not
/// signed in to the sign-in page.
pub fn routes(state: AppState) -> impl Endpoint<Output = Response> {
    let state = Arc::new(state);
    Route::new()
        .at("/", get(requests::overview))
        .at(
            "/signin",
            get(signin::sign_in_form).post(signin::check_password),
        )
        .at("/signin/code", get(signin::code_form).post(signin::code))
        .at("/signin/enrol", get(signin::enrol_form).post(signin::code))
        .at("/setup", get(signin::setup_form).post(signin::setup))
        .at("/signout", post(signin::sign_out))
        .at("/account", get(signin::account))
        .at("/account/sessions/:id/end", post(signin::end_session))
        .at("/requests", get(requests::queue))
        .at("/requests/:id", get(requests::detail))
        .at("/requests/:id/:action", post(requests::act))
        .at("/requests/:id/jobs/:job/:action", post(systems::act_on_job))
        .at("/subjects", get(subjects::search))
        .at("/subjects/:external_id", get(subjects::profile))
        .at("/subjects/:external_id/holds", post(subjects::hold))
        .at("/subjects/:external_id/lift", post(subjects::lift))
        .at("/register", get(records::register_page))
        .at("/register.csv", get(records::register_csv))
        .at(
            "/purposes",
            get(records::purpose_list).post(settings::save_purpose),
        )
        .at("/purposes/new", get(settings::purpose_editor))
        .at("/purposes/:key/edit", get(settings::purpose_editor))
        .at("/purposes/:key", post(settings::save_purpose))
        .at("/purposes/:key/archive", post(settings::archive_purpose))
        .at(
            "/retention",
            get(records::retention_rules).post(settings::save_rule),
        )
        .at("/retention/new", get(settings::rule_editor))
        .at("/retention/:category/edit", get(settings::rule_editor))
        .at("/retention/:category", post(settings::save_rule))
        .at("/systems", get(systems::list).post(systems::save))
        .at("/systems/new", get(systems::editor))
        .at("/systems/:key/edit", get(systems::editor))
        .at("/systems/:key", post(systems::save))
        .at("/systems/:key/retire", post(systems::retire))
        .at("/policies", get(records::policy_list).post(records::draft))
        .at("/policies/new", get(records::new_draft))
        .at("/policies/:id", get(records::policy_page))
        .at("/policies/:id/:action", post(records::policy_action))
        .at(
            "/purges",
            get(operations::purge_runs).post(operations::run_purge),
        )
        .at("/purges/:id", get(operations::purge_run))
        .at("/outbox", get(operations::dead_letters))
        .at("/outbox/:id/retry", post(operations::retry))
        .at("/audit", get(operations::audit_log))
        .at(
            "/keys",
            get(operations::api_keys).post(operations::create_key),
        )
        .at("/keys/:id/revoke", post(operations::revoke_key))
        .around({
            let state = state.clone();
            move |ep, req| crate::web::csrf::guard(ep, req, state.clone(), &CONSOLE)
        })
        .around(move |ep, req| pages_for_errors(ep, req, state.clone(), &CONSOLE))
}

/// A signed-in member of staff: their browser, account and session.
pub struct Staff {
    pub browser: Browser,
    pub user: StaffUser,
}

impl std::ops::Deref for Staff {
    type Target = Browser;

    fn deref(&self) -> &Browser {
        &self.browser
    }
}

impl Staff {
    /// The member of staff whose completed session the cookie names; otherwise the error that
    /// sends the visitor to the sign-in page.
    pub async fn load(state: &AppState, req: &Request) -> Result<Self, ApiError> {
        let signed_out = || ApiError::unauthorized("sign in first").with_reason("signed_out");
        let (user, token) = session_user(state, req).await?.ok_or_else(signed_out)?;
        if !user.1 {
            return Err(signed_out());
        }
        Ok(Self {
            browser: Browser::new(state, req, &CONSOLE, Some(token), None),
            user: user.0,
        })
    }

    /// 403 unless the account's role covers `required`.
    pub fn require(&self, required: Role) -> Result<(), ApiError> {
        if self.user.role.allows(required) {
            Ok(())
        } else {
            Err(
                ApiError::forbidden(format!("this needs the `{}` role", required.as_str()))
                    .with_reason("forbidden_role"),
            )
        }
    }

    pub fn actor(&self) -> Actor {
        Actor::Staff(self.user.id.clone())
    }

    /// Reads a form after checking the role it needs and its CSRF token.
    pub async fn form(&self, required: Role, body: poem::Body) -> Result<FormData, ApiError> {
        self.require(required)?;
        self.browser.form(body).await
    }

    /// Renders `console/<template>`; every page learns what the account may do, so that a
    /// viewer sees no writing buttons.
    pub fn page(
        self,
        state: &AppState,
        template: &str,
        mut data: Value,
        status: StatusCode,
    ) -> Response {
        if let Some(fields) = data.as_object_mut() {
            fields.insert("_email".into(), self.user.email.clone().into());
            fields.insert("_role".into(), self.user.role.as_str().into());
            fields.insert(
                "_can_review".into(),
                self.user.role.allows(Role::Reviewer).into(),
            );
            fields.insert(
                "_can_admin".into(),
                self.user.role.allows(Role::Admin).into(),
            );
        }
        self.browser.render(state, template, data, status, true)
    }

    pub fn redirect(self, to: &str) -> Response {
        self.browser.redirect(to)
    }
}

/// The account and whether its session is complete (past the second factor), with the cookie's
/// value; `None` without a live session or for a disabled account.
async fn session_user(
    state: &AppState,
    req: &Request,
) -> Result<Option<((StaffUser, bool), String)>, ApiError> {
    let Some(token) = Browser::session_cookie(state, req, &CONSOLE) else {
        return Ok(None);
    };
    let idle = TimeDelta::minutes(state.config.console.idle_minutes.into());
    let Some(session) = sessions::find(state.db.conn(), &token, idle).await? else {
        return Ok(None);
    };
    let user = staff::by_id(state.db.conn(), &session.user_id)
        .await?
        .filter(|u| u.disabled_at.is_none());
    Ok(user.map(|u| ((u, session.second_factor), token)))
}

/// How long a completed console session lasts.
fn session_lifetime(state: &AppState) -> TimeDelta {
    TimeDelta::minutes(state.config.console.session_minutes.into())
}

/// The field errors a refused save shows on its form: the domain's own, or else its refusal (a
/// key taken, say) under `field`. A server error stays an error page.
fn refusal(err: ApiError, field: &str) -> Result<Vec<FieldError>, ApiError> {
    if err.status().is_server_error() {
        return Err(err);
    }
    let mut errors = err.field_errors().to_vec();
    if errors.is_empty() {
        errors.push(FieldError::new(field, err.detail().unwrap_or("refused")));
    }
    Ok(errors)
}

/// Field errors as the form templates read them.
fn errors_json(errors: &[FieldError]) -> Vec<serde_json::Value> {
    errors
        .iter()
        .map(|e| serde_json::json!({"field": e.field, "message": e.message}))
        .collect()
}
