//! Chat prompts from a model's own template (`tokenizer.chat_template`): minijinja's rendering
//! equals jinja2's as transformers configures it (tests/oracle/chat_template.py), `generate
//! --chat` answers from it, and a model without one, or a template that raises, says so.
use crate::common::{default_model, default_model_path, gemma3_model_path, run_oracle};

use quantscope::formats::gguf::GgufFile;
use quantscope::formats::tokenizer::TextTokenizer;
use quantscope::model::chat::{chat_prompt, ChatMessage};

fn messages() -> Vec<ChatMessage> {
    vec![
        ChatMessage::user("What is the capital of France?"),
        ChatMessage { role: "assistant".into(), content: "Paris.".into() },
        ChatMessage::user("And  of Germany?\n  Answer in one word."),
    ]
}

#[test]
fn the_default_models_template_renders_as_jinja2_does() {
    let ours = chat_prompt(&default_model().tokenizer, &messages()).unwrap();
    let path = default_model_path().display().to_string();
    let jinja2 = run_oracle("chat_template.py", &[&path], &serde_json::to_string(&messages()).unwrap());
    assert_eq!(ours, jinja2);
    assert!(ours.starts_with("<|im_start|>system\n") && ours.ends_with("<|im_start|>assistant\n"), "{ours:?}");
    // Its special tokens are single tokens, not text.
    let tokens = default_model().tokenizer.encode(&ours).unwrap();
    let im_start = tokens.iter().filter(|&&t| default_model().tokenizer.token_text(t) == "<|im_start|>").count();
    assert_eq!(im_start, 5, "{tokens:?}");
}

#[test]
fn generate_chat_answers_from_the_template() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_quantscope"))
        .args(["generate", "--model", &default_model_path().display().to_string(), "--backend", "cpu"])
        .args(["--prompt", "What is the capital of France?", "--chat", "--max-tokens", "6", "--json"])
        .env_remove("XDG_RUNTIME_DIR")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let text = v["text"].as_str().unwrap();
    assert!(v["prompt_tokens"].as_array().unwrap().len() > 20 && text.contains("Paris"), "{v}");
}

#[test]
fn a_model_without_a_template_or_a_template_that_raises_says_so() {
    let bytes = std::fs::read(gemma3_model_path()).unwrap();
    let gemma = TextTokenizer::from_gguf(&GgufFile::parse(&bytes, "gemma").unwrap()).unwrap();
    let err = chat_prompt(&gemma, &messages()).unwrap_err().to_string();
    assert!(err.contains("no chat template"), "{err}");
    let mut raising = default_model().tokenizer.clone();
    raising.chat_template = Some(
        "{% if messages[0]['role'] != 'system' %}{{ raise_exception('a system message first') }}{% endif %}".into(),
    );
    let err = chat_prompt(&raising, &messages()).unwrap_err().to_string();
    assert!(err.contains("a system message first"), "{err}");
}

/// A template written over several lines with indented block tags (as most are): transformers'
/// jinja2 drops a block tag's newline and the indentation before it, and so must we.
#[test]
fn a_multi_line_template_renders_as_jinja2_does() {
    use quantscope::formats::gguf::{write_gguf, MetadataValue};
    let template = "{% for message in messages %}\n    {% if message['role'] == 'user' %}\n<|user|>\n{{ message['content'] }}{{ eos_token }}\n    {% else %}\n<|assistant|>\n{{ message['content'] | trim }}{{ eos_token }}\n    {% endif %}\n{% endfor %}\n{% if add_generation_prompt %}\n<|assistant|>\n{% endif %}";
    let bytes = std::fs::read(default_model_path()).unwrap();
    let source = GgufFile::parse(&bytes, "default").unwrap();
    let mut metadata: Vec<(String, MetadataValue)> =
        source.metadata.iter().filter(|(k, _)| k.starts_with("tokenizer.ggml.")).cloned().collect();
    metadata.push(("tokenizer.chat_template".into(), MetadataValue::String(template.into())));
    let file = crate::common::scratch("chat_template").join("multi-line.gguf");
    let written = write_gguf(&metadata, &[], 32);
    std::fs::write(&file, &written).unwrap();
    let tokenizer = TextTokenizer::from_gguf(&GgufFile::parse(&written, "multi-line.gguf").unwrap()).unwrap();
    let ours = chat_prompt(&tokenizer, &messages()).unwrap();
    let jinja2 =
        run_oracle("chat_template.py", &[&file.display().to_string()], &serde_json::to_string(&messages()).unwrap());
    assert_eq!(ours, jinja2);
    assert!(ours.starts_with("<|user|>\nWhat is") && !ours.contains("    "), "{ours:?}");
}
