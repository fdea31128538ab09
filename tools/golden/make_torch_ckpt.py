#!/usr/bin/python3
"""Small PyTorch checkpoints (torch.save, zip format) for the Java reader io.diffquant.engine.io.TorchCheckpoint.

Run:  /usr/bin/python3 tools/golden/make_torch_ckpt.py      (PyTorch 1.13 CPU, about a second)

Writes engine/src/test/resources/torch/
  state_dict.pt            an OrderedDict state_dict: float32, float16, bfloat16, float64, int64, int32, bool,
                           a 0-dim tensor, a transposed (non-contiguous) tensor, a slice with a storage offset,
                           two views sharing one storage, an expanded (stride 0) tensor, a permuted 4-d tensor
  state_dict_expected.safetensors   the same names, each as a contiguous float32 copy (t.float())
  training.pt              a DiT-style training checkpoint {"model", "ema", "opt", "args", "steps"}: "ema" holds
                           the golden dit-small weights (golden/dit-small/model.safetensors), "model" a small other
                           dict, "opt" an AdamW-like state_dict, "args" an argparse.Namespace
  vae_small.bin            the golden vae-small weights (golden/vae-small) as a diffusers-style .bin, the mid-block
                           attention under its deprecated names (query, key, value, proj_attn), as old hub files have
  hostile.pt               a pickle whose object reduces to os.system("echo pwned") (GLOBAL posix.system + REDUCE)
  foreign_class.pt         a state_dict next to an instance of a user class (GLOBAL __main__.Thing + NEWOBJ/BUILD)
"""
import argparse
import collections
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import torch_models as tm  # noqa: E402

REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
OUT = os.path.join(REPO, "engine", "src", "test", "resources", "torch")
GOLDEN_DIT = os.path.join(REPO, "engine", "src", "test", "resources", "golden", "dit-small", "model.safetensors")
GOLDEN_VAE = os.path.join(REPO, "engine", "src", "test", "resources", "golden", "vae-small",
                          "diffusion_pytorch_model.safetensors")
LEGACY = {".to_q.": ".query.", ".to_k.": ".key.", ".to_v.": ".value.", ".to_out.0.": ".proj_attn."}


def save(obj, name):
    os.makedirs(OUT, exist_ok=True)
    tmp = os.path.join(OUT, name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, os.path.join(OUT, name))


class Evil:
    def __reduce__(self):
        return os.system, ("echo pwned",)


class Thing:
    def __init__(self):
        self.x = 1


def main():
    g = torch.Generator().manual_seed(7001)
    big = torch.randn(4, 6, generator=g)
    sd = collections.OrderedDict()
    sd["f32"] = torch.randn(3, 4, generator=g)
    sd["scalar"] = torch.tensor(2.5)
    sd["f16"] = torch.randn(2, 3, generator=g).half()
    sd["bf16"] = torch.randn(5, generator=g).bfloat16()
    sd["f64"] = torch.randn(2, 2, generator=g, dtype=torch.float64)
    sd["i64"] = torch.arange(-3, 3, dtype=torch.int64).reshape(2, 3)
    sd["i32"] = torch.tensor([7, -8, 9], dtype=torch.int32)
    sd["bool"] = torch.tensor([True, False, True])
    sd["transposed"] = torch.randn(4, 3, generator=g).t()
    sd["sliced"] = big[1:3, 2:5]
    sd["row"] = big[2]
    sd["expanded"] = torch.randn(3, 1, generator=g).expand(3, 4)
    sd["permuted"] = torch.randn(2, 3, 4, 5, generator=g).permute(0, 2, 3, 1)
    sd["f16_transposed"] = torch.randn(3, 2, generator=g).half().t()
    assert not sd["transposed"].is_contiguous() and not sd["sliced"].is_contiguous()
    assert sd["row"].storage_offset() == 12 and sd["expanded"].stride() == (1, 0)
    save(sd, "state_dict.pt")
    tm.save_safetensors(os.path.join(OUT, "state_dict_expected.safetensors"),
                        {k: v.float().contiguous() for k, v in sd.items()},
                        {"generator": "tools/golden/make_torch_ckpt.py"})

    ema, _ = tm.load_safetensors(GOLDEN_DIT)
    ema = collections.OrderedDict((k, ema[k]) for k in sorted(ema))
    model = collections.OrderedDict(w=torch.randn(2, 2, generator=g), b=torch.zeros(2))
    opt = {"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.randn(2, 2, generator=g),
                         "exp_avg_sq": torch.rand(2, 2, generator=g)}},
           "param_groups": [{"lr": 1e-4, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0, "amsgrad": False,
                             "foreach": None, "maximize": False, "params": [0, 1]}]}
    args = argparse.Namespace(model="DiT-S/2", image_size=256, num_classes=1000, global_batch_size=256)
    save({"model": model, "ema": ema, "opt": opt, "args": args, "steps": 1234}, "training.pt")

    vae, _ = tm.load_safetensors(GOLDEN_VAE)
    legacy = collections.OrderedDict()
    for k in sorted(vae):
        n = k
        if ".attentions." in k:
            for new, old in LEGACY.items():
                n = n.replace(new, old)
        legacy[n] = vae[k]
    assert any(".query." in k for k in legacy)
    save(legacy, "vae_small.bin")

    save({"weight": torch.ones(2), "payload": Evil()}, "hostile.pt")
    save({"weight": torch.ones(2), "thing": Thing()}, "foreign_class.pt")
    print("wrote", sorted(os.listdir(OUT)))


if __name__ == "__main__":
    main()
