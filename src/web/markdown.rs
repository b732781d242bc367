//! Markdown to HTML for policy documents. Raw HTML in a document is shown as text, never passed
//! through: the page's only markup is what the Markdown itself describes.
//!
//! A line break inside a paragraph is a space in English and nothing in Chinese, where words
//! are not separated: a break between two CJK characters is dropped, so that a Chinese
//! paragraph wrapped in its source file shows no stray spaces.

use pulldown_cmark::{CowStr, Event, Options, Parser, Tag, TagEnd, html};

/// The HTML of a Markdown document.
pub fn to_html(markdown: &str) -> String {
    let mut out = String::with_capacity(markdown.len() * 3 / 2);
    html::push_html(&mut out, events(markdown).into_iter());
    out
}

/// The document as the blocks a reader sees, each as one line of HTML: a heading (in bold), a
/// paragraph, a list item (after a bullet), a table row (its cells between dots). A policy's
/// changes are compared block by block, so that what is marked is what people read, not the
/// Markdown source.
pub fn blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut inside: Option<(Tag<'static>, Vec<Event<'static>>)> = None;
    let mut depth = 0usize;
    for event in events(markdown) {
        if let Some((tag, buffer)) = inside.as_mut() {
            match &event {
                Event::Start(_) => depth += 1,
                Event::End(_) if depth > 0 => depth -= 1,
                Event::End(_) => {
                    blocks.push(block_html(tag, std::mem::take(buffer)));
                    inside = None;
                    continue;
                }
                _ => {}
            }
            buffer.push(event);
            continue;
        }
        if let Event::Start(
            tag @ (Tag::Heading { .. }
            | Tag::Paragraph
            | Tag::Item
            | Tag::TableHead
            | Tag::TableRow
            | Tag::CodeBlock(_)),
        ) = event
        {
            inside = Some((tag, Vec::new()));
            depth = 0;
        }
    }
    blocks
}

/// One block's HTML on one line.
fn block_html(tag: &Tag<'_>, events: Vec<Event<'static>>) -> String {
    let render = |events: Vec<Event<'static>>| {
        let mut out = String::new();
        // A list item's paragraphs are the item itself.
        let inline = events.into_iter().filter(|e| {
            !matches!(
                e,
                Event::Start(Tag::Paragraph) | Event::End(TagEnd::Paragraph)
            )
        });
        html::push_html(&mut out, inline);
        out.replace('\n', " ").trim().to_string()
    };
    match tag {
        Tag::Heading { .. } => format!("<strong>{}</strong>", render(events)),
        Tag::Item => format!("• {}", render(events)),
        Tag::CodeBlock(_) => format!("<code>{}</code>", render(events)),
        Tag::TableHead | Tag::TableRow => {
            let mut cells = Vec::new();
            let mut cell = Vec::new();
            for event in events {
                match event {
                    Event::Start(Tag::TableCell) => cell.clear(),
                    Event::End(TagEnd::TableCell) => cells.push(render(std::mem::take(&mut cell))),
                    other => cell.push(other),
                }
            }
            let row = cells.join(" · ");
            if matches!(tag, Tag::TableHead) {
                format!("<strong>{row}</strong>")
            } else {
                row
            }
        }
        _ => render(events),
    }
}

/// The parser's events with raw HTML turned into text and soft breaks between CJK characters
/// dropped (others become a space).
fn events(markdown: &str) -> Vec<Event<'static>> {
    let raw: Vec<Event<'static>> = Parser::new_ext(markdown, Options::ENABLE_TABLES)
        .map(|event| match event {
            Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
            other => other,
        })
        .map(Event::into_static)
        .collect();
    let mut out: Vec<Event<'static>> = Vec::with_capacity(raw.len());
    for (i, event) in raw.iter().enumerate() {
        if !matches!(event, Event::SoftBreak) {
            out.push(event.clone());
            continue;
        }
        let before = out
            .iter()
            .rev()
            .find_map(text_of)
            .and_then(|t| t.chars().last());
        let after = raw[i + 1..]
            .iter()
            .find_map(text_of)
            .and_then(|t| t.chars().next());
        if !(before.is_some_and(is_cjk) && after.is_some_and(is_cjk)) {
            out.push(Event::Text(CowStr::Borrowed(" ")));
        }
    }
    out
}

fn text_of<'a>(event: &'a Event<'_>) -> Option<&'a str> {
    match event {
        Event::Text(t) | Event::Code(t) => Some(t),
        _ => None,
    }
}

/// Chinese, Japanese and Korean characters and their punctuation, which take no spaces between
/// them.
fn is_cjk(c: char) -> bool {
    matches!(c,
        '\u{2E80}'..='\u{2FDF}'
        | '\u{3000}'..='\u{30FF}'
        | '\u{3400}'..='\u{4DBF}'
        | '\u{4E00}'..='\u{9FFF}'
        | '\u{AC00}'..='\u{D7AF}'
        | '\u{F900}'..='\u{FAFF}'
        | '\u{FF00}'..='\u{FFEF}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_renders_and_raw_html_is_escaped() {
        let html = to_html("# Title\n\nText with <script>alert(1)</script> and **bold**.");
        assert!(html.contains("<h1>Title</h1>"));
        assert!(html.contains("<strong>bold</strong>"));
        assert!(html.contains("&lt;script&gt;"));
        assert!(!html.contains("<script>"));
    }

    #[test]
    fn a_line_break_inside_chinese_text_is_no_space() {
        let html = to_html("我们收集\n您的照片，\nand English\nwords.");
        assert!(
            html.contains("我们收集您的照片， and English words."),
            "{html}"
        );
    }

    #[test]
    fn blocks_are_what_a_reader_sees() {
        let doc = "## Who we are\n\nWe are **Lumora**,\nan app.\n\n- photos\n- tags\n\n\
                   | Purpose | Basis |\n|---|---|\n| Tagging | consent |\n";
        assert_eq!(
            blocks(doc),
            vec![
                "<strong>Who we are</strong>",
                "We are <strong>Lumora</strong>, an app.",
                "• photos",
                "• tags",
                "<strong>Purpose · Basis</strong>",
                "Tagging · consent",
            ]
        );
        assert!(blocks("<b>x</b>")[0].contains("&lt;b&gt;"));
    }
}
