//! Reading a GGUF file's header and metadata: candle's [`gguf_file::Content::read`], behind
//! checks for what candle would panic on instead of reporting.
//!
//! Users point ragd at GGUF files on disk, so a malformed file must give an error. candle 0.11
//! bounds every declared string and array length by the file size (a huge length is an error,
//! not an allocation); what it does not check is listed, and refused, here.
//!
//! - `general.alignment` of 0: candle rounds the tensor data offset up to a multiple of it, a
//!   division by zero. The metadata is walked once without being built ([`declared_alignment`])
//!   and such a file refused before candle reads it.

use std::io::{self, Read, Seek, SeekFrom};

use candle_core::quantized::gguf_file;

/// Reads the header, metadata and tensor infos of a GGUF file (nothing of the tensor data).
pub fn read_content<R: Read + Seek>(reader: &mut R) -> candle_core::Result<gguf_file::Content> {
    let start = reader.stream_position()?;
    let alignment = declared_alignment(reader);
    reader.seek(SeekFrom::Start(start))?;
    if alignment == Some(0) {
        candle_core::bail!("gguf: general.alignment is 0");
    }
    gguf_file::Content::read(reader)
}

/// Deepest array nesting candle reads (`GGUF_MAX_VALUE_DEPTH`).
const MAX_DEPTH: usize = 64;

/// The `general.alignment` candle would use, if the metadata sets one: the last such key, when
/// its value is an unsigned or non-negative signed integer of at most 32 bits (candle ignores
/// other types). `None` also when the header is malformed: candle then reports the error itself.
/// Reads each value once, skipping it, so the cost is one pass over the metadata bytes.
fn declared_alignment<R: Read>(r: &mut R) -> Option<u64> {
    let magic = read_u32(r)?;
    if !matches!(magic, 0x4655_4747 | 0x4747_5546) {
        return None;
    }
    let wide = match read_u32(r)? {
        1 => false,
        2 | 3 => true,
        _ => return None,
    };
    let _tensors = read_len(r, wide)?;
    let kvs = read_len(r, wide)?;
    let mut alignment = None;
    for _ in 0..kvs {
        let key_len = read_len(r, wide)?;
        let key = if key_len <= 64 {
            let mut key = vec![0; usize::try_from(key_len).ok()?];
            r.read_exact(&mut key).ok()?;
            // candle drops trailing NULs from strings.
            while key.last() == Some(&0) {
                key.pop();
            }
            key
        } else {
            skip(r, key_len)?;
            Vec::new()
        };
        let ty = read_u32(r)?;
        if key != b"general.alignment" {
            skip_value(r, ty, wide, 0)?;
            continue;
        }
        alignment = match ty {
            0 => Some(u64::from(u8::from_le_bytes(read_bytes(r)?))),
            1 => u64::try_from(i8::from_le_bytes(read_bytes(r)?)).ok(),
            2 => Some(u64::from(u16::from_le_bytes(read_bytes(r)?))),
            3 => u64::try_from(i16::from_le_bytes(read_bytes(r)?)).ok(),
            4 => Some(u64::from(u32::from_le_bytes(read_bytes(r)?))),
            5 => u64::try_from(i32::from_le_bytes(read_bytes(r)?)).ok(),
            _ => {
                skip_value(r, ty, wide, 0)?;
                None
            }
        };
    }
    alignment
}

/// Skips one value of GGUF type `ty`; `None` at the end of the input or on an unknown type.
fn skip_value<R: Read>(r: &mut R, ty: u32, wide: bool, depth: usize) -> Option<()> {
    match ty {
        // u8, i8, bool; u16, i16; u32, i32, f32; u64, i64, f64.
        0 | 1 | 7 => skip(r, 1),
        2 | 3 => skip(r, 2),
        4..=6 => skip(r, 4),
        10..=12 => skip(r, 8),
        8 => {
            let len = read_len(r, wide)?;
            skip(r, len)
        }
        9 if depth < MAX_DEPTH => {
            let elem = read_u32(r)?;
            let len = read_len(r, wide)?;
            let fixed = match elem {
                0 | 1 | 7 => Some(1u64),
                2 | 3 => Some(2),
                4..=6 => Some(4),
                10..=12 => Some(8),
                _ => None,
            };
            match fixed {
                Some(size) => skip(r, len.checked_mul(size)?),
                None => (0..len).try_for_each(|_| skip_value(r, elem, wide, depth + 1)),
            }
        }
        _ => None,
    }
}

/// Skips `n` bytes by reading them (the reader may be a buffered file).
fn skip<R: Read>(r: &mut R, n: u64) -> Option<()> {
    let skipped = io::copy(&mut r.by_ref().take(n), &mut io::sink()).ok()?;
    (skipped == n).then_some(())
}

fn read_bytes<R: Read, const N: usize>(r: &mut R) -> Option<[u8; N]> {
    let mut buf = [0u8; N];
    r.read_exact(&mut buf).ok()?;
    Some(buf)
}

fn read_u32<R: Read>(r: &mut R) -> Option<u32> {
    read_bytes(r).map(u32::from_le_bytes)
}

/// A string or array length: u32 in GGUF v1, u64 since.
fn read_len<R: Read>(r: &mut R, wide: bool) -> Option<u64> {
    if wide {
        read_bytes(r).map(u64::from_le_bytes)
    } else {
        read_u32(r).map(u64::from)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use candle_core::quantized::gguf_file::Value;

    use super::*;

    fn gguf(metadata: &[(&str, Value)]) -> Vec<u8> {
        let mut buf = Cursor::new(Vec::new());
        let md: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (*k, v)).collect();
        gguf_file::write(&mut buf, &md, &[]).unwrap();
        buf.into_inner()
    }

    fn read(bytes: &[u8]) -> candle_core::Result<gguf_file::Content> {
        read_content(&mut Cursor::new(bytes))
    }

    /// candle divides the tensor data offset by `general.alignment`, so an alignment of 0
    /// panicked (division by zero) instead of failing: seen in candle's reader while writing the
    /// `gguf_raw` fuzz target, which crashed on its GGUF seed with the alignment set to 0.
    #[test]
    fn zero_alignment_is_an_error_not_a_panic() {
        for zero in [Value::U32(0), Value::U8(0), Value::I16(0), Value::I32(0)] {
            let bytes = gguf(&[("general.alignment", zero), ("a", Value::U8(1))]);
            let err = read(&bytes).unwrap_err().to_string();
            assert!(err.contains("alignment"), "{err}");
        }
        // Only the last of repeated keys counts, as in candle.
        let last_zero = gguf(&[
            ("general.alignment", Value::U32(64)),
            ("general.alignment", Value::U32(0)),
        ]);
        assert!(read(&last_zero).is_err());
        let last_ok = gguf(&[
            ("general.alignment", Value::U32(0)),
            ("general.alignment", Value::U32(64)),
        ]);
        assert_eq!(read(&last_ok).unwrap().tensor_data_offset % 64, 0);
    }

    #[test]
    fn reads_metadata_and_honours_alignment() {
        let bytes = gguf(&[
            ("general.alignment", Value::U32(256)),
            (
                "tokenizer.ggml.tokens",
                Value::Array(vec![Value::String("a".into()), Value::String("b".into())]),
            ),
            (
                "nested",
                Value::Array(vec![Value::Array(vec![Value::F64(1.0)])]),
            ),
            ("neg", Value::I64(-1)),
        ]);
        let content = read(&bytes).unwrap();
        assert_eq!(content.tensor_data_offset, 256);
        let tokens = content.metadata["tokenizer.ggml.tokens"].to_vec().unwrap();
        assert_eq!(tokens.len(), 2);
        // A negative alignment is ignored (candle's default, 32), as before.
        let bytes = gguf(&[("general.alignment", Value::I32(-8))]);
        assert_eq!(read(&bytes).unwrap().tensor_data_offset % 32, 0);
    }

    #[test]
    fn truncated_files_are_errors() {
        let bytes = gguf(&[("general.alignment", Value::U32(0)), ("x", Value::U64(7))]);
        for n in 0..bytes.len() {
            assert!(read(&bytes[..n]).is_err(), "{n} bytes");
        }
    }
}
