"""Independent oracle for chat prompts: a GGUF's tokenizer.chat_template rendered by jinja2 the
way transformers' apply_chat_template does (a sandboxed environment with trim_blocks and
lstrip_blocks, raise_exception, add_generation_prompt), over the messages read from stdin.

usage: chat_template.py MODEL.gguf < messages.json
prints the rendered prompt (without a trailing newline of its own).
"""
import json
import sys

from gguf import GGUFReader
from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment


def raise_exception(message):
    raise TemplateError(message)


def main():
    reader = GGUFReader(sys.argv[1])
    field = lambda key: reader.fields[key].contents()
    tokens = field("tokenizer.ggml.tokens")
    token = lambda key: tokens[field(key)] if key in reader.fields else ""
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    template = env.from_string(field("tokenizer.chat_template"))
    sys.stdout.write(template.render(
        messages=json.load(sys.stdin),
        add_generation_prompt=True,
        bos_token=token("tokenizer.ggml.bos_token_id"),
        eos_token=token("tokenizer.ggml.eos_token_id"),
    ))


if __name__ == "__main__":
    main()
