#!/usr/bin/python3
"""Hostile and broken model files through the `ember` CLI: each gives exit
status 1 and a distinct, readable one-line message — never a crash.

Usage: cli_errors.py EMBER_CLI GOOD_MODEL WORKDIR
"""
import os
import subprocess
import sys


def main():
    ember, good, work = sys.argv[1], sys.argv[2], sys.argv[3]
    os.makedirs(work, exist_ok=True)
    data = open(good, "rb").read()

    def write(name, content):
        path = os.path.join(work, name)
        with open(path, "wb") as f:
            f.write(content)
        return path

    def renamed(old, new):
        assert len(old) == len(new) and data.count(old) >= 1, old
        return data.replace(old, new, 1)

    cases = [
        ("missing file", os.path.join(work, "does-not-exist.gguf"), "cannot open"),
        ("wrong magic", write("bad-magic.gguf", b"XXXX" + data[4:]), "bad magic"),
        ("truncated header", write("truncated-header.gguf", data[:20]), "truncated"),
        ("data past end of file", write("truncated-data.gguf", data[: len(data) // 2]), "past the end of the file"),
        ("unknown architecture", write("unknown-arch.gguf", renamed(b"\x05\x00\x00\x00\x00\x00\x00\x00llama", b"\x05\x00\x00\x00\x00\x00\x00\x00lamma")), "unknown architecture"),
        ("missing tensor", write("missing-tensor.gguf", renamed(b"blk.1.attn_q.weight", b"blk.1.attn_x.weight")), "missing tensor 'blk.1.attn_q.weight'"),
        ("absurd dimension", write("absurd-dim.gguf", absurd_dimension(data)), "absurd dimension"),
    ]
    passed = failed = 0
    messages = set()
    for what, path, expect in cases:
        r = subprocess.run([ember, "info", "-m", path], capture_output=True, text=True, timeout=60)
        err = r.stderr.strip()
        ok = r.returncode == 1 and expect in err and err.startswith("ember: ") and err not in messages
        messages.add(err)
        print(f"{'PASS' if ok else 'FAIL'}: {what}: exit {r.returncode}: {err}")
        passed += ok
        failed += not ok
    # `ember quantize`: a bad TYPE, a quantized source, the same file twice
    q4 = os.path.join(work, "tiny-q4_0.gguf")
    subprocess.run([ember, "--quiet", "quantize", good, q4, "q4_0"], check=True, timeout=120)
    quantize_cases = [
        ("unknown quantization type", [good, os.path.join(work, "x.gguf"), "q4_k_l"], "unknown quantization type 'q4_k_l'"),
        ("quantized source", [q4, os.path.join(work, "x.gguf"), "q4_k_m"], "is already Q4_0"),
        ("output is the input", [good, good, "q8_0"], "different file"),
    ]
    for what, args, expect in quantize_cases:
        r = subprocess.run([ember, "quantize"] + args, capture_output=True, text=True, timeout=120)
        err = r.stderr.strip()
        ok = r.returncode == 1 and expect in err and err.startswith("ember: ") and "\n" not in err
        print(f"{'PASS' if ok else 'FAIL'}: quantize: {what}: exit {r.returncode}: {err}")
        passed += ok
        failed += not ok
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


def absurd_dimension(data):
    """The first tensor's first dimension set to 2^50 (found by walking the header)."""
    import struct
    off = 24
    n_tensors, n_kv = struct.unpack_from("<QQ", data, 8)

    def skip_value(off, t):
        sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
        if t == 8:
            (n,) = struct.unpack_from("<Q", data, off)
            return off + 8 + n
        if t == 9:
            et, count = struct.unpack_from("<IQ", data, off)
            off += 12
            for _ in range(count):
                off = skip_value(off, et)
            return off
        return off + sizes[t]

    for _ in range(n_kv):
        (klen,) = struct.unpack_from("<Q", data, off)
        off += 8 + klen
        (t,) = struct.unpack_from("<I", data, off)
        off = skip_value(off + 4, t)
    (nlen,) = struct.unpack_from("<Q", data, off)
    dim_at = off + 8 + nlen + 4
    out = bytearray(data)
    struct.pack_into("<Q", out, dim_at, 1 << 50)
    return bytes(out)


if __name__ == "__main__":
    sys.exit(main())
