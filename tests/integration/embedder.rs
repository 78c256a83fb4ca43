//! The MiniLM embedder against sentence-transformers' reference vectors.

use ingest::Embedder;
use serde::Deserialize;

use ragd::config::Precision;
use ragd::model::encoder::CandleEmbedder;

use crate::common::{config, embedder, fixtures_dir};

/// The embedder with `precision`.
fn with_precision(precision: Precision) -> CandleEmbedder {
    let mut cfg = config();
    cfg.embedder.precision = precision;
    ragd::wiring::load_embedder(&cfg).expect("load embedder")
}

#[derive(Deserialize)]
struct Reference {
    text: String,
    input_ids: Vec<u32>,
    embedding: Vec<f32>,
}

fn references() -> Vec<Reference> {
    let path = fixtures_dir().join("minilm/reference.jsonl");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

/// The f32 path reproduces sentence-transformers (cosine >= 0.9999), batched and alone.
#[test]
fn matches_sentence_transformers_reference_vectors() {
    let refs = references();
    assert!(refs.len() >= 5, "fixture has {} sentences", refs.len());
    let e = &with_precision(Precision::F32);
    let texts: Vec<&str> = refs.iter().map(|r| r.text.as_str()).collect();
    // All at once (one packed batch) and one by one must both match.
    let batched = e.embed(&texts).unwrap();
    for (r, got) in refs.iter().zip(&batched) {
        let single = e.embed(&[r.text.as_str()]).unwrap().remove(0);
        for v in [&got.vector, &single.vector] {
            let c = cosine(v, &r.embedding);
            assert!(c >= 0.9999, "cosine {c} for {:?}", r.text);
            let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-4);
        }
        assert_eq!(
            got.tokens,
            r.input_ids.len(),
            "token count for {:?}",
            r.text
        );
        let long = r.input_ids.len() == e.max_tokens_with_specials();
        assert_eq!(
            got.truncated,
            long && r.text.split_whitespace().count() > 300,
            "{:?}",
            r.text
        );
    }
    assert!(
        batched.iter().any(|b| b.truncated),
        "the fixture's 400-word input must be reported truncated"
    );
}

/// 8-bit dense layers stay close to the reference. Where the CPU has VNNI every pass runs on
/// the int8 GEMM (`q8` and `auto`); elsewhere one sentence at a time is a short pass on the
/// `Q8_0` kernels (`q8` and `auto`; the fixture's 400-word input is a bulk pass even alone) and
/// all the fixture sentences in one call are a bulk pass (`Q8_0` for `q8`, f32 for `auto`).
/// Measured worst cosine on VNNI: 0.9983 alone and in one batch; 0.9985 on `Q8_0`.
#[test]
fn eight_bit_paths_stay_close_to_the_reference() {
    let refs = references();
    let texts: Vec<&str> = refs.iter().map(|r| r.text.as_str()).collect();
    for precision in [Precision::Q8, Precision::Auto] {
        let e = with_precision(precision);
        let mut worst = 1f32;
        for r in &refs {
            let v = e.embed(&[r.text.as_str()]).unwrap().remove(0).vector;
            worst = worst.min(cosine(&v, &r.embedding));
        }
        let batched = e.embed(&texts).unwrap();
        let worst_bulk = refs
            .iter()
            .zip(&batched)
            .map(|(r, b)| cosine(&b.vector, &r.embedding))
            .fold(1f32, f32::min);
        eprintln!("{precision:?}: worst cosine {worst} alone, {worst_bulk} in one batch");
        assert!(worst >= 0.995, "{precision:?}: worst cosine {worst}");
        assert!(
            worst < 0.99999,
            "{precision:?}: the 8-bit path was not taken ({worst})"
        );
        assert!(
            worst_bulk >= 0.995,
            "{precision:?}: worst bulk cosine {worst_bulk}"
        );
        if precision == Precision::Q8 || ragd::model::cpu::igemm::available() {
            assert!(
                worst_bulk < 0.99999,
                "{precision:?}: the bulk pass was not 8-bit ({worst_bulk})"
            );
        }
    }
}

#[test]
fn token_counter_agrees_with_the_model_tokenizer() {
    let e = embedder();
    for r in references() {
        let content = r.input_ids.len() - 2;
        let counted = e.token_counter().count(&r.text);
        if r.input_ids.len() < e.max_tokens_with_specials() {
            assert_eq!(counted, content, "{:?}", r.text);
        } else {
            assert!(counted > e.max_content_tokens());
        }
    }
    assert_eq!(e.max_content_tokens(), 254);
    assert_eq!(e.dimension(), 384);
}
