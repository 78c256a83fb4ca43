//! PDF loader: the text layer of every page, via `lopdf`.
//!
//! Pages are extracted in page order and separated by a blank line. A PDF without a text layer
//! (a scan) yields an empty text and so [`IngestError::Empty`]; encrypted or malformed files
//! give [`IngestError::Pdf`]. The title is the file stem.

use super::Source;
use crate::document::Document;
use crate::error::{IngestError, Result};

/// Loads a PDF file's bytes.
pub(crate) fn load(source: &Source<'_>, bytes: &[u8]) -> Result<Document> {
    let fail = |reason: String| IngestError::Pdf {
        path: source.path.to_path_buf(),
        reason,
    };
    if !bytes.starts_with(b"%PDF-") {
        return Err(fail("missing %PDF- header".to_owned()));
    }
    let doc = lopdf::Document::load_mem(bytes).map_err(|e| fail(e.to_string()))?;
    if doc.is_encrypted() {
        return Err(fail("encrypted".to_owned()));
    }
    let mut pages = Vec::new();
    for page in doc.get_pages().keys() {
        pages.push(
            doc.extract_text(&[*page])
                .map_err(|e| fail(e.to_string()))?,
        );
    }
    source.document(&source.stem(), &pages.join("\n\n"))
}
