//! Chat templates: messages to prompt token ids, control tokens by id, content as plain text.
//!
//! GGUF files carry a Jinja `tokenizer.chat_template`; rather than run Jinja, ragd recognises the
//! two families its models use and renders them in Rust:
//!
//! - [`ChatTemplate::ChatMl`] (SmolLM2, Qwen): `<|im_start|>{role}\n{content}<|im_end|>\n` per
//!   message, then `<|im_start|>assistant\n`. A default system prompt written into the template
//!   (SmolLM2's "You are a helpful AI assistant named SmolLM…") is used when the messages have none.
//! - [`ChatTemplate::Gemma`]: `<start_of_turn>user\n{content}<end_of_turn>\n`, the model's turns
//!   as `model`, then `<start_of_turn>model\n`. Gemma has no system role: a system message is
//!   folded into the first user turn, followed by a blank line.
//!
//! Control tokens are looked up in the vocabulary and inserted as ids; every piece of content is
//! encoded with [`GgufTokenizer::encode_plain`], so a message can never forge a control token.

use candle_core::quantized::gguf_file::Value;
use std::collections::HashMap;

use super::generator::{Message, Role};
use super::gguf::GgufTokenizer;
use crate::model::ModelError;

/// A chat template family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatTemplate {
    /// ChatML, with the template's default system prompt (if any).
    ChatMl {
        /// Used when the conversation has no system message.
        default_system: Option<String>,
    },
    /// Gemma's `<start_of_turn>` format.
    Gemma,
}

/// The control tokens a template needs, resolved to ids.
#[derive(Debug, Clone)]
pub struct TemplateTokens {
    template: ChatTemplate,
    start: u32,
    end: u32,
    bos: Option<u32>,
}

impl ChatTemplate {
    /// Picks the template from `tokenizer.chat_template`, else from the vocabulary.
    pub fn detect(md: &HashMap<String, Value>, tok: &GgufTokenizer) -> Result<Self, ModelError> {
        let jinja = md
            .get("tokenizer.chat_template")
            .and_then(|v| v.to_string().ok())
            .map(String::as_str)
            .unwrap_or("");
        if jinja.contains("<|im_start|>") {
            return Ok(Self::ChatMl {
                default_system: chatml_default_system(jinja),
            });
        }
        if jinja.contains("<start_of_turn>") || tok.token_id("<start_of_turn>").is_some() {
            return Ok(Self::Gemma);
        }
        if tok.token_id("<|im_start|>").is_some() {
            return Ok(Self::ChatMl {
                default_system: None,
            });
        }
        Err(ModelError::Tokenizer(
            "no supported chat template: the GGUF has neither a ChatML (<|im_start|>) nor a \
             Gemma (<start_of_turn>) template or vocabulary"
                .into(),
        ))
    }

    /// The (start, end) control token strings of a turn.
    fn markers(&self) -> (&'static str, &'static str) {
        match self {
            Self::ChatMl { .. } => ("<|im_start|>", "<|im_end|>"),
            Self::Gemma => ("<start_of_turn>", "<end_of_turn>"),
        }
    }

    /// Resolves the control tokens against the vocabulary.
    pub fn resolve(self, tok: &GgufTokenizer) -> Result<TemplateTokens, ModelError> {
        let (start, end) = self.markers();
        let id = |t: &str| {
            tok.token_id(t).ok_or_else(|| {
                ModelError::Tokenizer(format!(
                    "the chat template needs `{t}`, not in the vocabulary"
                ))
            })
        };
        Ok(TemplateTokens {
            start: id(start)?,
            end: id(end)?,
            bos: tok.bos().filter(|_| tok.add_bos()),
            template: self,
        })
    }
}

impl TemplateTokens {
    /// The template in use.
    pub fn template(&self) -> &ChatTemplate {
        &self.template
    }

    /// The end-of-turn id (`<|im_end|>`, `<end_of_turn>`), a stop token.
    pub fn end_of_turn(&self) -> u32 {
        self.end
    }

    /// The prompt for `messages`, ending with the opening of the assistant's turn.
    pub fn render(
        &self,
        tok: &GgufTokenizer,
        messages: &[Message],
    ) -> Result<Vec<u32>, ModelError> {
        let mut out: Vec<u32> = self.bos.into_iter().collect();
        for (role, content) in self.turns(messages) {
            self.push_turn(tok, &mut out, role, &content, true)?;
        }
        self.push_turn(tok, &mut out, self.role_name(Role::Assistant), "", false)?;
        Ok(out)
    }

    fn push_turn(
        &self,
        tok: &GgufTokenizer,
        out: &mut Vec<u32>,
        role: &str,
        content: &str,
        close: bool,
    ) -> Result<(), ModelError> {
        out.push(self.start);
        out.extend(tok.encode_plain(&format!("{role}\n"))?);
        if close {
            out.extend(tok.encode_plain(content)?);
            out.push(self.end);
            out.extend(tok.encode_plain("\n")?);
        }
        Ok(())
    }

    fn role_name(&self, role: Role) -> &'static str {
        match (&self.template, role) {
            (_, Role::System) => "system",
            (_, Role::User) => "user",
            (ChatTemplate::ChatMl { .. }, Role::Assistant) => "assistant",
            (ChatTemplate::Gemma, Role::Assistant) => "model",
        }
    }

    /// (role name, content) of each turn, after the template's system handling.
    fn turns(&self, messages: &[Message]) -> Vec<(&'static str, String)> {
        let mut turns: Vec<(&'static str, String)> = Vec::with_capacity(messages.len() + 1);
        match &self.template {
            ChatTemplate::ChatMl { default_system } => {
                let has_system = messages.first().is_some_and(|m| m.role == Role::System);
                if let (false, Some(sys)) = (has_system, default_system) {
                    turns.push(("system", sys.clone()));
                }
                turns.extend(
                    messages
                        .iter()
                        .map(|m| (self.role_name(m.role), m.content.clone())),
                );
            }
            ChatTemplate::Gemma => gemma_turns(messages, &mut turns),
        }
        turns
    }
}

/// Gemma: system messages are prepended to the next user turn.
fn gemma_turns(messages: &[Message], turns: &mut Vec<(&'static str, String)>) {
    let mut pending_system: Vec<&str> = Vec::new();
    for m in messages {
        match m.role {
            Role::System => pending_system.push(&m.content),
            Role::User => {
                let mut content = String::new();
                for s in pending_system.drain(..) {
                    content.push_str(s);
                    content.push_str("\n\n");
                }
                content.push_str(&m.content);
                turns.push(("user", content));
            }
            Role::Assistant => turns.push(("model", m.content.clone())),
        }
    }
    if !pending_system.is_empty() {
        turns.push(("user", pending_system.join("\n\n")));
    }
}

/// The literal default system prompt in a ChatML Jinja template, if it writes one:
/// `'<|im_start|>system\n…<|im_end|>` inside a string literal.
fn chatml_default_system(jinja: &str) -> Option<String> {
    const OPEN: &str = "'<|im_start|>system";
    let start = jinja.find(OPEN)? + OPEN.len();
    let rest = &jinja[start..];
    let rest = rest
        .strip_prefix("\\n")
        .or_else(|| rest.strip_prefix('\n'))?;
    let end = rest.find("<|im_end|>")?;
    let text = &rest[..end];
    // A Jinja expression inside means the prompt is not a plain literal.
    if text.contains(['\'', '{', '}']) || text.is_empty() {
        return None;
    }
    Some(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smollm_default_system_prompt_is_extracted() {
        let jinja = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}";
        assert_eq!(
            chatml_default_system(jinja).as_deref(),
            Some("You are a helpful AI assistant named SmolLM, trained by Hugging Face")
        );
        let escaped = jinja.replace('\n', "\\n");
        assert!(chatml_default_system(&escaped).is_some());
        // Qwen-style templates that compute the system prompt are not literals.
        assert_eq!(
            chatml_default_system(
                "{{ '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>' }}"
            ),
            None
        );
    }

    #[test]
    fn gemma_folds_system_into_first_user_turn() {
        let msgs = [
            Message::new(Role::System, "Be brief."),
            Message::new(Role::User, "Hi"),
            Message::new(Role::Assistant, "Hello"),
            Message::new(Role::User, "Bye"),
        ];
        let mut turns = Vec::new();
        gemma_turns(&msgs, &mut turns);
        assert_eq!(
            turns,
            [
                ("user", "Be brief.\n\nHi".to_string()),
                ("model", "Hello".to_string()),
                ("user", "Bye".to_string())
            ]
        );
    }
}
