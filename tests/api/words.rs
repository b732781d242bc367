//! What a person or an officer reads in Chinese is Chinese: every portal and console page of a
//! lived-in service, fetched in zh-CN, and every email template rendered in zh-CN, shows no
//! English sentence, no code word, no backtick, no snake_case key, no UUID and no raw JSON.
//! What the data itself says (a name, an address, a product's name) is the data's.

use consentry::{audit::Actor, auth::Role};
use reqwest::StatusCode;
use sea_orm::EntityTrait;
use serde_json::{Value, json};

use crate::support::{Browser, Fixture, Page, fixture, json, repo_path, staff_browser};

/// The text a reader meets on an HTML page: text between tags, plus the attributes a browser
/// shows or reads aloud. Scripts and styles are left out, and so are `<code>` (identifiers
/// shown as identifiers, such as a purpose's key) `<textarea>` (what someone typed) and
/// anything marked `lang="en"` (the language switch naming English in English).
pub(crate) fn readable_text(html: &str) -> String {
    let mut out = String::new();
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        out.push_str(&rest[..open]);
        out.push(' ');
        let tag_end = rest[open..].find('>').map_or(rest.len(), |e| open + e + 1);
        let tag = &rest[open..tag_end];
        let name: String = tag[1..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        for attribute in ["title", "alt", "placeholder", "aria-label"] {
            let marker = format!(" {attribute}=\"");
            if let Some(at) = tag.find(&marker) {
                let value = &tag[at + marker.len()..];
                out.push_str(value.split('"').next().unwrap_or_default());
                out.push(' ');
            }
        }
        rest = &rest[tag_end..];
        let skipped = matches!(name.as_str(), "script" | "style" | "code" | "textarea")
            || tag.contains(" lang=\"en\"");
        if skipped && !tag.ends_with("/>") {
            let close = format!("</{name}>");
            rest = rest.find(&close).map_or("", |c| &rest[c + close.len()..]);
        }
    }
    out.push_str(rest);
    out.replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&nbsp;", " ")
}

/// What in `text` a Chinese reader should not meet, each with why.
pub(crate) fn foreign_words(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    if text.contains('`') {
        found.push("a backtick".to_string());
    }
    for json in ["{\"", "\":", "[]", "{}"] {
        if text.contains(json) {
            found.push(format!("raw JSON ({json})"));
        }
    }
    let tokens: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || !c.is_ascii())
        .filter(|t| !t.is_empty())
        .collect();
    let mut english_run: Vec<&str> = Vec::new();
    let end_run = |run: &mut Vec<&str>, found: &mut Vec<String>| {
        let has_lowercase = run
            .iter()
            .any(|w| w.len() >= 2 && w.chars().all(|c| c.is_ascii_lowercase()));
        if run.len() >= 3 && has_lowercase {
            found.push(format!("an English sentence: {}", run.join(" ")));
        }
        run.clear();
    };
    for token in tokens {
        // Addresses and links are data, not words.
        if token.contains('@') || token.contains("://") || token.contains(".com") {
            end_run(&mut english_run, &mut found);
            continue;
        }
        let word = token.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '_');
        if is_uuid(word) {
            found.push(format!("a UUID: {word}"));
        }
        if word.contains('_') && word.chars().any(|c| c.is_ascii_lowercase()) {
            found.push(format!("a snake_case word: {word}"));
        }
        let alphabetic = word.len() >= 2 && word.chars().all(|c| c.is_ascii_alphabetic());
        if alphabetic && word.len() >= 3 && word.chars().all(|c| c.is_ascii_lowercase()) {
            found.push(format!("a code word: {word}"));
        }
        if alphabetic {
            english_run.push(word);
            if token.ends_with(['.', ':', ';', ',', ')', '!', '?']) {
                end_run(&mut english_run, &mut found);
            }
        } else {
            end_run(&mut english_run, &mut found);
        }
    }
    end_run(&mut english_run, &mut found);
    found
}

fn is_uuid(word: &str) -> bool {
    let parts: Vec<&str> = word.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// What on `page` a Chinese reader should not meet, as lines naming `path`.
fn foreign_on(path: &str, page: &Page, data: &[&str]) -> Vec<String> {
    if !page.status.is_success() {
        return vec![format!("{path}: {}", page.status)];
    }
    let mut text = readable_text(&page.body);
    for own_words in data {
        text = text.replace(own_words, " ");
    }
    foreign_words(&text)
        .into_iter()
        .map(|found| format!("{path}: {found}"))
        .collect()
}

#[test]
fn the_checker_finds_what_it_looks_for() {
    let bad = "状态：received · 请运行 `consentry users create` {\"a\":1} \
               Only GDPR deadlines can be extended. 编号 0190f1e2-aaaa-7bbb-8ccc-123456789abc \
               目的 marketing_email";
    let found = foreign_words(bad).join("\n");
    for expected in [
        "a backtick",
        "raw JSON",
        "a code word: received",
        "an English sentence: Only GDPR deadlines can be extended",
        "a UUID",
        "a snake_case word: marketing_email",
    ] {
        assert!(found.contains(expected), "{expected} not in:\n{found}");
    }
    let good = "您的请求已收到。我们会在 2026-12-24 前答复（GDPR 第 12 条，PIPL）。\
                联系 wei@example.com · 参考编号 F73E66B6 · Google Authenticator";
    assert_eq!(foreign_words(good), Vec::<String>::new());
    let text = readable_text(
        "<p title=\"提示\">你好<script>var not_read = 1;</script><code>ck_live</code></p>",
    );
    assert!(text.contains("提示") && text.contains("你好") && !text.contains("ck_live"));
}

/// Purposes as a Chinese operator declares them.
async fn chinese_purposes(f: &Fixture, admin: &str) {
    let purpose = |key: &str, title: &str, description: &str| {
        json!({
            "key": key,
            "texts": {
                "en": {"title": format!("{key} title"), "description": "What it is for."},
                "zh-CN": {"title": title, "description": description}
            },
            "legal_basis": "consent",
            "recipients": [{"name": "阿里云", "role": "processor", "country": "CN"}],
            "data_categories": ["photos"],
            "retention_period": "P1Y"
        })
    };
    let mut abroad = purpose("cloud_backup", "境外云端备份", "把照片备份到境外的服务器。");
    abroad["separate_consent"] = json!(true);
    abroad["separate_consent_reason"] = json!("cross_border_transfer");
    let mut account = purpose("account", "账户", "为您提供账户服务。");
    account["legal_basis"] = json!("contract");
    account["required"] = json!(true);
    f.app
        .create_purposes(
            admin,
            &[
                purpose("photo_tags", "照片标签", "为您上传的照片推荐标签。"),
                abroad,
                account,
            ],
        )
        .await;
}

#[tokio::test]
async fn every_page_reads_in_chinese_for_a_chinese_reader() {
    let f = fixture().await;
    let admin = f.app.key(Role::Admin).await;
    chinese_purposes(&f, &admin).await;
    consentry::actions::policies::import(
        &f.app.state.db,
        &f.app.state.config,
        &repo_path("policies"),
        &Actor::Cli,
    )
    .await
    .unwrap();
    let rule = f
        .app
        .post("/v1/admin/retention-rules")
        .bearer_auth(&admin)
        .json(
            &json!({"category": "photos", "period": "P30D", "options": ["P30D", "P90D"],
                      "titles": {"en": "your photos", "zh-CN": "您的照片"},
                      "notice_before": "P7D"}),
        )
        .send()
        .await
        .unwrap();
    assert!(rule.status().is_success(), "{}", rule.text().await.unwrap());
    f.app
        .set_subject("wei", Some("wei@example.com"), Some("zh-CN"), Some("CN"))
        .await;
    f.grant("wei", "photo_tags").await;
    let mut ids = Vec::new();
    for (kind, details) in [
        ("erase", json!({})),
        ("access", json!({})),
        ("export", json!({})),
        ("rectify", json!({"changes": {"name": "王伟"}})),
    ] {
        let filed = json(
            f.file(
                "wei",
                json!({"type": kind, "locale": "zh-CN", "jurisdiction": "CN", "details": details}),
            )
            .await,
            StatusCode::CREATED,
        )
        .await;
        ids.push(filed["id"].as_str().unwrap().to_string());
    }
    let decided = f
        .decide(
            &f.reviewer,
            &ids[1],
            "reject",
            json!({"reason": "无法确认您的身份"}),
        )
        .await;
    assert_eq!(decided.status(), StatusCode::OK);
    f.approve_and_fulfil(&ids[2], json!({"data": {"照片": 3}}))
        .await;
    // A registered system: the erasure waits for it.
    let system = f
        .app
        .post("/v1/admin/systems")
        .bearer_auth(&admin)
        .json(
            &json!({"key": "oss", "name": "阿里云对象存储", "request_types": ["erase"],
                      "categories": ["photos"], "allowance_days": 5}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(system.status(), StatusCode::CREATED);
    let approved = f.decide(&f.reviewer, &ids[0], "approve", json!({})).await;
    assert_eq!(approved.status(), StatusCode::OK);
    f.drain().await;
    let by_email = json(
        f.file_by_email(
            json!({"email": "li@example.com", "type": "access", "locale": "zh-CN",
                               "jurisdiction": "CN"}),
        )
        .await,
        StatusCode::ACCEPTED,
    )
    .await;
    // The data's own words: addresses, a recipient's and the operator's names, and the
    // person's id in the main app.
    let controller = f.app.state.config.controller.name.clone();
    let run = consentry::retention::purge::start(
        &f.app.state.db,
        &f.app.state.config,
        true,
        chrono::Utc::now(),
        &Actor::Cli,
    )
    .await
    .unwrap();
    consentry::actions::purges::execute(&f.app.state.db, &f.app.state.config, run.clone())
        .await
        .unwrap();
    // An API key is named by the start of its random id, which may happen to be all letters.
    let key_ids: Vec<String> = consentry::auth::keys::entity::Entity::find()
        .all(f.app.state.db.conn())
        .await
        .unwrap()
        .into_iter()
        .map(|key| key.id.chars().take(8).collect())
        .collect();
    let mut data = vec![
        "wei@example.com",
        "li@example.com",
        "阿里云",
        controller.as_str(),
        "wei",
    ];
    data.extend(key_ids.iter().map(String::as_str));

    let person = Browser::speaking(&f.app, "zh-CN,zh;q=0.9");
    person.sign_in("wei").await;
    let mut portal = vec![
        "/portal".to_string(),
        "/portal/history".into(),
        "/portal/requests".into(),
        "/portal/requests/new".into(),
        "/portal/requests/by-email".into(),
        format!(
            "/portal/requests/{}/verify",
            by_email["id"].as_str().unwrap()
        ),
        "/portal/policies/privacy-policy".into(),
        "/portal/policies/privacy-policy/versions/1".into(),
        "/portal/policies/privacy-policy/diff?from=1&to=2".into(),
    ];
    for kind in ["access", "export", "rectify", "erase", "restrict", "object"] {
        portal.push(format!("/portal/requests/new/{kind}"));
    }
    for id in &ids {
        portal.push(format!("/portal/requests/{id}"));
    }
    let mut found = Vec::new();
    for path in &portal {
        found.extend(foreign_on(path, &person.get(path).await, &data));
    }
    // A Chinese parent's pages: a question, then the lasting page of the child's choices.
    json(
        f.app
            .send_event(
                "subject.upserted",
                json!({"external_id": "xiaohong", "name": "小红", "locale": "zh-CN",
                       "jurisdiction": "CN", "birth_date": crate::age::years_ago(10),
                       "guardian_email": "mama@example.com"}),
            )
            .await,
        StatusCode::OK,
    )
    .await;
    f.drain().await;
    let invitation = f.sink.wait_for_text("/guardian/confirm").await;
    let parent = Browser::speaking(&f.app, "zh-CN,zh;q=0.9");
    let mut page = parent
        .get(&crate::portal::first_link(
            &invitation.text,
            "/guardian/confirm",
        ))
        .await;
    found.extend(foreign_on("/portal/guardian/confirm", &page, &data));
    for _ in 0..10 {
        if !page.body.contains("name=\"token\"") {
            break;
        }
        let key = page
            .body
            .split("name=\"decision.")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let answered = parent
            .submit(
                &page,
                "/portal/guardian/confirm",
                &[
                    ("token", &page.field("token").unwrap()),
                    ("policy", &page.field("policy").unwrap()),
                    (&format!("decision.{key}"), "yes"),
                ],
            )
            .await;
        page = match answered.status {
            StatusCode::SEE_OTHER => parent.get(answered.location()).await,
            _ => answered,
        };
    }
    page.shows("谢谢，您的决定已记录");
    found.extend(foreign_on("/portal/guardian/confirm (done)", &page, &data));
    f.drain().await;
    let lasting = f.sink.wait_for_text("/guardian/choices").await;
    let choices = parent
        .get(&crate::portal::first_link(
            &lasting.text,
            "/guardian/choices",
        ))
        .await;
    found.extend(foreign_on("/portal/guardian/choices", &choices, &data));

    // The fulfilled export's page says where its download link is.
    person
        .get(&format!("/portal/requests/{}", ids[2]))
        .await
        .shows("您的数据已可下载");

    let officer = staff_browser(&f.app, "officer@example.com", Role::Admin).await;
    officer.get("/console/account").await;
    let officer = {
        // The same account, reading Chinese.
        let zh = Browser::speaking(&f.app, "zh-CN,zh;q=0.9");
        crate::support::sign_in(&f.app, &zh, "officer@example.com").await;
        drop(officer);
        zh
    };
    let policies: Vec<Value> = f
        .app
        .read("/v1/admin/policies", &admin)
        .await
        .as_array()
        .unwrap()
        .clone();
    let mut console = vec![
        "/console".to_string(),
        "/console/requests".into(),
        "/console/requests?status=all".into(),
        "/console/subjects/wei".into(),
        "/console/register".into(),
        "/console/purposes".into(),
        "/console/purposes/new".into(),
        "/console/purposes/photo_tags/edit".into(),
        "/console/retention".into(),
        "/console/retention/new".into(),
        "/console/retention/photos/edit".into(),
        "/console/policies".into(),
        "/console/policies/new".into(),
        "/console/purges".into(),
        format!("/console/purges/{}", run.id),
        "/console/outbox".into(),
        "/console/audit".into(),
        "/console/keys".into(),
        "/console/account".into(),
        "/console/systems".into(),
        "/console/systems/new".into(),
        "/console/systems/oss/edit".into(),
    ];
    for id in &ids {
        console.push(format!("/console/requests/{id}"));
    }
    // Documents in English are the operator's own words.
    for policy in policies.iter().filter(|p| p["language"] == "zh-CN") {
        console.push(format!(
            "/console/policies/{}",
            policy["id"].as_str().unwrap()
        ));
    }
    for path in &console {
        found.extend(foreign_on(path, &officer.get(path).await, &data));
    }
    assert!(found.is_empty(), "in Chinese:\n{}", found.join("\n"));
}
