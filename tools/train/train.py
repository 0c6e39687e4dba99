#!/usr/bin/python3
"""Trains the default model (tools/train/model.py) on the village corpus, on the CPU.

    train.py --data DIR --out DIR [--steps N] [--threads 2] [--seed 1]

reads DIR/train.txt, DIR/val.txt and DIR/tokenizer.model; writes to the out folder
  model.bin     the weights as a llama2.c checkpoint (`ember convert-llama2c` turns
                it and tokenizer.model into a GGUF), the 2-D weights rounded to
                float16 as the F16 GGUF will hold them
  results.json  shape, parameter count, training time, token counts, and the
                held-out perplexity of the exported weights with emberlm's
                convention, and the unigram baseline's
  train.log     loss curve

Reproducible: every random choice comes from the seed, the batches from a
seeded generator, torch runs deterministic algorithms on a fixed thread count,
and the schedule is a step count, not a time budget.

Tokenization (see tokenizer.py): a scene is a few lines; a training stream is
the scenes, each followed by a blank line, as the corpus file holds them.
Half the scenes are tokenized as one text (a line after a newline begins
without the space mark), half line by line, each line as a text of its own
(the space mark on every line's first word: how a host that sends each turn
separately, like examples/npc/village.cpp, tokenizes). Within a scene the
spelling is consistent, so the model infers it from the first line break.
Half the sequences of a batch start at a scene with BOS (how generation
starts), half anywhere in the stream (how later evaluation windows start).

Perplexity (the convention `ember perplexity` implements, src/perplexity.cpp):
the text's ids are BOS followed by the tokenization of the whole text; they are
cut into consecutive, non-overlapping windows of n_ctx ids (the last may be
shorter); each window is evaluated from an empty context; every id of a window
except its first is scored, with the log-probability the model gives it after
the ids before it in the window; perplexity = exp(-mean log-probability).
"""
import argparse
import json
import math
import os
import random
import struct
import sys
import time

# Before torch loads OpenMP: threads that wait sleep instead of spinning. On a
# machine whose cores are shared, spinning threads make a step several times
# slower. (train.sh also picks OpenBLAS for the matrix products.)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tokenizer as tok  # noqa: E402
from model import Config, Transformer  # noqa: E402


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


# ---- data ---------------------------------------------------------------------

def build_stream(sp, text, rng):
    """Token stream of the training scenes, and per scene (start, end of first line, BOS-start ids)."""
    nl = sp.piece_to_id("<0x0A>")
    stream, scenes = [], []
    for scene in text.split("\n\n"):
        lines = [ln for ln in scene.split("\n") if ln]
        if not lines:
            continue
        start = len(stream)
        if rng.random() < 0.5:  # one text: only a text's first line gets the space mark
            for i, ln in enumerate(lines):
                stream += tok.encode_continuation(sp, ln) + [nl]
        else:  # line by line
            for ln in lines:
                stream += tok.encode(sp, ln) + [nl]
        stream.append(nl)  # the blank line between scenes
        first = tok.encode(sp, lines[0])  # the first line as the start of a text
        first_end = start + stream[start:].index(nl)
        scenes.append((start, first_end, first))
    return torch.tensor(stream, dtype=torch.long), scenes


def batch(stream, scenes, B, T, bos, gen):
    xs = []
    for _ in range(B):
        if torch.rand((), generator=gen).item() < 0.5:
            # BOS, then a scene from its start
            s, e, first = scenes[int(torch.randint(len(scenes), (), generator=gen))]
            head = torch.tensor([bos] + first, dtype=torch.long)
            tail = stream[e:e + T + 1 - len(head)]
            x = torch.cat([head, tail])
            if len(x) < T + 1:  # near the end of the stream: wrap around
                x = torch.cat([x, stream[: T + 1 - len(x)]])
        else:
            o = int(torch.randint(len(stream) - T - 1, (), generator=gen))
            x = stream[o:o + T + 1]
        xs.append(x)
    x = torch.stack(xs)
    return x[:, :-1], x[:, 1:]


# ---- evaluation -----------------------------------------------------------------

def eval_ids(sp, text):
    return tok.encode(sp, text, bos=True)


@torch.no_grad()
def perplexity(model, ids, n_ctx, batch_windows=8):
    """(perplexity, scored tokens, total nll) with emberlm's convention (see the module docstring)."""
    model.eval()
    windows = [ids[i:i + n_ctx] for i in range(0, len(ids), n_ctx)]
    windows = [w for w in windows if len(w) >= 2]
    nll, n = 0.0, 0
    full = [w for w in windows if len(w) == n_ctx]
    rest = [w for w in windows if len(w) != n_ctx]
    for i in range(0, len(full), batch_windows):
        x = torch.tensor(full[i:i + batch_windows], dtype=torch.long)
        logp = F.log_softmax(model(x[:, :-1]).double(), dim=-1)
        nll -= logp.gather(-1, x[:, 1:, None]).sum().item()
        n += x[:, 1:].numel()
    for w in rest:
        x = torch.tensor([w], dtype=torch.long)
        logp = F.log_softmax(model(x[:, :-1]).double(), dim=-1)
        nll -= logp.gather(-1, x[:, 1:, None]).sum().item()
        n += x[:, 1:].numel()
    model.train()
    return math.exp(nll / n), n, nll


def unigram_perplexity(train_counts, ids, n_ctx):
    """Perplexity of the add-one unigram model of the training tokens, on the same scored ids."""
    total = train_counts.sum().item() + len(train_counts)
    logp = torch.log((train_counts.double() + 1.0) / total)
    scored = [t for i in range(0, len(ids), n_ctx) for t in ids[i + 1:i + n_ctx]]
    return math.exp(-logp[torch.tensor(scored)].mean().item())


# ---- export -------------------------------------------------------------------------

def round_to_f16(model):
    """The 2-D weights as an F16 GGUF holds them (vectors stay float32)."""
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.copy_(p.half().float())


def write_llama2c(model, path):
    """llama2.c's checkpoint layout (the version-0 export), which src/convert_llama2c.cpp reads."""
    c = model.c
    hd = c.dim // c.n_heads
    sd = model.state_dict()
    with open(path, "wb") as f:
        # header; a positive vocab size means the classifier is the embedding
        f.write(struct.pack("7i", c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.vocab_size,
                            c.max_seq_len))

        def w(t):
            f.write(t.detach().float().contiguous().numpy().tobytes())

        w(sd["tok_embeddings.weight"])
        for name in ["attention_norm.weight", "attention.wq.weight", "attention.wk.weight", "attention.wv.weight",
                     "attention.wo.weight", "ffn_norm.weight", "feed_forward.w1.weight", "feed_forward.w2.weight",
                     "feed_forward.w3.weight"]:
            for l in range(c.n_layers):
                w(sd["layers.%d.%s" % (l, name)])
        w(sd["norm.weight"])
        cos, sin = model.cos, model.sin  # freq_cis_real / imag (the converter recomputes them)
        w(cos[: c.max_seq_len])
        w(sin[: c.max_seq_len])
        assert cos.shape == (c.max_seq_len, hd // 2)


# ---- main ---------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--dim", type=int, default=192)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=6)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--ffn", type=int, default=512)
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--eval-every", type=int, default=250)
    a = ap.parse_args()

    t_start = time.time()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    torch.use_deterministic_algorithms(True)
    # Tiny weights and gradients drift into subnormal floats, which x86 computes
    # a hundred times slower; flush them to zero (the same on every run).
    torch.set_flush_denormal(True)
    random.seed(a.seed)
    os.makedirs(a.out, exist_ok=True)
    log = open(os.path.join(a.out, "train.log"), "w")

    def say(msg):
        print(msg, flush=True)
        log.write(msg + "\n")
        log.flush()

    sp = tok.load(os.path.join(a.data, "tokenizer.model"))
    stream, scenes = build_stream(sp, read(os.path.join(a.data, "train.txt")), random.Random(a.seed))
    val_ids = eval_ids(sp, read(os.path.join(a.data, "val.txt")))
    # a quick held-out check while training: the first 16 windows
    probe = val_ids[: 16 * a.ctx]
    c = Config(dim=a.dim, n_layers=a.layers, n_heads=a.heads, n_kv_heads=a.kv_heads, vocab_size=sp.get_piece_size(),
               hidden_dim=a.ffn, max_seq_len=a.ctx)
    model = Transformer(c)
    say("model: %s, %d parameters; %d training tokens in %d scenes, %d held-out tokens" %
        (c, model.n_params(), len(stream), len(scenes), len(val_ids)))

    decay = [p for p in model.parameters() if p.dim() == 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.95), eps=1e-8)
    gen = torch.Generator().manual_seed(a.seed)

    def lr_at(step):
        if step < a.warmup:
            return a.lr * (step + 1) / a.warmup
        p = (step - a.warmup) / max(1, a.steps - a.warmup)
        return a.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p)))

    t_train = t_last = time.time()
    seen = seen_last = 0
    for step in range(a.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        x, y = batch(stream, scenes, a.batch, a.ctx, sp.bos_id(), gen)
        loss = F.cross_entropy(model(x).reshape(-1, c.vocab_size), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        seen += x.numel()
        if step % 25 == 0 or step == a.steps - 1:
            now = time.time()
            msg = "step %5d  loss %.4f  lr %.2e  %.0f tok/s  %.0f s" % (
                step, loss.item(), lr_at(step), (seen - seen_last) / (now - t_last), now - t_train)
            t_last, seen_last = now, seen
            if step % a.eval_every == 0 or step == a.steps - 1:
                msg += "  held-out ppl (first windows) %.3f" % perplexity(model, probe, a.ctx)[0]
            say(msg)
    train_s = time.time() - t_train

    round_to_f16(model)
    write_llama2c(model, os.path.join(a.out, "model.bin"))
    ppl, n_scored, nll = perplexity(model, val_ids, a.ctx)
    counts = torch.bincount(stream, minlength=c.vocab_size)
    uni = unigram_perplexity(counts, val_ids, a.ctx)
    res = {
        "config": c.__dict__, "parameters": model.n_params(), "steps": a.steps, "batch": a.batch,
        "lr": a.lr, "seed": a.seed, "threads": a.threads, "training_tokens_seen": seen,
        "train_stream_tokens": len(stream), "train_scenes": len(scenes),
        "heldout_ids": len(val_ids), "heldout_scored_tokens": n_scored, "heldout_nll": nll,
        "heldout_perplexity": ppl, "unigram_perplexity": uni,
        "train_seconds": round(train_s, 1), "total_seconds": round(time.time() - t_start, 1),
        "torch": torch.__version__,
    }
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump(res, f, indent=2)
    say("held-out perplexity %.4f over %d tokens (unigram baseline %.2f); training %.0f s" %
        (ppl, n_scored, uni, train_s))


if __name__ == "__main__":
    main()
