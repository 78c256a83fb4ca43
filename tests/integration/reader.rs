//! The candle reader against PyTorch `BertForQuestionAnswering` reference logits
//! (tests/fixtures/reader: the MiniLM encoder plus a fixed random `qa_outputs` head), and the
//! windows it reads a long passage in.

use std::path::PathBuf;

use candle_core::Device;
use ragd::model::rerank::{CandleReader, Reader, ReaderOptions};
use ragd::model::ModelSource;
use serde::Deserialize;

use crate::common::{config, fixtures_dir};

const TOLERANCE: f32 = 1e-3;

#[derive(Deserialize)]
struct Reference {
    question: String,
    passage: String,
    input_ids: Vec<u32>,
    token_type_ids: Vec<u32>,
    start_logits: Vec<f32>,
    end_logits: Vec<f32>,
}

fn fixture_dir() -> PathBuf {
    fixtures_dir().join("reader")
}

fn references() -> Vec<Reference> {
    let path = fixture_dir().join("reference.jsonl");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The fixture reader: MiniLM's encoder and tokenizer (fetched into the models cache if
/// missing) with the fixture's head.
fn fixture_reader(options: ReaderOptions) -> CandleReader {
    let minilm = ModelSource::parse("all-MiniLM-L6-v2")
        .unwrap()
        .materialize(&config().models_dir)
        .expect("MiniLM encoder weights");
    let weights = vec![
        minilm.join("model.safetensors"),
        fixture_dir().join("head.safetensors"),
    ];
    CandleReader::load_files(
        &fixture_dir().join("config.json"),
        &minilm.join("tokenizer.json"),
        &weights,
        &Device::Cpu,
        options,
    )
    .expect("load reader")
}

#[test]
fn matches_pytorch_reference_tokens_and_logits() {
    let refs = references();
    assert!(refs.len() >= 5, "fixture has {} pairs", refs.len());
    let reader = fixture_reader(ReaderOptions::default());
    let mut worst = 0f32;
    for r in &refs {
        let windows = reader.logits(&r.question, &r.passage).unwrap();
        assert_eq!(windows.len(), 1, "{:?} fits one window", r.passage);
        let w = &windows[0];
        assert_eq!(
            w.ids, r.input_ids,
            "ids of ({:?}, {:?})",
            r.question, r.passage
        );
        assert_eq!(w.type_ids, r.token_type_ids, "type ids of {:?}", r.question);
        for (got, want) in w
            .start
            .iter()
            .zip(&r.start_logits)
            .chain(w.end.iter().zip(&r.end_logits))
        {
            worst = worst.max((got - want).abs());
        }
    }
    println!("max |logit - reference| = {worst:e}");
    assert!(worst <= TOLERANCE, "worst difference {worst}");
}

#[test]
fn the_answer_is_the_best_scoring_span_in_byte_offsets() {
    let refs = references();
    let reader = fixture_reader(ReaderOptions::default());
    let passages: Vec<&str> = refs.iter().map(|r| r.passage.as_str()).collect();
    // All passages in one call, read against the first question: each passage's span is its own
    // best, the same as when read alone.
    let together = reader.read(&refs[0].question, &passages).unwrap();
    for (p, got) in passages.iter().zip(&together) {
        let alone = reader.read(&refs[0].question, &[p]).unwrap().remove(0);
        let (got, alone) = (got.clone().unwrap(), alone.unwrap());
        assert_eq!(got.range, alone.range, "{p:?}");
        assert!((got.score - alone.score).abs() <= TOLERANCE);
        // The span is whole tokens of the passage, never empty, sliceable.
        assert!(
            !p[got.range.clone()].trim().is_empty(),
            "{p:?} {:?}",
            got.range
        );
    }
    // The reference logits say which span wins: recompute it from them.
    let r = &refs[0];
    let first = r.token_type_ids.iter().position(|&t| t == 1).unwrap();
    let last = r.input_ids.len() - 1; // the closing [SEP]
    let mut best = (f32::MIN, 0, 0);
    for i in first..last {
        for j in i..last.min(i + 30) {
            let s = r.start_logits[i] + r.end_logits[j];
            if s > best.0 {
                best = (s, i, j);
            }
        }
    }
    let got = together[0].clone().unwrap();
    assert!(
        (got.score - best.0).abs() <= TOLERANCE,
        "{} vs {}",
        got.score,
        best.0
    );
    assert!((got.null_score - (r.start_logits[0] + r.end_logits[0])).abs() <= TOLERANCE);
    assert_eq!(reader.read("anything", &[]).unwrap(), vec![]);
    assert_eq!(reader.read("anything", &[""]).unwrap(), vec![None]);
}

#[test]
fn a_long_passage_is_read_in_overlapping_windows_that_cover_it() {
    let options = ReaderOptions {
        max_length: 64,
        overlap: 16,
        max_question_tokens: 24,
        ..ReaderOptions::default()
    };
    let reader = fixture_reader(options);
    let sentence = "The pump XJ-9000-B uses the mechanical seal S-14 since 2021. ";
    let passage = sentence.repeat(30);
    let question = "Which seal fits the XJ-9000-B pump?";
    let windows = reader.logits(question, &passage).unwrap();
    assert!(windows.len() > 5, "{} windows", windows.len());
    let head = windows[0].type_ids.iter().filter(|&&t| t == 0).count();
    for w in &windows {
        assert!(w.ids.len() <= 64);
        assert_eq!(
            &w.ids[..head],
            &windows[0].ids[..head],
            "the question leads every window"
        );
        assert_eq!(w.start.len(), w.ids.len());
    }
    // Consecutive windows share `overlap` passage tokens.
    let passage_ids = |w: &ragd::model::rerank::WindowLogits| w.ids[head..w.ids.len() - 1].to_vec();
    let (a, b) = (passage_ids(&windows[0]), passage_ids(&windows[1]));
    assert_eq!(a[a.len() - 16..], b[..16]);
    let span = reader
        .read(question, &[&passage])
        .unwrap()
        .remove(0)
        .unwrap();
    assert!(span.range.end <= passage.len());
    assert!(passage.is_char_boundary(span.range.start) && passage.is_char_boundary(span.range.end));
}

#[test]
fn a_checkpoint_without_a_span_head_is_refused() {
    let minilm = ModelSource::parse("all-MiniLM-L6-v2")
        .unwrap()
        .materialize(&config().models_dir)
        .unwrap();
    let err = CandleReader::load_files(
        &fixture_dir().join("config.json"),
        &minilm.join("tokenizer.json"),
        &[minilm.join("model.safetensors")],
        &Device::Cpu,
        ReaderOptions::default(),
    )
    .err()
    .expect("refused");
    assert!(err.to_string().contains("qa_outputs"), "{err}");

    // Windows too short for the longest question, the overlap and a new passage token are a
    // load error, not windows that never advance (72 = 64 + 8 passed an earlier, looser check).
    for max_length in [72, 131] {
        let err = CandleReader::load_files(
            &fixture_dir().join("config.json"),
            &minilm.join("tokenizer.json"),
            &[
                minilm.join("model.safetensors"),
                fixture_dir().join("head.safetensors"),
            ],
            &Device::Cpu,
            ReaderOptions {
                max_length,
                ..ReaderOptions::default()
            },
        )
        .err()
        .expect("refused");
        assert!(err.to_string().contains("at least 132"), "{err}");
    }
    // The least that fits reads a question of the longest kind.
    let reader = fixture_reader(ReaderOptions {
        max_length: 132,
        ..ReaderOptions::default()
    });
    let question = "why ".repeat(100);
    let passage = "The pump XJ-9000-B uses the mechanical seal S-14. ".repeat(5);
    let windows = reader.logits(&question, &passage).unwrap();
    assert!(windows.len() > 1 && windows.iter().all(|w| w.ids.len() <= 132));
}
