#!/usr/bin/python3
"""Trains the default model's SentencePiece tokenizer, and encodes text exactly as emberlm does.

    tokenizer.py --data DIR [--vocab 1536] [--scenes 8000]

reads DIR/train.txt and writes DIR/tokenizer.model (and tokenizer.vocab).

The model is BPE with byte fallback (any text tokenizes: characters outside
the vocabulary become <0xNN> byte pieces; a newline is always <0x0A>), identity
normalization, whitespace kept as it is and no dummy prefix in the model
itself: emberlm adds the dummy prefix (a space before the text,
tokenizer.ggml.add_space_prefix) and builds a BPE sentencepiece model with
identity normalization from the GGUF vocabulary, so `encode` below, the
trainer's tokenization, is emberlm's tokenization (tools/train/train.py checks
the held-out ids' count against `ember perplexity`).

Lines reach the tokenizer trainer twice, as " line" (a line at the start of a
text, or a segment a host sends on its own: the dummy prefix gives its first
word the U+2581 space mark) and as "line" (a line after a newline inside one
text), so both spellings of the speaker tags are single pieces.
"""
import argparse
import os

import sentencepiece as spm


def load(path):
    return spm.SentencePieceProcessor(model_file=path)


def encode(sp, text, bos=False):
    """emberlm's encode(text, add_bos=bos): the dummy-prefix space, then sentencepiece."""
    ids = sp.encode(" " + text) if text else []
    return ([sp.bos_id()] if bos else []) + ids


def encode_continuation(sp, text):
    """Tokens of text that follows a newline inside a longer text (no dummy prefix)."""
    return sp.encode(text) if text else []


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--vocab", type=int, default=1536)
    ap.add_argument("--scenes", type=int, default=8000, help="training scenes the tokenizer learns from")
    a = ap.parse_args()
    with open(os.path.join(a.data, "train.txt"), encoding="utf-8") as f:
        scenes = f.read().split("\n\n")[: a.scenes]
    sentences = os.path.join(a.data, "tokenizer-input.txt")
    with open(sentences, "w", encoding="utf-8") as f:
        for s in scenes:
            for line in s.splitlines():
                if line:
                    f.write(" " + line + "\n")
                    f.write(line + "\n")
    spm.SentencePieceTrainer.train(
        input=sentences, model_prefix=os.path.join(a.data, "tokenizer"), model_type="bpe", vocab_size=a.vocab,
        byte_fallback=True, character_coverage=1.0, normalization_rule_name="identity", add_dummy_prefix=False,
        remove_extra_whitespaces=False, split_digits=True, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        num_threads=1, input_sentence_size=0, shuffle_input_sentence=False, minloglevel=2)
    os.remove(sentences)
    sp = load(os.path.join(a.data, "tokenizer.model"))
    print("tokenizer: %d pieces (BPE, byte fallback) -> %s" % (sp.get_piece_size(),
                                                              os.path.join(a.data, "tokenizer.model")))


if __name__ == "__main__":
    main()
