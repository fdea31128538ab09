#!/usr/bin/python3
"""Makes the AutoencoderKL (Stable Diffusion VAE) golden files for the Java engine.

Run from anywhere:  /usr/bin/python3 tools/golden/make_golden_vae.py   (PyTorch 1.13 CPU + numpy, a few seconds)

Writes engine/src/test/resources/golden/vae-small/ (config.json, diffusion_pytorch_model.safetensors,
io.safetensors) and golden/keys/sd-vae-ft-ema.json (the full-size state_dict name -> shape list). Re-running
produces byte-identical files (fixed seeds, one thread, deterministic writer).

The model is the re-implementation in torch_vae.py of diffusers' AutoencoderKL; the script first checks its
state_dict for the stabilityai/sd-vae-ft-ema config against a key list written out by hand from the diffusers
constructors, and its parameter count (83,653,863), and stops if either differs.
"""
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_golden as mg  # noqa: E402  (file helpers, randomize_, OUT)
import torch_models as tm  # noqa: E402
import torch_vae as tv  # noqa: E402

GENERATOR = "tools/golden/make_golden_vae.py"

# stabilityai/sd-vae-ft-ema config.json as published on the Hugging Face hub (diffusers 0.4.2 era: it has no
# scaling_factor field, so diffusers' default 0.18215 applies).
SD_VAE_FT_EMA = {
    "_class_name": "AutoencoderKL", "_diffusers_version": "0.4.2", "act_fn": "silu",
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"],
    "in_channels": 3, "latent_channels": 4, "layers_per_block": 2, "norm_num_groups": 32, "out_channels": 3,
    "sample_size": 256,
    "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"],
}
SD_VAE_PARAMS = 83_653_863


def vae_config(**over):
    """An AutoencoderKL config.json with every field diffusers (0.40) writes for AutoencoderKL."""
    cfg = {"_class_name": "AutoencoderKL", "_diffusers_version": "0.40.0.dev0"}
    cfg.update(tv.VAE_DEFAULTS)
    cfg.update(over)
    return cfg


VAE_SMALL = vae_config(
    in_channels=3, out_channels=3, block_out_channels=[8, 16, 16], layers_per_block=1, latent_channels=4,
    norm_num_groups=4, sample_size=32, down_block_types=["DownEncoderBlock2D"] * 3,
    up_block_types=["UpDecoderBlock2D"] * 3, act_fn="silu", scaling_factor=0.13025, shift_factor=None,
    force_upcast=True, use_quant_conv=True, use_post_quant_conv=True, mid_block_add_attention=True)


def expected_vae_keys(cfg):
    """State_dict names/shapes of diffusers AutoencoderKL, written out flat from the constructors in
    autoencoder_kl.py / vae.py / unet_2d_blocks.py / resnet.py / attention_processor.py. Order: encoder
    (conv_in, down_blocks, mid_block with attentions before resnets, conv_norm_out, conv_out), decoder (conv_in,
    up_blocks (created before mid_block), mid_block, conv_norm_out, conv_out), quant_conv, post_quant_conv."""
    boc = cfg["block_out_channels"]
    lpb = cfg["layers_per_block"]
    lc = cfg["latent_channels"]
    n = len(boc)
    keys = mg.KeyList()
    conv, lin, norm = keys.conv, keys.lin, keys.norm

    def resnet(p, cin, cout):
        norm(p + ".norm1", cin)
        conv(p + ".conv1", cout, cin, 3)
        norm(p + ".norm2", cout)
        conv(p + ".conv2", cout, cout, 3)
        if cin != cout:
            conv(p + ".conv_shortcut", cout, cin, 1)

    def mid(p, c):
        norm(p + ".attentions.0.group_norm", c)
        for name in ("to_q", "to_k", "to_v", "to_out.0"):
            lin(p + ".attentions.0." + name, c, c)
        resnet(p + ".resnets.0", c, c)
        resnet(p + ".resnets.1", c, c)

    conv("encoder.conv_in", boc[0], cfg["in_channels"], 3)
    for i in range(n):
        cin, cout = boc[max(i - 1, 0)], boc[i]
        for j in range(lpb):
            resnet(f"encoder.down_blocks.{i}.resnets.{j}", cin if j == 0 else cout, cout)
        if i < n - 1:
            conv(f"encoder.down_blocks.{i}.downsamplers.0.conv", cout, cout, 3)
    mid("encoder.mid_block", boc[-1])
    norm("encoder.conv_norm_out", boc[-1])
    conv("encoder.conv_out", 2 * lc, boc[-1], 3)

    conv("decoder.conv_in", boc[-1], lc, 3)
    rev = boc[::-1]
    for i in range(n):
        prev, cout = rev[max(i - 1, 0)], rev[i]
        for j in range(lpb + 1):
            resnet(f"decoder.up_blocks.{i}.resnets.{j}", prev if j == 0 else cout, cout)
        if i < n - 1:
            conv(f"decoder.up_blocks.{i}.upsamplers.0.conv", cout, cout, 3)
    mid("decoder.mid_block", boc[-1])
    norm("decoder.conv_norm_out", boc[0])
    conv("decoder.conv_out", cfg["out_channels"], boc[0], 3)

    conv("quant_conv", 2 * lc, 2 * lc, 1)
    conv("post_quant_conv", lc, lc, 1)
    return keys


def check_and_write_keys():
    with tm.no_init():
        vae = tv.AutoencoderKL(SD_VAE_FT_EMA)
    got = mg.shapes_of(vae)
    want = expected_vae_keys({**tv.VAE_DEFAULTS, **SD_VAE_FT_EMA})
    if got != want:
        diff = sorted(set(map(str, got)) ^ set(map(str, want)))
        raise SystemExit(f"sd-vae-ft-ema state_dict mismatch (or order): {diff[:10]}")
    n_params = sum(int(np.prod(s)) for _, s in got)
    if n_params != SD_VAE_PARAMS:
        raise SystemExit(f"sd-vae-ft-ema: {n_params} parameters, expected {SD_VAE_PARAMS}")
    heads = sorted({m.heads for m in vae.modules() if isinstance(m, tm.AttentionBlock)})
    if heads != [1]:
        raise SystemExit(f"sd-vae-ft-ema attention heads {heads}, expected [1]")
    del vae
    mg.write_json(os.path.join(mg.OUT, "keys", "sd-vae-ft-ema.json"), {
        "model": "stabilityai/sd-vae-ft-ema (diffusers AutoencoderKL, current attention names "
                 "to_q/to_k/to_v/to_out.0; the hub file may carry the deprecated query/key/value/proj_attn)",
        "config": SD_VAE_FT_EMA,
        "num_tensors": len(got), "num_parameters": n_params,
        "keys": {k: s for k, s in got}})
    print(f"keys: sd-vae-ft-ema {len(got)} tensors {n_params} params")


def make_vae_small():
    folder = os.path.join(mg.OUT, "vae-small")
    cfg = VAE_SMALL
    mg.write_json(os.path.join(folder, "config.json"), cfg, sort_keys=True)
    model = tv.AutoencoderKL(cfg).eval()
    got = mg.shapes_of(model)
    if got != expected_vae_keys(cfg):
        raise SystemExit("vae-small state_dict mismatch")
    mg.randomize_(model, seed=5001)
    mg.write_safetensors(os.path.join(folder, "diffusion_pytorch_model.safetensors"), dict(model.state_dict()),
                         {"format": "pt", "generator": GENERATOR})
    sf = cfg["scaling_factor"]
    s, c, lc = cfg["sample_size"], cfg["in_channels"], cfg["latent_channels"]
    f = 2 ** (len(cfg["block_out_channels"]) - 1)
    g = torch.Generator().manual_seed(6001)
    with torch.no_grad():
        images = torch.rand(2, c, s, s, generator=g) * 2 - 1             # pipeline image range [-1, 1]
        moments = model.moments(images)
        post = tv.DiagonalGaussian(moments)
        noise = torch.randn(post.mean.shape, generator=g)
        sample = post.sample(noise)
        latents = torch.randn(2, lc, s // f, s // f, generator=g)          # scaled (diffusion-space) latents
        decoded = model.decode(latents / sf)                               # what an SD pipeline does
        latents_rect = torch.randn(1, lc, 3, 5, generator=g)               # non-square
        decoded_rect = model.decode(latents_rect / sf)
        recon = model.decode(post.mean.contiguous())                       # raw round trip (stored mean)
    tensors = {"images": images, "moments": moments, "mean": post.mean, "logvar": post.logvar, "noise": noise,
               "sample": sample, "latents": latents, "decoded": decoded, "latents_rect": latents_rect,
               "decoded_rect": decoded_rect, "recon_mean": recon}
    mg.write_safetensors(os.path.join(folder, "io.safetensors"), tensors, {
        "generator": GENERATOR, "torch": torch.__version__, "scaling_factor": repr(sf),
        "moments": "quant_conv(encoder(images)) = cat(mean, logvar) before the clamp",
        "logvar": "clamped to [-30, 20]", "sample": "mean + exp(0.5 logvar) * noise",
        "decoded": "decode(latents / scaling_factor) (latents are diffusion-space)",
        "recon_mean": "decode(mean) (raw latents, no scaling)"})
    n_params = sum(p.numel() for p in model.parameters())
    print(f"vae-small: {len(got)} tensors {n_params} params; decoded max|.| {decoded.abs().max():.3f}, "
          f"mean max|.| {post.mean.abs().max():.3f}, logvar range [{post.logvar.min():.3f}, {post.logvar.max():.3f}]")


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    check_and_write_keys()
    make_vae_small()
    total = 0
    for root, _, files in os.walk(os.path.join(mg.OUT, "vae-small")):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    print(f"vae-small total size: {total / 1e3:.1f} KB")


if __name__ == "__main__":
    main()
