//! Arbitrary bytes as a GGUF file: the header and metadata read the way the generator reads a
//! model file, then the tokenizer built from that metadata, then arbitrary text encoded and
//! decoded with it. Malformed files must give errors: no panic, no allocation out of proportion
//! to the file (run with `-rss_limit_mb`, see scripts/fuzz).
//!
//! Input: a u16 (little-endian) length of the text to encode, that text, then the file.
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use ragd::model::llm::GgufTokenizer;

fuzz_target!(|data: &[u8]| {
    let (text, file) = match data {
        [a, b, rest @ ..] => {
            let n = usize::from(u16::from_le_bytes([*a, *b])).min(rest.len());
            rest.split_at(n)
        }
        _ => return,
    };
    let Ok(content) = ragd::model::llm::read_content(&mut Cursor::new(file)) else {
        return;
    };
    let Ok(tok) = GgufTokenizer::from_metadata(&content.metadata) else {
        return;
    };
    let text = String::from_utf8_lossy(text);
    if let Ok(ids) = tok.encode_plain(&text) {
        assert!(ids.iter().all(|&id| (id as usize) < tok.vocab_size()));
        let _ = tok.decode(&ids);
    }
});
