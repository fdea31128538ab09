#!/usr/bin/python3
"""Optional cross-check: runs the ORIGINAL reference code on the committed golden files.

    /usr/bin/python3 tools/golden/verify_against_reference.py --dit-repo /path/to/facebookresearch/DiT \\
        --diffusers-src /path/to/huggingface/diffusers/src

Nothing of the reference code is copied into this repository: the files are loaded from your own checkouts.
The imports they need but this machine lacks (timm, huggingface_hub, ...) are replaced as follows:
  * DiT models.py: `timm.models.vision_transformer` is provided by torch_models.PatchEmbed/Attention/Mlp;
    everything else (DiTBlock, adaLN-Zero, pos_embed, unpatchify, forward_with_cfg) is DiT's own code.
  * DiT diffusion/: used as is (numpy + torch only).
  * diffusers: the real unets/unet_2d.py, unets/unet_2d_blocks.py, resnet.py, attention_processor.py,
    embeddings.py, downsampling.py, upsampling.py and activations.py are executed; every other diffusers module
    is a permissive stub, and ModelMixin/ConfigMixin/register_to_config are minimal stand-ins.
Checks: identical outputs (max abs diff printed, expected 0.0 on the same machine), identical DDIM
trajectories, identical full-size state_dict names/shapes/order (keys/*.json).
"""
import argparse
import importlib.abc
import importlib.util
import inspect
import json
import os
import sys
import types

import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import torch_models as tm  # noqa: E402

GOLDEN = os.path.join(HERE, "..", "..", "engine", "src", "test", "resources", "golden")

DIFFUSERS_REAL = {"diffusers.models.unets.unet_2d", "diffusers.models.unets.unet_2d_blocks",
                  "diffusers.models.resnet", "diffusers.models.attention_processor", "diffusers.models.embeddings",
                  "diffusers.models.downsampling", "diffusers.models.upsampling", "diffusers.models.activations"}


class _Anything:
    """Stands in for any name imported from a stubbed module: decorators pass through, predicates are False."""

    def __init__(self, *a, **k):
        pass

    def __call__(self, *a, **k):
        if len(a) == 1 and not k and callable(a[0]):
            return a[0]
        return False

    def __getattr__(self, n):
        return _Anything()

    def __mro_entries__(self, bases):
        return (object,)

    def __bool__(self):
        return False


class _ModelMixin(nn.Module):
    @property
    def dtype(self):
        return next(self.parameters()).dtype


def _register_to_config(init):
    sig = inspect.signature(init)

    def wrapper(self, *a, **k):
        bound = sig.bind(self, *a, **k)
        bound.apply_defaults()
        args = dict(bound.arguments)
        args.pop("self")
        init(self, *a, **k)
        self.config = types.SimpleNamespace(**args)
    return wrapper


class _DiffusersFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self, src):
        self.src = src

    def find_spec(self, name, path, target=None):
        if name != "diffusers" and not name.startswith("diffusers."):
            return None
        if name in DIFFUSERS_REAL:
            return importlib.util.spec_from_file_location(name, os.path.join(self.src, *name.split(".")) + ".py")
        return importlib.util.spec_from_loader(name, self, is_package=True)

    def create_module(self, spec):
        m = types.ModuleType(spec.name)
        m.__path__ = []
        special = {"BaseOutput": dict, "ModelMixin": _ModelMixin, "ConfigMixin": object,
                   "register_to_config": _register_to_config, "is_torch_version": lambda op, v: False,
                   "deprecate": lambda *a, **k: None}

        def getattr_(n):
            if n in special:
                return special[n]
            if n.startswith("__"):
                raise AttributeError(n)
            return _Anything()
        m.__getattr__ = getattr_
        return m

    def exec_module(self, module):
        pass


def load_official_dit(repo):
    timm = types.ModuleType("timm")
    timm_models = types.ModuleType("timm.models")
    vt = types.ModuleType("timm.models.vision_transformer")

    def patch_embed(img_size, patch_size, in_chans, embed_dim, bias=True):
        return tm.PatchEmbed(img_size, patch_size, in_chans, embed_dim, bias)

    def attention(dim, num_heads=8, qkv_bias=False, **kw):
        return tm.Attention(dim, num_heads, qkv_bias)

    class Mlp(tm.Mlp):
        def __init__(self, in_features, hidden_features, act_layer=None, drop=0):
            super().__init__(in_features, hidden_features)
            self.act = act_layer()
    vt.PatchEmbed, vt.Attention, vt.Mlp = patch_embed, attention, Mlp
    sys.modules.update({"timm": timm, "timm.models": timm_models, "timm.models.vision_transformer": vt})
    spec = importlib.util.spec_from_file_location("official_dit_models", os.path.join(repo, "models.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def maxdiff(a, b):
    return (a - b).abs().max().item()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dit-repo", required=True, help="checkout of facebookresearch/DiT")
    ap.add_argument("--diffusers-src", required=True, help="the src/ folder of a huggingface/diffusers checkout")
    args = ap.parse_args()
    torch.set_num_threads(1)
    ok = True

    def report(what, value, want=0.0):
        nonlocal ok
        good = value == want if isinstance(want, bool) else value <= want
        ok &= good
        print(f"{'OK  ' if good else 'FAIL'} {what}: {value}")

    # ---------------------------------------------------------------- DiT models.py
    dm = load_official_dit(args.dit_repo)
    folder = os.path.join(GOLDEN, "dit-small")
    cfg = json.load(open(os.path.join(folder, "config.json")))
    off = dm.DiT(**{k: v for k, v in cfg.items() if not k.startswith("_")}).eval()
    w, _ = tm.load_safetensors(os.path.join(folder, "model.safetensors"))
    report("dit-small pos_embed (official init) vs stored", maxdiff(off.pos_embed, w["pos_embed"]))
    off.load_state_dict(w, strict=True)
    io, _ = tm.load_safetensors(os.path.join(folder, "io.safetensors"))
    with torch.no_grad():
        report("dit-small out", maxdiff(off(io["x"], io["t"], io["y"]), io["out"]))
        report("dit-small cfg_out_dit", maxdiff(off.forward_with_cfg(io["cfg_x"], io["cfg_t"], io["cfg_y"], 4.0),
                                                io["cfg_out_dit"]))
        o = off(io["cfg_x"], io["cfg_t"], io["cfg_y"])
        c = cfg["in_channels"]
        cond, uncond = o[:, :c].chunk(2)
        half = uncond + 4.0 * (cond - uncond)
        report("dit-small cfg_out_all", maxdiff(torch.cat([torch.cat([half, half]), o[:, c:]], 1),
                                                io["cfg_out_all"]))
    keys = json.load(open(os.path.join(GOLDEN, "keys", "dit-xl-2.json")))["keys"]
    xl = dm.DiT_XL_2(input_size=32, num_classes=1000)
    report("DiT-XL/2 official state_dict == keys/dit-xl-2.json (names, shapes, order)",
           list({k: list(v.shape) for k, v in xl.state_dict().items()}.items()) == list(keys.items()), True)
    del xl

    # ---------------------------------------------------------------- diffusers UNet2DModel
    sys.meta_path.insert(0, _DiffusersFinder(args.diffusers_src))
    from diffusers.models.unets.unet_2d import UNet2DModel as RefUNet
    models = {"dit-small": None}
    for name in ("unet-small", "unet-small-cls"):
        folder = os.path.join(GOLDEN, name)
        cfg = json.load(open(os.path.join(folder, "config.json")))
        ref = RefUNet(**{k: v for k, v in cfg.items() if not k.startswith("_")}).eval()
        w, _ = tm.load_safetensors(os.path.join(folder, "diffusion_pytorch_model.safetensors"))
        ref.load_state_dict(w, strict=True)
        io, _ = tm.load_safetensors(os.path.join(folder, "io.safetensors"))
        with torch.no_grad():
            report(f"{name} out", maxdiff(ref(io["x"], io["t"], io.get("y"), return_dict=False)[0], io["out"]))
        models[name] = ref
    kj = json.load(open(os.path.join(GOLDEN, "keys", "ddpm-cifar10.json")))
    ref = RefUNet(**{k: v for k, v in kj["config"].items() if not k.startswith("_")})
    report("ddpm-cifar10 diffusers state_dict == keys/ddpm-cifar10.json (names, shapes, order)",
           list({k: list(v.shape) for k, v in ref.state_dict().items()}.items()) == list(kj["keys"].items()), True)

    # ---------------------------------------------------------------- DiT diffusion/ (ADM) DDIM
    sys.path.insert(0, args.dit_repo)
    from diffusion import create_diffusion
    for name in ("dit-small", "unet-small", "unet-small-cls"):
        folder = os.path.join(GOLDEN, name)
        d, _ = tm.load_safetensors(os.path.join(folder, "ddim.safetensors"))
        noise = d["noise"]
        n = noise.shape[0]
        if name == "dit-small":
            model = off
            nc = json.load(open(os.path.join(folder, "config.json")))["num_classes"]
            diff = create_diffusion("ddim10")
            z = torch.cat([noise, noise])
            kw = {"y": torch.cat([d["y"], torch.full((n,), nc, dtype=torch.int64)])}

            def fn(x, t, y):
                out = model(torch.cat([x[:len(x) // 2]] * 2), t, y)      # all-channel guidance on eps
                cond, uncond = out[:, :4].chunk(2)
                half = uncond + 4.0 * (cond - uncond)
                return torch.cat([torch.cat([half, half]), out[:, 4:]], 1)
        else:
            model = models[name]
            diff = create_diffusion("ddim10", learn_sigma=False)
            z = noise
            kw = {"class_labels": d["y"]} if "y" in d else {}

            def fn(x, t, class_labels=None, _m=model):
                return _m(x, t, class_labels, return_dict=False)[0]
        with torch.no_grad():
            traj = [o["sample"] for o in diff.ddim_sample_loop_progressive(
                fn, z.shape, noise=z, clip_denoised=False, model_kwargs=kw, device="cpu", eta=0.0)]
        report(f"{name} DDIM (official ADM sampler) max |xt_k diff|",
               max(maxdiff(traj[k][:n], d[f"xt_{k}"]) for k in range(len(traj))))
    print("ALL OK" if ok else "SOME CHECKS FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
