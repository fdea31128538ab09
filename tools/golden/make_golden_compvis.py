#!/usr/bin/python3
"""Golden files for the CompVis / DDIM layout of the DDPM UNet (tools/golden/torch_compvis.py).

Run:  /usr/bin/python3 tools/golden/make_golden_compvis.py      (PyTorch 1.13 CPU, a few seconds)

Writes engine/src/test/resources/golden/compvis-small/
  config.json      the CompVis model arguments (ch, out_ch, ch_mult, num_res_blocks, attn_resolutions,
                   in_channels, resolution) plus "groups" (GroupNorm groups; the reference hard-codes 32)
  model.pt         torch.save(model.state_dict()) with the CompVis names, as the ddim / Q-Diffusion
                   checkpoints are stored (PyTorch zip format)
  io.safetensors   x [3,3,16,16], t [3] = 0, 500, 999, out = model(x, t)
and golden/keys/ddpm-cifar10-compvis.json: the state_dict names and shapes of the full-size CIFAR-10 model
(ch 128, ch_mult 1,2,2,2, 2 res blocks, attention at 16x16, 32x32 input) in CompVis naming.
"""
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_golden as mg  # noqa: E402
import torch_compvis as tc  # noqa: E402

OUT = os.path.join(mg.OUT, "compvis-small")
GENERATOR = "tools/golden/make_golden_compvis.py"

SMALL = {"ch": 8, "out_ch": 3, "ch_mult": [1, 2, 2], "num_res_blocks": 2, "attn_resolutions": [8],
         "in_channels": 3, "resolution": 16, "groups": 4}
CIFAR10 = {"ch": 128, "out_ch": 3, "ch_mult": [1, 2, 2, 2], "num_res_blocks": 2, "attn_resolutions": [16],
           "in_channels": 3, "resolution": 32, "groups": 32}


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    full = tc.CompVisUNet(CIFAR10)
    keys = {k: list(v.shape) for k, v in full.state_dict().items()}
    n_params = sum(v.numel() for v in full.state_dict().values())
    assert n_params == 35746307, n_params       # same count as google/ddpm-cifar10-32 (diffusers layout)
    mg.write_json(os.path.join(mg.OUT, "keys", "ddpm-cifar10-compvis.json"),
                  {"model": "DDPM CIFAR-10 UNet, CompVis/DDIM names (ermongroup/ddim models/diffusion.py)",
                   "config": CIFAR10, "num_tensors": len(keys), "num_parameters": n_params, "keys": keys})

    model = tc.CompVisUNet(SMALL).eval()
    mg.randomize_(model, seed=5001)
    os.makedirs(OUT, exist_ok=True)
    mg.write_json(os.path.join(OUT, "config.json"), SMALL)
    tmp = os.path.join(OUT, "model.pt.tmp")
    torch.save(model.state_dict(), tmp)
    os.replace(tmp, os.path.join(OUT, "model.pt"))
    g = torch.Generator().manual_seed(6001)
    with torch.no_grad():
        x = torch.randn(3, 3, 16, 16, generator=g)
        t = torch.tensor([0, 500, 999], dtype=torch.int64)
        out = model(x, t)
    mg.write_safetensors(os.path.join(OUT, "io.safetensors"), {"x": x, "t": t, "out": out},
                         {"generator": GENERATOR, "torch": torch.__version__})
    print(f"compvis-small: {len(model.state_dict())} tensors, out max|.| {out.abs().max():.3f}; "
          f"cifar10 (CompVis names): {len(keys)} tensors, {n_params} parameters")


if __name__ == "__main__":
    main()
