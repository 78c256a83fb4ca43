//! The vector file format of the HNSW benchmark: `u32 count, u32 dimension`, then
//! `count * dimension` f32 values, all little-endian. `ragd eval vectors` writes it,
//! `benches/dense_search.rs` and `benches/peer_hnswlib.py` (numpy) read it.

use std::io::Write;
use std::path::Path;

use crate::{IndexError, Result};

/// Writes `vectors` (all of one dimension) to `path`.
pub fn write(path: &Path, vectors: &[Vec<f32>]) -> Result<()> {
    let dim = vectors.first().map_or(0, Vec::len);
    if let Some(v) = vectors.iter().find(|v| v.len() != dim) {
        return Err(IndexError::DimensionMismatch {
            expected: dim,
            got: v.len(),
        });
    }
    let header = |n: usize| {
        u32::try_from(n)
            .map_err(|_| IndexError::corrupt(path.display().to_string(), "too many vectors"))
    };
    let mut f =
        std::io::BufWriter::new(std::fs::File::create(path).map_err(|e| IndexError::io(path, e))?);
    let mut put = |bytes: &[u8]| f.write_all(bytes).map_err(|e| IndexError::io(path, e));
    put(&header(vectors.len())?.to_le_bytes())?;
    put(&header(dim)?.to_le_bytes())?;
    for x in vectors.iter().flatten() {
        put(&x.to_le_bytes())?;
    }
    f.flush().map_err(|e| IndexError::io(path, e))
}

/// Reads a file written by [`write`].
pub fn read(path: &Path) -> Result<Vec<Vec<f32>>> {
    let bytes = std::fs::read(path).map_err(|e| IndexError::io(path, e))?;
    let word = |i: usize| -> Option<usize> {
        let b = bytes.get(4 * i..4 * i + 4)?;
        Some(u32::from_le_bytes(b.try_into().ok()?) as usize)
    };
    let bad = |why: String| IndexError::corrupt(path.display().to_string(), why);
    let (Some(n), Some(dim)) = (word(0), word(1)) else {
        return Err(bad("shorter than its 8-byte header".into()));
    };
    let want = n
        .checked_mul(dim)
        .and_then(|v| v.checked_mul(4))
        .and_then(|v| v.checked_add(8));
    if want != Some(bytes.len()) || (n > 0 && dim == 0) {
        return Err(bad(format!(
            "{} bytes for {n} vectors of {dim} values",
            bytes.len()
        )));
    }
    if n == 0 {
        return Ok(Vec::new());
    }
    Ok(bytes[8..]
        .chunks_exact(4 * dim)
        .map(|v| {
            v.chunks_exact(4)
                .map(|x| f32::from_le_bytes([x[0], x[1], x[2], x[3]]))
                .collect()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.f32");
        let vectors = vec![vec![1.0, -2.5, 3.25], vec![0.0, f32::MIN_POSITIVE, 7.0]];
        write(&path, &vectors).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 8 + 6 * 4);
        assert_eq!(read(&path).unwrap(), vectors);
        write(&path, &[]).unwrap();
        assert!(read(&path).unwrap().is_empty());
        assert!(write(&path, &[vec![1.0], vec![1.0, 2.0]]).is_err());
        std::fs::write(&path, [3, 0, 0, 0, 2, 0, 0, 0, 1, 2, 3]).unwrap();
        let err = read(&path).unwrap_err().to_string();
        assert!(err.contains("11 bytes for 3 vectors of 2 values"), "{err}");
        std::fs::write(&path, [1, 0]).unwrap();
        assert!(read(&path).is_err());
    }
}
