#!/usr/bin/python3
"""Optional cross-check of the VAE golden files: runs the ORIGINAL diffusers AutoencoderKL code on them.

    /usr/bin/python3 tools/golden/verify_vae_against_reference.py --diffusers-src /path/to/huggingface/diffusers/src

Nothing of diffusers is copied into this repository: the files are loaded from your own checkout, with the stub
machinery of verify_against_reference.py (every diffusers module that is not executed for real is a permissive
stub). Executed for real: autoencoders/autoencoder_kl.py, autoencoders/vae.py, unets/unet_2d_blocks.py, resnet.py,
attention_processor.py, downsampling.py, upsampling.py, activations.py, embeddings.py.
Checks: vae-small moments / mean / logvar / sample / decoded / decoded_rect / recon_mean against io.safetensors
(max abs diff printed, expected 0.0 on the same machine), and the sd-vae-ft-ema state_dict (names, shapes, order)
against keys/sd-vae-ft-ema.json, and its parameter count.
"""
import argparse
import inspect
import json
import os
import sys
import types

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import torch_models as tm  # noqa: E402
import verify_against_reference as var  # noqa: E402

GOLDEN = var.GOLDEN
REAL = {"diffusers.models.autoencoders.autoencoder_kl", "diffusers.models.autoencoders.vae"}


def _register_to_config(init):
    """Like the stand-in of verify_against_reference.py, but the config exists before __init__ runs
    (AutoencoderKL.__init__ reads self.config.sample_size)."""
    sig = inspect.signature(init)

    def wrapper(self, *a, **k):
        bound = sig.bind(self, *a, **k)
        bound.apply_defaults()
        args = dict(bound.arguments)
        args.pop("self")
        object.__setattr__(self, "config", types.SimpleNamespace(**args))
        init(self, *a, **k)
    return wrapper


class _ConfigMixin:
    pass


class _Finder(var._DiffusersFinder):
    def create_module(self, spec):
        m = super().create_module(spec)
        base = m.__getattr__

        def getattr_(n):
            if n == "register_to_config":
                return _register_to_config
            if n == "ConfigMixin":          # `object` as a middle base breaks AutoencoderKL's MRO
                return _ConfigMixin
            return base(n)
        m.__getattr__ = getattr_
        return m


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--diffusers-src", required=True, help="the src/ folder of a huggingface/diffusers checkout")
    args = ap.parse_args()
    torch.set_num_threads(1)
    var.DIFFUSERS_REAL.update(REAL)
    # annotations such as `AutoencoderKLOutput | tuple[...]` are evaluated on stubbed names
    var._Anything.__or__ = var._Anything.__ror__ = lambda self, other: self
    # AutoencoderKL has several stubbed mixins as bases: give each its own empty class
    var._Anything.__mro_entries__ = lambda self, bases: (type("StubMixin", (), {}),)
    sys.meta_path.insert(0, _Finder(args.diffusers_src))
    from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL as RefVAE
    ok = True

    def report(what, value, want=0.0):
        nonlocal ok
        good = value == want if isinstance(want, bool) else value <= want
        ok &= good
        print(f"{'OK  ' if good else 'FAIL'} {what}: {value}")

    folder = os.path.join(GOLDEN, "vae-small")
    cfg = json.load(open(os.path.join(folder, "config.json")))
    ref = RefVAE(**{k: v for k, v in cfg.items() if not k.startswith("_")}).eval()
    w, _ = tm.load_safetensors(os.path.join(folder, "diffusion_pytorch_model.safetensors"))
    ref.load_state_dict(w, strict=True)
    io, _ = tm.load_safetensors(os.path.join(folder, "io.safetensors"))
    sf = cfg["scaling_factor"]
    with torch.no_grad():
        h = ref.quant_conv(ref.encoder(io["images"]))
        report("vae-small moments", var.maxdiff(h, io["moments"]))
        post = ref.encode(io["images"], return_dict=False)[0]
        report("vae-small mean", var.maxdiff(post.mean, io["mean"]))
        report("vae-small logvar", var.maxdiff(post.logvar, io["logvar"]))
        report("vae-small sample", var.maxdiff(post.mean + post.std * io["noise"], io["sample"]))
        report("vae-small decoded", var.maxdiff(ref.decode(io["latents"] / sf, return_dict=False)[0], io["decoded"]))
        report("vae-small decoded_rect", var.maxdiff(ref.decode(io["latents_rect"] / sf, return_dict=False)[0], io["decoded_rect"]))
        report("vae-small recon_mean", var.maxdiff(ref.decode(io["mean"], return_dict=False)[0], io["recon_mean"]))

    kj = json.load(open(os.path.join(GOLDEN, "keys", "sd-vae-ft-ema.json")))
    with tm.no_init():
        big = RefVAE(**{k: v for k, v in kj["config"].items() if not k.startswith("_")})
    got = list({k: list(v.shape) for k, v in big.state_dict().items()}.items())
    report("sd-vae-ft-ema diffusers state_dict == keys/sd-vae-ft-ema.json (names, shapes, order)",
           got == list(kj["keys"].items()), True)
    report("sd-vae-ft-ema parameters", sum(p.numel() for p in big.parameters()) == kj["num_parameters"], True)
    print("ALL OK" if ok else "SOME CHECKS FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
