//! [`CjkTokenizer`]: a script-aware tantivy tokenizer.
//!
//! Text is cut into runs. A run of Han, Kana or Hangul characters yields overlapping character
//! bigrams (`東京都` -> `東京`, `京都`; a single character yields itself), the approach of
//! Lucene's `CJKBigramFilter` for scripts written without spaces. A run of other alphanumeric
//! characters yields one word token. Everything else separates tokens. Offsets are byte offsets
//! into the input, positions count tokens.

use tantivy::tokenizer::{Token, TokenStream, Tokenizer};

/// Bigrams over Han/Kana/Hangul runs, words elsewhere. Stateless and cheap to clone.
#[derive(Debug, Clone, Copy, Default)]
pub struct CjkTokenizer;

/// The tokens of one text, computed eagerly.
pub struct CjkTokenStream {
    tokens: Vec<Token>,
    next: usize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Cjk,
    Word,
    Other,
}

/// True for Han (CJK ideographs), Hiragana, Katakana and Hangul.
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF        // Hiragana, Katakana
        | 0x31F0..=0x31FF      // Katakana phonetic extensions
        | 0x3400..=0x4DBF      // Han extension A
        | 0x4E00..=0x9FFF      // Han unified
        | 0xF900..=0xFAFF      // Han compatibility
        | 0xFF66..=0xFF9F      // half-width Katakana
        | 0x1100..=0x11FF      // Hangul Jamo
        | 0x3130..=0x318F      // Hangul compatibility Jamo
        | 0xAC00..=0xD7AF      // Hangul syllables
        | 0x20000..=0x2FA1F) // Han extensions B.. and compatibility supplement
}

fn class(c: char) -> Class {
    if is_cjk(c) {
        Class::Cjk
    } else if c.is_alphanumeric() {
        Class::Word
    } else {
        Class::Other
    }
}

fn push(tokens: &mut Vec<Token>, text: &str, from: usize, to: usize) {
    tokens.push(Token {
        offset_from: from,
        offset_to: to,
        position: tokens.len(),
        text: text[from..to].to_owned(),
        position_length: 1,
    });
}

/// Bigrams of the CJK run `chars` (byte offset, char) ending at byte `end`.
fn push_bigrams(tokens: &mut Vec<Token>, text: &str, chars: &[(usize, char)], end: usize) {
    let ends: Vec<usize> = chars.iter().skip(1).map(|(i, _)| *i).chain([end]).collect();
    if chars.len() == 1 {
        push(tokens, text, chars[0].0, end);
        return;
    }
    for w in 0..chars.len() - 1 {
        push(tokens, text, chars[w].0, ends[w + 1]);
    }
}

fn tokenize(text: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut run: Vec<(usize, char)> = Vec::new();
    let mut run_class = Class::Other;
    for (i, c) in text.char_indices().chain([(text.len(), ' ')]) {
        let cl = class(c);
        if cl != run_class || cl == Class::Other {
            flush_run(&mut tokens, text, &run, run_class, i);
            run.clear();
            run_class = cl;
        }
        if cl != Class::Other {
            run.push((i, c));
        }
    }
    tokens
}

fn flush_run(tokens: &mut Vec<Token>, text: &str, run: &[(usize, char)], cl: Class, end: usize) {
    match (cl, run.first()) {
        (Class::Cjk, Some(_)) => push_bigrams(tokens, text, run, end),
        (Class::Word, Some(&(start, _))) => push(tokens, text, start, end),
        (Class::Cjk | Class::Word | Class::Other, _) => {}
    }
}

impl Tokenizer for CjkTokenizer {
    type TokenStream<'a> = CjkTokenStream;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> CjkTokenStream {
        CjkTokenStream {
            tokens: tokenize(text),
            next: 0,
        }
    }
}

impl TokenStream for CjkTokenStream {
    fn advance(&mut self) -> bool {
        self.next += 1;
        self.next <= self.tokens.len()
    }

    // tantivy's contract: `token`/`token_mut` are only called after `advance` returned true,
    // so `next - 1` indexes an existing token (tantivy's own streams index the same way).
    fn token(&self) -> &Token {
        &self.tokens[self.next - 1]
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.tokens[self.next - 1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(s: &str) -> Vec<String> {
        tokenize(s).into_iter().map(|t| t.text).collect()
    }

    #[test]
    fn bigrams_and_words() {
        assert_eq!(
            texts("東京都に行く"),
            ["東京", "京都", "都に", "に行", "行く"]
        );
        assert_eq!(texts("Rust言語 v2!"), ["Rust", "言語", "v2"]);
        assert_eq!(texts("한국어 text"), ["한국", "국어", "text"]);
        assert_eq!(texts("猫"), ["猫"]);
        assert!(texts("  ,.!").is_empty());
    }

    #[test]
    fn offsets_and_positions() {
        let toks = tokenize("ab 日本語");
        assert_eq!(toks.len(), 3);
        for (i, t) in toks.iter().enumerate() {
            assert_eq!(t.position, i);
            assert_eq!(&"ab 日本語"[t.offset_from..t.offset_to], t.text);
        }
    }
}
