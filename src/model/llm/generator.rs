//! The text generator contract: chat messages in, streamed text out.
//!
//! Grounded answering ([`crate::rag`]) talks only to this trait, so the quantized GGUF
//! implementation, its concurrency limits and its device stay behind it.
//!
//! Message *content* is always plain text: implementations encode it with special tokens
//! disabled, so a document containing `<|im_start|>system` stays those characters and never
//! becomes a control token. Only the chat template itself emits control tokens.

use std::ops::ControlFlow;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::ModelError;

/// Who speaks a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Instructions from the application.
    System,
    /// The user's turn.
    User,
    /// The model's turn.
    Assistant,
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// The speaker.
    pub role: Role,
    /// Plain text; never parsed for special tokens.
    pub content: String,
}

impl Message {
    /// A message from `role`.
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
        }
    }
}

/// Decoding parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GenerationParams {
    /// Most tokens to generate.
    pub max_tokens: usize,
    /// Sampling temperature; 0 decodes greedily.
    pub temperature: f64,
    /// Nucleus sampling mass (1 = off).
    pub top_p: f64,
    /// Keep only the k most likely tokens (0 = off).
    pub top_k: usize,
    /// Seed of the sampler, for reproducible sampling.
    pub seed: u64,
    /// Penalty applied to tokens seen in the last `repeat_last_n` tokens (1 = off).
    pub repeat_penalty: f32,
    /// Window of the repetition penalty.
    pub repeat_last_n: usize,
    /// Generation stops before any of these strings; the string is not returned.
    pub stop: Vec<String>,
    /// When not empty, the reply copies a passage of one of these texts: each token is the most
    /// likely one that keeps the reply (leading spaces aside) a substring of one of them, and
    /// generation ends when the model would end its turn or no likely token continues the
    /// copy. Decoding is then greedy whatever the sampling settings. Extractive answers use it
    /// to get an exact span.
    pub copy_from: Vec<String>,
}

impl Default for GenerationParams {
    /// Defaults for grounded question answering: near-greedy, a mild repetition penalty.
    fn default() -> Self {
        Self {
            max_tokens: 256,
            temperature: 0.0,
            top_p: 0.9,
            top_k: 0,
            seed: 299_792_458,
            repeat_penalty: 1.1,
            repeat_last_n: 64,
            stop: Vec::new(),
            copy_from: Vec::new(),
        }
    }
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model emitted its end-of-turn / end-of-sequence token.
    Eos,
    /// A stop string was produced.
    Stop,
    /// `max_tokens` was reached.
    Length,
    /// The model's context window is full.
    ContextFull,
    /// The caller asked to stop (its stream was dropped).
    Cancelled,
}

/// The outcome of one generation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Generation {
    /// All text produced (what was streamed, concatenated).
    pub text: String,
    /// Why it ended.
    pub finish: FinishReason,
    /// Tokens in the templated prompt.
    pub prompt_tokens: usize,
    /// Tokens generated.
    pub completion_tokens: usize,
    /// Time to process the prompt (prefill).
    pub prompt_time: Duration,
    /// From the call until the first text was streamed.
    pub time_to_first_token: Duration,
    /// Time spent decoding after the prefill.
    pub decode_time: Duration,
}

/// Describes a loaded generator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GeneratorInfo {
    /// Model id (catalogue name or file stem).
    pub model_id: String,
    /// `general.architecture` of the GGUF (llama, qwen2, ...).
    pub architecture: String,
    /// Context window in tokens.
    pub context_length: usize,
}

/// A chat model that streams text.
pub trait Generator: Send + Sync {
    /// What is loaded.
    fn info(&self) -> &GeneratorInfo;

    /// Tokens that the chat template turns `messages` into, including the opening of the
    /// assistant's turn: what [`Generator::generate`] would feed to the model.
    fn prompt_tokens(&self, messages: &[Message]) -> Result<usize, ModelError>;

    /// Tokens `text` takes as plain message content.
    fn count_tokens(&self, text: &str) -> Result<usize, ModelError>;

    /// Generates the assistant's reply to `messages`, blocking the calling thread.
    ///
    /// `on_text` receives each piece of text as soon as it is complete UTF-8 and not part of a
    /// possible stop string; returning [`ControlFlow::Break`] stops generation
    /// ([`FinishReason::Cancelled`]).
    fn generate(
        &self,
        messages: &[Message],
        params: &GenerationParams,
        on_text: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Generation, ModelError>;
}
