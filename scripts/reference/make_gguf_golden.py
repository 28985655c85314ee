"""Golden files for the GGUF reader (Tests/GGUFTests): small GGUF files written by the `gguf` package, the values
its own dequantisation gives, and a slice of the real SmolLM2-135M-Instruct file.

Writes into Tests/GGUFTests/Fixtures/:
  types_v3.gguf        metadata of every value type (each integer width at its extremes, float32/64, bool, string,
                       arrays of numbers, of strings, of arrays; the package refuses an empty array) and one tensor of each element type the
                       reader dequantises (F32, F16, BF16, Q8_0, Q4_0, Q4_1), with general.alignment = 64
  types_v2.gguf        the same bytes with the version field set to 2 (v2 and v3 differ only in that v3 may be
                       big-endian, which this project does not read) and the default alignment of 32
  types_expected.safetensors
                       each tensor of types_v3 dequantised by gguf.quants.dequantize, under the same name, in the
                       row-major shape (the reverse of GGUF's dimension order)
  kquants.gguf, kquants_expected.safetensors
                       Q4_K and Q6_K tensors of random block bytes (the package dequantises the K-quants but does not
                       quantise them; each block's f16 scales are set to finite values) and their dequantised values
  smollm2_slice.safetensors
                       only when .assets/SmolLM2-135M-Instruct holds the real file: rows of token_embd.weight (Q8_0)
                       and of blk.0.ffn_down.weight and blk.29.attn_q.weight (Q4_1), dequantised by the gguf package,
                       with the row numbers (I64) under `<name>.rows`

The tensors' float values are fixed by a seeded numpy generator and include exact zeros, a block of one repeated
value (a quantiser's d = 0 case) and values of both signs; output is byte-for-byte reproducible.

    .venv-ref/bin/python scripts/reference/make_gguf_golden.py
"""
import os
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q
from safetensors.numpy import save_file

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "Tests", "GGUFTests", "Fixtures")
SMOLLM2 = os.path.join(ROOT, ".assets", "SmolLM2-135M-Instruct", "SmolLM2-135M-Instruct.Q4_1.gguf")


def tensors():
    """name -> (float32 values in row-major shape, GGML type)."""
    rng = np.random.default_rng(19)
    out = {}
    out["f32"] = (rng.normal(size=(3, 5)).astype(np.float32), Q.F32)
    out["f16"] = (rng.normal(size=(2, 8)).astype(np.float32), Q.F16)
    out["bf16"] = (rng.normal(size=(4, 4)).astype(np.float32), Q.BF16)
    for name, qtype in (("q8_0", Q.Q8_0), ("q4_0", Q.Q4_0), ("q4_1", Q.Q4_1)):
        x = rng.normal(scale=0.5, size=(3, 64)).astype(np.float32)
        x[0, :5] = 0
        x[2, 32:] = 0.25           # a constant block
        out[name] = (x, qtype)
    out["q8_0.3d"] = (rng.normal(size=(2, 3, 32)).astype(np.float32), Q.Q8_0)
    return out


def write_types(path, alignment):
    w = gguf.GGUFWriter(path, arch="test")
    if alignment is not None:
        w.add_custom_alignment(alignment)
    w.add_uint8("t.uint8", 255)
    w.add_int8("t.int8", -128)
    w.add_uint16("t.uint16", 65535)
    w.add_int16("t.int16", -32768)
    w.add_uint32("t.uint32", 4294967295)
    w.add_int32("t.int32", -2147483648)
    w.add_uint64("t.uint64", 18446744073709551615)
    w.add_int64("t.int64", -9223372036854775808)
    w.add_float32("t.float32", 0.1)
    w.add_float64("t.float64", -2.5e-300)
    w.add_bool("t.true", True)
    w.add_bool("t.false", False)
    w.add_string("t.string", "héllo, 世界 😀")
    w.add_string("t.empty", "")
    w.add_key_value("t.array.int32", [1, -2, 3], gguf.GGUFValueType.ARRAY, sub_type=gguf.GGUFValueType.INT32)
    w.add_key_value("t.array.float32", [0.5, -1.25], gguf.GGUFValueType.ARRAY, sub_type=gguf.GGUFValueType.FLOAT32)
    w.add_array("t.array.string", ["a", "", "Ġthe"])
    w.add_key_value("t.array.bool", [True, False], gguf.GGUFValueType.ARRAY, sub_type=gguf.GGUFValueType.BOOL)
    w.add_array("t.array.nested", [["x", "y"], ["z"]])
    expected = {}
    for name, (x, qtype) in tensors().items():
        if qtype == Q.F32:
            w.add_tensor(name, x)
        elif qtype == Q.F16:
            w.add_tensor(name, x.astype(np.float16))
        else:
            w.add_tensor(name, gguf.quants.quantize(x, qtype), raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    r = gguf.GGUFReader(path)
    for t in r.tensors:
        values = gguf.quants.dequantize(t.data, t.tensor_type)
        expected[t.name] = np.ascontiguousarray(values.reshape(tuple(int(d) for d in reversed(t.shape))),
                                                dtype=np.float32)
    return expected


def write_kquants(path):
    """Q4_K [3, 256] and Q6_K [2, 512] of random bytes with finite f16 scales; returns the dequantised values."""
    rng = np.random.default_rng(6)
    w = gguf.GGUFWriter(path, arch="test")
    for name, qtype, rows, cols, block_bytes, scale_offsets in (("q4_k", Q.Q4_K, 3, 256, 144, (0, 2)),
                                                                 ("q6_k", Q.Q6_K, 2, 512, 210, (208,))):
        blocks = rng.integers(0, 256, size=(rows * cols // 256, block_bytes), dtype=np.uint8)
        for k, offset in enumerate(scale_offsets):
            scales = rng.uniform(0.001, 0.05, size=blocks.shape[0]).astype(np.float16) * (1 if k == 0 else 2)
            blocks[:, offset:offset + 2] = scales.view(np.uint8).reshape(-1, 2)
        w.add_tensor(name, blocks.reshape(rows, -1), raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    r = gguf.GGUFReader(path)
    return {t.name: np.ascontiguousarray(gguf.quants.dequantize(t.data, t.tensor_type)
                                         .reshape(tuple(int(d) for d in reversed(t.shape))), dtype=np.float32)
            for t in r.tensors}


def main():
    os.makedirs(OUT, exist_ok=True)
    kquants = write_kquants(os.path.join(OUT, "kquants.gguf"))
    assert all(np.isfinite(v).all() for v in kquants.values())
    save_file(kquants, os.path.join(OUT, "kquants_expected.safetensors"), metadata={"generator": "make_gguf_golden.py"})
    v3 = os.path.join(OUT, "types_v3.gguf")
    expected = write_types(v3, 64)
    save_file(expected, os.path.join(OUT, "types_expected.safetensors"), metadata={"generator": "make_gguf_golden.py"})
    v2 = os.path.join(OUT, "types_v2.gguf")
    write_types(v2, None)
    with open(v2, "r+b") as f:
        f.seek(4)
        f.write((2).to_bytes(4, "little"))
    if os.path.exists(SMOLLM2):
        r = gguf.GGUFReader(SMOLLM2)
        by_name = {t.name: t for t in r.tensors}
        golden = {}
        for name, rows in (("token_embd.weight", [0, 1, 2, 1000, 49151]),
                           ("blk.0.ffn_down.weight", [0, 1, 575]),
                           ("blk.29.attn_q.weight", [7, 300])):
            t = by_name[name]
            full = gguf.quants.dequantize(t.data, t.tensor_type)
            golden[name] = np.ascontiguousarray(full[rows], dtype=np.float32)
            golden[name + ".rows"] = np.array(rows, dtype=np.int64)
        save_file(golden, os.path.join(OUT, "smollm2_slice.safetensors"), metadata={"generator": "make_gguf_golden.py"})
    else:
        print(f"{SMOLLM2} absent: smollm2_slice.safetensors not written (run `swift run cofi fetch`)", file=sys.stderr)


if __name__ == "__main__":
    main()
