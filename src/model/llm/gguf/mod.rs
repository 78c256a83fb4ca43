//! GGUF files: reading them ([`read_content`], refusing what candle's reader would panic on),
//! widening small models' quantized weights to f32 ([`dequant`]), rebuilding their tokenizer
//! ([`GgufTokenizer`]) and running them ([`GgufGenerator`]).

mod dequant;
mod model;
mod read;
mod tokenizer;

pub use model::{GgufGenerator, GreedyRun, SUPPORTED_ARCHITECTURES};
pub use read::read_content;
pub use tokenizer::GgufTokenizer;
