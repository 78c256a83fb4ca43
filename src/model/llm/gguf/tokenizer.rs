//! A [`tokenizers::Tokenizer`] rebuilt from the vocabulary a GGUF file carries in its metadata.
//!
//! GGUF files ship their tokenizer as `tokenizer.ggml.*` keys instead of a `tokenizer.json`.
//! Two tokenizer models are supported, as llama.cpp names them in `tokenizer.ggml.model`:
//!
//! - `gpt2`: byte-level BPE (SmolLM2, Qwen, Llama 3): `tokens` plus ranked `merges`; the
//!   pre-tokenizer regex is chosen from `tokenizer.ggml.pre` (see [`byte_level_pre_tokenizer`]).
//! - `llama`: SentencePiece BPE with byte fallback (Gemma, Llama 2): `tokens` plus `scores`. The
//!   merges are rebuilt from the scores the way Hugging Face's `SentencePieceExtractor` does: every
//!   split of a piece into two pieces of the vocabulary is a merge, ranked by the score of the
//!   merged piece.
//!
//! Control and user-defined tokens (`tokenizer.ggml.token_type` 3 and 4) are deliberately **not**
//! registered as added tokens: content is encoded as plain text only, so `<|im_start|>` in a
//! document becomes ordinary pieces and never a control id. The chat template inserts control
//! tokens by id ([`GgufTokenizer::token_id`]).
//!
//! Decoding does not go through the tokenizer: every id maps to its raw bytes
//! ([`GgufTokenizer::token_bytes`]), so a streamer can hold back an incomplete UTF-8 sequence and
//! never emit half a character.

use std::collections::{HashMap, HashSet};

use candle_core::quantized::gguf_file::Value;
use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::byte_level::ByteLevel;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::models::bpe::BPE;
use tokenizers::normalizers::{Prepend, Replace};
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence as PreSequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{
    DecoderWrapper, NormalizerWrapper, PreTokenizerWrapper, SplitDelimiterBehavior, Tokenizer,
};

use crate::model::ModelError;

/// The SentencePiece word-boundary marker.
const SPIECE_SPACE: char = '\u{2581}';

/// `tokenizer.ggml.token_type` values (llama.cpp's `llama_token_type`).
mod token_type {
    pub const CONTROL: i32 = 3;
    pub const USER_DEFINED: i32 = 4;
    pub const BYTE: i32 = 6;
}

/// Llama 3 / Qwen 2 pre-tokenizer regex (llama.cpp `LLAMA_VOCAB_PRE_TYPE_LLAMA3`).
const LLAMA3_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen 2 pre-tokenizer regex: as Llama 3 but one digit at a time.
const QWEN2_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// A GGUF vocabulary as a `tokenizers::Tokenizer`, plus what decoding and templates need.
#[derive(Debug, Clone)]
pub struct GgufTokenizer {
    tokenizer: Tokenizer,
    /// Raw bytes of every id; empty for control tokens.
    bytes: Vec<Vec<u8>>,
    ids: HashMap<String, u32>,
    control: HashSet<u32>,
    /// Bytes no token stands for (some GGUF vocabularies lack a few control characters).
    missing_bytes: Vec<u8>,
    bos: Option<u32>,
    eos: Option<u32>,
    add_bos: bool,
}

/// The `tokenizer.ggml.*` keys, read once.
struct Vocab<'a> {
    tokens: Vec<&'a str>,
    types: Vec<i32>,
}

impl GgufTokenizer {
    /// Builds the tokenizer from GGUF metadata.
    pub fn from_metadata(md: &HashMap<String, Value>) -> Result<Self, ModelError> {
        let model = md_str(md, "tokenizer.ggml.model")?;
        let vocab = Vocab::read(md)?;
        let (tokenizer, bytes) = match model {
            "gpt2" => (gpt2_tokenizer(md, &vocab)?, gpt2_bytes(&vocab)),
            "llama" => (spm_tokenizer(md, &vocab)?, spm_bytes(&vocab)),
            other => return Err(ModelError::UnsupportedTokenizer(other.to_string())),
        };
        let ids = vocab
            .tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.to_string(), i as u32))
            .collect();
        let control = (0..vocab.tokens.len() as u32)
            .filter(|&i| vocab.types[i as usize] == token_type::CONTROL)
            .collect();
        let missing_bytes = missing_bytes(model, &vocab, &bytes);
        Ok(Self {
            tokenizer,
            bytes,
            ids,
            control,
            missing_bytes,
            bos: md_u32(md, "tokenizer.ggml.bos_token_id"),
            eos: md_u32(md, "tokenizer.ggml.eos_token_id"),
            add_bos: md
                .get("tokenizer.ggml.add_bos_token")
                .and_then(|v| v.to_bool().ok())
                .unwrap_or(false),
        })
    }

    /// Encodes `text` as plain content: no BOS, and no control token can come out of it.
    ///
    /// Decoding the ids gives `text` back, except that a character containing a byte the
    /// vocabulary cannot express ([`GgufTokenizer::missing_bytes`]) becomes U+FFFD instead of
    /// silently vanishing.
    pub fn encode_plain(&self, text: &str) -> Result<Vec<u32>, ModelError> {
        let text = self.representable(text);
        let enc = self
            .tokenizer
            .encode_fast(text.as_ref(), false)
            .map_err(|e| ModelError::Tokenizer(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Bytes that no token of the vocabulary stands for.
    pub fn missing_bytes(&self) -> &[u8] {
        &self.missing_bytes
    }

    /// `text` with every character that has a missing byte replaced by U+FFFD.
    fn representable<'t>(&self, text: &'t str) -> std::borrow::Cow<'t, str> {
        if !text.bytes().any(|b| self.missing_bytes.contains(&b)) {
            return text.into();
        }
        let mut buf = [0u8; 4];
        text.chars()
            .map(|c| {
                let bytes = c.encode_utf8(&mut buf).as_bytes();
                match bytes.iter().any(|b| self.missing_bytes.contains(b)) {
                    true => char::REPLACEMENT_CHARACTER,
                    false => c,
                }
            })
            .collect::<String>()
            .into()
    }

    /// Decodes ids to text (invalid UTF-8 replaced); control tokens produce nothing.
    pub fn decode(&self, ids: &[u32]) -> String {
        let bytes: Vec<u8> = ids
            .iter()
            .flat_map(|&id| self.token_bytes(id))
            .copied()
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// The raw bytes of one token (empty for control tokens and unknown ids).
    pub fn token_bytes(&self, id: u32) -> &[u8] {
        self.bytes.get(id as usize).map_or(&[], Vec::as_slice)
    }

    /// The id of a vocabulary entry, e.g. `<|im_start|>`.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.ids.get(token).copied()
    }

    /// Whether `id` is a control token (`<|im_end|>`, `<eos>`, ...).
    pub fn is_control(&self, id: u32) -> bool {
        self.control.contains(&id)
    }

    /// Beginning-of-sequence id, if the vocabulary has one.
    pub fn bos(&self) -> Option<u32> {
        self.bos
    }

    /// End-of-sequence id, if the vocabulary has one.
    pub fn eos(&self) -> Option<u32> {
        self.eos
    }

    /// Whether prompts start with BOS (`tokenizer.ggml.add_bos_token`).
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }

    /// Vocabulary size.
    pub fn vocab_size(&self) -> usize {
        self.bytes.len()
    }

    /// The underlying `tokenizers` tokenizer (no added tokens; see the module docs).
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }
}

impl<'a> Vocab<'a> {
    fn read(md: &'a HashMap<String, Value>) -> Result<Self, ModelError> {
        let tokens = md_array(md, "tokenizer.ggml.tokens")?
            .iter()
            .map(|v| v.to_string().map(String::as_str))
            .collect::<Result<Vec<_>, _>>()?;
        let types = match md.get("tokenizer.ggml.token_type") {
            Some(v) => v
                .to_vec()?
                .iter()
                .map(Value::to_i32)
                .collect::<Result<Vec<_>, _>>()?,
            None => vec![1; tokens.len()],
        };
        if types.len() != tokens.len() {
            return Err(bad_metadata("token_type and tokens differ in length"));
        }
        Ok(Self { tokens, types })
    }

    /// Ids of ordinary pieces (everything but control and byte tokens).
    fn is_piece(&self, id: usize) -> bool {
        !matches!(self.types[id], token_type::CONTROL | token_type::BYTE)
    }

    fn map(&self) -> tokenizers::models::bpe::Vocab {
        self.tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.to_string(), i as u32))
            .collect()
    }
}

fn gpt2_tokenizer(md: &HashMap<String, Value>, vocab: &Vocab<'_>) -> Result<Tokenizer, ModelError> {
    let merges = md_array(md, "tokenizer.ggml.merges")?
        .iter()
        .map(|v| {
            let m = v.to_string()?;
            m.split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .ok_or_else(|| candle_core::Error::Msg(format!("bad merge `{m}`")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let bpe = BPE::builder()
        .vocab_and_merges(vocab.map(), merges)
        .build()
        .map_err(|e| ModelError::Tokenizer(e.to_string()))?;
    let pre = md_str(md, "tokenizer.ggml.pre").unwrap_or("default");
    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer
        .with_pre_tokenizer(Some(byte_level_pre_tokenizer(pre)?))
        .with_decoder(Some(DecoderWrapper::ByteLevel(ByteLevel::default())));
    Ok(tokenizer)
}

/// The pre-tokenizer for a `tokenizer.ggml.pre` value, as llama.cpp's `llama-vocab.cpp` maps
/// them: the GPT-2 regex by default, digits split one by one for the StarCoder family (SmolLM),
/// the Llama 3 and Qwen 2 regexes for those families.
pub fn byte_level_pre_tokenizer(pre: &str) -> Result<PreTokenizerWrapper, ModelError> {
    let byte_level =
        |use_regex| PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, use_regex));
    let split = |regex: &str| -> Result<PreTokenizerWrapper, ModelError> {
        let split = Split::new(
            SplitPattern::Regex(regex.into()),
            SplitDelimiterBehavior::Isolated,
            false,
        )
        .map_err(|e| ModelError::Tokenizer(e.to_string()))?;
        Ok(PreTokenizerWrapper::Sequence(PreSequence::new(vec![
            split.into(),
            byte_level(false),
        ])))
    };
    Ok(match pre {
        "smollm" | "starcoder" | "refact" | "codeshell" => {
            PreTokenizerWrapper::Sequence(PreSequence::new(vec![
                Digits::new(true).into(),
                byte_level(true),
            ]))
        }
        "llama3" | "llama-bpe" | "smaug-bpe" | "falcon3" => split(LLAMA3_REGEX)?,
        "qwen2" | "deepseek-r1-qwen" | "qwen35" => split(QWEN2_REGEX)?,
        _ => byte_level(true),
    })
}

/// GPT-2's byte-to-character table, inverted: the byte each vocabulary character stands for.
fn gpt2_char_to_byte() -> HashMap<char, u8> {
    let mut map = HashMap::with_capacity(256);
    let mut n = 0u32;
    for b in 0..=255u8 {
        let printable = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        let c = if printable {
            char::from(b)
        } else {
            n += 1;
            // 256 + n is below 0x300: always a valid scalar value.
            char::from_u32(255 + n).unwrap_or(char::REPLACEMENT_CHARACTER)
        };
        map.insert(c, b);
    }
    map
}

fn gpt2_bytes(vocab: &Vocab<'_>) -> Vec<Vec<u8>> {
    let table = gpt2_char_to_byte();
    vocab
        .tokens
        .iter()
        .zip(&vocab.types)
        .map(|(tok, &ty)| match ty {
            token_type::CONTROL => Vec::new(),
            token_type::USER_DEFINED => tok.as_bytes().to_vec(),
            _ => tok
                .chars()
                .map(|c| table.get(&c).copied().ok_or(c))
                .collect::<Result<Vec<u8>, char>>()
                .unwrap_or_else(|_| tok.as_bytes().to_vec()),
        })
        .collect()
}

/// Bytes that no single token encodes: for byte-level BPE a missing byte character, for
/// SentencePiece a missing `<0x..>` token (then only pieces can carry it).
fn missing_bytes(model: &str, vocab: &Vocab<'_>, bytes: &[Vec<u8>]) -> Vec<u8> {
    let mut have = [false; 256];
    for (i, b) in bytes.iter().enumerate() {
        let single = match model {
            "gpt2" => vocab.types[i] != token_type::CONTROL,
            _ => vocab.types[i] == token_type::BYTE,
        };
        if single && b.len() == 1 {
            have[b[0] as usize] = true;
        }
    }
    (0..=255u8).filter(|&b| !have[b as usize]).collect()
}

fn spm_tokenizer(md: &HashMap<String, Value>, vocab: &Vocab<'_>) -> Result<Tokenizer, ModelError> {
    let scores = md_array(md, "tokenizer.ggml.scores")?
        .iter()
        .map(Value::to_f32)
        .collect::<Result<Vec<_>, _>>()?;
    if scores.len() != vocab.tokens.len() {
        return Err(bad_metadata("scores and tokens differ in length"));
    }
    let unk = md_u32(md, "tokenizer.ggml.unknown_token_id")
        .and_then(|id| vocab.tokens.get(id as usize))
        .map(|t| t.to_string());
    let mut builder = BPE::builder()
        .vocab_and_merges(vocab.map(), spm_merges(vocab, &scores))
        .byte_fallback(true)
        .fuse_unk(true);
    if let Some(unk) = unk {
        builder = builder.unk_token(unk);
    }
    let bpe = builder
        .build()
        .map_err(|e| ModelError::Tokenizer(e.to_string()))?;
    // Spaces become U+2581 only if a piece starts from it: otherwise the marker would be
    // encoded as its own UTF-8 bytes (byte fallback) and decode as "▁", not as a space, while
    // the space itself has a byte token.
    let space_piece =
        (0..vocab.tokens.len()).any(|i| vocab.is_piece(i) && vocab.tokens[i] == "\u{2581}");
    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer
        .with_normalizer(space_piece.then(|| spm_normalizer(md)).transpose()?)
        .with_decoder(Some(DecoderWrapper::Sequence(DecoderSequence::new(vec![
            DecoderWrapper::Replace(
                Replace::new(SPIECE_SPACE.to_string(), " ")
                    .map_err(|e| ModelError::Tokenizer(e.to_string()))?,
            ),
            ByteFallback::new().into(),
            Fuse::new().into(),
        ]))));
    Ok(tokenizer)
}

fn spm_normalizer(md: &HashMap<String, Value>) -> Result<NormalizerWrapper, ModelError> {
    let replace = Replace::new(" ", SPIECE_SPACE.to_string())
        .map_err(|e| ModelError::Tokenizer(e.to_string()))?;
    let add_prefix = md
        .get("tokenizer.ggml.add_space_prefix")
        .and_then(|v| v.to_bool().ok())
        .unwrap_or(true);
    if !add_prefix {
        return Ok(replace.into());
    }
    Ok(NormalizerWrapper::Sequence(
        tokenizers::normalizers::Sequence::new(vec![
            Prepend::new(SPIECE_SPACE.to_string()).into(),
            replace.into(),
        ]),
    ))
}

/// Merges from SentencePiece scores: every split of a piece into two pieces, ranked by the
/// merged piece's score (highest first), ties by the ids of the halves
/// (transformers' `SentencePieceExtractor.extract`).
fn spm_merges(vocab: &Vocab<'_>, scores: &[f32]) -> Vec<(String, String)> {
    let ids: HashMap<&str, usize> = vocab
        .tokens
        .iter()
        .enumerate()
        .filter(|&(i, _)| vocab.is_piece(i))
        .map(|(i, t)| (*t, i))
        .collect();
    let mut merges: Vec<(f32, usize, usize)> = Vec::new();
    for (&piece, &id) in &ids {
        for (split, _) in piece.char_indices().skip(1) {
            let (l, r) = piece.split_at(split);
            if let (Some(&li), Some(&ri)) = (ids.get(l), ids.get(r)) {
                merges.push((scores[id], li, ri));
            }
        }
    }
    merges.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    merges
        .into_iter()
        .map(|(_, l, r)| (vocab.tokens[l].to_string(), vocab.tokens[r].to_string()))
        .collect()
}

fn spm_bytes(vocab: &Vocab<'_>) -> Vec<Vec<u8>> {
    vocab
        .tokens
        .iter()
        .zip(&vocab.types)
        .map(|(tok, &ty)| match ty {
            token_type::CONTROL => Vec::new(),
            token_type::BYTE => parse_byte_token(tok).map(|b| vec![b]).unwrap_or_default(),
            _ => tok.replace(SPIECE_SPACE, " ").into_bytes(),
        })
        .collect()
}

/// `<0x0A>` -> 0x0A.
fn parse_byte_token(tok: &str) -> Option<u8> {
    let hex = tok.strip_prefix("<0x")?.strip_suffix('>')?;
    u8::from_str_radix(hex, 16).ok()
}

fn bad_metadata(reason: &str) -> ModelError {
    ModelError::Tokenizer(format!("invalid GGUF tokenizer metadata: {reason}"))
}

fn md_str<'a>(md: &'a HashMap<String, Value>, key: &str) -> Result<&'a str, ModelError> {
    md.get(key)
        .ok_or_else(|| bad_metadata(&format!("missing `{key}`")))?
        .to_string()
        .map(String::as_str)
        .map_err(ModelError::from)
}

fn md_array<'a>(md: &'a HashMap<String, Value>, key: &str) -> Result<&'a Vec<Value>, ModelError> {
    md.get(key)
        .ok_or_else(|| bad_metadata(&format!("missing `{key}`")))?
        .to_vec()
        .map_err(ModelError::from)
}

fn md_u32(md: &HashMap<String, Value>, key: &str) -> Option<u32> {
    md.get(key).and_then(|v| v.to_u32().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spm_metadata(pieces: &[&str]) -> HashMap<String, Value> {
        let mut tokens: Vec<String> = (0..=255u8).map(|b| format!("<0x{b:02X}>")).collect();
        let mut types = vec![Value::I32(token_type::BYTE); 256];
        for p in pieces {
            tokens.push((*p).to_owned());
            types.push(Value::I32(1));
        }
        let scores = (0..tokens.len()).map(|i| Value::F32(-(i as f32))).collect();
        let s = |v: &str| Value::String(v.to_owned());
        HashMap::from([
            ("tokenizer.ggml.model".to_owned(), s("llama")),
            (
                "tokenizer.ggml.tokens".to_owned(),
                Value::Array(tokens.iter().map(|t| s(t)).collect()),
            ),
            ("tokenizer.ggml.token_type".to_owned(), Value::Array(types)),
            ("tokenizer.ggml.scores".to_owned(), Value::Array(scores)),
            (
                "tokenizer.ggml.add_space_prefix".to_owned(),
                Value::Bool(false),
            ),
        ])
    }

    /// Found by the `gguf_tokenizer` fuzz target: a SentencePiece vocabulary without a `▁`
    /// piece encoded a space as the bytes of U+2581 (byte fallback), which decoded as "▁".
    #[test]
    fn spm_without_space_piece_round_trips_spaces() {
        let tok = GgufTokenizer::from_metadata(&spm_metadata(&["a", "b", "ab"])).unwrap();
        let ids = tok.encode_plain("ab a  b").unwrap();
        assert_eq!(tok.decode(&ids), "ab a  b");
        // With a `▁` piece, spaces are pieces as before.
        let tok =
            GgufTokenizer::from_metadata(&spm_metadata(&["\u{2581}", "a", "\u{2581}a"])).unwrap();
        let ids = tok.encode_plain("a a").unwrap();
        assert_eq!(tok.decode(&ids), "a a");
        assert_eq!(
            ids,
            [
                tok.token_id("a").unwrap(),
                tok.token_id("\u{2581}a").unwrap()
            ]
        );
    }
}
