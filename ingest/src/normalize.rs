//! Text normalisation applied to every [`Document`](crate::Document) before chunking.
//!
//! [`normalize_text`] makes the text every chunk span points into. The rules, in order:
//! 1. line endings: `\r\n`, `\r`, U+0085 and U+2028 become `\n`; U+2029 (paragraph separator)
//!    becomes a blank line;
//! 2. control characters (Unicode category Cc) other than `\n` and `\t` are removed (format
//!    characters such as ZWJ are kept: emoji sequences need them);
//! 3. Unicode NFC;
//! 4. whitespace: every run of non-newline whitespace (spaces, tabs, NBSP, ideographic space…)
//!    becomes one ASCII space; lines are trimmed; single line breaks are kept (they carry list
//!    and heading structure); two or more line breaks become exactly one blank line (`\n\n`,
//!    a paragraph break); the whole text is trimmed.
//!
//! The result is idempotent: `normalize_text(&normalize_text(s)) == normalize_text(s)`.

use unicode_normalization::UnicodeNormalization;

/// Normalises `raw` as described in the module docs.
pub fn normalize_text(raw: &str) -> String {
    let cleaned = clean_controls(raw);
    let nfc: String = cleaned.nfc().collect();
    collapse_whitespace(&nfc)
}

/// Steps 1 and 2: unify line breaks and drop control characters.
fn clean_controls(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push('\n');
            }
            '\u{85}' | '\u{2028}' => out.push('\n'),
            '\u{2029}' => out.push_str("\n\n"),
            '\n' | '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Step 4: collapse whitespace, keeping line and paragraph breaks.
fn collapse_whitespace(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    // Newlines seen since the last visible character; pending space inside a line.
    let mut newlines = 0usize;
    let mut space = false;
    for c in text.chars() {
        if c == '\n' {
            newlines += 1;
            space = false;
        } else if c.is_whitespace() {
            space = newlines == 0;
        } else {
            if !out.is_empty() {
                match newlines {
                    0 if space => out.push(' '),
                    0 => {}
                    1 => out.push('\n'),
                    _ => out.push_str("\n\n"),
                }
            }
            newlines = 0;
            space = false;
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn collapses_and_keeps_paragraphs() {
        let raw =
            "  Hello\t\tworld \r\n second\u{a0} line\r\n\r\n\r\n\n Para\u{7}two  \u{3000}end\n";
        assert_eq!(
            normalize_text(raw),
            "Hello world\nsecond line\n\nParatwo end"
        );
    }

    #[test]
    fn composes_to_nfc() {
        assert_eq!(normalize_text("e\u{301}te\u{301}"), "\u{e9}t\u{e9}");
        // A removed control character does not block composition.
        assert_eq!(normalize_text("e\u{1}\u{301}"), "\u{e9}");
    }

    #[test]
    fn whitespace_only_is_empty() {
        assert_eq!(normalize_text(" \n\t\r\n \u{3000}"), "");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        #[test]
        fn idempotent_and_clean(s in "\\PC{0,200}|[ \\t\\r\\n\\u{0}-\\u{1f}a-z\\u{301}\\u{2029}]{0,100}") {
            let n = normalize_text(&s);
            prop_assert_eq!(normalize_text(&n), n.clone());
            prop_assert!(!n.contains("  ") && !n.contains("\n\n\n") && !n.contains('\r'));
            prop_assert!(!n.contains(" \n") && !n.contains("\n "));
            prop_assert!(n.chars().all(|c| c == '\n' || !c.is_control()));
            prop_assert_eq!(n.trim(), n.as_str());
        }
    }
}
