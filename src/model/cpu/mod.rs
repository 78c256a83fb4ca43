//! CPU kernels: every `unsafe` SIMD routine of the model code lives here, and nothing else does.
//!
//! - [`kernels`]: f32 attention over packed sequences and bias + GELU as candle custom ops, with
//!   the small row helpers (softmax, exp, erf) the LLM also uses.
//! - [`igemm`]: the int8 GEMM (AVX-512 VNNI) behind the encoder's `q8` precision.
//! - [`qkernels`]: 8-bit block-quantized matrix–vector kernels (AVX2) and f16 KV-cache attention
//!   for [`FastLlama`](crate::model::llm::FastLlama).
//!
//! Each kernel family keeps its own namespace (`igemm::matmul` and `qkernels::matmul` are
//! different products); each has a scalar reference its tests compare against.

pub mod igemm;
pub mod kernels;
pub mod qkernels;
