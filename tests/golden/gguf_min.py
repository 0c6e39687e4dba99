"""A minimal GGUF v3 writer plus the block encodings the golden test needs.

Written from the published GGUF format description only:

    header   : "GGUF" | u32 version=3 | u64 n_tensors | u64 n_kv
    kv       : string key | u32 value_type | value
    string   : u64 byte length | UTF-8 bytes (no terminator)
    array    : u32 element_type | u64 count | elements
    tensor   : string name | u32 n_dims | u64 ne[n_dims] | u32 ggml_type | u64 offset
    then padding to `general.alignment` (default 32) and the data section;
    each tensor's offset is relative to the data section and aligned too.

ne[0] is the fastest-varying dimension (the row length); a 2-D weight with
ne = [in, out] is `out` rows of `in` values, i.e. PyTorch's [out, in] layout.

Every encoder returns the bytes to store *and* the float64 values those bytes
decode to, so the reference computes with exactly what is in the file.
"""
from __future__ import annotations

import struct

import numpy as np

# GGUF metadata value types
T_UINT8, T_INT8, T_UINT16, T_INT16, T_UINT32, T_INT32, T_FLOAT32, T_BOOL, T_STRING, T_ARRAY, \
    T_UINT64, T_INT64, T_FLOAT64 = range(13)

_SCALAR_FMT = {
    T_UINT8: "<B", T_INT8: "<b", T_UINT16: "<H", T_INT16: "<h", T_UINT32: "<I", T_INT32: "<i",
    T_FLOAT32: "<f", T_BOOL: "<?", T_UINT64: "<Q", T_INT64: "<q", T_FLOAT64: "<d",
}

# ggml tensor types
GGML_F32, GGML_F16, GGML_Q4_0, GGML_Q8_0, GGML_BF16 = 0, 1, 2, 8, 30
TYPE_IDS = {"F32": GGML_F32, "F16": GGML_F16, "Q4_0": GGML_Q4_0, "Q8_0": GGML_Q8_0, "BF16": GGML_BF16}

ALIGN = 32
QK = 32  # block size of Q8_0 / Q4_0


def _str(s: str) -> bytes:
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


class Val:
    """A typed metadata value: Val(T_UINT32, 5), Val(T_STRING, "x"),
    Val(T_ARRAY, [...], elem=T_FLOAT32)."""

    def __init__(self, typ: int, value, elem: int | None = None):
        self.typ, self.value, self.elem = typ, value, elem

    def encode(self) -> bytes:
        out = struct.pack("<I", self.typ)
        if self.typ == T_ARRAY:
            out += struct.pack("<IQ", self.elem, len(self.value))
            if self.elem == T_STRING:
                out += b"".join(_str(v) for v in self.value)
            else:
                out += np.asarray(self.value, dtype=np.dtype(_SCALAR_FMT[self.elem])).tobytes()
            return out
        if self.typ == T_STRING:
            return out + _str(self.value)
        return out + struct.pack(_SCALAR_FMT[self.typ], self.value)


def u32(v): return Val(T_UINT32, int(v))
def i32(v): return Val(T_INT32, int(v))
def f32(v): return Val(T_FLOAT32, float(v))
def string(v): return Val(T_STRING, str(v))
def arr(elem, values): return Val(T_ARRAY, list(values), elem=elem)


# ---- encodings: x is a float64 array [rows, row_len]; returns (bytes, decoded float64) ----

def enc_f32(x):
    a = np.ascontiguousarray(x, dtype="<f4")
    return a.tobytes(), a.astype(np.float64)


def enc_f16(x):
    a = np.ascontiguousarray(x, dtype="<f2")
    return a.tobytes(), a.astype(np.float64)


def enc_bf16(x):
    """bfloat16 = top 16 bits of the float32; we round to nearest even."""
    bits = np.ascontiguousarray(x, dtype="<f4").view("<u4").astype(np.uint64)
    r = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype("<u2")
    dec = (r.astype(np.uint32) << 16).view("<f4").astype(np.float64)
    return r.tobytes(), dec


def enc_q8_0(x):
    """Q8_0 block: fp16 d, 32 x int8 q; value = d * q. d = amax/127."""
    rows, n = x.shape
    assert n % QK == 0
    b = x.reshape(rows, n // QK, QK)
    amax = np.abs(b).max(axis=-1)
    d16 = (amax / 127.0).astype("<f2")
    d = d16.astype(np.float64)
    inv = np.divide(1.0, d, out=np.zeros_like(d), where=d > 0)
    q = np.clip(np.rint(b * inv[..., None]), -127, 127).astype(np.int8)
    blocks = np.zeros((rows, n // QK), dtype=[("d", "<f2"), ("q", "i1", (QK,))])
    blocks["d"] = d16
    blocks["q"] = q
    assert blocks.dtype.itemsize == 34
    dec = (d[..., None] * q.astype(np.float64)).reshape(rows, n)
    return blocks.tobytes(), dec


def enc_q4_0(x):
    """Q4_0 block: fp16 d, 16 bytes; byte j = element j (low nibble) | element
    j+16 (high nibble); value = d * (nibble - 8). d = (value of max |x|) / -8."""
    rows, n = x.shape
    assert n % QK == 0
    b = x.reshape(rows, n // QK, QK)
    idx = np.abs(b).argmax(axis=-1)
    mx = np.take_along_axis(b, idx[..., None], axis=-1)[..., 0]
    d16 = (mx / -8.0).astype("<f2")
    d = d16.astype(np.float64)
    inv = np.divide(1.0, d, out=np.zeros_like(d), where=d != 0)
    q = np.clip(np.rint(b * inv[..., None]) + 8, 0, 15).astype(np.uint8)
    packed = (q[..., :16] | (q[..., 16:] << 4)).astype(np.uint8)
    blocks = np.zeros((rows, n // QK), dtype=[("d", "<f2"), ("qs", "u1", (16,))])
    blocks["d"] = d16
    blocks["qs"] = packed
    assert blocks.dtype.itemsize == 18
    # Decode from the packed bytes (not from q) so the layout itself is what we test against.
    lo = (packed & 0x0F).astype(np.float64) - 8
    hi = (packed >> 4).astype(np.float64) - 8
    dec = (d[..., None] * np.concatenate([lo, hi], axis=-1)).reshape(rows, n)
    return blocks.tobytes(), dec


ENCODERS = {"F32": enc_f32, "F16": enc_f16, "BF16": enc_bf16, "Q8_0": enc_q8_0, "Q4_0": enc_q4_0}


class Writer:
    def __init__(self):
        self.kv: list[tuple[str, Val]] = []
        self.tensors: list[tuple[str, tuple, int, bytes]] = []

    def add_kv(self, key: str, val: Val):
        self.kv.append((key, val))

    def add_tensor(self, name: str, x: np.ndarray, typ: str) -> np.ndarray:
        """x in PyTorch layout (1-D, or [out, in]); returns the decoded float64 values."""
        x = np.asarray(x, dtype=np.float64)
        x2 = x.reshape(1, -1) if x.ndim == 1 else x
        data, dec = ENCODERS[typ](x2)
        ne = tuple(reversed(x.shape))  # GGUF order: ne0 = row length
        self.tensors.append((name, ne, TYPE_IDS[typ], data))
        return dec.reshape(x.shape)

    def write(self, path: str):
        out = bytearray()
        out += b"GGUF" + struct.pack("<IQQ", 3, len(self.tensors), len(self.kv))
        for k, v in self.kv:
            out += _str(k) + v.encode()
        offset = 0
        offsets = []
        for name, ne, typ, data in self.tensors:
            offset = (offset + ALIGN - 1) // ALIGN * ALIGN
            offsets.append(offset)
            out += _str(name) + struct.pack("<I", len(ne)) + struct.pack(f"<{len(ne)}Q", *ne)
            out += struct.pack("<IQ", typ, offset)
            offset += len(data)
        out += b"\0" * (-len(out) % ALIGN)
        base = len(out)
        for (name, ne, typ, data), off in zip(self.tensors, offsets):
            out += b"\0" * (base + off - len(out))
            out += data
        with open(path, "wb") as f:
            f.write(bytes(out))
