//! JSONL loader: one BEIR-style document per line, `{"_id", "title", "text", "metadata"?}`.
//!
//! - `text` (a string) is required; `_id` (string or number) defaults to `<file id>#<line>`;
//!   `title` (a string) defaults to empty;
//! - `metadata`, if an object, is flattened into the document's metadata (strings as they are,
//!   other values as JSON); any other `metadata` value is stored as JSON under `metadata`;
//! - blank lines are ignored; each bad line is reported with its 1-based line number and the
//!   other lines still load (the line reader is `stream::JsonlLines`).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::Source;
use crate::document::{Document, SourceId};
use crate::error::{IngestError, Result};

/// Parses one line (already checked: not blank, valid UTF-8, within the size limit).
pub(crate) fn parse_line(source: &Source<'_>, line: &str, number: usize) -> Result<Document> {
    let path = || source.path.to_path_buf();
    let value: Value = serde_json::from_str(line).map_err(|e| IngestError::JsonlNotObject {
        path: path(),
        line: number,
        reason: e.to_string(),
    })?;
    let Value::Object(obj) = value else {
        return Err(IngestError::JsonlNotObject {
            path: path(),
            line: number,
            reason: format!("found {}", json_type(&value)),
        });
    };
    let Some(text) = obj.get("text").and_then(Value::as_str) else {
        return Err(IngestError::JsonlMissingText {
            path: path(),
            line: number,
        });
    };
    let id = match obj.get("_id") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => format!("{}#{number}", source.id),
    };
    let title = obj.get("title").and_then(Value::as_str).unwrap_or_default();
    Document::new(SourceId(id), title, text, metadata(source, &obj)).ok_or(IngestError::Empty {
        path: path(),
        line: Some(number),
    })
}

fn metadata(source: &Source<'_>, obj: &Map<String, Value>) -> BTreeMap<String, String> {
    let mut out = source.metadata();
    match obj.get("metadata") {
        Some(Value::Object(m)) => {
            for (k, v) in m {
                let v = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                out.insert(k.clone(), v);
            }
        }
        Some(Value::Null) | None => {}
        Some(other) => {
            out.insert("metadata".to_owned(), other.to_string());
        }
    }
    out
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
