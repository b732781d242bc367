//! The words a person reads for the service's codes (request types, statuses, outcomes, legal
//! bases, laws), in each email language, so that no email shows an API word such as `erase`.
//! Templates write `{{term request_type}}`; a code without an entry is shown as it is.

/// (code, English, Simplified Chinese).
const TERMS: &[(&str, &str, &str)] = &[
    ("access", "access", "查阅、复制"),
    ("export", "data export", "数据导出（可携带）"),
    ("rectify", "correction", "更正"),
    ("erase", "erasure", "删除"),
    ("restrict", "restriction of processing", "限制处理"),
    ("object", "objection", "拒绝处理"),
    ("unverified", "waiting for verification", "待验证"),
    ("verified", "received", "已受理"),
    ("in_review", "under review", "审核中"),
    ("approved", "approved", "已批准"),
    ("fulfilling", "being carried out", "处理中"),
    ("completed", "completed", "已完成"),
    ("rejected", "declined", "未获批准"),
    ("cancelled", "cancelled", "已取消"),
    (
        "restricted",
        "restricted instead of deleted",
        "已限制处理（仅保留存储）",
    ),
    ("consent", "consent", "同意"),
    (
        "contract",
        "necessary for our contract with you",
        "订立、履行合同所必需",
    ),
    (
        "legal_obligation",
        "a legal obligation",
        "履行法定职责或义务所必需",
    ),
    (
        "vital_interests",
        "protecting someone's vital interests",
        "保护生命健康和财产安全所必需",
    ),
    (
        "public_task",
        "a task in the public interest",
        "为公共利益实施",
    ),
    (
        "legitimate_interests",
        "our legitimate interests",
        "合法权益",
    ),
    ("gdpr", "the GDPR", "《通用数据保护条例》"),
    (
        "pipl",
        "the Personal Information Protection Law",
        "《个人信息保护法》",
    ),
    ("en", "English", "英文"),
    ("zh-CN", "Chinese", "中文"),
];

/// The words for `code` in `language` (`en` or `zh-CN`).
pub fn display<'a>(code: &'a str, language: &str) -> &'a str {
    TERMS
        .iter()
        .find(|(c, _, _)| *c == code)
        .map_or(
            code,
            |(_, en, zh)| if language == "zh-CN" { zh } else { en },
        )
}

/// Every code with words of its own, for tests that look for untranslated codes.
pub fn codes() -> impl Iterator<Item = &'static str> {
    TERMS.iter().map(|(code, _, _)| *code)
}
