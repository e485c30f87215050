//! Chat prompts: a model's own chat template (GGUF `tokenizer.chat_template`, a Jinja template as
//! Hugging Face's tokenizers carry) rendered over a list of messages, as transformers'
//! `apply_chat_template(messages, add_generation_prompt=True)` does, by minijinja.

use minijinja::{context, Environment, Error, ErrorKind};
use serde::Serialize;

use crate::error::ModelError;
use crate::formats::tokenizer::TextTokenizer;

/// One turn of a conversation: `role` is "system", "user" or "assistant".
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn user(content: &str) -> ChatMessage {
        ChatMessage { role: "user".into(), content: content.into() }
    }
}

/// The text of `messages` in the model's chat format, ending where the assistant's reply begins.
/// A BOS the template writes is left out when the tokenizer adds one itself, so the prompt does
/// not start with two.
pub fn chat_prompt(tokenizer: &TextTokenizer, messages: &[ChatMessage]) -> Result<String, ModelError> {
    let bad = |message: String| ModelError::ChatTemplate { message };
    let template = tokenizer
        .chat_template
        .as_deref()
        .ok_or_else(|| bad("the model has no chat template (tokenizer.chat_template)".into()))?;
    // transformers' environment: a block tag takes its newline and the spaces before it along.
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    // Templates stop on bad input with raise_exception (transformers defines it the same way).
    env.add_function("raise_exception", |message: String| -> Result<String, Error> {
        Err(Error::new(ErrorKind::InvalidOperation, message))
    });
    env.add_template("chat", template).map_err(|e| bad(format!("does not parse: {e}")))?;
    let token = |id: Option<u32>| id.map(|id| tokenizer.token_text(id)).unwrap_or_default();
    let (bos, eos) = (token(tokenizer.bos), token(tokenizer.eos));
    let rendered = env
        .get_template("chat")
        .and_then(|t| {
            t.render(context! { messages, add_generation_prompt => true, bos_token => bos, eos_token => eos })
        })
        .map_err(|e| bad(format!("rendering failed: {e}")))?;
    let adds_bos = tokenizer.bos.is_some() && tokenizer.encode("a")?.first() == tokenizer.bos.as_ref();
    Ok(match rendered.strip_prefix(&bos) {
        Some(rest) if adds_bos && !bos.is_empty() => rest.to_string(),
        _ => rendered,
    })
}
