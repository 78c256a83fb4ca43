//! Citation markers in a generated answer: `[1]`, `[1, 2]`, `[1; 3]`. Markers naming a source
//! that was offered are kept (normalised); the rest are removed, so an answer never cites what
//! the model was not given.

/// Keeps the citation markers of `text` that name one of `sources` sources (1-based) and
/// removes the rest. Returns the cleaned text and the valid numbers in order of first use.
///
/// A marker is `[` digits (`,` or `;` optional spaces, digits)* `]`; anything else in brackets
/// is left alone.
pub fn check_citations(text: &str, sources: usize) -> (String, Vec<usize>) {
    let mut out = String::with_capacity(text.len());
    let mut used: Vec<usize> = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match parse_marker(after) {
            Some((numbers, len)) => {
                let valid: Vec<usize> = numbers
                    .into_iter()
                    .filter(|n| (1..=sources).contains(n))
                    .collect();
                for &n in &valid {
                    if !used.contains(&n) {
                        used.push(n);
                    }
                }
                if valid.is_empty() {
                    // Drop the marker and the space before it.
                    let trimmed = out.trim_end_matches(' ').len();
                    out.truncate(trimmed);
                } else {
                    let list: Vec<String> = valid.iter().map(usize::to_string).collect();
                    out.push_str(&format!("[{}]", list.join(", ")));
                }
                rest = &after[len..];
            }
            None => {
                out.push('[');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    (out, used)
}

/// Parses `1, 2]` (the text after `[`): the numbers and the length consumed including `]`.
fn parse_marker(s: &str) -> Option<(Vec<usize>, usize)> {
    let close = s.find(']')?;
    let inner = &s[..close];
    if inner.is_empty() || inner.len() > 40 {
        return None;
    }
    let numbers = inner
        .split([',', ';'])
        .map(|part| {
            let part = part.trim();
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            part.parse::<usize>().ok()
        })
        .collect::<Option<Vec<usize>>>()?;
    Some((numbers, close + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn citations_naming_real_sources_are_kept_in_first_use_order() {
        let (text, used) = check_citations("B is true [2]. A too [1, 2].", 3);
        assert_eq!(text, "B is true [2]. A too [1, 2].");
        assert_eq!(used, vec![2, 1]);
    }

    #[test]
    fn citations_of_missing_sources_are_removed() {
        let (text, used) = check_citations("Fact [7]. Other [1; 9]. Zero [0].", 2);
        assert_eq!(text, "Fact. Other [1]. Zero.");
        assert_eq!(used, vec![1]);
    }

    #[test]
    fn brackets_that_are_not_citations_stay() {
        let input = "Use x[i] and [a, b] or [ ] or [12345678901234567890123] [";
        let (text, used) = check_citations(input, 2);
        assert_eq!(
            text,
            "Use x[i] and [a, b] or [ ] or [12345678901234567890123] ["
        );
        assert!(used.is_empty());
    }

    #[test]
    fn citations_in_cjk_text() {
        let (text, used) = check_citations("句子以句号结尾[1]。", 1);
        assert_eq!(text, "句子以句号结尾[1]。");
        assert_eq!(used, vec![1]);
    }
}
