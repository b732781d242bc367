//! The rights portal over HTTP, as a browser without JavaScript uses it: cookies kept between
//! requests, redirects looked at rather than followed, forms posted with the token the page
//! gave, every email's link followed to its page.

use chrono::Utc;
use consentry::auth::Role;
use reqwest::{StatusCode, header};
use serde_json::{Value, json};

use crate::{
    age::years_ago,
    support::{Browser, Fixture, Page, code_in, fixture_with, json, purpose_body, subject_token},
};

/// A fixture with the purposes the pages show: two by consent (one needing separate consent
/// under PIPL), one by contract and required.
pub(crate) async fn portal_fixture() -> (Fixture, String) {
    portal_fixture_with(|_| {}).await
}

/// [`portal_fixture`] with a chance to change the configuration first.
pub(crate) async fn portal_fixture_with(
    customize: impl FnOnce(&mut consentry::config::Config),
) -> (Fixture, String) {
    let f = fixture_with(customize).await;
    let admin = f.app.key(Role::Admin).await;
    let mut abroad = purpose_body("cloud_backup");
    abroad["separate_consent"] = json!(true);
    abroad["separate_consent_reason"] = json!("cross_border_transfer");
    let mut account = purpose_body("account");
    account["legal_basis"] = json!("contract");
    account["required"] = json!(true);
    f.app
        .create_purposes(&admin, &[purpose_body("marketing_email"), abroad, account])
        .await;
    (f, admin)
}

/// Files a request of `kind` with no details through the portal's forms; returns its id.
async fn file_in_portal(browser: &Browser<'_>, kind: &str) -> String {
    let form = browser.get(&format!("/portal/requests/new/{kind}")).await;
    let filed = browser
        .submit(
            &form,
            "/portal/requests",
            &[("kind", kind), ("step", "file")],
        )
        .await;
    filed.request_id()
}

fn form_with(page: &Page, action: &str) -> bool {
    page.body.contains(&format!("action=\"{action}\""))
}

#[tokio::test]
async fn the_handoff_starts_a_protected_session_and_pages_carry_browser_protections() {
    let (f, _admin) = portal_fixture().await;
    f.app
        .set_subject("ann", Some("ann@example.com"), Some("en"), Some("DE"))
        .await;
    let browser = Browser::new(&f.app);

    let handoff = browser
        .get(&format!("/portal/session?token={}", subject_token("ann")))
        .await;
    assert_eq!(handoff.status, StatusCode::SEE_OTHER);
    let cookie = handoff
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("consentry_portal="))
        .expect("a session cookie");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/portal", "Max-Age="] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain http in tests: {cookie}");

    let home = browser.get("/portal").await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(home.is_html());
    let csp = home.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'none'"));
    assert!(!csp.contains("script-src"), "no script runs: {csp}");
    assert_eq!(home.headers["x-frame-options"], "DENY");
    assert_eq!(home.headers["referrer-policy"], "no-referrer");
    assert_eq!(home.headers["cache-control"], "no-store");
    home.shows("Purpose marketing_email");
    home.shows("Northwind Cloud Inc. (United States)");
    home.shows("1 year");
    home.shows("Uses that need your separate consent");
    home.shows("Sent outside mainland China (PIPL Art 39)");
    home.shows("Needed for the service to work");
    assert!(
        !home.body.contains("ann@example.com"),
        "no personal data shown unasked"
    );

    // A token the main app did not sign gets a page, not a JSON problem.
    let forged = Browser::new(&f.app)
        .get("/portal/session?token=eyJhbGciOiJIUzI1NiJ9.e30.c2lnbmF0dXJl")
        .await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);
    assert!(forged.is_html());
    forged.shows("This link is not valid or has expired");

    // Without a session the home page says how to sign in and offers the email path.
    let stranger = Browser::new(&f.app).get("/portal").await;
    assert_eq!(stranger.status, StatusCode::OK);
    stranger.shows("/portal/requests/by-email");
    let private = Browser::new(&f.app).get("/portal/history").await;
    assert_eq!(private.status, StatusCode::UNAUTHORIZED);
    private.shows("Your session has ended");

    // Signing out ends the session on the server, not only in the browser.
    let out = browser.submit(&home, "/portal/signout", &[]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(!browser.has_cookie("consentry_portal"));
    assert_eq!(
        browser.get("/portal/history").await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn withdrawing_is_one_button_like_granting_and_the_check_says_withdrawn_at_once() {
    let (f, _admin) = portal_fixture().await;
    f.app
        .set_subject("bo", Some("bo@example.com"), Some("en"), Some("FR"))
        .await;
    let browser = Browser::new(&f.app);
    let home = browser.sign_in("bo").await;
    assert!(form_with(&home, "/portal/consents/marketing_email"));
    let policy = home.field("policy").expect("the policy shown is named");

    let granted = browser
        .submit(
            &home,
            "/portal/consents/marketing_email",
            &[("granted", "true"), ("policy", &policy)],
        )
        .await;
    assert_eq!(granted.status, StatusCode::SEE_OTHER);
    assert_eq!(f.check("bo", "marketing_email").await["allowed"], true);
    let home = browser.get(granted.location()).await;
    home.shows("You gave consent to “Purpose marketing_email”.");
    home.shows("Withdraw consent");

    let withdrawn = browser
        .submit(
            &home,
            "/portal/consents/marketing_email",
            &[("granted", "false"), ("policy", &policy)],
        )
        .await;
    assert_eq!(withdrawn.status, StatusCode::SEE_OTHER);
    let check = f.check("bo", "marketing_email").await;
    assert_eq!(check["allowed"], false);
    assert_eq!(check["reason"], "withdrawn");

    let history = browser.get("/portal/history").await;
    history.shows("Your record is intact.");
    history.shows("We checked all 2 entries");
    let receipt_link = history
        .body
        .split("href=\"")
        .find(|s| s.contains("/receipt"))
        .and_then(|s| s.split('"').next())
        .expect("a receipt link")
        .to_string();
    let receipt = browser.get(&receipt_link).await;
    assert_eq!(receipt.status, StatusCode::OK);
    assert!(
        receipt.headers["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    let receipt: Value = serde_json::from_str(&receipt.body).unwrap();
    assert_eq!(receipt["action"], "withdraw");
    assert_eq!(receipt["collection_method"], "portal");
    assert!(
        receipt["withdrawal_method"]
            .as_str()
            .unwrap()
            .contains("/portal")
    );

    // Another person's receipt is as unknown as a missing one.
    let other = Browser::new(&f.app);
    other.sign_in("cy").await;
    assert_eq!(other.get(&receipt_link).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_form_without_its_token_is_refused_with_a_page_and_changes_nothing() {
    let (f, _admin) = portal_fixture().await;
    let browser = Browser::new(&f.app);
    let home = browser.sign_in("dee").await;
    let policy = home.field("policy").unwrap();
    for csrf in ["", "forged-token"] {
        let refused = browser
            .post(
                "/portal/consents/marketing_email",
                &[("csrf", csrf), ("granted", "true"), ("policy", &policy)],
            )
            .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        assert!(refused.is_html());
        refused.shows("This form has expired");
    }
    // A token from another browser does not work either.
    let elsewhere = Browser::new(&f.app);
    let theirs = elsewhere.sign_in("eve").await.csrf();
    let refused = browser
        .post(
            "/portal/consents/marketing_email",
            &[("csrf", &theirs), ("granted", "true"), ("policy", &policy)],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(
        f.check("dee", "marketing_email").await["reason"],
        "no_consent"
    );
}

#[tokio::test]
async fn a_refused_decision_is_explained_on_a_page() {
    let (f, admin) = portal_fixture().await;
    let browser = Browser::new(&f.app);
    let home = browser.sign_in("fay").await;
    let policy = home.field("policy").unwrap();
    // The required purpose has no button; forcing the form is refused with words, not JSON.
    let refused = browser
        .submit(
            &home,
            "/portal/consents/account",
            &[("granted", "false"), ("policy", &policy)],
        )
        .await;
    assert!(refused.status.is_client_error(), "{}", refused.status);
    assert!(refused.is_html());
    let _ = admin;
    // An unknown page under the portal is a page in the visitor's language.
    let lost = Browser::speaking(&f.app, "zh-CN,zh;q=0.9")
        .get("/portal/no-such-page")
        .await;
    assert_eq!(lost.status, StatusCode::NOT_FOUND);
    assert!(lost.is_html());
    lost.shows("找不到页面");
}

#[tokio::test]
async fn a_request_is_checked_before_it_is_filed_and_its_errors_show_on_the_form() {
    let (f, _admin) = portal_fixture().await;
    f.app
        .set_subject("gus", Some("gus@example.com"), Some("en"), Some("DE"))
        .await;
    let browser = Browser::new(&f.app);
    browser.sign_in("gus").await;
    let choose = browser.get("/portal/requests/new").await;
    for kind in ["access", "export", "rectify", "erase", "restrict", "object"] {
        choose.shows(&format!("/portal/requests/new/{kind}"));
        assert_eq!(
            browser
                .get(&format!("/portal/requests/new/{kind}"))
                .await
                .status,
            StatusCode::OK
        );
    }
    assert_eq!(
        browser.get("/portal/requests/new/launder").await.status,
        StatusCode::NOT_FOUND
    );

    let form = browser.get("/portal/requests/new/rectify").await;
    let empty = browser
        .submit(
            &form,
            "/portal/requests",
            &[("kind", "rectify"), ("step", "check")],
        )
        .await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
    empty.shows("There is a problem");
    empty.shows("href=\"#field-changes\"");
    empty.shows("Enter at least one corrected value");

    let bad_email = browser
        .submit(
            &form,
            "/portal/requests",
            &[
                ("kind", "rectify"),
                ("step", "file"),
                ("change.email", "not-an-address"),
            ],
        )
        .await;
    assert_eq!(bad_email.status, StatusCode::UNPROCESSABLE_ENTITY);
    bad_email.shows("not an email address");

    let check = browser
        .submit(
            &form,
            "/portal/requests",
            &[
                ("kind", "rectify"),
                ("step", "check"),
                ("change.name", "Gustav Berg"),
            ],
        )
        .await;
    assert_eq!(check.status, StatusCode::OK);
    check.shows("Check your request");
    check.shows("Gustav Berg");
    let before = browser.get("/portal/requests").await;
    before.shows("You have not made any requests.");

    let filed = browser
        .submit(
            &check,
            "/portal/requests",
            &[
                ("kind", "rectify"),
                ("step", "file"),
                ("change.name", "Gustav Berg"),
            ],
        )
        .await;
    assert_eq!(filed.status, StatusCode::SEE_OTHER);
    let confirmation = browser.get(filed.location()).await;
    confirmation.shows("Request received");
    confirmation.shows("the GDPR");
    let id = filed.request_id();
    let request = f.admin_request(&id).await;
    assert_eq!(request["type"], "rectify");
    assert_eq!(request["details"]["changes"]["name"], "Gustav Berg");
    let due = request["due_date"]
        .as_str()
        .unwrap()
        .parse::<chrono::NaiveDate>()
        .unwrap();
    confirmation.shows(&format!("{} {}", due.format("%-d %B"), due.format("%Y")));

    // Another person cannot see it.
    let other = Browser::new(&f.app);
    other.sign_in("hal").await;
    assert_eq!(
        other.get(&format!("/portal/requests/{id}")).await.status,
        StatusCode::NOT_FOUND
    );

    // An objection names the purposes.
    let object = browser.get("/portal/requests/new/object").await;
    object.shows("Purpose marketing_email");
    assert!(
        !object.body.contains("value=\"account\""),
        "required purposes are not offered"
    );
}

#[tokio::test]
async fn a_request_by_email_goes_through_the_code_page() {
    let (f, _admin) = portal_fixture().await;
    let browser = Browser::speaking(&f.app, "zh-CN");
    let form = browser.get("/portal/requests/by-email").await;
    form.shows("通过邮箱提交申请");

    let missing = browser
        .submit(&form, "/portal/requests/by-email", &[("email", "")])
        .await;
    assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY);
    missing.shows("请输入您的电子邮箱");
    missing.shows("请选择申请类型");
    missing.shows("请选择您的居住地，或选择“其他地区”");

    let filed = browser
        .submit(
            &form,
            "/portal/requests/by-email",
            &[
                ("email", "li@example.com"),
                ("kind", "access"),
                ("jurisdiction", "CN"),
            ],
        )
        .await;
    assert_eq!(filed.status, StatusCode::SEE_OTHER);
    let code_page = browser.get(filed.location()).await;
    code_page.shows("请查收邮件");
    f.drain().await;
    let mail = f.mail_to("li@example.com", 1).await;
    let code = code_in(&mail[0]);
    let wrong = if code == "000000" { "111111" } else { "000000" };

    let refused = browser
        .submit(&code_page, filed.location(), &[("code", wrong)])
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    refused.shows("验证码不正确，您还可以尝试 4 次。");

    let verified = browser
        .submit(&code_page, filed.location(), &[("code", &code)])
        .await;
    assert_eq!(verified.status, StatusCode::OK);
    verified.shows("申请已确认");
    verified.shows("《个人信息保护法》");
}

#[tokio::test]
async fn an_address_past_its_daily_budget_gets_a_page_saying_to_come_back_tomorrow() {
    let f = fixture_with(|c| c.rate_limit.filings_per_email_per_day = 1).await;
    let browser = Browser::speaking(&f.app, "zh-CN");
    let form = browser.get("/portal/requests/by-email").await;
    let fields = [
        ("email", "li@example.com"),
        ("kind", "access"),
        ("jurisdiction", "other"),
    ];
    let filed = browser
        .submit(&form, "/portal/requests/by-email", &fields)
        .await;
    assert_eq!(filed.status, StatusCode::SEE_OTHER);
    let again = browser
        .submit(&form, "/portal/requests/by-email", &fields)
        .await;
    assert_eq!(again.status, StatusCode::TOO_MANY_REQUESTS);
    again.shows("今天的申请和验证码尝试次数已用完");
}

#[tokio::test]
async fn pages_speak_the_visitors_language_and_the_switch_remembers_it() {
    let (f, _admin) = portal_fixture().await;
    let browser = Browser::speaking(&f.app, "zh-CN,zh;q=0.9,en;q=0.5");
    let home = browser.sign_in("mei").await;
    assert!(home.body.contains("<html lang=\"zh-CN\">"));
    home.shows("您的隐私选择");
    home.shows("目的 marketing_email");
    home.shows("美国");
    home.shows("1年");
    let english = browser.get("/portal?lang=en").await;
    english.shows("Your privacy choices");
    // Remembered without the parameter.
    browser.get("/portal").await.shows("Your privacy choices");
    browser
        .get("/portal/requests?lang=zh-CN")
        .await
        .shows("您的申请");
}

/// A child of `jurisdiction` named Mia whose guardian is emailed a consent link; the link's path.
async fn guardian_link_for(f: &Fixture, who: &str, jurisdiction: &str, guardian: &str) -> String {
    json(
        f.app
            .send_event(
                "subject.upserted",
                json!({"external_id": who, "email": format!("{who}@example.com"), "name": "Mia",
                       "locale": "en", "jurisdiction": jurisdiction, "birth_date": years_ago(10),
                       "guardian_email": guardian}),
            )
            .await,
        StatusCode::OK,
    )
    .await;
    f.drain().await;
    let mail = f.mail_to(guardian, 1).await;
    assert!(mail[0].subject.contains("Mia"), "{}", mail[0].subject);
    first_link(&mail[0].text, "/guardian/confirm")
}

/// Answers the question on `page` with `answers` (purpose, yes or no).
async fn answer(browser: &Browser<'_>, page: &Page, answers: &[(&str, &str)]) -> Page {
    let token = page.field("token").unwrap();
    let policy = page.field("policy").unwrap();
    let fields: Vec<(String, String)> = answers
        .iter()
        .map(|(key, answer)| (format!("decision.{key}"), answer.to_string()))
        .chain([("token".into(), token), ("policy".into(), policy)])
        .collect();
    let fields: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    browser
        .submit(page, "/portal/guardian/confirm", &fields)
        .await
}

#[tokio::test]
async fn a_guardian_answers_one_question_at_a_time_and_can_change_any_answer_later() {
    let (f, _admin) = portal_fixture().await;
    let link = guardian_link_for(&f, "kid", "DE", "parent@example.com").await;
    let browser = Browser::new(&f.app);
    let first = browser.get(&link).await;
    assert_eq!(first.status, StatusCode::OK);
    first.shows("Decide for Mia");
    first.shows("Question 1 of 2");
    first.shows("Purpose marketing_email");
    assert!(
        !first.body.contains("Purpose cloud_backup"),
        "asked on its own, later"
    );
    assert!(
        !first.body.contains(" checked"),
        "no decision is made in advance"
    );

    let unanswered = answer(&browser, &first, &[]).await;
    assert_eq!(unanswered.status, StatusCode::UNPROCESSABLE_ENTITY);
    unanswered.shows("Choose yes or no for “Purpose marketing_email”");

    let next = answer(&browser, &first, &[("marketing_email", "no")]).await;
    assert_eq!(next.status, StatusCode::SEE_OTHER, "{}", next.body);
    let second = browser.get(next.location()).await;
    second.shows("Question 2 of 2");
    second.shows("Purpose cloud_backup");
    second.shows("What we tell your child:");
    assert!(
        !second.body.contains("outside mainland China"),
        "a German parent reads no note of Chinese law"
    );
    assert_eq!(f.check("kid", "cloud_backup").await["allowed"], false);
    let done = answer(&browser, &second, &[("cloud_backup", "yes")]).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    done.shows("will use Mia&#x27;s data only as you agreed");
    assert_eq!(f.check("kid", "cloud_backup").await["allowed"], true);

    let used = browser.get(&link).await;
    assert_eq!(used.status, StatusCode::GONE);
    used.shows("This link has already been used");
    let unknown = browser
        .get("/portal/guardian/confirm?token=not-a-real-token")
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    unknown.shows("We do not recognise this link");

    // The lasting link: each choice with one button, withdrawing as easy as giving.
    f.drain().await;
    let mail = f.mail_to("parent@example.com", 2).await;
    let confirmed = mail
        .iter()
        .find(|m| m.text.contains("/guardian/choices"))
        .unwrap();
    let choices = browser
        .get(&first_link(&confirmed.text, "/guardian/choices"))
        .await;
    assert_eq!(choices.status, StatusCode::OK, "{}", choices.body);
    choices.shows("Mia");
    let token = choices.field("token").unwrap();
    let withdrawn = browser
        .submit(
            &choices,
            "/portal/guardian/choices",
            &[
                ("token", &token),
                ("purpose", "cloud_backup"),
                ("decision", "withdraw"),
            ],
        )
        .await;
    assert_eq!(
        withdrawn.status,
        StatusCode::SEE_OTHER,
        "{}",
        withdrawn.body
    );
    assert_eq!(f.check("kid", "cloud_backup").await["allowed"], false);
    let given = browser
        .submit(
            &choices,
            "/portal/guardian/choices",
            &[
                ("token", &token),
                ("purpose", "marketing_email"),
                ("decision", "grant"),
            ],
        )
        .await;
    assert_eq!(given.status, StatusCode::SEE_OTHER, "{}", given.body);
    assert_eq!(f.check("kid", "marketing_email").await["allowed"], true);
    browser
        .get(given.location())
        .await
        .shows("Changed just now.");
}

#[tokio::test]
async fn a_chinese_guardian_grants_two_separate_purposes_one_after_the_other() {
    let (f, _admin) = portal_fixture().await;
    let link = guardian_link_for(&f, "xiaoming", "CN", "mama@example.com").await;
    let browser = Browser::speaking(&f.app, "zh-CN,zh;q=0.9");
    let first = browser.get(&link).await;
    first.shows("第 1 个问题，共 2 个");
    first.shows("目的 cloud_backup");
    first.shows("境外提供");
    let next = answer(&browser, &first, &[("cloud_backup", "yes")]).await;
    assert_eq!(next.status, StatusCode::SEE_OTHER, "{}", next.body);
    let second = browser.get(next.location()).await;
    second.shows("第 2 个问题，共 2 个");
    let done = answer(&browser, &second, &[("marketing_email", "yes")]).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert_eq!(f.check("xiaoming", "cloud_backup").await["allowed"], true);
    assert_eq!(
        f.check("xiaoming", "marketing_email").await["allowed"],
        true
    );
}

/// The unsubscribe link the main app asks for to put in a marketing email to `who`, and its
/// path on this service.
async fn unsubscribe_link(f: &Fixture, who: &str) -> (Value, String) {
    let link = f
        .app
        .read(
            &format!("/v1/subjects/{who}/consents/marketing_email/unsubscribe"),
            &f.service,
        )
        .await;
    let path = link["url"]
        .as_str()
        .unwrap()
        .split_once("/portal")
        .map(|(_, p)| format!("/portal{p}"))
        .unwrap();
    (link, path)
}

/// A mail provider sends one-click requests for many people from one address: each link has a
/// limit of its own, so none is refused; links that do not verify are limited per address.
#[tokio::test]
async fn one_click_requests_from_one_address_are_limited_per_link() {
    let f = fixture_with(|c| c.rate_limit.per_minute = 2).await;
    let admin = f.app.key(Role::Admin).await;
    f.app
        .create_purposes(&admin, &[purpose_body("marketing_email")])
        .await;
    let people = ["p1", "p2", "p3", "p4"];
    for who in people {
        f.grant(who, "marketing_email").await;
    }
    let provider = reqwest::Client::new();
    for who in people {
        let (_, path) = unsubscribe_link(&f, who).await;
        let resp = provider
            .post(f.app.url(&path))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body("List-Unsubscribe=One-Click")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{who}");
        assert_eq!(f.check(who, "marketing_email").await["reason"], "withdrawn");
    }
    let guess = |n: u32| {
        provider
            .post(f.app.url(&format!("/portal/unsubscribe?token=guess-{n}")))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body("List-Unsubscribe=One-Click")
            .send()
    };
    assert_eq!(guess(1).await.unwrap().status(), StatusCode::NOT_FOUND);
    assert_eq!(guess(2).await.unwrap().status(), StatusCode::NOT_FOUND);
    assert_eq!(
        guess(3).await.unwrap().status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn one_click_unsubscribe_withdraws_without_a_login_and_tells_the_main_app() {
    let (f, _admin) = portal_fixture().await;
    f.grant("ivy", "marketing_email").await;
    let (link, path) = unsubscribe_link(&f, "ivy").await;
    assert_eq!(link["list_unsubscribe_post"], "List-Unsubscribe=One-Click");
    let url = link["url"].as_str().unwrap();
    assert_eq!(link["list_unsubscribe"], format!("<{url}>"));
    assert!(
        !url.contains("ivy"),
        "the main app's id stays out of the link"
    );

    let page = Browser::new(&f.app).get(&path).await;
    assert_eq!(page.status, StatusCode::OK);
    page.shows("Stop “Purpose marketing_email”?");

    // The mail provider's POST: no cookies, no token, the RFC 8058 body.
    let provider = reqwest::Client::new()
        .post(f.app.url(&path))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(provider.status(), StatusCode::OK);
    let check = f.check("ivy", "marketing_email").await;
    assert_eq!(check["reason"], "withdrawn");
    let history = crate::age::history(&f.app, "ivy").await;
    assert_eq!(history[0]["channel"], "unsubscribe:one-click");
    assert_eq!(history[0]["actor"], "subject");
    f.drain().await;
    assert!(
        f.main_app
            .received()
            .iter()
            .any(|h| h.body["type"] == "consent.withdrawn"
                && h.body["data"]["purpose"] == "marketing_email"),
        "the main app hears of the withdrawal"
    );

    // Without the one-click body, a POST needs the page's token; a forged link is refused.
    let no_token = Browser::new(&f.app).post(&path, &[]).await;
    assert_eq!(no_token.status, StatusCode::FORBIDDEN);
    let forged = path.replace("token=", "token=x");
    assert_eq!(
        Browser::new(&f.app).get(&forged).await.status,
        StatusCode::NOT_FOUND
    );
    // Unsubscribing twice is harmless.
    Browser::new(&f.app)
        .get(&path)
        .await
        .shows("You are not subscribed");
}

/// An attribute's value as the browser reads it.
fn unescape(html: &str) -> String {
    html.replace("&#x3D;", "=")
        .replace("&#x2F;", "/")
        .replace("&amp;", "&")
}

/// The first link to this service in a mail's text that contains `part`, as a path.
pub(crate) fn first_link(text: &str, part: &str) -> String {
    text.split_whitespace()
        .filter(|w| w.starts_with("http"))
        .find(|w| w.contains(part))
        .map(|url| {
            let after_scheme = url.split_once("://").unwrap().1;
            after_scheme[after_scheme.find('/').unwrap()..].to_string()
        })
        .unwrap_or_else(|| panic!("no link with {part} in:\n{text}"))
}

/// Every link to this service in a mail's text, as paths.
fn links(text: &str) -> Vec<String> {
    text.split_whitespace()
        .filter(|w| w.starts_with("http://127.0.0.1"))
        .map(|url| {
            let after_scheme = url.split_once("://").unwrap().1;
            after_scheme[after_scheme.find('/').unwrap()..].to_string()
        })
        .collect()
}

#[tokio::test]
async fn every_link_in_every_email_lands_on_a_page() {
    let (f, admin) = portal_fixture().await;
    f.app
        .set_subject("jo", Some("jo@example.com"), Some("zh-CN"), Some("CN"))
        .await;
    // An export filed in the portal, approved and fulfilled: the "export ready" email.
    let browser = Browser::new(&f.app);
    let home = browser.sign_in("jo").await;
    let policy = home.field("policy").unwrap();
    browser
        .submit(
            &home,
            "/portal/consents/marketing_email",
            &[("granted", "true"), ("policy", &policy)],
        )
        .await;
    let id = file_in_portal(&browser, "export").await;
    f.approve_and_fulfil(&id, json!({"data": {"photos": []}}))
        .await;
    // A guardian's link.
    json(
        f.app
            .send_event(
                "subject.upserted",
                json!({"external_id": "kid2", "email": "kid2@example.com", "locale": "en",
                       "jurisdiction": "FR", "birth_date": years_ago(9),
                       "guardian_email": "guardian2@example.com"}),
            )
            .await,
        StatusCode::OK,
    )
    .await;
    // A material policy change: the "policy changed" email, with the version and the diff.
    let draft = json(
        f.app
            .post("/v1/admin/policies")
            .bearer_auth(&admin)
            .json(
                &json!({"key": "privacy-policy", "jurisdiction": "CN", "language": "zh-CN",
                          "title": "隐私政策", "body": "# 隐私政策\n\n第三版。\n",
                          "authoritative": true, "material": true,
                          "change_summary": "新增境外提供说明",
                          "effective_at": Utc::now().to_rfc3339()}),
            )
            .send()
            .await
            .unwrap(),
        StatusCode::CREATED,
    )
    .await;
    json(
        f.app
            .post(&format!(
                "/v1/admin/policies/{}/publish",
                draft["id"].as_str().unwrap()
            ))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    f.app
        .rolled_out(&admin, draft["id"].as_str().unwrap())
        .await;
    f.drain().await;
    // The home page asks for a new decision, with what changed and a link to the diff, in the
    // language of the person's locale.
    let home = browser.get("/portal").await;
    home.shows("我们的政策已更新：请重新决定是否同意“目的 marketing_email”");
    home.shows("新增境外提供说明");
    home.shows("/portal/policies/privacy-policy/diff?from&#x3D;2&amp;to&#x3D;3");
    let mails = f.sink.wait_for(4).await;
    let mut followed = 0;
    for mail in &mails {
        for path in links(&mail.text) {
            let page = browser.get(&path).await;
            assert_eq!(
                page.status,
                StatusCode::OK,
                "{path} from “{}”:\n{}",
                mail.subject,
                page.body
            );
            assert!(page.is_html(), "{path}");
            followed += 1;
        }
    }
    let subjects: Vec<&str> = mails.iter().map(|m| m.subject.as_str()).collect();
    assert!(followed >= 4, "links followed: {followed} in {subjects:?}");

    // The export link needs the session as well as the token; the file downloads.
    let ready = mails
        .iter()
        .find(|m| m.text.contains("/export?token="))
        .expect("export ready");
    let export = first_link(&ready.text, "/export?token=");
    let stranger = Browser::new(&f.app).get(&export).await;
    assert_eq!(stranger.status, StatusCode::UNAUTHORIZED);
    stranger.shows("sign in through the app first");
    let page = browser.get(&export).await;
    let file = page
        .body
        .split("href=\"")
        .find(|s| s.starts_with("/portal/requests/") && s.contains("/export/file"))
        .and_then(|s| s.split('"').next())
        .map(unescape)
        .unwrap();
    let download = browser.get(&file).await;
    assert_eq!(download.status, StatusCode::OK);
    let disposition = download.headers["content-disposition"].to_str().unwrap();
    assert!(
        disposition.contains(&format!("request-{id}.zip")),
        "{disposition}"
    );
    assert!(download.body.starts_with("PK"), "a ZIP archive");
}

#[tokio::test]
async fn an_erasure_ends_the_persons_sessions() {
    let (f, _admin) = portal_fixture().await;
    f.app
        .set_subject("kim", Some("kim@example.com"), Some("en"), Some("DE"))
        .await;
    let browser = Browser::new(&f.app);
    browser.sign_in("kim").await;
    let id = file_in_portal(&browser, "erase").await;
    f.approve_and_fulfil(&id, json!({})).await;
    let after = browser.get("/portal/requests").await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
    after.shows("Your session has ended");
}

/// With no purpose based on consent yet, the guardian's link still opens a form, where the
/// guardian confirms who they are; the link is then used up.
#[tokio::test]
async fn a_guardian_with_nothing_to_decide_confirms_on_a_form() {
    let f = fixture_with(|_| {}).await;
    let link = guardian_link_for(&f, "kid", "DE", "parent@example.com").await;
    let browser = Browser::new(&f.app);
    let page = browser.get(&link).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("<form"), "{}", page.body);
    let done = answer(&browser, &page, &[]).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    done.shows("your answers are recorded");
    assert_eq!(browser.get(&link).await.status, StatusCode::GONE);
}
