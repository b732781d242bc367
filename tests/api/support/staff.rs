//! Console accounts as tests need them: created as the command line does, set up from their
//! link, signed in with a password and the authenticator's code.

use chrono::Utc;
use consentry::{
    audit::Actor,
    auth::Role,
    staff::{self, totp},
};
use reqwest::StatusCode;

use super::{Browser, Page, TestApp};

pub(crate) const PASSWORD: &str = "correct horse battery staple";

/// Creates an account as `consentry users create` does and returns its setup path.
pub(crate) async fn account(app: &TestApp, email: &str, role: Role) -> String {
    let tx = app.state.db.begin().await.unwrap();
    let (_, link) = staff::create(&tx, email, role, &Actor::Cli).await.unwrap();
    tx.commit().await.unwrap();
    format!("/console/setup?token={}", link.token)
}

/// The account's authenticator's next code: the current one, or the next step's when the
/// current one was used already (a code works once).
pub(crate) async fn code_of(app: &TestApp, email: &str) -> String {
    let user = staff::by_email(app.state.db.conn(), email)
        .await
        .unwrap()
        .unwrap();
    let seed = staff::totp_seed(&app.state.config, &user).unwrap().unwrap();
    let now = Utc::now().timestamp();
    let step = user
        .totp_last_step
        .map_or(now / 30, |last| (now / 30).max(last + 1));
    totp::code(&seed, (step * 30) as u64)
}

/// Sets up an account through its link, signs in and enrols the second factor.
pub(crate) async fn staff_browser<'a>(app: &'a TestApp, email: &str, role: Role) -> Browser<'a> {
    let setup = account(app, email, role).await;
    let browser = Browser::new(app);
    let form = browser.get(&setup).await;
    let token = form.field("token").unwrap();
    let set = browser
        .submit(
            &form,
            "/console/setup",
            &[
                ("token", &token),
                ("password", PASSWORD),
                ("confirm", PASSWORD),
            ],
        )
        .await;
    assert_eq!(set.status, StatusCode::SEE_OTHER, "{}", set.body);
    sign_in(app, &browser, email).await;
    browser
}

pub(crate) async fn sign_in(app: &TestApp, browser: &Browser<'_>, email: &str) -> Page {
    let form = browser.get("/console/signin").await;
    let after = browser
        .submit(
            &form,
            "/console/signin",
            &[("email", email), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(after.status, StatusCode::SEE_OTHER, "{}", after.body);
    let second = browser.get(after.location()).await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.body);
    let code = code_of(app, email).await;
    let done = browser
        .submit(&second, after.location(), &[("code", &code)])
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.location(), "/console");
    browser.get("/console").await
}
