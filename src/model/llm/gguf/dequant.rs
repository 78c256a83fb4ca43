//! Widens quantized GGUF weights to f32, in memory, for small models on the CPU.
//!
//! candle's CPU quantized matmul dots one row at a time: AVX2 kernels exist for Q4_0, Q8_0 and
//! the k-quants only (candle-core 0.11 `quantized/avx.rs`), other block types (Q4_1, Q5_0, ...)
//! fall back to scalar code, and a prompt of n tokens costs n times one token. f32 weights go
//! through candle's blocked `gemm` instead. Measured on the 2-core dev box (one rayon thread,
//! machine busy), SmolLM2 Q4_1: decode 7-9 -> 33 tokens/s, prefill 8 -> 190 tokens/s, for
//! ~750 MB resident instead of ~270 MB.
//!
//! [`widen_quantized_tensors`] therefore rewrites every quantized tensor as F32 in an in-memory copy
//! of the GGUF (candle turns F32 tensors into plain matmuls) when the widened model stays under
//! [`MAX_WIDENED_BYTES`]; larger models keep their quantized weights.

use std::io::{Cursor, Read, Seek};

use candle_core::quantized::gguf_file::{self, Content};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::Device;

use crate::model::ModelError;

/// Largest f32 model the widening may produce (4 bytes a parameter: SmolLM2-135M's 540 MB fit;
/// Gemma 3 270M, whose 262k-token embedding alone is 671 MB, keeps its k-quants, which measured
/// faster there than widened).
pub const MAX_WIDENED_BYTES: usize = 768 << 20;

/// A GGUF rewritten in memory: its header and a reader over its bytes.
pub type WidenedGguf = (Content, Cursor<Vec<u8>>);

/// Float tensors are already plain matmuls.
fn is_float(dtype: GgmlDType) -> bool {
    matches!(dtype, GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16)
}

/// An in-memory GGUF with quantized tensors widened to f32, or `None` when nothing needs it
/// (or the result would be too large, or the device is not the CPU).
pub fn widen_quantized_tensors<R: Read + Seek>(
    content: &Content,
    reader: &mut R,
    device: &Device,
) -> Result<Option<WidenedGguf>, ModelError> {
    if !device.is_cpu() {
        return Ok(None);
    }
    let infos = &content.tensor_infos;
    if infos.values().all(|t| is_float(t.ggml_dtype)) {
        return Ok(None);
    }
    let widened: usize = infos
        .values()
        .map(|t| match is_float(t.ggml_dtype) {
            true => t.shape.elem_count() * t.ggml_dtype.type_size() / t.ggml_dtype.block_size(),
            false => t.shape.elem_count() * 4,
        })
        .sum();
    if widened > MAX_WIDENED_BYTES {
        tracing::debug!(
            widened,
            "quantized weights kept: widened they would exceed the cap"
        );
        return Ok(None);
    }
    let mut tensors: Vec<(&str, QTensor)> = Vec::with_capacity(infos.len());
    for (name, info) in infos {
        let q = content.tensor(reader, name, &Device::Cpu)?;
        let q = match is_float(info.ggml_dtype) {
            true => q,
            false => QTensor::quantize(&q.dequantize(&Device::Cpu)?, GgmlDType::F32)?,
        };
        tensors.push((name.as_str(), q));
    }
    let metadata: Vec<(&str, &gguf_file::Value)> = content
        .metadata
        .iter()
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    let refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, q)| (*n, q)).collect();
    let mut out = Cursor::new(Vec::with_capacity(widened + (1 << 20)));
    gguf_file::write(&mut out, &metadata, &refs)?;
    out.set_position(0);
    let widened_content = Content::read(&mut out)?;
    Ok(Some((widened_content, out)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Tensor;

    #[test]
    fn quantized_tensors_are_widened_and_keep_their_values() {
        let t = Tensor::randn(0f32, 1.0, (4, 64), &Device::Cpu).unwrap();
        let q41 = QTensor::quantize(&t, GgmlDType::Q4_1).unwrap();
        let q80 = QTensor::quantize(&t, GgmlDType::Q8_0).unwrap();
        let want = q41.dequantize(&Device::Cpu).unwrap();
        let mut file = Cursor::new(Vec::new());
        let md = gguf_file::Value::String("llama".into());
        gguf_file::write(
            &mut file,
            &[("general.architecture", &md)],
            &[("a", &q41), ("b", &q80)],
        )
        .unwrap();
        file.set_position(0);
        let content = Content::read(&mut file).unwrap();
        let (wide, mut reader) = widen_quantized_tensors(&content, &mut file, &Device::Cpu)
            .unwrap()
            .expect("a Q4_1 tensor needs widening");
        let a = wide.tensor(&mut reader, "a", &Device::Cpu).unwrap();
        assert_eq!(a.dtype(), GgmlDType::F32);
        let diff = (a.dequantize(&Device::Cpu).unwrap() - want).unwrap();
        let max = diff
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert_eq!(max, 0.0);
        let b = wide.tensor(&mut reader, "b", &Device::Cpu).unwrap();
        assert_eq!(b.dtype(), GgmlDType::F32);
        assert_eq!(wide.metadata.len(), 1);
        // Nothing to widen in a float file, and nothing off the CPU.
        let mut file = Cursor::new(Vec::new());
        let f32s = QTensor::quantize(&t, GgmlDType::F32).unwrap();
        gguf_file::write(&mut file, &[], &[("a", &f32s)]).unwrap();
        file.set_position(0);
        let content = Content::read(&mut file).unwrap();
        assert!(widen_quantized_tensors(&content, &mut file, &Device::Cpu)
            .unwrap()
            .is_none());
    }
}
