"""Oracle for the SentencePiece vocabulary of a real GGUF (Gemma's): Google's `sentencepiece`.

usage:
  gguf_sentencepiece.py MODEL.gguf < strings.json

The reverse of spm_tokenizer.py: reads `tokenizer.ggml.*` with gguf-py, rebuilds the
SentencePiece ModelProto that llama.cpp's converter (`_create_vocab_sentencepiece`) made that
metadata from, and prints the same JSON as spm_tokenizer.py for each string (ids the way llama.cpp
encodes, sentencepiece's own ids, the decoding and each id's text).

The proto's normalizer is Gemma's tokenizer.model's: the identity, no dummy prefix (the file's
add_space_prefix must be false), extra whitespace kept, spaces escaped to `▁`, byte fallback.
Two things the converter changed are undone:
- it writes user-defined pieces with `▁` replaced by a space ("▁▁" is stored as "  "), since
  llama.cpp matches them in the raw text; sentencepiece matches them in the normalized text;
- it types a piece as the added-token list of tokenizer_config.json says, so Gemma's `<unk>` is a
  control token in the GGUF; sentencepiece needs exactly one unknown piece: the file's
  unknown_token_id.
"""
import json
import sys

import sentencepiece as spm
from gguf import GGUFReader
from sentencepiece import sentencepiece_model_pb2 as model_pb2

from spm_tokenizer import SPACE, TOKEN_TYPE, encodings

PIECE_TYPE = {gguf_type: piece_type for piece_type, gguf_type in TOKEN_TYPE.items()}
Piece = model_pb2.ModelProto.SentencePiece


def array(reader, key):
    """The values of a GGUF array field (gguf-py keeps each element in its own part)."""
    field = reader.fields[key]
    return [field.parts[i] for i in field.data]


def scalar(reader, key):
    """A GGUF scalar field's value part: one number, or a string's bytes."""
    field = reader.fields[key]
    return field.parts[field.data[0]]


def proto_from_gguf(reader):
    model = bytes(scalar(reader, "tokenizer.ggml.model")).decode()
    if model != "llama":
        sys.exit(f"tokenizer.ggml.model is {model!r}, not a SentencePiece vocabulary (llama)")
    if bool(scalar(reader, "tokenizer.ggml.add_space_prefix")[0]):
        sys.exit("add_space_prefix is true: this oracle rebuilds only Gemma's normalizer (no dummy prefix)")
    tokens = [bytes(t).decode("utf-8") for t in array(reader, "tokenizer.ggml.tokens")]
    scores = [float(s[0]) for s in array(reader, "tokenizer.ggml.scores")]
    types = [int(t[0]) for t in array(reader, "tokenizer.ggml.token_type")]
    unknown = int(scalar(reader, "tokenizer.ggml.unknown_token_id")[0])

    proto = model_pb2.ModelProto()
    spec = proto.trainer_spec
    spec.model_type = model_pb2.TrainerSpec.BPE
    spec.vocab_size = len(tokens)
    spec.byte_fallback = True
    spec.unk_id = unknown
    spec.unk_piece = tokens[unknown]
    for role in ("bos", "eos"):
        token_id = int(scalar(reader, f"tokenizer.ggml.{role}_token_id")[0])
        setattr(spec, f"{role}_id", token_id)
        setattr(spec, f"{role}_piece", tokens[token_id])
    normalizer = proto.normalizer_spec
    normalizer.name = "identity"
    normalizer.add_dummy_prefix = False
    normalizer.remove_extra_whitespaces = False
    normalizer.escape_whitespaces = True
    for i, (token, score, gguf_type) in enumerate(zip(tokens, scores, types)):
        piece_type = Piece.UNKNOWN if i == unknown else PIECE_TYPE[gguf_type]
        if piece_type == Piece.USER_DEFINED:
            token = token.replace(" ", SPACE)
        proto.pieces.add(piece=token, score=score, type=piece_type)
    # llama.cpp matches user-defined tokens in the raw text, as the GGUF stores them.
    symbols = {token: i for i, (token, t) in enumerate(zip(tokens, types)) if t == TOKEN_TYPE[Piece.USER_DEFINED]}
    return proto, symbols


def main():
    reader = GGUFReader(sys.argv[1])
    strings = json.load(sys.stdin)
    proto, symbols = proto_from_gguf(reader)
    sp = spm.SentencePieceProcessor(model_proto=proto.SerializeToString())
    json.dump(encodings(sp, proto, symbols, strings), sys.stdout)


if __name__ == "__main__":
    main()
