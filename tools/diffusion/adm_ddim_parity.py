"""Reference DDIM trajectories from ADM's sampler code for DdimParityTest.

Runs facebookresearch/DiT's diffusion package (ADM's GaussianDiffusion + SpacedDiffusion) with an analytic fake
model whose float32 arithmetic the Java test repeats, and writes little-endian float32 arrays:
for each case in CASES: the initial noise [N, C, H, W], then x after each of the S steps.

usage: /usr/bin/python3 tools/diffusion/adm_ddim_parity.py /path/to/DiT  [out.bin]
(the DiT checkout only provides the `diffusion` package; nothing of it is copied here)
"""
import sys

import numpy as np
import torch as th

sys.path.insert(0, sys.argv[1])
from diffusion import create_diffusion  # noqa: E402

OUT = sys.argv[2] if len(sys.argv) > 2 else "engine/src/test/resources/diffusion/adm_ddim_parity.bin"

# name, respacing, shape (N, C, H, W), learn_sigma, cfg (None | "all" | "dit"), labels, clip_denoised
CASES = [
    ("cfg_all", "ddim10", (2, 4, 4, 4), True, "all", [3, 7], False),
    ("cfg_dit", "ddim25", (2, 4, 4, 4), True, "dit", [1, 0], False),
    ("uncond", "10", (2, 3, 4, 4), False, None, None, True),
]
NULL_CLASS = 10
CFG_SCALE = 4.0


def fake_model(channels, learn_sigma):
    """eps = 0.5 x + 0.001 t (+ 0.01 y); v = clamp(0.3 x + 0.0005 t - 0.2, -1, 1); all float32."""
    def forward(x, t, y=None):
        tt = t.float().view(-1, 1, 1, 1)
        eps = 0.5 * x + 0.001 * tt
        if y is not None:
            eps = eps + 0.01 * y.float().view(-1, 1, 1, 1)
        if not learn_sigma:
            return eps
        v = (0.3 * x + 0.0005 * tt - 0.2).clamp(-1, 1)
        return th.cat([eps, v], 1)
    return forward


def with_cfg(model, guided):
    """[cond; uncond] guidance on the first `guided` channels, other channels from each half (DiT's scheme)."""
    def forward(x, t, y, cfg_scale):
        half = x[: len(x) // 2]
        out = model(th.cat([half, half], 0), t, y)
        eps, rest = out[:, :guided], out[:, guided:]
        cond, uncond = th.split(eps, len(eps) // 2, 0)
        mixed = uncond + cfg_scale * (cond - uncond)
        return th.cat([th.cat([mixed, mixed], 0), rest], 1)
    return forward


def main():
    th.manual_seed(0)
    chunks = []
    for name, spacing, shape, learn, cfg, labels, clip in CASES:
        diffusion = create_diffusion(spacing, learn_sigma=learn)
        noise = th.randn(*shape)
        model, kwargs, x = fake_model(shape[1], learn), {}, noise
        if cfg is not None:
            model = with_cfg(model, shape[1] if cfg == "all" else 3)
            x = th.cat([noise, noise], 0)
            kwargs = dict(y=th.tensor(labels + [NULL_CLASS] * len(labels)), cfg_scale=CFG_SCALE)
        chunks.append(noise.numpy())
        steps = 0
        for out in diffusion.ddim_sample_loop_progressive(model, x.shape, noise=x, clip_denoised=clip,
                                                          model_kwargs=kwargs, device="cpu", eta=0.0):
            chunks.append(out["sample"][: shape[0]].numpy())
            steps += 1
        print(name, spacing, "steps", steps, "final |x| max", float(chunks[-1].__abs__().max()))
    np.concatenate([c.astype("<f4").ravel() for c in chunks]).tofile(OUT)


if __name__ == "__main__":
    main()
