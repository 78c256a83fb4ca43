//! Incremental detokenisation: token ids in, pieces of text out, never half a character and
//! never the beginning of a stop string.
//!
//! Follows the design of candle-examples' `TokenOutputStream`, but on bytes: each id maps to its
//! raw bytes ([`GgufTokenizer::token_bytes`]), bytes collect until they form complete UTF-8, and
//! the text then waits in a hold-back buffer while its tail could still be the start of a stop
//! string. A piece is released once it can no longer become part of a stop string.
//!
//! Invariant: the concatenation of every piece returned by [`TextStream::push`] and
//! [`TextStream::finish`] is the decoded text up to (excluding) the first stop string.

use super::gguf::GgufTokenizer;

/// What one token did to the stream.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pushed {
    /// Text that is now final (may be empty).
    pub text: String,
    /// A stop string was completed; `text` ends right before it.
    pub stopped: bool,
}

/// Turns generated ids into text pieces.
#[derive(Debug)]
pub struct TextStream<'a> {
    tok: &'a GgufTokenizer,
    stop: Vec<&'a str>,
    /// Bytes of an incomplete UTF-8 sequence.
    pending: Vec<u8>,
    /// Decoded text that may still be the start of a stop string.
    held: String,
}

impl<'a> TextStream<'a> {
    /// A stream over `tok`'s vocabulary that stops before any of `stop` (empty strings ignored).
    pub fn new(tok: &'a GgufTokenizer, stop: &'a [String]) -> Self {
        Self {
            tok,
            stop: stop
                .iter()
                .map(String::as_str)
                .filter(|s| !s.is_empty())
                .collect(),
            pending: Vec::new(),
            held: String::new(),
        }
    }

    /// Adds one generated token.
    pub fn push(&mut self, id: u32) -> Pushed {
        self.pending.extend_from_slice(self.tok.token_bytes(id));
        self.decode_pending();
        if let Some(at) = self.first_stop() {
            self.held.truncate(at);
            return Pushed {
                text: std::mem::take(&mut self.held),
                stopped: true,
            };
        }
        let keep = self.stop_prefix_len();
        let release = self.held.len() - keep;
        let rest = self.held.split_off(release);
        Pushed {
            text: std::mem::replace(&mut self.held, rest),
            stopped: false,
        }
    }

    /// Everything still held back (generation ended without a stop string): incomplete UTF-8
    /// becomes U+FFFD.
    pub fn finish(&mut self) -> String {
        let tail = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        self.held.push_str(&tail);
        std::mem::take(&mut self.held)
    }

    /// Moves the complete UTF-8 prefix of `pending` into `held`; invalid bytes become U+FFFD.
    fn decode_pending(&mut self) {
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    self.held.push_str(s);
                    self.pending.clear();
                    return;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    // `valid_up_to` bytes are valid UTF-8 by the error's contract.
                    self.held
                        .push_str(&String::from_utf8_lossy(&self.pending[..valid]));
                    let Some(bad) = e.error_len() else {
                        // An incomplete sequence at the end: wait for more bytes.
                        self.pending.drain(..valid);
                        return;
                    };
                    self.held.push(char::REPLACEMENT_CHARACTER);
                    self.pending.drain(..valid + bad);
                }
            }
        }
    }

    /// Byte offset of the earliest stop string in `held`.
    fn first_stop(&self) -> Option<usize> {
        self.stop.iter().filter_map(|s| self.held.find(s)).min()
    }

    /// Length of the longest suffix of `held` that is a proper prefix of a stop string.
    fn stop_prefix_len(&self) -> usize {
        let held = self.held.as_str();
        held.char_indices()
            .map(|(i, _)| &held[i..])
            .find(|suffix| self.stop.iter().any(|s| s.starts_with(suffix)))
            .map_or(0, str::len)
    }
}
