//! HTML loader: a real HTML5 parser (`scraper`, on html5ever) turned into structured text.
//!
//! Dropped with their contents: `head` (after reading `<title>`), `script`, `style`,
//! `noscript`, `template`, `nav`, `svg`, `iframe`, `object`, `canvas`, `button`, `select`, and any
//! element with `role="navigation"`, `aria-hidden="true"` or the `hidden` attribute.
//!
//! Kept as structure: `h1`–`h6` become Markdown ATX headings on their own paragraph
//! (`## Install`), so the recursive chunker sees the same sections as in Markdown; block
//! elements (`p`, `div`, `section`, `article`, `blockquote`, `pre`, `table`, lists…) become
//! paragraphs; `li` becomes a `- ` line; `br` and `tr` become line breaks. Source whitespace
//! outside `pre` is collapsed like a browser would.
//!
//! Title: `<title>`, else the first `h1`, else the file stem.

use ego_tree::iter::Edge;
use scraper::node::Element;
use scraper::{ElementRef, Html, Node};

use super::Source;
use crate::document::Document;
use crate::error::Result;

const DROPPED: &[&str] = &[
    "head", "script", "style", "noscript", "template", "nav", "svg", "iframe", "object", "canvas",
    "button", "select",
];

const BLOCKS: &[&str] = &[
    "p",
    "div",
    "section",
    "article",
    "main",
    "header",
    "footer",
    "aside",
    "blockquote",
    "pre",
    "table",
    "ul",
    "ol",
    "dl",
    "figure",
    "figcaption",
    "address",
    "hr",
    "form",
    "fieldset",
    "details",
    "summary",
];

/// Loads an HTML file's decoded text.
pub(crate) fn load(source: &Source<'_>, html: &str) -> Result<Document> {
    let dom = Html::parse_document(html);
    let text = html_to_text(&dom);
    let title = find_text(&dom, "title")
        .or_else(|| find_text(&dom, "h1"))
        .unwrap_or_else(|| source.stem());
    source.document(&title, &text)
}

/// Text of the first element named `name`, if non-blank.
fn find_text(dom: &Html, name: &str) -> Option<String> {
    dom.tree
        .nodes()
        .filter_map(ElementRef::wrap)
        .find(|e| e.value().name() == name)
        .map(|e| {
            e.text()
                .collect::<String>()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|t| !t.is_empty())
}

fn is_dropped(el: &Element) -> bool {
    DROPPED.contains(&el.name())
        || el.attr("role") == Some("navigation")
        || el.attr("aria-hidden") == Some("true")
        || el.attr("hidden").is_some()
}

/// Walks the DOM iteratively (no recursion, so deep nesting cannot overflow the stack).
fn html_to_text(dom: &Html) -> String {
    let mut out = String::new();
    let (mut skip, mut pre) = (0usize, 0usize);
    for edge in dom.tree.root().traverse() {
        match edge {
            Edge::Open(node) => match node.value() {
                Node::Element(el) if skip > 0 || is_dropped(el) => skip += 1,
                Node::Element(el) => {
                    pre += usize::from(el.name() == "pre");
                    out.push_str(open_marker(el.name()));
                }
                Node::Text(t) if skip == 0 => push_text(&mut out, t, pre > 0),
                Node::Text(_)
                | Node::Document
                | Node::Fragment
                | Node::Doctype(_)
                | Node::Comment(_)
                | Node::ProcessingInstruction(_) => {}
            },
            Edge::Close(node) => {
                let Node::Element(el) = node.value() else {
                    continue;
                };
                if skip > 0 {
                    skip -= 1;
                    continue;
                }
                pre -= usize::from(el.name() == "pre" && pre > 0);
                out.push_str(close_marker(el.name()));
            }
        }
    }
    out
}

fn push_text(out: &mut String, text: &str, preformatted: bool) {
    if preformatted {
        out.push_str(text);
    } else {
        out.extend(
            text.chars()
                .map(|c| if c.is_whitespace() { ' ' } else { c }),
        );
    }
}

fn open_marker(name: &str) -> &'static str {
    match name {
        "h1" => "\n\n# ",
        "h2" => "\n\n## ",
        "h3" => "\n\n### ",
        "h4" => "\n\n#### ",
        "h5" => "\n\n##### ",
        "h6" => "\n\n###### ",
        "li" => "\n- ",
        "br" | "tr" | "dt" | "dd" => "\n",
        "td" | "th" => " ",
        n if BLOCKS.contains(&n) => "\n\n",
        _ => "",
    }
}

fn close_marker(name: &str) -> &'static str {
    match name {
        "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => "\n\n",
        "tr" | "dt" | "dd" => "\n",
        n if BLOCKS.contains(&n) => "\n\n",
        _ => "",
    }
}
