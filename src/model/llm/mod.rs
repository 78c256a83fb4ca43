//! The local LLM: the [`Generator`] contract grounded answering talks to, and its GGUF
//! implementation.
//!
//! [`GgufGenerator`] loads a quantized GGUF checkpoint (llama, qwen2/3, gemma3), rebuilds its
//! tokenizer ([`GgufTokenizer`]) and chat template ([`ChatTemplate`]) from the file's metadata,
//! and decodes on candle's quantized models, or on [`FastLlama`] (ragd's own CPU forward pass
//! for llama-family files). [`TextStream`] turns token ids into complete UTF-8 pieces as they
//! are decoded.

mod chat_template;
mod fast_llama;
mod generator;
mod gguf;
mod text_stream;

pub use chat_template::{ChatTemplate, TemplateTokens};
pub use fast_llama::FastLlama;
pub use generator::{
    FinishReason, Generation, GenerationParams, Generator, GeneratorInfo, Message, Role,
};
pub use gguf::{read_content, GgufGenerator, GgufTokenizer, GreedyRun, SUPPORTED_ARCHITECTURES};
pub use text_stream::TextStream;
