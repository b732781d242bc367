//! The privacy team's console over HTTP: staff accounts with a password and a second factor,
//! lockout, sessions, roles enforced on every page and action, the decision page and the
//! register.

use consentry::{
    audit::Actor,
    auth::Role,
    staff::{self},
};
use reqwest::StatusCode;
use serde_json::json;

use crate::{
    portal::portal_fixture,
    support::{Browser, Fixture, PASSWORD, account, code_of, json, purpose_body, staff_browser},
};

#[tokio::test]
async fn an_account_is_set_up_from_its_link_and_signs_in_with_password_and_code() {
    let (f, _) = portal_fixture().await;
    let setup = account(&f.app, "officer@example.com", Role::Reviewer).await;
    let browser = Browser::new(&f.app);

    // Not signed in: every console page sends the visitor to sign in.
    let away = browser.get("/console/requests").await;
    assert_eq!(away.status, StatusCode::SEE_OTHER);
    assert_eq!(away.location(), "/console/signin");

    let form = browser.get(&setup).await;
    form.shows("officer@example.com");
    let token = form.field("token").unwrap();
    for (weak, why) in [
        ("short", "at least 12 characters"),
        ("password1234", "most common"),
    ] {
        let refused = browser
            .submit(
                &form,
                "/console/setup",
                &[("token", &token), ("password", weak), ("confirm", weak)],
            )
            .await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
        refused.shows(why);
    }
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
    assert_eq!(set.location(), "/console/signin?ready=1");
    // The link works once.
    assert_eq!(browser.get(&setup).await.status, StatusCode::NOT_FOUND);
    let user = staff::by_email(f.app.state.db.conn(), "officer@example.com")
        .await
        .unwrap()
        .unwrap();
    assert!(
        user.password_hash
            .as_deref()
            .unwrap()
            .starts_with("$argon2id$")
    );

    // Password first; the second factor is enrolled before anything else opens.
    let signin = browser.get("/console/signin").await;
    let step = browser
        .submit(
            &signin,
            "/console/signin",
            &[("email", "officer@example.com"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(step.location(), "/console/signin/enrol");
    let pending = browser.get("/console").await;
    assert_eq!(
        pending.location(),
        "/console/signin",
        "a password alone opens nothing"
    );
    let enrol = browser.get("/console/signin/enrol").await;
    enrol.shows("totp-secret");
    enrol.shows("otpauth://totp/");
    enrol.shows("<svg aria-hidden=\"true\" focusable=\"false\" class=\"qr\"");
    let wrong = browser
        .submit(&enrol, "/console/signin/enrol", &[("code", "000000")])
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    wrong.shows("That code is not right.");
    let code = code_of(&f.app, "officer@example.com").await;
    let done = browser
        .submit(&enrol, "/console/signin/enrol", &[("code", &code)])
        .await;
    assert_eq!(done.location(), "/console");
    let overview = browser.get("/console").await;
    assert_eq!(overview.status, StatusCode::OK);
    overview.shows("Overdue");
    let csp = overview.headers["content-security-policy"]
        .to_str()
        .unwrap();
    assert!(csp.contains("frame-ancestors 'none'"));

    // The account page lists the session; signing out ends it on the server.
    let account_page = browser.get("/console/account").await;
    account_page.shows("this one");
    let out = browser.submit(&account_page, "/console/signout", &[]).await;
    assert_eq!(out.location(), "/console/signin");
    assert_eq!(browser.get("/console").await.location(), "/console/signin");

    // The next sign-in asks for the code of the enrolled factor.
    let again = browser.get("/console/signin").await;
    let step = browser
        .submit(
            &again,
            "/console/signin",
            &[("email", "officer@example.com"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(step.location(), "/console/signin/code");
}

#[tokio::test]
async fn failed_sign_ins_lock_the_account_whatever_comes_next() {
    let (f, _) = portal_fixture().await;
    let browser = staff_browser(&f.app, "lock@example.com", Role::Viewer).await;
    let stranger = Browser::new(&f.app);
    let form = stranger.get("/console/signin").await;
    for _ in 0..staff::FREE_ATTEMPTS - 1 {
        let refused = stranger
            .submit(
                &form,
                "/console/signin",
                &[
                    ("email", "lock@example.com"),
                    ("password", "not the password"),
                ],
            )
            .await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
        refused.shows("The email or password is not right.");
    }
    let locked = stranger
        .submit(
            &form,
            "/console/signin",
            &[
                ("email", "lock@example.com"),
                ("password", "not the password"),
            ],
        )
        .await;
    locked.shows("Too many failed attempts");
    let right = stranger
        .submit(
            &form,
            "/console/signin",
            &[("email", "lock@example.com"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(right.status, StatusCode::UNAUTHORIZED);
    right.shows("Too many failed attempts");
    // An unknown address gets the same answer as a wrong password.
    let unknown = stranger
        .submit(
            &form,
            "/console/signin",
            &[("email", "nobody@example.com"), ("password", PASSWORD)],
        )
        .await;
    unknown.shows("The email or password is not right.");
    // A session that was already open is not affected; disabling the account ends it.
    assert_eq!(browser.get("/console").await.status, StatusCode::OK);
    let tx = f.app.state.db.begin().await.unwrap();
    staff::disable(&tx, "lock@example.com", &Actor::Cli)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(browser.get("/console").await.location(), "/console/signin");
}

/// A request filed in the portal by a person in China who reads Chinese.
async fn filed(f: &Fixture) -> String {
    f.app
        .set_subject("wei", Some("wei@example.com"), Some("zh-CN"), Some("CN"))
        .await;
    json(
        f.file("wei", json!({"type": "erase", "locale": "zh-CN"}))
            .await,
        StatusCode::CREATED,
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn roles_hold_on_the_server_and_a_viewer_sees_no_writing_buttons() {
    let (f, _) = portal_fixture().await;
    let id = filed(&f).await;
    let viewer = staff_browser(&f.app, "viewer@example.com", Role::Viewer).await;
    let reviewer = staff_browser(&f.app, "reviewer@example.com", Role::Reviewer).await;
    let admin = staff_browser(&f.app, "admin@example.com", Role::Admin).await;

    let page = viewer.get(&format!("/console/requests/{id}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        !page.body.contains(&format!("/console/requests/{id}/take")),
        "no writing buttons for a viewer"
    );
    let forged = viewer
        .submit(&page, &format!("/console/requests/{id}/take"), &[])
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    forged.shows("Your role does not allow this.");
    for path in [
        "/console",
        "/console/requests",
        "/console/subjects?q=wei",
        "/console/register",
        "/console/purposes",
        "/console/retention",
        "/console/policies",
        "/console/purges",
        "/console/outbox",
        "/console/audit",
        "/console/account",
    ] {
        let seen = viewer.get(path).await;
        assert!(
            matches!(seen.status, StatusCode::OK | StatusCode::SEE_OTHER),
            "{path}: {}",
            seen.status
        );
    }
    assert_eq!(
        viewer.get("/console/keys").await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        viewer.get("/console/policies/new").await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        reviewer.get("/console/keys").await.status,
        StatusCode::FORBIDDEN
    );

    // A reviewer takes and approves; the audit log names them.
    let page = reviewer.get(&format!("/console/requests/{id}")).await;
    page.shows(&format!("/console/requests/{id}/take"));
    let taken = reviewer
        .submit(&page, &format!("/console/requests/{id}/take"), &[])
        .await;
    assert_eq!(taken.status, StatusCode::SEE_OTHER);
    // Approving shows first what the person will be told once it is done, and changes nothing.
    let preview = reviewer
        .submit(
            &page,
            &format!("/console/requests/{id}/approve"),
            &[("note", "checked")],
        )
        .await;
    assert_eq!(preview.status, StatusCode::OK, "{}", preview.body);
    preview.shows("what the person will be told");
    preview.shows("请求");
    assert_eq!(f.admin_request(&id).await["status"], "in_review");
    let approved = reviewer
        .submit(
            &preview,
            &format!("/console/requests/{id}/approve"),
            &[("note", "checked"), ("confirm", "1")],
        )
        .await;
    assert_eq!(approved.status, StatusCode::SEE_OTHER, "{}", approved.body);
    assert_eq!(f.admin_request(&id).await["status"], "fulfilling");
    let user = staff::by_email(f.app.state.db.conn(), "reviewer@example.com")
        .await
        .unwrap()
        .unwrap();
    let audit = admin
        .get(&format!("/console/audit?actor=staff:{}", user.id))
        .await;
    audit.shows("request approved");
    audit.shows("taken for review");

    // A form without its token is refused and changes nothing.
    let refused = reviewer
        .post(
            &format!("/console/requests/{id}/reject"),
            &[("reason", "x")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(f.admin_request(&id).await["status"], "fulfilling");

    // Keys: an admin creates one, sees it once, and revokes it.
    let keys = admin.get("/console/keys").await;
    let created = admin
        .submit(
            &keys,
            "/console/keys",
            &[("name", "crm"), ("role", "service")],
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    created.shows("csk_");
}

#[tokio::test]
async fn a_rejection_is_previewed_in_the_persons_language_before_it_is_sent() {
    let (f, _) = portal_fixture().await;
    let id = filed(&f).await;
    let reviewer = staff_browser(&f.app, "r2@example.com", Role::Reviewer).await;
    let page = reviewer.get(&format!("/console/requests/{id}")).await;
    page.shows("Legal limit of an extension");
    page.shows("Only GDPR deadlines can be extended");
    // A Chinese-speaking officer reads why in Chinese.
    let zh = reviewer
        .get(&format!("/console/requests/{id}?lang=zh-CN"))
        .await;
    zh.shows("只有 GDPR 规定的期限可以延长");
    assert!(!zh.body.contains("Only GDPR deadlines"));
    reviewer
        .get(&format!("/console/requests/{id}?lang=en"))
        .await;
    let missing = reviewer
        .submit(&page, &format!("/console/requests/{id}/reject"), &[])
        .await;
    assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY);
    missing.shows("write the reason");
    let preview = reviewer
        .submit(
            &page,
            &format!("/console/requests/{id}/reject"),
            &[("reason", "账户已于上月注销")],
        )
        .await;
    assert_eq!(preview.status, StatusCode::OK);
    preview.shows("账户已于上月注销");
    preview.shows("人民法院");
    assert_eq!(
        f.admin_request(&id).await["status"],
        "verified",
        "nothing is sent from the preview"
    );
    let sent = reviewer
        .submit(
            &preview,
            &format!("/console/requests/{id}/reject"),
            &[("reason", "账户已于上月注销"), ("confirm", "1")],
        )
        .await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER);
    assert_eq!(f.admin_request(&id).await["status"], "rejected");
    f.drain().await;
    let mails = f.mail_to("wei@example.com", 2).await;
    assert!(
        mails.iter().any(|m| m.text.contains("账户已于上月注销")),
        "the rejection email went out"
    );
}

#[tokio::test]
async fn the_register_lists_every_purpose_and_downloads_as_csv_without_formulas() {
    let (f, admin_key) = portal_fixture().await;
    let mut tricky = purpose_body("analytics");
    tricky["texts"]["en"]["title"] = json!("=HYPERLINK(\"http://evil\")");
    tricky["recipients"] =
        json!([{"name": "Beijing Analytics", "role": "processor", "country": "CN"}]);
    f.app.create_purposes(&admin_key, &[tricky]).await;
    let viewer = staff_browser(&f.app, "dpo@example.com", Role::Viewer).await;
    let page = viewer.get("/console/register").await;
    page.shows("Purpose marketing_email");
    page.shows("outside the EEA");
    let csv = viewer.get("/console/register.csv").await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(
        csv.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    assert!(csv.body.starts_with("purpose,title,legal_basis"));
    assert!(csv.body.contains("'=HYPERLINK"), "{}", csv.body);
    assert!(csv.body.contains("cloud_backup"));
}

#[tokio::test]
async fn a_subject_is_found_by_email_and_an_item_held_with_a_reason() {
    let (f, _) = portal_fixture().await;
    f.app
        .set_subject("ola", Some("Ola@Example.com"), Some("en"), Some("NO"))
        .await;
    json(
        f.app
            .send_event(
                "data.recorded",
                json!({"external_id": "ola", "item_ref": "img-9", "category": "photos"}),
            )
            .await,
        StatusCode::OK,
    )
    .await;
    let admin = staff_browser(&f.app, "holds@example.com", Role::Admin).await;
    let found = admin.get("/console/subjects?q=ola@example.com").await;
    assert_eq!(found.location(), "/console/subjects/ola");
    let profile = admin.get("/console/subjects/ola").await;
    profile.shows("img-9");
    profile.shows("The consent record is intact");
    let no_reason = admin
        .submit(
            &profile,
            "/console/subjects/ola/holds",
            &[("item", "img-9"), ("held", "true")],
        )
        .await;
    assert_eq!(no_reason.status, StatusCode::UNPROCESSABLE_ENTITY);
    let held = admin
        .submit(
            &profile,
            "/console/subjects/ola/holds",
            &[
                ("item", "img-9"),
                ("held", "true"),
                ("reason", "litigation 2026-44"),
            ],
        )
        .await;
    assert_eq!(held.status, StatusCode::SEE_OTHER);
    admin.get("/console/subjects/ola").await.shows(">Held<");
}

#[tokio::test]
async fn purposes_and_retention_rules_are_declared_in_the_console() {
    let (f, _) = portal_fixture().await;
    let admin = staff_browser(&f.app, "decl@example.com", Role::Admin).await;
    let form = admin.get("/console/purposes/new").await;
    let fields = |recipients: &'static str| {
        vec![
            ("key", "face_search"),
            ("title_en", "Find faces"),
            ("description_en", "Search your photos by face."),
            ("title_zh", "人脸搜索"),
            ("legal_basis", "consent"),
            ("separate_consent_reason", "sensitive_data"),
            ("recipients", recipients),
            ("categories", "photos, face_vectors"),
            ("retention_period", "P6M"),
        ]
    };
    let refused = admin
        .submit(&form, "/console/purposes", &fields("just a name"))
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    refused.shows("write name | role | country code");
    let saved = admin
        .submit(
            &form,
            "/console/purposes",
            &fields("Lumora Vision | processor | sg"),
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    let p = consentry::purpose::get(f.app.state.db.conn(), "face_search")
        .await
        .unwrap();
    assert!(p.separate_consent);
    assert_eq!(p.recipients[0].country.as_str(), "SG");
    assert_eq!(p.texts["zh-CN"].title, "人脸搜索");

    let rules = admin.get("/console/retention").await;
    rules.shows("face_vectors");
    let new_rule = admin.get("/console/retention/new").await;
    let bad = admin
        .submit(
            &new_rule,
            "/console/retention",
            &[("category", "face_vectors"), ("period", "soon")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let good = admin
        .submit(
            &new_rule,
            "/console/retention",
            &[
                ("category", "face_vectors"),
                ("period", "P90D"),
                ("action", "delete"),
                ("title_en", "Face vectors"),
            ],
        )
        .await;
    assert_eq!(good.status, StatusCode::SEE_OTHER, "{}", good.body);
    let viewer = staff_browser(&f.app, "v3@example.com", Role::Viewer).await;
    assert_eq!(
        viewer.get("/console/purposes/new").await.status,
        StatusCode::FORBIDDEN
    );
    let page = viewer.get("/console/purposes").await;
    assert!(!page.body.contains("/console/purposes/face_search/edit"));
}
