#!/usr/bin/python3
"""Writes the safetensors fixtures that SafetensorsReaderTest reads (an implementation independent of the Java one).

Run from the repository root with Debian's python (numpy + torch 1.13):
    /usr/bin/python3 tools/golden/make_io_fixture.py
It writes
    engine/src/test/resources/io/python_written.safetensors   HF layout: header padded with spaces to 8 bytes,
                                                               header keys sorted (so header order != data order)
    engine/src/test/resources/io/python_unaligned.safetensors same tensors, header length odd, so the data of
                                                               every tensor starts at an odd file offset
The writer below is handwritten (struct + json + numpy) because the safetensors package is not installed.
F16 and BF16 reference conversions are done by torch (round to nearest even, c10/util/Half.h and BFloat16.h).
"""
import json
import os
import struct

import numpy as np
import torch

OUT = os.path.join("engine", "src", "test", "resources", "io")

DTYPE_OF = {np.dtype("<f8"): "F64", np.dtype("<f4"): "F32", np.dtype("<f2"): "F16", np.dtype("<i8"): "I64",
            np.dtype("<i4"): "I32", np.dtype("<i2"): "I16", np.dtype("i1"): "I8", np.dtype("u1"): "U8",
            np.dtype("bool"): "BOOL"}


def write_safetensors(path, tensors, metadata, align):
    """tensors: list of (name, dtype string, shape, little-endian bytes); data written in list order."""
    header = {}
    if metadata:
        header["__metadata__"] = metadata
    offset = 0
    for name, dtype, shape, data in tensors:
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    if align:
        text += b" " * ((8 - len(text) % 8) % 8)
    elif len(text) % 2 == 0:
        text += b" "  # odd header length: 8 + N is odd, every tensor starts unaligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for _, _, _, data in tensors:
            f.write(data)


def np_entry(name, arr):
    arr = np.asarray(arr, order="C")  # (ascontiguousarray would turn 0-dim into 1-dim)
    assert arr.dtype.byteorder in ("<", "=", "|") and struct.pack("=H", 1) == b"\x01\x00", "little-endian only"
    return (name, DTYPE_OF[arr.dtype], arr.shape, arr.tobytes())


def torch_bits_entry(name, dtype_name, t):
    bits = t.contiguous().view(torch.int16).numpy().astype("<i2")
    return (name, dtype_name, tuple(t.shape), bits.tobytes())


def main():
    rng = np.random.default_rng(20240611)
    tensors = []
    # F32 with special values (NaN stored with a payload to check bits survive)
    f32 = np.array([[1.5, -2.25, 0.0], [-0.0, 3.4028235e38, 1e-45]], dtype="<f4")
    tensors.append(np_entry("f32", f32))
    special = np.array([np.inf, -np.inf, 0.0], dtype="<f4")
    special.view("<u4")[2] = 0x7FC00123
    tensors.append(np_entry("f32_special", special))
    # values exactly representable in F16 / BF16
    tensors.append(np_entry("f16", np.array([1.0, -2.0, 0.5, 65504.0, 6.103515625e-05, 5.960464477539063e-08, -0.0,
                                             np.inf], dtype="<f2")))
    tensors.append(torch_bits_entry("bf16", "BF16",
                                    torch.tensor([1.0, -2.0, 0.15625, 3.3895313892515355e38, 9.183549615799121e-41,
                                                  -0.0, -np.inf], dtype=torch.bfloat16)))
    # torch's conversions of random and tricky float32 values, to compare with HalfFloats
    tricky = [1 + 2 ** -11, 1 + 3 * 2 ** -11, 2 ** -25, 3 * 2 ** -25, 2 ** -26, 65519.99, 65520.0, 65536.0,
              -65520.0, 2 ** -24, 2 ** -14 - 2 ** -25, 1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -8 + 2 ** -20,
              3.3961e38, 1e-40, -1e-45, 0.1, -0.1, 1 / 3]
    bits = rng.integers(0, 2 ** 32, size=600, dtype=np.uint64).astype(np.uint32)
    bits = bits[(bits & 0x7F800000) != 0x7F800000][:500]  # no NaN/inf among the random bit patterns
    in_range = (rng.standard_normal(480) * np.exp2(rng.integers(-26, 16, size=480))).astype("<f4")
    src = np.concatenate([np.array(tricky, dtype="<f4"), bits.view("<f4"), in_range]).astype("<f4")
    tensors.append(np_entry("conv_src", src))
    tensors.append(torch_bits_entry("conv_f16", "F16", torch.from_numpy(src.copy()).to(torch.float16)))
    tensors.append(torch_bits_entry("conv_bf16", "BF16", torch.from_numpy(src.copy()).to(torch.bfloat16)))
    # integers
    tensors.append(np_entry("i8", np.array([-128, -1, 0, 1, 127], dtype="i1")))
    tensors.append(np_entry("u8", np.array([[0, 1], [128, 255]], dtype="u1")))
    tensors.append(np_entry("i16", np.array([-32768, -1, 32767], dtype="<i2")))
    tensors.append(np_entry("i32", np.array([-2147483648, -1, 0, 2147483647], dtype="<i4")))
    tensors.append(np_entry("i64", np.array([-9223372036854775808, -1, 0, 9223372036854775807, 4294967296],
                                            dtype="<i8")))
    tensors.append(np_entry("t", np.array([0, 500, 999], dtype="<i8")))
    tensors.append(np_entry("f64", np.array([0.1, -1e300, 2.5], dtype="<f8")))
    tensors.append(np_entry("bool", np.array([True, False, True], dtype="bool")))
    tensors.append(np_entry("scalar", np.array(42.0, dtype="<f4")))
    tensors.append(np_entry("empty", np.zeros((0, 3), dtype="<f4")))
    tensors.append(np_entry("arange", np.arange(24, dtype="<f4").reshape(2, 3, 4) * 0.5 - 3))
    # torchvision's ToTensor() + Normalize(0.5, 0.5) of every pixel value, in float32 (IdxReader.toMinusOneOne)
    scale = (torch.arange(256, dtype=torch.uint8).to(torch.float32).div(255) - 0.5) / 0.5
    tensors.append(np_entry("pixel_minus_one_one", scale.numpy().astype("<f4")))
    metadata = {"format": "pt", "made_by": "tools/golden/make_io_fixture.py"}
    os.makedirs(OUT, exist_ok=True)
    write_safetensors(os.path.join(OUT, "python_written.safetensors"), tensors, metadata, align=True)
    write_safetensors(os.path.join(OUT, "python_unaligned.safetensors"), tensors, metadata, align=False)


if __name__ == "__main__":
    main()
