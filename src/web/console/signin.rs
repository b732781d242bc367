//! Signing in (password, then the TOTP code, or enrolling one), the one-time setup link, signing
//! out, and the account page where staff see and end their sessions.

use poem::{
    Body, Request, Response, handler,
    http::StatusCode,
    web::{Data, Path},
};
use serde_json::json;

use super::{Staff, session_lifetime, session_user};
use crate::{
    AppState, clock, crypto,
    error::ApiError,
    staff::{self, StaffError, StaffUser, sessions, signin, totp},
    web::{
        Lang,
        browser::{Browser, CONSOLE, query_param},
    },
};

fn to_sign_in() -> Response {
    poem::IntoResponse::into_response(poem::web::Redirect::see_other("/console/signin"))
}

/// `GET /console/signin`.
#[handler]
pub async fn sign_in_form(
    req: &Request,
    Data(state): Data<&AppState>,
) -> Result<Response, ApiError> {
    if let Ok(staff) = Staff::load(state, req).await {
        return Ok(staff.redirect("/console"));
    }
    let browser = Browser::new(state, req, &CONSOLE, None, None);
    let data = json!({"ready": query_param(req, "ready").is_some()});
    Ok(browser.render(state, "signin", data, StatusCode::OK, false))
}

/// `POST /console/signin`: the password. Failures are counted (and committed) before the page
/// says so; an unknown or disabled email gets the same answers, after the same work.
#[handler]
pub async fn check_password(
    req: &Request,
    body: Body,
    Data(state): Data<&AppState>,
) -> Result<Response, ApiError> {
    let client = crate::http::client_ip(req);
    state.rate_limiter.check(client)?;
    let mut browser = Browser::new(state, req, &CONSOLE, None, None);
    let form = browser.form(body).await?;
    let email = form.get("email").unwrap_or_default().to_string();
    let attempt = staff::attempt(&state.config, &email, client)?;
    let checked = staff::check_password(
        &state.db,
        &attempt,
        &email,
        form.get("password").unwrap_or_default(),
    )
    .await;
    let user = match checked {
        Ok(user) => user,
        Err(e) => {
            let message = refusal(state, browser.lang, &e)?;
            let data =
                json!({"email": email, "errors": [{"field": "password", "message": message}]});
            return Ok(browser.render(state, "signin", data, StatusCode::UNAUTHORIZED, false));
        }
    };
    let complete = user.totp_enabled_at.is_none() && !state.config.console.require_totp;
    let lifetime = if complete {
        session_lifetime(state)
    } else {
        sessions::PENDING_LIFETIME
    };
    let agent = user_agent(req);
    let (token, expires_at) = signin::open_session(
        &state.db,
        &user,
        &attempt,
        complete,
        lifetime,
        agent.as_deref(),
    )
    .await?;
    browser.set_session(Some(&token), (expires_at - clock::now()).num_seconds());
    Ok(browser.redirect(if complete {
        "/console"
    } else if user.totp_enabled_at.is_some() {
        "/console/signin/code"
    } else {
        "/console/signin/enrol"
    }))
}

/// Words for a refused sign-in; other errors stay errors.
fn refusal(state: &AppState, lang: Lang, e: &StaffError) -> Result<String, ApiError> {
    let words = |key, args: &[(&str, &str)]| state.pages.words(key, lang, args);
    Ok(match e {
        StaffError::BadCredentials => words("signin.bad_credentials", &[]),
        StaffError::BadCode => words("signin.bad_code", &[]),
        StaffError::Locked(until) => words(
            "signin.locked",
            &[("time", &until.format("%H:%M").to_string())],
        ),
        other => return Err(ApiError::internal(other)),
    })
}

fn user_agent(req: &Request) -> Option<String> {
    crate::http::client_evidence(req).0
}

/// The account waiting for its second factor, with its browser; `None` sends it back to the
/// password.
async fn pending(
    state: &AppState,
    req: &Request,
) -> Result<Option<(StaffUser, Browser)>, ApiError> {
    Ok(match session_user(state, req).await? {
        Some(((user, false), token)) => {
            let browser = Browser::new(state, req, &CONSOLE, Some(token), None);
            Some((user, browser))
        }
        _ => None,
    })
}

/// `GET /console/signin/code`.
#[handler]
pub async fn code_form(req: &Request, Data(state): Data<&AppState>) -> Result<Response, ApiError> {
    let Some((_, browser)) = pending(state, req).await? else {
        return Ok(to_sign_in());
    };
    Ok(browser.render(state, "code", json!({}), StatusCode::OK, false))
}

/// `GET /console/signin/enrol`: the seed to add to an authenticator app, shown as text and as an
/// `otpauth://` link. Reloading shows the same seed until it is confirmed. An account whose
/// second factor is confirmed never sees a seed here: it is sent to the code.
#[handler]
pub async fn enrol_form(req: &Request, Data(state): Data<&AppState>) -> Result<Response, ApiError> {
    let Some((user, browser)) = pending(state, req).await? else {
        return Ok(to_sign_in());
    };
    if user.totp_enabled_at.is_some() {
        return Ok(browser.redirect("/console/signin/code"));
    }
    let seed = signin::enrolment_seed(&state.db, &state.config, &user).await?;
    Ok(browser.render(
        state,
        "enrol",
        enrol_data(state, &user, &seed, &[]),
        StatusCode::OK,
        false,
    ))
}

/// `text` as a QR code an authenticator app scans, drawn as inline SVG (no script, no image
/// request), or nothing if it does not fit in one. Screen readers skip it: the key and the link
/// beside it say the same.
fn qr_svg(text: &str) -> Option<String> {
    let matrix = qrcode::QrCode::new(text.as_bytes()).ok()?;
    let svg = matrix
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(200, 200)
        .build();
    let start = svg.find("<svg")?;
    Some(svg[start..].replacen(
        "<svg ",
        "<svg aria-hidden=\"true\" focusable=\"false\" class=\"qr\" ",
        1,
    ))
}

fn enrol_data(
    state: &AppState,
    user: &StaffUser,
    seed: &[u8],
    errors: &[String],
) -> serde_json::Value {
    let issuer = format!("{} Consentry", state.config.controller.name);
    let uri = totp::uri(seed, &issuer, &user.email);
    json!({
        "secret": totp::base32(seed),
        "qr": qr_svg(&uri),
        "uri": uri,
        "errors": errors.iter().map(|m| json!({"field": "code", "message": m})).collect::<Vec<_>>(),
    })
}

/// `POST /console/signin/code` and `/enrol`: the code; a right one replaces the pending session
/// with a complete one.
#[handler]
pub async fn code(
    req: &Request,
    body: Body,
    Data(state): Data<&AppState>,
) -> Result<Response, ApiError> {
    let client = crate::http::client_ip(req);
    state.rate_limiter.check(client)?;
    let Some((user, mut browser)) = pending(state, req).await? else {
        return Ok(to_sign_in());
    };
    let form = browser.form(body).await?;
    let attempt = staff::attempt(&state.config, &user.email, client)?;
    let checked = signin::second_factor(
        &state.db,
        &state.config,
        &user,
        &attempt,
        form.get("code").unwrap_or_default(),
        browser.session.as_deref(),
        session_lifetime(state),
        user_agent(req).as_deref(),
    )
    .await;
    let (token, expires_at) = match checked {
        Ok(opened) => opened,
        Err(e) => {
            let message = refusal(state, browser.lang, &e)?;
            let resp = if user.totp_enabled_at.is_some() {
                let data = json!({"errors": [{"field": "code", "message": message}]});
                browser.render(state, "code", data, StatusCode::UNAUTHORIZED, false)
            } else {
                let seed = staff::totp_seed(&state.config, &user)?.unwrap_or_default();
                let data = enrol_data(state, &user, &seed, &[message]);
                browser.render(state, "enrol", data, StatusCode::UNAUTHORIZED, false)
            };
            return Ok(resp);
        }
    };
    browser.set_session(Some(&token), (expires_at - clock::now()).num_seconds());
    Ok(browser.redirect("/console"))
}

/// `GET /console/setup?token=`: where a new account chooses its password.
#[handler]
pub async fn setup_form(req: &Request, Data(state): Data<&AppState>) -> Result<Response, ApiError> {
    let token = query_param(req, "token").unwrap_or_default();
    let user = staff::by_setup_token(state.db.conn(), &token).await?;
    let browser = Browser::new(state, req, &CONSOLE, None, None);
    let data = json!({"token": token, "email": user.email});
    Ok(browser.render(state, "setup", data, StatusCode::OK, false))
}

/// `POST /console/setup`.
#[handler]
pub async fn setup(
    req: &Request,
    body: Body,
    Data(state): Data<&AppState>,
) -> Result<Response, ApiError> {
    state.rate_limiter.check(crate::http::client_ip(req))?;
    let browser = Browser::new(state, req, &CONSOLE, None, None);
    let form = browser.form(body).await?;
    let token = form.get("token").unwrap_or_default().to_string();
    let user = staff::by_setup_token(state.db.conn(), &token).await?;
    let password = form.get("password").unwrap_or_default();
    let refused = |message: String| json!({"token": token, "email": user.email, "errors": [{"field": "password", "message": message}]});
    if Some(password) != form.get("confirm") {
        let data = refused(state.pages.words("password.differ", browser.lang, &[]));
        return Ok(browser.render(
            state,
            "setup",
            data,
            StatusCode::UNPROCESSABLE_ENTITY,
            false,
        ));
    }
    match staff::set_password(&state.db, &token, password).await {
        Ok(_) => {}
        Err(StaffError::WeakPassword(why)) => {
            let message = state.pages.words(why.message_key(), browser.lang, &[]);
            return Ok(browser.render(
                state,
                "setup",
                refused(message),
                StatusCode::UNPROCESSABLE_ENTITY,
                false,
            ));
        }
        Err(e) => return Err(e.into()),
    }
    Ok(browser.redirect("/console/signin?ready=1"))
}

/// `POST /console/signout`.
#[handler]
pub async fn sign_out(
    req: &Request,
    body: Body,
    Data(state): Data<&AppState>,
) -> Result<Response, ApiError> {
    let mut browser = match session_user(state, req).await? {
        Some((_, token)) => Browser::new(state, req, &CONSOLE, Some(token), None),
        None => Browser::new(state, req, &CONSOLE, None, None),
    };
    browser.form(body).await?;
    if let Some(token) = browser.session.clone() {
        signin::sign_out(&state.db, &token).await?;
    }
    browser.set_session(None, 0);
    Ok(browser.redirect("/console/signin"))
}

/// `GET /console/account`: the account and its sessions.
#[handler]
pub async fn account(req: &Request, Data(state): Data<&AppState>) -> Result<Response, ApiError> {
    let staff = Staff::load(state, req).await?;
    let current = staff
        .session
        .as_deref()
        .map(|t| crypto::sha256_hex(t.as_bytes()))
        .unwrap_or_default();
    let list = sessions::of_user(state.db.conn(), &staff.user.id).await?;
    let data = json!({
        "section": "account",
        "totp": staff.user.totp_enabled_at.is_some(),
        "last_sign_in_at": staff.user.last_sign_in_at.map(|t| t.to_rfc3339()),
        "sessions": list.iter().filter(|s| s.second_factor).map(|s| json!({
            "id": s.id,
            "this": s.token_hash == current,
            "agent": s.user_agent,
            "created_at": s.created_at.to_rfc3339(),
            "last_seen_at": s.last_seen_at.to_rfc3339(),
        })).collect::<Vec<_>>(),
    });
    Ok(staff.page(state, "account", data, StatusCode::OK))
}

/// `POST /console/account/sessions/{id}/end`: ends one of one's own sessions.
#[handler]
pub async fn end_session(
    req: &Request,
    Path(id): Path<String>,
    body: Body,
    Data(state): Data<&AppState>,
) -> Result<Response, ApiError> {
    let staff = Staff::load(state, req).await?;
    staff.form(crate::auth::Role::Viewer, body).await?;
    signin::end_own_session(&state.db, &staff.user, &id).await?;
    Ok(staff.redirect("/console/account"))
}
