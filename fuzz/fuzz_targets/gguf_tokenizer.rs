//! `GgufTokenizer::from_metadata` on structured, arbitrary `tokenizer.ggml.*` metadata, then
//! encoding and decoding arbitrary text with the tokenizer it builds.
//!
//! The metadata is built to get deep: byte tokens (GPT-2 byte characters or SentencePiece
//! `<0xXX>`), pieces made by merging two earlier tokens (with their merge, for `gpt2`), free
//! strings, control tokens, scores, and every key also present with a wrong type, a wrong
//! length or not at all. Building may fail (with an error), never panic. When the vocabulary is
//! well formed (every key of the right type and length, unique tokens, all bytes but some
//! control bytes present, merges consistent), the documented contract of `encode_plain` is
//! checked: no control token comes out, and decoding gives the text back, a character with a
//! byte the vocabulary lacks becoming U+FFFD (`gpt2`; and `llama` without the space prefix,
//! for text without U+2581, the SentencePiece space).
#![no_main]

use std::collections::{HashMap, HashSet};

use arbitrary::{Arbitrary, Unstructured};
use candle_core::quantized::gguf_file::Value;
use libfuzzer_sys::fuzz_target;
use ragd::model::llm::GgufTokenizer;

const NORMAL: i32 = 1;
const CONTROL: i32 = 3;
const BYTE: i32 = 6;

#[derive(Arbitrary, Debug, Clone, Copy, PartialEq)]
enum Model {
    Gpt2,
    Llama,
    Other,
    WrongType,
    Missing,
}

/// How a key other than the model is present.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq)]
enum Key {
    Proper,
    Missing,
    WrongType,
    /// One element short (arrays).
    Short,
}

#[derive(Arbitrary, Debug)]
enum Extra {
    /// The concatenation of two earlier tokens (indices modulo the vocabulary so far).
    Merge(u16, u16),
    /// Any string (not well formed: may clash with the byte tokens' alphabet).
    Free(String),
    /// A control token `<|name|>`.
    Control(u8),
}

#[derive(Arbitrary, Debug)]
struct Spec {
    model: Model,
    /// Bytes (below 0x20) the vocabulary lacks.
    dropped: Vec<u8>,
    extras: Vec<Extra>,
    types: Key,
    merges: Key,
    scores: Key,
    score_seed: Vec<f32>,
    pre: u8,
    bos: Option<u32>,
    eos: Option<u32>,
    unk: Option<u32>,
    add_bos: Option<bool>,
    add_space_prefix: Option<bool>,
    /// Token types of the extras: `None` normal, `Some(t)` anything.
    odd_type: Option<(u8, i32)>,
}

/// GPT-2's printable stand-in for each byte.
fn byte_char(b: u8) -> char {
    let mut n = 0u32;
    for x in 0..=255u8 {
        let printable = matches!(x, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        if !printable {
            n += 1;
        }
        if x == b {
            return if printable {
                char::from(b)
            } else {
                char::from_u32(255 + n).unwrap()
            };
        }
    }
    unreachable!()
}

const PRES: &[&str] = &[
    "default",
    "smollm",
    "llama3",
    "qwen2",
    "gpt-4o",
    "",
    "starcoder",
];

struct Built {
    md: HashMap<String, Value>,
    well_formed: bool,
    model: Model,
    add_space_prefix: bool,
}

fn build(spec: &Spec) -> Built {
    let mut well_formed = matches!(spec.model, Model::Gpt2 | Model::Llama);
    let spm = spec.model == Model::Llama;
    let dropped: HashSet<u8> = spec.dropped.iter().map(|b| b % 0x20).collect();
    let mut tokens: Vec<String> = Vec::new();
    let mut types: Vec<i32> = Vec::new();
    let mut merges: Vec<String> = Vec::new();
    for b in 0..=255u8 {
        if dropped.contains(&b) {
            continue;
        }
        if spm {
            tokens.push(format!("<0x{b:02X}>"));
            types.push(BYTE);
        } else {
            tokens.push(byte_char(b).to_string());
            types.push(NORMAL);
        }
    }
    for (i, extra) in spec.extras.iter().take(512).enumerate() {
        let (tok, ty) = match extra {
            Extra::Merge(a, b) => {
                let pieces: Vec<usize> = (0..tokens.len())
                    .filter(|&j| types[j] == NORMAL || (spm && types[j] == BYTE))
                    .collect();
                if pieces.is_empty() {
                    continue;
                }
                let (a, b) = (
                    pieces[usize::from(*a) % pieces.len()],
                    pieces[usize::from(*b) % pieces.len()],
                );
                // SentencePiece pieces are text; spell byte tokens as their character.
                let text = |j: usize| {
                    if types[j] == BYTE {
                        char::from(u8::from_str_radix(&tokens[j][3..5], 16).unwrap() & 0x7f)
                            .to_string()
                    } else {
                        tokens[j].clone()
                    }
                };
                let (l, r) = (text(a), text(b));
                if !spm {
                    merges.push(format!("{l} {r}"));
                }
                (format!("{l}{r}"), NORMAL)
            }
            Extra::Free(s) => {
                well_formed &= spm && !s.is_empty();
                (s.clone(), NORMAL)
            }
            Extra::Control(n) => (format!("<|c{n}|>"), CONTROL),
        };
        let ty = match spec.odd_type {
            Some((k, t)) if usize::from(k) == i => {
                well_formed &= t == NORMAL;
                t
            }
            _ => ty,
        };
        if tokens.contains(&tok) {
            // Duplicates are not well formed; keep them sometimes to test them too.
            well_formed = false;
            if i % 2 == 0 {
                continue;
            }
        }
        tokens.push(tok);
        types.push(ty);
    }
    if !spm {
        // Byte-level BPE merges must be unique and name vocabulary tokens.
        let mut seen = HashSet::new();
        merges.retain(|m| seen.insert(m.clone()));
        let vocab: HashSet<&str> = tokens.iter().map(String::as_str).collect();
        merges.retain(|m| {
            m.split_once(' ')
                .is_some_and(|(l, r)| vocab.contains(format!("{l}{r}").as_str()))
        });
    }

    let mut md = HashMap::new();
    let s = |v: &str| Value::String(v.to_owned());
    match spec.model {
        Model::Gpt2 => drop(md.insert("tokenizer.ggml.model".into(), s("gpt2"))),
        Model::Llama => drop(md.insert("tokenizer.ggml.model".into(), s("llama"))),
        Model::Other => drop(md.insert("tokenizer.ggml.model".into(), s("bert"))),
        Model::WrongType => drop(md.insert("tokenizer.ggml.model".into(), Value::U32(1))),
        Model::Missing => {}
    }
    let n = tokens.len();
    md.insert(
        "tokenizer.ggml.tokens".into(),
        Value::Array(tokens.iter().map(|t| s(t)).collect()),
    );
    let mut array = |key: &str, how: Key, values: Vec<Value>, wrong: Value| {
        well_formed &= how == Key::Proper;
        match how {
            Key::Proper => drop(md.insert(key.into(), Value::Array(values))),
            Key::Missing => {}
            Key::WrongType => drop(md.insert(key.into(), wrong)),
            Key::Short => {
                let mut values = values;
                values.pop();
                md.insert(key.into(), Value::Array(values));
            }
        }
    };
    array(
        "tokenizer.ggml.token_type",
        spec.types,
        types.iter().map(|&t| Value::I32(t)).collect(),
        Value::Array(vec![Value::Bool(true); n]),
    );
    if spm {
        let scores = (0..n)
            .map(|i| {
                let seed = spec.score_seed.get(i % spec.score_seed.len().max(1));
                Value::F32(seed.copied().unwrap_or(0.0) - i as f32)
            })
            .collect();
        array("tokenizer.ggml.scores", spec.scores, scores, s("scores"));
    } else {
        array(
            "tokenizer.ggml.merges",
            spec.merges,
            merges.iter().map(|m| s(m)).collect(),
            Value::U8(0),
        );
    }
    md.insert(
        "tokenizer.ggml.pre".into(),
        s(PRES[usize::from(spec.pre) % PRES.len()]),
    );
    for (key, id) in [
        ("tokenizer.ggml.bos_token_id", spec.bos),
        ("tokenizer.ggml.eos_token_id", spec.eos),
        ("tokenizer.ggml.unknown_token_id", spec.unk),
    ] {
        if let Some(id) = id {
            md.insert(key.into(), Value::U32(id));
        }
    }
    if let Some(b) = spec.add_bos {
        md.insert("tokenizer.ggml.add_bos_token".into(), Value::Bool(b));
    }
    if let Some(b) = spec.add_space_prefix {
        md.insert("tokenizer.ggml.add_space_prefix".into(), Value::Bool(b));
    }
    Built {
        md,
        well_formed,
        model: spec.model,
        add_space_prefix: spec.add_space_prefix.unwrap_or(true),
    }
}

/// `decoded` is `text`, except that characters with a byte the vocabulary lacks are U+FFFD.
fn assert_round_trip(tok: &GgufTokenizer, text: &str, decoded: &str) {
    let lossy = |c: char| {
        c.to_string()
            .bytes()
            .any(|b| tok.missing_bytes().contains(&b))
    };
    assert_eq!(
        decoded.chars().count(),
        text.chars().count(),
        "{text:?} -> {decoded:?}"
    );
    for (want, got) in text.chars().zip(decoded.chars()) {
        let ok = want == got || (lossy(want) && got == '\u{FFFD}');
        assert!(ok, "{text:?} -> {decoded:?}");
    }
}

fn run(u: &mut Unstructured<'_>) -> arbitrary::Result<()> {
    let spec: Spec = u.arbitrary()?;
    let texts: Vec<String> = u.arbitrary()?;
    let built = build(&spec);
    let Ok(tok) = GgufTokenizer::from_metadata(&built.md) else {
        assert!(!built.well_formed, "a well-formed vocabulary was rejected");
        return Ok(());
    };
    let _ = (tok.bos(), tok.eos(), tok.add_bos());
    assert!(tok.vocab_size() > 0);
    for text in &texts {
        let Ok(ids) = tok.encode_plain(text) else {
            assert!(!built.well_formed, "encoding failed");
            continue;
        };
        assert!(
            ids.iter().all(|&id| (id as usize) < tok.vocab_size()),
            "id out of range"
        );
        let decoded = tok.decode(&ids);
        for &id in &ids {
            let _ = (tok.token_bytes(id), tok.is_control(id));
        }
        if !built.well_formed {
            continue;
        }
        assert!(
            ids.iter().all(|&id| !tok.is_control(id)),
            "control id from content"
        );
        match built.model {
            Model::Gpt2 => assert_round_trip(&tok, text, &decoded),
            Model::Llama if !built.add_space_prefix && !text.contains('\u{2581}') => {
                assert_round_trip(&tok, text, &decoded)
            }
            _ => {}
        }
    }
    let _ = tok.decode(&[u32::MAX, 0, 1, 2]);
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
