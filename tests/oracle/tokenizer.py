"""Oracle for tokenization: Hugging Face's Python `tokenizers` package.

usage:
  tokenizer.py gguf MODEL.gguf PRE   < strings.json   build from the GGUF's vocabulary and merges
                                                      with the pre-tokenizer llama.cpp calls PRE
  tokenizer.py json TOKENIZER.json   < strings.json   load a tokenizer.json
prints JSON [{"ids": [...], "decoded": str, "pieces": [str per id]}] for each input string.
"""
import json
import sys

from gguf import GGUFReader
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers

# The split regexes of the models' own tokenizer.json files.
LLAMA3 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
QWEN2 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"


def from_gguf(path, pre):
    reader = GGUFReader(path)
    field = lambda key: reader.fields[key].contents()
    tokens = field("tokenizer.ggml.tokens")
    merges = [tuple(m.split(" ", 1)) for m in field("tokenizer.ggml.merges")]
    types = field("tokenizer.ggml.token_type")
    tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges))
    byte_level = lambda use_regex: pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=use_regex)
    split = lambda rx: pre_tokenizers.Split(Regex(rx), behavior="isolated")
    tok.pre_tokenizer = {
        "gpt2": byte_level(True),
        "gpt-2": byte_level(True),  # llama.cpp's name for GPT-2's own pre-tokenizer (LLAMA_VOCAB_PRE_TYPE_GPT2)
        "smollm": pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level(True)]),
        "llama-bpe": pre_tokenizers.Sequence([split(LLAMA3), byte_level(False)]),
        "qwen2": pre_tokenizers.Sequence([split(QWEN2), byte_level(False)]),
    }[pre]
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True) for t, ty in zip(tokens, types) if ty == 3])
    tok.add_tokens([AddedToken(t) for t, ty in zip(tokens, types) if ty == 4])
    return tok


def main():
    kind = sys.argv[1]
    tok = from_gguf(sys.argv[2], sys.argv[3]) if kind == "gguf" else Tokenizer.from_file(sys.argv[2])
    out = []
    for text in json.load(sys.stdin):
        ids = tok.encode(text).ids
        out.append({
            "ids": ids,
            "decoded": tok.decode(ids, skip_special_tokens=False),
            "pieces": [tok.decode([i], skip_special_tokens=False) for i in ids],
        })
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
