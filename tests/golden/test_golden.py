#!/usr/bin/python3
"""Golden-logit test: emberlm against an independent float64 NumPy reference.

    /usr/bin/python3 tests/golden/test_golden.py --ember PATH/TO/ember --workdir DIR
    /usr/bin/python3 tests/golden/test_golden.py --self-check [--workdir DIR]

For every model configuration below and every weight type (F32, F16, BF16,
Q8_0, Q4_0) this script
  1. writes a small random-weight GGUF v3 file with its own writer (gguf_min.py),
  2. computes reference logits for every position of a fixed token sequence in
     float64 from the *decoded* file contents (reference.py, validated against
     llama2.c by check_reference_stories.py),
  3. runs `ember --quiet logits -m MODEL --ids "..." --out FILE` with the
     default kernels and with lower ones (EMBER_ISA: avx512 where the default
     is avx512bf16, avx2, scalar),
  4. compares with a per-type tolerance (see TOLERANCE; BF16 weights under the
     avx512bf16 kernels, whose activations are BF16, TOLERANCE_BF16_ACTS) and
     an argmax check.

--self-check needs no emberlm: it (a) re-reads every written file with an
independent GGUF parser and checks it decodes to the values the reference
uses, (b) shows that a correct but lower-precision implementation (float32
matmuls; Q8_0-quantized activations for Q8_0/Q4_0 weights) passes with
headroom, and (c) shows that each deliberate bug (other rope ordering, missing
qwen2 bias, wrong GQA mapping, causal-mask and position off-by-ones, ignored
rope base/scaling, ...) FAILS by a wide margin: its error must exceed 2x the
tolerance, so that even with the worst admissible numerical noise on top, an
emberlm with that bug cannot pass.

Output: one line per case and a final line `N passed, M failed`; the exit
status is non-zero on any failure.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import struct
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

import gguf_min as G  # noqa: E402
import reference as ref  # noqa: E402

# ---------------------------------------------------------------------------
# Tolerances.
#
# Metric: for each position p,  err_p = max_v |ember[p,v] - ref[p,v]| / max_v |ref[p,v]|,
# and a case's error is max_p err_p. Normalising by the largest logit of the row
# makes it scale-free (tied models have logits ~8x larger than untied ones).
# Additionally, every position's argmax must agree unless the reference's top-2
# gap is within 2 * tol * max|ref| (then the tolerance itself allows a swap).
#
# F32 / F16 / BF16 weights: 2e-4.
#   The stored weights are exactly representable in float32, so emberlm
#   computes with exactly the reference's weights; it dots them with float32
#   activations and accumulates in float32. float32 unit roundoff is
#   u = 6e-8; a length-n dot product has a relative error ~ sqrt(n)*u
#   typically and <= n*u = 2e-5 in the worst case for our longest rows
#   (n = 352). About 8 matmuls plus rmsnorm/rope/softmax in float32 lie on any
#   path through the 2-layer model, and attention amplifies score errors by at
#   most the score scale (~2). That bounds the expected error at a few 1e-5;
#   a float32 emulation (--self-check) measures ~1e-6. 2e-4 leaves an order of
#   magnitude for other summation orders, FMA and vectorised exp, and is still
#   ~1000x below the smallest error any self-check bug produces (~0.16).
#
# Q8_0 / Q4_0 weights: 7e-2.
#   The weights are exact here too (the reference uses the dequantized
#   values), but emberlm quantizes every activation row to Q8_0 (blocks of 32,
#   d = amax/127, round to nearest) before the integer dot product. Each
#   activation element then carries an error uniform in [-d/2, d/2], rms
#   d/sqrt(12) = amax/(127*sqrt(12)) ~ amax/440. For post-rmsnorm rows amax of
#   a 32-block is ~2.2x the rms, i.e. ~0.5% relative noise per matmul output;
#   the heavy-tailed SwiGLU product feeding ffn_down gives ~1%; q/k noise is
#   amplified by the peaked softmax (~1.5-3% each, measured by quantizing one
#   matmul at a time). 16 quantized matmuls add up roughly in quadrature, so
#   the logits carry ~2-3% relative noise. Measured by --self-check-style
#   emulation with 30-40 different, equally valid rounding patterns per case
#   (scale perturbed by 2^-11 so different elements round the other way, as a
#   different but correct kernel would): worst case mean 3.3%, sd 0.6%, max
#   4.7% (llama-mha Q4_0); all other cases <= 3% mean. 7% is mean + 6 sd of the
#   worst case, and every self-check bug produces > 14% (2x tolerance; the
#   closest are an off-by-one q position and ignoring rope.freq_base in the
#   scaled llama-gqa model, ~16%; most bugs give 40-130%).
#   Q4_0 shares the tolerance: weight rounding is not an error source (the
#   reference uses the file's values), and the activation path is the same.
#
# BF16 weights with the avx512bf16 kernels: 2e-2.
#   The weights are exact, but emberlm rounds every activation row to BF16
#   (nearest, ties to even: 8 significant bits) for VDPBF16PS, a relative
#   error of at most 2^-9 per element, rms ~1.1e-3 of the element (against
#   Q8_0's ~2.3e-3 of the block's largest). The emulation (float32 matmuls of
#   BF16-rounded activations) measures 4.7e-3 to 9.1e-3 over the four
#   configurations; 2e-2 keeps it below 0.75 tol, and every self-check bug
#   still fails by more than 4x the tolerance (smallest ~0.18).
TOLERANCE = {"F32": 2e-4, "F16": 2e-4, "BF16": 2e-4, "Q8_0": 7e-2, "Q4_0": 7e-2}
TOLERANCE_BF16_ACTS = 2e-2
WEIGHT_TYPES = ("F32", "F16", "BF16", "Q8_0", "Q4_0")
def _cpu_flags() -> set:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


# the best kernels, the AVX2 ones where the CPU has something wider (their own
# int8 tiles), and the scalar reference
_FLAGS = _cpu_flags()
ISAS = ("default", "avx2", "scalar") if {"avx2", "fma", "f16c", "avx512bw"} <= _FLAGS else ("default", "scalar")
# where the default is avx512bf16 (BF16 weights with BF16 activations), the
# avx512 table too: its own FP32 path for them
if "avx512_bf16" in _FLAGS and "avx512bw" in _FLAGS:
    ISAS = ("default", "avx512", "avx2", "scalar")

# Token sequence: BOS then 23 fixed ids (all configurations have vocab >= 300);
# 24 positions so rope frequency/scaling mistakes build up visible angle errors.
TOKENS = [1, 265, 7, 299, 42, 120, 3, 260, 91, 180, 33, 211, 150, 2, 77, 258, 5, 140, 297, 64, 13, 222, 101, 271]


@dataclasses.dataclass
class Config:
    name: str
    arch: str  # "llama" (interleaved rope) or "qwen2" (NeoX rope, q/k/v biases)
    n_vocab: int
    dim: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_ff: int
    tied: bool
    rope_base: float = 10000.0
    rope_scale: float = 1.0  # != 1: writes rope.scaling.type = "linear"
    eps: float = 1e-5
    n_layer: int = 2
    seed: int = 0


# ffn = 2.7 * dim rounded to a multiple of 32. Every row length (dim, n_head*hd,
# ffn) is a multiple of 32 as Q8_0/Q4_0 require.
CONFIGS = [
    # MHA, untied, default rope.
    Config("llama-mha", "llama", n_vocab=320, dim=64, n_head=4, n_head_kv=4, head_dim=16, n_ff=160,
           tied=False, seed=11),
    # GQA (2 query heads per kv head), tied output, large rope base, linear scaling x2.
    Config("llama-gqa", "llama", n_vocab=384, dim=128, n_head=4, n_head_kv=2, head_dim=32, n_ff=352,
           tied=True, rope_base=500000.0, rope_scale=2.0, eps=1e-6, seed=22),
    # qwen2 with biases, GQA (3 per kv head), tied, base 1e6.
    Config("qwen2-gqa", "qwen2", n_vocab=352, dim=96, n_head=6, n_head_kv=2, head_dim=16, n_ff=256,
           tied=True, rope_base=1000000.0, eps=1e-6, seed=33),
    # qwen2 MHA, untied, linear scaling x4.
    Config("qwen2-mha", "qwen2", n_vocab=300, dim=64, n_head=2, n_head_kv=2, head_dim=32, n_ff=160,
           tied=False, rope_scale=4.0, seed=44),
]


def vocab_tokens(n_vocab: int):
    """<unk>, <s>, </s>, 256 byte tokens, then distinct normal pieces."""
    toks = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    types = [2, 3, 3] + [6] * 256
    letters = "abcdefghijklmnopqrstuvwxyz"
    normal = [f"\u2581{c}" for c in letters] + list(letters)
    normal += [a + b for a in letters for b in letters]
    need = n_vocab - len(toks)
    assert need <= len(normal)
    toks += normal[:need]
    types += [1] * need
    scores = [0.0] * (259) + [-float(i) for i in range(need)]
    return toks, scores, types


def build_model(cfg: Config, wtype: str, path: str):
    """Writes the GGUF file; returns (HParams, Weights) holding the decoded values."""
    rng = np.random.default_rng(cfg.seed)
    E, hd, nh, nkv, F, V = cfg.dim, cfg.head_dim, cfg.n_head, cfg.n_head_kv, cfg.n_ff, cfg.n_vocab
    Q, KV = nh * hd, nkv * hd
    for n in (E, Q, F):
        assert n % 32 == 0, n
    a = cfg.arch
    w = G.Writer()
    w.add_kv("general.architecture", G.string(a))
    w.add_kv("general.name", G.string(f"golden-{cfg.name}-{wtype}"))
    w.add_kv(f"{a}.context_length", G.u32(256))
    w.add_kv(f"{a}.embedding_length", G.u32(E))
    w.add_kv(f"{a}.block_count", G.u32(cfg.n_layer))
    w.add_kv(f"{a}.feed_forward_length", G.u32(F))
    w.add_kv(f"{a}.attention.head_count", G.u32(nh))
    w.add_kv(f"{a}.attention.head_count_kv", G.u32(nkv))
    w.add_kv(f"{a}.attention.layer_norm_rms_epsilon", G.f32(cfg.eps))
    w.add_kv(f"{a}.rope.freq_base", G.f32(cfg.rope_base))
    w.add_kv(f"{a}.rope.dimension_count", G.u32(hd))
    if cfg.rope_scale != 1.0:
        w.add_kv(f"{a}.rope.scaling.type", G.string("linear"))
        w.add_kv(f"{a}.rope.scaling.factor", G.f32(cfg.rope_scale))
    toks, scores, types = vocab_tokens(V)
    w.add_kv("tokenizer.ggml.model", G.string("llama"))
    w.add_kv("tokenizer.ggml.tokens", G.arr(G.T_STRING, toks))
    w.add_kv("tokenizer.ggml.scores", G.arr(G.T_FLOAT32, scores))
    w.add_kv("tokenizer.ggml.token_type", G.arr(G.T_INT32, types))
    w.add_kv("tokenizer.ggml.bos_token_id", G.u32(1))
    w.add_kv("tokenizer.ggml.eos_token_id", G.u32(2))
    w.add_kv("tokenizer.ggml.unknown_token_id", G.u32(0))

    # Scales chosen so that every part of the model matters to the logits:
    # rmsnorm outputs have rms ~1; Wq/Wk give attention scores q.k/sqrt(hd) with
    # std ~2 (peaked, position-sensitive attention, so rope/mask/GQA bugs show);
    # Wv/Wo and the FFN each add O(1) to a residual stream whose embedding part is O(1).
    def normal(shape, std):
        return rng.standard_normal(shape) * std

    def norm_w(n):
        return 1.0 + 0.1 * rng.standard_normal(n)

    s_qk = np.sqrt(2.0 / E)
    embd = w.add_tensor("token_embd.weight", normal((V, E), 1.0), wtype)
    layers = []
    for l in range(cfg.n_layer):
        p = f"blk.{l}."
        L = ref.Layer(
            attn_norm=w.add_tensor(p + "attn_norm.weight", norm_w(E), "F32"),
            wq=w.add_tensor(p + "attn_q.weight", normal((Q, E), s_qk), wtype),
            wk=w.add_tensor(p + "attn_k.weight", normal((KV, E), s_qk), wtype),
            wv=w.add_tensor(p + "attn_v.weight", normal((KV, E), 1.0 / np.sqrt(E)), wtype),
            wo=w.add_tensor(p + "attn_output.weight", normal((E, Q), 1.0 / np.sqrt(Q)), wtype),
            ffn_norm=w.add_tensor(p + "ffn_norm.weight", norm_w(E), "F32"),
            w_gate=w.add_tensor(p + "ffn_gate.weight", normal((F, E), 1.0 / np.sqrt(E)), wtype),
            w_up=w.add_tensor(p + "ffn_up.weight", normal((F, E), 1.0 / np.sqrt(E)), wtype),
            w_down=w.add_tensor(p + "ffn_down.weight", normal((E, F), 2.0 / np.sqrt(F)), wtype),
        )
        if a == "qwen2":
            L.bq = w.add_tensor(p + "attn_q.bias", normal(Q, 1.0), "F32")
            L.bk = w.add_tensor(p + "attn_k.bias", normal(KV, 1.0), "F32")
            L.bv = w.add_tensor(p + "attn_v.bias", normal(KV, 0.7), "F32")
        layers.append(L)
    out_norm = w.add_tensor("output_norm.weight", norm_w(E), "F32")
    if cfg.tied:
        out = embd
    else:
        out = w.add_tensor("output.weight", normal((V, E), 1.0 / np.sqrt(E)), wtype)
    w.write(path)
    hp = ref.HParams(n_vocab=V, dim=E, n_layer=cfg.n_layer, n_head=nh, n_head_kv=nkv, head_dim=hd,
                     n_ff=F, n_rot=hd, eps=float(np.float32(cfg.eps)),
                     rope_base=float(np.float32(cfg.rope_base)),
                     rope_scale=float(np.float32(cfg.rope_scale)),
                     rope_order=ref.ROPE_NORMAL if a == "llama" else ref.ROPE_NEOX)
    return hp, ref.Weights(tok_embd=embd, layers=layers, output_norm=out_norm, output=out)


# ---------------------------------------------------------------------------
# Comparison


def compare(got: np.ndarray, want: np.ndarray, tol: float):
    """Returns (max relative error, argmax mismatches that the tolerance cannot explain)."""
    scale = np.abs(want).max(axis=1)
    err = (np.abs(got - want).max(axis=1) / scale).max()
    bad = []
    for p in range(want.shape[0]):
        top = np.argsort(want[p])[::-1]
        if int(np.argmax(got[p])) != int(top[0]):
            # A flip is only excusable when the reference's top-2 gap is within
            # what the tolerance allows each logit to move (2 * tol * scale).
            gap = want[p, top[0]] - want[p, top[1]]
            if gap > 2 * tol * scale[p]:
                bad.append(p)
    return float(err), bad


# ---------------------------------------------------------------------------
# Emulation of a correct lower-precision implementation (self-check only)


def q8_0_roundtrip(x: np.ndarray, rng=None) -> np.ndarray:
    """Rows of x quantized to Q8_0 (per 32, d = amax/127, stored as fp16) and
    back. With rng, the divisor used for rounding is perturbed by up to 2^-11
    (fp16 precision), which makes different elements round the other way: one
    more equally valid rounding pattern, as a different correct kernel (e.g. one
    that rounds with the fp16 scale) would produce."""
    T, n = x.shape
    b = x.astype(np.float32).astype(np.float64).reshape(T, n // 32, 32)
    amax = np.abs(b).max(axis=-1)
    d = (amax / 127.0).astype(np.float32).astype(np.float64)
    dq = d if rng is None else d * (1.0 + rng.uniform(-1.0, 1.0, d.shape) * 2.0 ** -11)
    inv = np.divide(1.0, dq, out=np.zeros_like(dq), where=dq > 0)
    q = np.clip(np.rint(b * inv[..., None]), -127, 127)
    d16 = d.astype(np.float16).astype(np.float64)
    return (q * d16[..., None]).reshape(T, n)


def bf16_roundtrip(x: np.ndarray) -> np.ndarray:
    """x rounded to float32, then to the nearest BF16 (ties to even), as the
    avx512bf16 kernels encode activations (no NaNs here)."""
    u = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16
    return r.astype(np.uint32).view(np.float32).astype(np.float64)


def make_emulated_mm(quantized: bool, rng=None, bf16_acts: bool = False):
    """a @ W.T as a correct lower-precision implementation computes it: float32
    operands and products, and Q8_0-rounded activations for quantized weights
    (BF16-rounded ones with bf16_acts)."""
    def mm(a, W):
        if quantized:
            a = q8_0_roundtrip(a, rng)
        if bf16_acts:
            a = bf16_roundtrip(a)
        return (a.astype(np.float32) @ W.astype(np.float32).T).astype(np.float64)
    return mm


def ember_kernels(ember: str, model: str, isa: str) -> str:
    """The kernel table `ember info` reports for this ISA choice ("" if unknown)."""
    env = dict(os.environ)
    env.pop("EMBER_ISA", None)
    if isa != "default":
        env["EMBER_ISA"] = isa
    r = subprocess.run([ember, "--quiet", "info", "-m", model], env=env, capture_output=True, text=True, timeout=120)
    for line in r.stdout.splitlines():
        if line.startswith("kernels:"):
            return line.split()[1]
    return ""


# ---------------------------------------------------------------------------
# Independent GGUF parser (self-check of the writer)

_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


def read_gguf(path: str):
    data = open(path, "rb").read()
    off = 0

    def rd(fmt):
        nonlocal off
        v = struct.unpack_from(fmt, data, off)
        off += struct.calcsize(fmt)
        return v[0] if len(v) == 1 else v

    def rstr():
        nonlocal off
        n = rd("<Q")
        s = data[off:off + n].decode("utf-8")
        off += n
        return s

    def rval(t):
        if t == 8:
            return rstr()
        if t == 9:
            et, n = rd("<I"), rd("<Q")
            return [rval(et) for _ in range(n)]
        return rd(_SCALAR[t])

    assert data[:4] == b"GGUF"
    off = 4
    version, n_t, n_kv = rd("<I"), rd("<Q"), rd("<Q")
    assert version == 3
    kv = {}
    for _ in range(n_kv):
        k = rstr()
        kv[k] = rval(rd("<I"))
    infos = []
    for _ in range(n_t):
        name = rstr()
        nd = rd("<I")
        ne = [rd("<Q") for _ in range(nd)]
        infos.append((name, ne, rd("<I"), rd("<Q")))
    align = kv.get("general.alignment", 32)
    base = (off + align - 1) // align * align
    tensors = {}
    for name, ne, typ, toff in infos:
        assert toff % align == 0
        n = int(np.prod(ne))
        p = base + toff
        if typ == 0:
            v = np.frombuffer(data, "<f4", n, p).astype(np.float64)
        elif typ == 1:
            v = np.frombuffer(data, "<f2", n, p).astype(np.float64)
        elif typ == 30:
            v = (np.frombuffer(data, "<u2", n, p).astype(np.uint32) << 16).view("<f4").astype(np.float64)
        elif typ == 8:
            v = np.empty(n)
            for i in range(n // 32):
                d = np.frombuffer(data, "<f2", 1, p + 34 * i)[0]
                q = np.frombuffer(data, "i1", 32, p + 34 * i + 2)
                v[32 * i:32 * i + 32] = float(d) * q
        elif typ == 2:
            v = np.empty(n)
            for i in range(n // 32):
                d = float(np.frombuffer(data, "<f2", 1, p + 18 * i)[0])
                qs = np.frombuffer(data, "u1", 16, p + 18 * i + 2).astype(np.int64)
                v[32 * i:32 * i + 16] = d * ((qs & 15) - 8)
                v[32 * i + 16:32 * i + 32] = d * ((qs >> 4) - 8)
        else:
            raise ValueError(typ)
        tensors[name] = v.reshape(list(reversed(ne)))
    return kv, tensors


def check_file_matches(path: str, cfg: Config, hp: ref.HParams, w: ref.Weights):
    kv, t = read_gguf(path)
    a = cfg.arch
    assert kv["general.architecture"] == a
    assert kv[f"{a}.embedding_length"] == hp.dim and kv[f"{a}.attention.head_count_kv"] == hp.n_head_kv
    assert len(kv["tokenizer.ggml.tokens"]) == hp.n_vocab
    assert np.float32(kv[f"{a}.rope.freq_base"]) == np.float32(hp.rope_base)
    pairs = [("token_embd.weight", w.tok_embd), ("output_norm.weight", w.output_norm)]
    if not cfg.tied:
        pairs.append(("output.weight", w.output))
    else:
        assert "output.weight" not in t
    for l, L in enumerate(w.layers):
        p = f"blk.{l}."
        pairs += [(p + "attn_norm.weight", L.attn_norm), (p + "attn_q.weight", L.wq),
                  (p + "attn_k.weight", L.wk), (p + "attn_v.weight", L.wv),
                  (p + "attn_output.weight", L.wo), (p + "ffn_norm.weight", L.ffn_norm),
                  (p + "ffn_gate.weight", L.w_gate), (p + "ffn_up.weight", L.w_up),
                  (p + "ffn_down.weight", L.w_down)]
        if L.bq is not None:
            pairs += [(p + "attn_q.bias", L.bq), (p + "attn_k.bias", L.bk), (p + "attn_v.bias", L.bv)]
    assert len(pairs) == len(t), (len(pairs), len(t))
    for name, arr_ in pairs:
        assert t[name].shape == arr_.shape, (name, t[name].shape, arr_.shape)
        assert np.array_equal(t[name], arr_), name


def applicable_bugs(cfg: Config):
    bugs = ["rope_other_order", "mask_exclusive", "mask_inclusive", "q_pos_plus1", "no_rope",
            "no_ffn_gate_silu", "swap_gate_up"]
    if cfg.arch == "qwen2":
        bugs.append("no_bias")
    if cfg.n_head_kv > 1 and cfg.n_head_kv < cfg.n_head:
        bugs.append("gqa_modulo")
    if cfg.rope_scale != 1.0:
        bugs.append("no_rope_scale")
    if cfg.rope_base != 10000.0:
        bugs.append("base_10000")
    return bugs


# ---------------------------------------------------------------------------


def run_ember(ember: str, model: str, out: str, isa: str):
    env = dict(os.environ)
    env.pop("EMBER_ISA", None)
    if isa != "default":
        env["EMBER_ISA"] = isa
    if os.path.exists(out):
        os.remove(out)
    cmd = [ember, "--quiet", "logits", "-m", model, "--ids", " ".join(map(str, TOKENS)), "--out", out]
    try:
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        return None, "timed out after 300 s"
    if r.returncode != 0:
        return None, f"exit {r.returncode}: {(r.stderr or r.stdout).strip()[-400:]}"
    if not os.path.exists(out):
        return None, "no output file written"
    return np.fromfile(out, dtype="<f4"), None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ember", help="path to the ember CLI")
    ap.add_argument("--workdir", default=None, help="scratch folder for models and logits")
    ap.add_argument("--self-check", action="store_true", help="prove the comparison can fail; no ember needed")
    ap.add_argument("--types", default=",".join(WEIGHT_TYPES))
    ap.add_argument("--only", default=None, help="comma-separated configuration names")
    args = ap.parse_args()

    workdir = args.workdir or os.path.join("/tmp", f"ember-golden-{os.getpid()}")
    os.makedirs(workdir, exist_ok=True)
    types = args.types.split(",")
    configs = [c for c in CONFIGS if not args.only or c.name in args.only.split(",")]
    passed = failed = 0

    def report(ok: bool, line: str):
        nonlocal passed, failed
        passed += ok
        failed += not ok
        print(f"{line} {'PASS' if ok else 'FAIL'}", flush=True)

    if not args.self_check:
        if not args.ember or not os.path.isfile(args.ember) or not os.access(args.ember, os.X_OK):
            print(f"ERROR: ember CLI not found or not executable: {args.ember!r}", file=sys.stderr)
            print("0 passed, 1 failed")
            return 1

    for cfg in configs:
        for wt in types:
            tol = TOLERANCE[wt]
            path = os.path.join(workdir, f"{cfg.name}-{wt}.gguf")
            hp, w = build_model(cfg, wt, path)
            want = ref.forward(w, hp, TOKENS)
            T, V = want.shape
            label = f"{cfg.name:<10} {wt:<5}"
            if args.self_check:
                try:
                    check_file_matches(path, cfg, hp, w)
                    report(True, f"{label} gguf-roundtrip")
                except AssertionError as e:
                    report(False, f"{label} gguf-roundtrip ({e})")
                # A correct lower-precision implementation must pass with
                # headroom (< 0.75 tol): the plain emulation, and for quantized
                # weights 4 more with other valid rounding patterns.
                quant = wt in ("Q8_0", "Q4_0")
                rng = np.random.default_rng(1000 + cfg.seed)
                errs, n_bad = [], 0
                for r in range(5 if quant else 1):
                    emu = ref.forward(w, hp, TOKENS, mm=make_emulated_mm(quant, rng if r else None))
                    err, bad = compare(emu, want, tol)
                    errs.append(err)
                    n_bad += len(bad)
                report(max(errs) < 0.75 * tol and not n_bad,
                       f"{label} emulated-correct  err={max(errs):.3e} (x{len(errs)}) tol={tol:.1e} "
                       f"need<{0.75 * tol:.1e} argmax_bad={n_bad}")
                if wt == "BF16":  # the avx512bf16 numerics: BF16 activations, their own tolerance
                    t2 = TOLERANCE_BF16_ACTS
                    err, bad = compare(ref.forward(w, hp, TOKENS, mm=make_emulated_mm(False, bf16_acts=True)), want, t2)
                    report(err < 0.75 * t2 and not bad,
                           f"{label} emulated-bf16-acts err={err:.3e} tol={t2:.1e} need<{0.75 * t2:.1e} "
                           f"argmax_bad={len(bad)}")
                    for bug in applicable_bugs(cfg):
                        err, bad = compare(ref.forward(w, hp, TOKENS, bugs=(bug,)), want, t2)
                        report(err > 2 * t2, f"{label} bug={bug:<17} err={err:.3e} tol={t2:.1e} (bf16 acts) "
                                             f"need>{2 * t2:.1e} argmax_bad={len(bad)}")
                for bug in applicable_bugs(cfg):
                    got = ref.forward(w, hp, TOKENS, bugs=(bug,))
                    err, bad = compare(got, want, tol)
                    # The bugged model must fail by at least 2x the tolerance.
                    report(err > 2 * tol,
                           f"{label} bug={bug:<17} err={err:.3e} tol={tol:.1e} need>{2 * tol:.1e} "
                           f"argmax_bad={len(bad)}")
                continue
            # Informational only (not a gate): the distance to an emulation of
            # the intended numerics (float32 matmuls; Q8_0-rounded activations,
            # d = amax/127 computed in float32, stored as fp16, for quantized
            # weights). A correct kernel with a different but valid rounding
            # convention may differ from it by a few percent for Q8_0/Q4_0.
            emu = ref.forward(w, hp, TOKENS, mm=make_emulated_mm(wt in ("Q8_0", "Q4_0")))
            results = {}
            for isa in ISAS:
                tol = TOLERANCE[wt]
                emu_isa = emu
                if wt == "BF16" and ember_kernels(args.ember, path, isa) in ("avx512bf16", "amx"):
                    tol = TOLERANCE_BF16_ACTS
                    emu_isa = ref.forward(w, hp, TOKENS, mm=make_emulated_mm(False, bf16_acts=True))
                out = os.path.join(workdir, f"{cfg.name}-{wt}-{isa}.f32")
                got, msg = run_ember(args.ember, path, out, isa)
                line = f"{label} isa={isa:<7}"
                if got is None:
                    report(False, f"{line} ember failed: {msg} tol={tol:.1e}")
                    continue
                if got.size != T * V:
                    report(False, f"{line} wrong output size {got.size} floats, want {T}x{V}={T * V} tol={tol:.1e}")
                    continue
                got = got.reshape(T, V).astype(np.float64)
                if not np.all(np.isfinite(got)):
                    report(False, f"{line} non-finite logits tol={tol:.1e}")
                    continue
                err, bad = compare(got, want, tol)
                results[isa] = got
                ok = err <= tol and not bad
                emu_d = (np.abs(got - emu_isa).max(axis=1) / np.abs(want).max(axis=1)).max()
                extra = f" emu_diff={emu_d:.1e}"
                if isa != ISAS[0] and ISAS[0] in results:  # informational: how far the kernels differ
                    d = (np.abs(got - results[ISAS[0]]).max(axis=1) / np.abs(want).max(axis=1)).max()
                    extra += f" vs_{ISAS[0]}={d:.1e}"
                report(ok, f"{line} max_err={err:.3e} tol={tol:.1e} argmax_mismatch={len(bad)}/{T}"
                           + (f" at positions {bad}" if bad else "") + extra)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
