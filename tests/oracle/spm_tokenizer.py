"""Oracle for SentencePiece vocabularies: Google's `sentencepiece` library.

usage:
  spm_tokenizer.py OUT.gguf ADD_SPACE_PREFIX(true|false) < strings.json

Trains a small BPE SentencePiece model (deterministic: one thread, a fixed corpus of ARCHITECTURE.md
and the strings), turns it into `tokenizer.ggml.*` metadata as llama.cpp's convert_hf_to_gguf.py
(`_create_vocab_sentencepiece`, `_set_vocab_sentencepiece`) does, writes that to OUT.gguf with
gguf-py, and prints JSON [{"ids": [...], "decoded": str, "pieces": [str per id],
"sentencepiece_ids": [...]}] for each string:
- sentencepiece_ids: sentencepiece's own encoding of the whole string (no BOS);
- ids: the encoding llama.cpp makes (llama_vocab::impl::tokenize, SPM branch: the text is cut at
  user-defined and control tokens first, and each stretch of text between them is encoded on its
  own, with its own space prefix), made here by sentencepiece, stretch by stretch; the two differ
  only where a stretch follows such a token while add_space_prefix is on;
- decoded: sentencepiece's decoding of ids; pieces: each id's text.

The normalizer is the identity and extra whitespace is kept, as in Llama's and Gemma's
tokenizer.model: llama.cpp applies no other normalization, so other rules are not comparable.
"""
import io
import json
import re
import sys
from pathlib import Path

import sentencepiece as spm
from gguf import GGUFWriter
from sentencepiece import sentencepiece_model_pb2 as model_pb2

REPO = Path(__file__).resolve().parents[2]
USER_DEFINED = ["<|im_start|>", "<|im_end|>"]
CONTROL = ["<|ctrl|>"]
SPACE = "\u2581"

# llama.cpp's tokenizer.ggml.token_type for each SentencePiece piece type, which it reads from the
# proto (normal 1, unknown 2, control 3, user-defined 4, unused 5, byte 6).
TOKEN_TYPE = {
    model_pb2.ModelProto.SentencePiece.NORMAL: 1,
    model_pb2.ModelProto.SentencePiece.UNKNOWN: 2,
    model_pb2.ModelProto.SentencePiece.CONTROL: 3,
    model_pb2.ModelProto.SentencePiece.USER_DEFINED: 4,
    model_pb2.ModelProto.SentencePiece.UNUSED: 5,
    model_pb2.ModelProto.SentencePiece.BYTE: 6,
}


def train(strings, add_space_prefix):
    corpus = [line for line in (REPO / "ARCHITECTURE.md").read_text().splitlines() if line.strip()]
    corpus += [s for s in strings if s]
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus),
        model_writer=model,
        model_type="bpe",
        vocab_size=700,
        byte_fallback=True,
        user_defined_symbols=USER_DEFINED,
        control_symbols=CONTROL,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        add_dummy_prefix=add_space_prefix,
        split_digits=True,
        num_threads=1,
        minloglevel=2,
    )
    proto = model_pb2.ModelProto()
    proto.ParseFromString(model.getvalue())
    return proto


def write_gguf(proto, path, add_space_prefix):
    writer = GGUFWriter(path, "llama")
    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list([p.piece.encode("utf-8") for p in proto.pieces])
    writer.add_token_scores([p.score for p in proto.pieces])
    writer.add_token_types([TOKEN_TYPE[p.type] for p in proto.pieces])
    spec = proto.trainer_spec
    writer.add_bos_token_id(spec.bos_id)
    writer.add_eos_token_id(spec.eos_id)
    writer.add_unk_token_id(spec.unk_id)
    # As llama.cpp's converters do: Llama's leave add_space_prefix and add_bos_token to their
    # defaults (true), Gemma's write add_space_prefix = false.
    if not add_space_prefix:
        writer.add_add_space_prefix(False)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def piece_text(proto, i):
    """What one piece stands for: its bytes for a byte piece (U+FFFD when not whole characters)."""
    piece = proto.pieces[i]
    if piece.type == model_pb2.ModelProto.SentencePiece.BYTE:
        return bytes([int(piece.piece[3:5], 16)]).decode("utf-8", errors="replace")
    return piece.piece.replace(SPACE, " ")


def llama_cpp_encoding(sp, symbols, text):
    """sentencepiece's encoding of each stretch of `text` between the `symbols` (text: id; longest
    first, as llama.cpp matches them), joined."""
    cut = "(" + "|".join(re.escape(s) for s in sorted(symbols, key=len, reverse=True)) + ")"
    ids = []
    for stretch in re.split(cut, text):
        ids += [symbols[stretch]] if stretch in symbols else sp.encode(stretch)
    return ids


def encodings(sp, proto, symbols, strings):
    """The JSON this oracle prints (see the docstring) for each string."""
    result = []
    for text in strings:
        ids = llama_cpp_encoding(sp, symbols, text)
        result.append({
            "ids": ids,
            "decoded": sp.decode(ids),
            "pieces": [piece_text(proto, i) for i in ids],
            "sentencepiece_ids": sp.encode(text),
        })
    return result


def main():
    out, add_space_prefix = sys.argv[1], {"true": True, "false": False}[sys.argv[2]]
    strings = json.load(sys.stdin)
    proto = train(strings, add_space_prefix)
    write_gguf(proto, out, add_space_prefix)
    sp = spm.SentencePieceProcessor(model_proto=proto.SerializeToString())
    symbols = {p.piece: i for i, p in enumerate(proto.pieces) if p.piece in USER_DEFINED}
    json.dump(encodings(sp, proto, symbols, strings), sys.stdout)


if __name__ == "__main__":
    main()
