"""Independent float64 NumPy reference for a Llama-family decoder.

This is deliberately written from the textbook description of the model, not
from emberlm's sources, so that the golden-logit test compares two independent
implementations:

    x = embd[tok]
    per layer:
        h  = rmsnorm(x) * attn_norm
        q  = h @ Wq.T (+ bq)   k = h @ Wk.T (+ bk)   v = h @ Wv.T (+ bv)
        rope(q), rope(k)       per head, first n_rot dims, theta_i = pos/scale * base^(-2i/n_rot)
        attn = causal softmax(q k^T / sqrt(hd)) v      (GQA: query head h uses kv head h // (n_head/n_kv))
        x += attn @ Wo.T
        h2 = rmsnorm(x) * ffn_norm
        x += (silu(h2 @ Wg.T) * (h2 @ Wu.T)) @ Wd.T
    logits = (rmsnorm(x) * output_norm) @ Wout.T

Weights are plain float64 arrays in PyTorch layout ([out, in]).

`bugs` lets the self-check deliberately break one aspect of the model to show
that the comparison in test_golden.py is sharp enough to notice.
"""
from __future__ import annotations

import dataclasses

import numpy as np

ROPE_NORMAL = "normal"  # rotate adjacent pairs (x[2i], x[2i+1])          -- llama
ROPE_NEOX = "neox"      # rotate halves      (x[i],  x[i + n_rot/2])       -- qwen2


@dataclasses.dataclass
class HParams:
    n_vocab: int
    dim: int
    n_layer: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_ff: int
    n_rot: int
    eps: float = 1e-5
    rope_base: float = 10000.0
    rope_scale: float = 1.0  # linear scaling factor: positions are divided by it
    rope_order: str = ROPE_NORMAL


@dataclasses.dataclass
class Layer:
    attn_norm: np.ndarray
    wq: np.ndarray
    wk: np.ndarray
    wv: np.ndarray
    wo: np.ndarray
    ffn_norm: np.ndarray
    w_gate: np.ndarray
    w_up: np.ndarray
    w_down: np.ndarray
    bq: np.ndarray | None = None
    bk: np.ndarray | None = None
    bv: np.ndarray | None = None


@dataclasses.dataclass
class Weights:
    tok_embd: np.ndarray  # [vocab, dim]
    layers: list
    output_norm: np.ndarray
    output: np.ndarray  # [vocab, dim]; the same array as tok_embd when tied


# Recognised deliberate bugs (used only by the self-check):
#   "rope_other_order"  use the other rope pair ordering
#   "no_bias"           ignore q/k/v biases
#   "gqa_modulo"        query head h uses kv head h % n_kv instead of h // group
#   "mask_exclusive"    causal mask excludes the token itself (off by one)
#   "mask_inclusive"    causal mask lets a token see the next one (off by one)
#   "q_pos_plus1"       q rotated for position pos+1, k for pos (off by one position)
#   "no_rope_scale"     ignore linear rope scaling
#   "base_10000"        ignore rope.freq_base and use 10000
#   "no_rope"           skip rope entirely
#   "no_ffn_gate_silu"  use gate without SiLU
#   "swap_gate_up"      swap ffn_gate and ffn_up
BUGS = ("rope_other_order", "no_bias", "gqa_modulo", "mask_exclusive", "mask_inclusive",
        "q_pos_plus1", "no_rope_scale", "base_10000", "no_rope", "no_ffn_gate_silu",
        "swap_gate_up")


def rmsnorm(x: np.ndarray, w: np.ndarray, eps: float) -> np.ndarray:
    ms = np.mean(x * x, axis=-1, keepdims=True)
    return x / np.sqrt(ms + eps) * w


def rope(x: np.ndarray, positions: np.ndarray, hp: HParams, bugs=()) -> np.ndarray:
    """x: [T, n_heads, head_dim]; returns a rotated copy."""
    if "no_rope" in bugs:
        return x.copy()
    n_rot = hp.n_rot
    half = n_rot // 2
    base = 10000.0 if "base_10000" in bugs else hp.rope_base
    scale = 1.0 if "no_rope_scale" in bugs else hp.rope_scale
    inv_freq = base ** (-2.0 * np.arange(half, dtype=np.float64) / n_rot)  # [half]
    ang = (positions.astype(np.float64) / scale)[:, None] * inv_freq[None, :]  # [T, half]
    cos = np.cos(ang)[:, None, :]
    sin = np.sin(ang)[:, None, :]
    order = hp.rope_order
    if "rope_other_order" in bugs:
        order = ROPE_NEOX if order == ROPE_NORMAL else ROPE_NORMAL
    out = x.copy()
    if order == ROPE_NORMAL:
        a = x[..., 0:n_rot:2]
        b = x[..., 1:n_rot:2]
        out[..., 0:n_rot:2] = a * cos - b * sin
        out[..., 1:n_rot:2] = a * sin + b * cos
    elif order == ROPE_NEOX:
        a = x[..., 0:half]
        b = x[..., half:n_rot]
        out[..., 0:half] = a * cos - b * sin
        out[..., half:n_rot] = a * sin + b * cos
    else:
        raise ValueError(order)
    return out


def silu(x: np.ndarray) -> np.ndarray:
    return x / (1.0 + np.exp(-x))


def exact_matmul(a: np.ndarray, W: np.ndarray) -> np.ndarray:
    return a @ W.T


def forward(w: Weights, hp: HParams, tokens, bugs=(), mm=exact_matmul) -> np.ndarray:
    """Logits for every position: [T, n_vocab], float64.

    `mm(a, W)` computes a @ W.T for every weight matmul; the default is exact
    float64. The self-check swaps in a lower-precision emulation to show that
    the tolerances admit a correct float32 / Q8_0-activation implementation.
    """
    bugs = tuple(bugs)
    for b in bugs:
        if b not in BUGS:
            raise ValueError(f"unknown bug {b!r}")
    tokens = np.asarray(tokens, dtype=np.int64)
    T = len(tokens)
    hd, nh, nkv = hp.head_dim, hp.n_head, hp.n_head_kv
    group = nh // nkv
    pos = np.arange(T)
    x = w.tok_embd[tokens].astype(np.float64)
    # mask[i, j] True where query i may attend to key j
    i_idx, j_idx = np.meshgrid(np.arange(T), np.arange(T), indexing="ij")
    if "mask_exclusive" in bugs:
        allowed = (j_idx < i_idx) | ((i_idx == 0) & (j_idx == 0))
    elif "mask_inclusive" in bugs:
        allowed = j_idx <= i_idx + 1
    else:
        allowed = j_idx <= i_idx
    for L in w.layers:
        h = rmsnorm(x, L.attn_norm, hp.eps)
        q = mm(h, L.wq)
        k = mm(h, L.wk)
        v = mm(h, L.wv)
        if "no_bias" not in bugs:
            if L.bq is not None:
                q = q + L.bq
            if L.bk is not None:
                k = k + L.bk
            if L.bv is not None:
                v = v + L.bv
        q = q.reshape(T, nh, hd)
        k = k.reshape(T, nkv, hd)
        v = v.reshape(T, nkv, hd)
        q = rope(q, pos + 1 if "q_pos_plus1" in bugs else pos, hp, bugs)
        k = rope(k, pos, hp, bugs)
        att_out = np.empty((T, nh, hd))
        for hh in range(nh):
            kvh = hh % nkv if "gqa_modulo" in bugs else hh // group
            s = q[:, hh, :] @ k[:, kvh, :].T / np.sqrt(hd)
            s = np.where(allowed, s, -np.inf)
            s = s - s.max(axis=1, keepdims=True)
            p = np.exp(s)
            p /= p.sum(axis=1, keepdims=True)
            att_out[:, hh, :] = p @ v[:, kvh, :]
        x = x + mm(att_out.reshape(T, nh * hd), L.wo)
        h2 = rmsnorm(x, L.ffn_norm, hp.eps)
        wg, wu = (L.w_up, L.w_gate) if "swap_gate_up" in bugs else (L.w_gate, L.w_up)
        g = mm(h2, wg)
        u = mm(h2, wu)
        act = g if "no_ffn_gate_silu" in bugs else silu(g)
        x = x + mm(act * u, L.w_down)
    hf = rmsnorm(x, w.output_norm, hp.eps)
    return mm(hf, w.output)
