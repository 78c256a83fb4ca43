//! Evaluation: BEIR-style retrieval benchmarks ([`beir`]) scored with trec_eval semantics
//! ([`metrics`]), the calibration of the answer relevance gate ([`gate`]), and how often
//! answers cite a gold document ([`answers`]).

pub mod answers;
pub mod beir;
pub mod gate;
pub mod metrics;

/// Writes vectors as `u32 count, u32 dimension, count * dimension f32`, little-endian: the
/// format `index/benches/dense_search.rs` and `index/benches/peer_hnswlib.py` read.
pub fn write_vectors(path: &std::path::Path, vectors: &[Vec<f32>]) -> anyhow::Result<()> {
    let dim = vectors.first().map_or(0, Vec::len);
    anyhow::ensure!(
        vectors.iter().all(|v| v.len() == dim),
        "vectors of different dimensions"
    );
    let mut bytes = Vec::with_capacity(8 + vectors.len() * dim * 4);
    bytes.extend_from_slice(&u32::try_from(vectors.len())?.to_le_bytes());
    bytes.extend_from_slice(&u32::try_from(dim)?.to_le_bytes());
    for x in vectors.iter().flatten() {
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    fs_err::write(path, bytes)?;
    Ok(())
}
