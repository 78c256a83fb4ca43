//! The candle cross-encoder against PyTorch `BertForSequenceClassification` reference logits
//! (../shared/fixtures/cross_encoder: the MiniLM encoder plus a fixed random pooler/classifier).

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{Device, Tensor};
use ragd::model::reranker::{CandleCrossEncoder, CrossEncoderOptions, Reranker};
use ragd::model::ModelSource;
use serde::Deserialize;

use crate::common::{config, shared_dir};

/// The fixture's reference was tokenised with `truncation="only_second", max_length=256`.
const MAX_LENGTH: usize = 256;
const TOLERANCE: f32 = 1e-3;

#[derive(Deserialize)]
struct Reference {
    query: String,
    passage: String,
    input_ids: Vec<u32>,
    token_type_ids: Vec<u32>,
    logit: f32,
}

fn fixture_dir() -> PathBuf {
    shared_dir().join("fixtures/cross_encoder")
}

fn references() -> Vec<Reference> {
    let path = fixture_dir().join("reference.jsonl");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The fixture head plus the MiniLM encoder weights (fetched into the models cache if missing).
fn weight_files() -> Vec<PathBuf> {
    let minilm = ModelSource::parse("all-MiniLM-L6-v2")
        .unwrap()
        .materialize(&config().models_dir)
        .expect("MiniLM encoder weights");
    vec![
        minilm.join("model.safetensors"),
        fixture_dir().join("head.safetensors"),
    ]
}

fn options() -> CrossEncoderOptions {
    CrossEncoderOptions {
        model_id: "fixture-cross-encoder".into(),
        max_length: MAX_LENGTH,
        ..Default::default()
    }
}

fn load(weights: &[PathBuf]) -> CandleCrossEncoder {
    let dir = fixture_dir();
    CandleCrossEncoder::load_files(
        &dir.join("config.json"),
        &dir.join("tokenizer.json"),
        weights,
        &Device::Cpu,
        options(),
    )
    .expect("load cross-encoder")
}

/// Asserts every reference logit, all pairs per query batched and each pair alone; returns the
/// largest difference seen.
fn assert_logits(model: &CandleCrossEncoder, refs: &[Reference]) -> f32 {
    let mut worst = 0f32;
    let mut queries: Vec<&str> = refs.iter().map(|r| r.query.as_str()).collect();
    queries.dedup();
    for q in queries {
        let group: Vec<&Reference> = refs.iter().filter(|r| r.query == q).collect();
        let passages: Vec<&str> = group.iter().map(|r| r.passage.as_str()).collect();
        let batched = model.rerank(q, &passages).unwrap();
        assert_eq!(batched.len(), group.len());
        for (r, b) in group.iter().zip(&batched) {
            let single = model.rerank(q, &[r.passage.as_str()]).unwrap()[0];
            for got in [*b, single] {
                let diff = (got - r.logit).abs();
                worst = worst.max(diff);
                assert!(
                    diff <= TOLERANCE,
                    "logit {got} vs reference {} for ({q:?}, {:?})",
                    r.logit,
                    r.passage
                );
            }
        }
    }
    worst
}

#[test]
fn matches_pytorch_reference_tokens_and_logits() {
    let refs = references();
    assert!(refs.len() >= 5, "fixture has {} pairs", refs.len());
    let model = load(&weight_files());
    assert!(model.has_pooler());
    assert_eq!(model.model_id(), "fixture-cross-encoder");
    for r in &refs {
        let (ids, types) = model.encode_pair(&r.query, &r.passage).unwrap();
        assert_eq!(ids, r.input_ids, "ids of ({:?}, {:?})", r.query, r.passage);
        assert_eq!(types, r.token_type_ids, "type ids of {:?}", r.query);
    }
    let worst = assert_logits(&model, &refs);
    println!("max |logit - reference| = {worst:e}");
    assert!(model.rerank("anything", &[]).unwrap().is_empty());
}

#[test]
fn all_pairs_in_one_batch_match_reference() {
    // Different queries in one forward pass: several pairs packed together, whatever the query.
    let refs = references();
    let model = load(&weight_files());
    let passages: Vec<&str> = refs.iter().map(|r| r.passage.as_str()).collect();
    let scores = model.rerank(&refs[0].query, &passages).unwrap();
    for (r, (&got, p)) in refs.iter().zip(scores.iter().zip(&passages)) {
        let single = model.rerank(&refs[0].query, &[p]).unwrap()[0];
        assert!((got - single).abs() <= TOLERANCE, "{got} vs {single}");
        if r.query == refs[0].query {
            assert!((got - r.logit).abs() <= TOLERANCE);
        }
    }
}

#[test]
fn bert_prefixed_single_file_checkpoint_loads() {
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    for file in weight_files() {
        for (name, t) in candle_core::safetensors::load(&file, &Device::Cpu).unwrap() {
            let name = if name.starts_with("classifier.") {
                name
            } else {
                format!("bert.{name}")
            };
            tensors.insert(name, t);
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(fixture_dir().join(f), tmp.path().join(f)).unwrap();
    }
    candle_core::safetensors::save(&tensors, tmp.path().join("model.safetensors")).unwrap();
    let model = CandleCrossEncoder::load(tmp.path(), &Device::Cpu, options()).unwrap();
    assert!(model.has_pooler());
    assert_logits(&model, &references());

    // Without `pooler.*` the classifier reads the raw [CLS] state: it loads and scores.
    tensors.retain(|name, _| !name.starts_with("bert.pooler."));
    candle_core::safetensors::save(&tensors, tmp.path().join("model.safetensors")).unwrap();
    let model = CandleCrossEncoder::load(tmp.path(), &Device::Cpu, options()).unwrap();
    assert!(!model.has_pooler());
    let scores = model.rerank("kv cache", &["keys and values"]).unwrap();
    assert!(scores[0].is_finite());
}

#[test]
fn long_passage_is_truncated_and_query_kept_whole() {
    let model = load(&weight_files());
    let query = "how do rerankers truncate long passages";
    let passage = "retrieval augmented generation ".repeat(400);
    let (q_ids, _) = model.encode_pair(query, "").unwrap();
    // `[CLS] query [SEP] [SEP]` for an empty passage: the query's part is all but the last token.
    let query_part = &q_ids[..q_ids.len() - 1];
    let (ids, types) = model.encode_pair(query, &passage).unwrap();
    assert_eq!(ids.len(), MAX_LENGTH);
    assert_eq!(&ids[..query_part.len()], query_part, "query kept whole");
    assert_eq!(ids.last(), q_ids.last(), "ends with [SEP]");
    assert!(types[..query_part.len()].iter().all(|&t| t == 0));
    assert!(types[query_part.len()..].iter().all(|&t| t == 1));
    let score = model.rerank(query, &[passage.as_str()]).unwrap();
    assert!(score[0].is_finite());
}

#[test]
fn overlong_query_is_truncated_instead_of_failing() {
    let model = load(&weight_files());
    let query = "what does the query say ".repeat(200);
    let (ids, types) = model.encode_pair(&query, "a short passage").unwrap();
    assert_eq!(ids.len(), MAX_LENGTH);
    assert!(types.contains(&1), "the passage keeps some tokens");
    let scores = model
        .rerank(&query, &["a short passage", "another"])
        .unwrap();
    assert_eq!(scores.len(), 2);
    assert!(scores.iter().all(|s| s.is_finite()));
}
