"""Loads a DiffQuant quantized checkpoint (docs/export-format.md) with numpy only.

Usage: python3 load_quantized.py MODEL.safetensors   (prints every tensor's name, shape and dtype)
The function is the ten-line loader of docs/export-format.md; tests check that both copies are identical.
"""
import json, struct, numpy as np

def load_diffquant(path):
    raw = open(path, 'rb').read(); n = struct.unpack('<Q', raw[:8])[0]; header = json.loads(raw[8:8 + n]); meta = header.pop('__metadata__', {})
    dt = {'F32': np.float32, 'F64': np.float64, 'U8': np.uint8, 'I32': np.int32, 'I64': np.int64}
    t = {k: np.frombuffer(raw[8 + n + v['data_offsets'][0]:8 + n + v['data_offsets'][1]], dt[v['dtype']]).reshape(v['shape']) for k, v in header.items()}
    sd = {k: v for k, v in t.items() if ':' not in k}
    for name, q in json.loads(meta.get('quantized', '{}')).items():
        codes = np.unpackbits(t[name + ':codes'], bitorder='little')[:q['numel'] * q['bits']].reshape(-1, q['bits']) @ (1 << np.arange(q['bits']))
        grow = lambda a: np.broadcast_to(np.repeat(a.astype(np.float64), q['group_size'], axis=1)[:, :q['cols']], (q['rows'], q['cols']))
        scale = grow(t[name + ':scales']) * float(t[name + ':tensor_scale'][0] if name + ':tensor_scale' in t else 1.0)
        zero = grow(t[name + ':zeros']) if name + ':zeros' in t else 0.0
        sd[name] = ((t[name + ':lut'][codes.reshape(q['rows'], q['cols'])] - zero) * scale / q['div']).astype(np.float32).reshape(q['shape'])
    return sd, meta


if __name__ == '__main__':
    import sys
    sd, meta = load_diffquant(sys.argv[1])
    for k, v in sd.items():
        print(k, list(v.shape), v.dtype)
