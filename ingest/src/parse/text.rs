//! Plain-text and Markdown loaders.
//!
//! Both keep the text as it is (normalisation happens in [`Document::new`]); Markdown keeps its
//! `#` headings, which the recursive chunker uses as section boundaries. A Markdown document's
//! title is its first ATX heading, else the file stem; a text file's title is its file stem.

use super::Source;
use crate::document::Document;
use crate::error::Result;

/// Loads a `.txt` file's decoded text.
pub(crate) fn load_text(source: &Source<'_>, text: &str) -> Result<Document> {
    source.document(&source.stem(), text)
}

/// Loads a Markdown file's decoded text.
pub(crate) fn load_markdown(source: &Source<'_>, text: &str) -> Result<Document> {
    let title = first_heading(text).map_or_else(|| source.stem(), str::to_owned);
    source.document(&title, text)
}

/// The text of the first ATX heading (`# Title`), if any.
fn first_heading(text: &str) -> Option<&str> {
    text.lines().find_map(|line| {
        let line = line.trim_start();
        let hashes = line.bytes().take_while(|&b| b == b'#').count();
        let rest = line.get(hashes..)?;
        ((1..=6).contains(&hashes) && rest.starts_with([' ', '\t']))
            .then(|| rest.trim().trim_end_matches('#').trim_end())
            .filter(|t| !t.is_empty())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_first_heading() {
        assert_eq!(first_heading("intro\n## Setup ##\n# Later"), Some("Setup"));
        assert_eq!(first_heading("#nospace\ntext"), None);
    }
}
