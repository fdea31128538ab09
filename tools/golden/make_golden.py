#!/usr/bin/python3
"""Makes the PyTorch parity golden files for the Java engine (contract: the golden-files spec, see README.md).

Run from anywhere:  /usr/bin/python3 tools/golden/make_golden.py   (PyTorch 1.13 CPU + numpy, ~1 minute)

Writes engine/src/test/resources/golden/{dit-small,unet-small,unet-small-cls}/ (config.json, weights,
io.safetensors, ddim.safetensors) and golden/keys/{dit-xl-2,ddpm-cifar10}.json (full-size state_dict
name -> shape lists). Re-running produces byte-identical files (fixed seeds, one thread).

The models are the re-implementations in torch_models.py (facebookresearch/DiT models.py and diffusers
UNet2DModel); the DDIM sampler below mirrors facebookresearch/DiT diffusion/{gaussian_diffusion,respace}.py
(= OpenAI ADM): linear betas, space_timesteps("ddimN"), ddim_sample with eta = 0.
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import torch_models as tm  # noqa: E402

REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
OUT = os.path.join(REPO, "engine", "src", "test", "resources", "golden")
GENERATOR = "tools/golden/make_golden.py"


# ============================================================================================ file helpers
def write_bytes_atomic(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def write_json(path, obj, sort_keys=False):
    write_bytes_atomic(path, (json.dumps(obj, indent=2, sort_keys=sort_keys) + "\n").encode("utf-8"))


def write_safetensors(path, tensors, metadata=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    tm.save_safetensors(tmp, tensors, metadata)
    os.replace(tmp, path)


def shapes_of(model):
    return [(k, list(v.shape)) for k, v in model.state_dict().items()]


# ============================================================================================ key checks
def expected_dit_keys(input_size, patch_size, in_channels, hidden_size, depth, mlp_ratio, num_classes,
                      learn_sigma, class_dropout_prob):
    """State_dict names/shapes of facebookresearch/DiT models.py DiT, written out by hand from its __init__
    (module registration order: pos_embed is a direct Parameter so it comes first)."""
    d = hidden_size
    t = (input_size // patch_size) ** 2
    out_ch = in_channels * 2 if learn_sigma else in_channels
    mlp = int(d * mlp_ratio)
    keys = [("pos_embed", [1, t, d]),
            ("x_embedder.proj.weight", [d, in_channels, patch_size, patch_size]), ("x_embedder.proj.bias", [d]),
            ("t_embedder.mlp.0.weight", [d, 256]), ("t_embedder.mlp.0.bias", [d]),
            ("t_embedder.mlp.2.weight", [d, d]), ("t_embedder.mlp.2.bias", [d]),
            ("y_embedder.embedding_table.weight", [num_classes + (1 if class_dropout_prob > 0 else 0), d])]
    for i in range(depth):
        b = f"blocks.{i}."
        keys += [(b + "attn.qkv.weight", [3 * d, d]), (b + "attn.qkv.bias", [3 * d]),
                 (b + "attn.proj.weight", [d, d]), (b + "attn.proj.bias", [d]),
                 (b + "mlp.fc1.weight", [mlp, d]), (b + "mlp.fc1.bias", [mlp]),
                 (b + "mlp.fc2.weight", [d, mlp]), (b + "mlp.fc2.bias", [d]),
                 (b + "adaLN_modulation.1.weight", [6 * d, d]), (b + "adaLN_modulation.1.bias", [6 * d])]
    keys += [("final_layer.linear.weight", [patch_size * patch_size * out_ch, d]),
             ("final_layer.linear.bias", [patch_size * patch_size * out_ch]),
             ("final_layer.adaLN_modulation.1.weight", [2 * d, d]),
             ("final_layer.adaLN_modulation.1.bias", [2 * d])]
    return keys


class KeyList(list):
    """(name, shape) pairs in registration order, with the parameter shapes of the layer kinds the models use."""

    def conv(self, p, cout, cin, k):
        self.extend([(p + ".weight", [cout, cin, k, k]), (p + ".bias", [cout])])

    def lin(self, p, cout, cin):
        self.extend([(p + ".weight", [cout, cin]), (p + ".bias", [cout])])

    def norm(self, p, c):
        self.extend([(p + ".weight", [c]), (p + ".bias", [c])])


def expected_unet_keys(cfg):
    """State_dict names/shapes of diffusers UNet2DModel, written out flat from the constructors in
    unet_2d.py / unet_2d_blocks.py / resnet.py / attention_processor.py (attentions are registered before
    resnets in the Attn blocks and the mid block). Only the options the golden models use."""
    boc = cfg["block_out_channels"]
    lpb = cfg["layers_per_block"]
    temb = boc[0] * 4
    scale_shift = cfg["resnet_time_scale_shift"] == "scale_shift"
    keys = KeyList()
    conv, lin, norm = keys.conv, keys.lin, keys.norm

    def resnet(p, cin, cout):
        norm(p + ".norm1", cin)
        conv(p + ".conv1", cout, cin, 3)
        lin(p + ".time_emb_proj", 2 * cout if scale_shift else cout, temb)
        norm(p + ".norm2", cout)
        conv(p + ".conv2", cout, cout, 3)
        if cin != cout:
            conv(p + ".conv_shortcut", cout, cin, 1)

    def attention(p, c, group_norm=True):
        if group_norm:
            norm(p + ".group_norm", c)
        for n in ("to_q", "to_k", "to_v", "to_out.0"):
            lin(p + "." + n, c, c)

    conv("conv_in", boc[0], cfg["in_channels"], 3)
    lin("time_embedding.linear_1", temb, boc[0])
    lin("time_embedding.linear_2", temb, temb)
    if cfg.get("num_class_embeds") is not None:
        keys.append(("class_embedding.weight", [cfg["num_class_embeds"], temb]))
    n = len(boc)
    for i, kind in enumerate(cfg["down_block_types"]):
        cin = boc[max(i - 1, 0)]
        cout = boc[i]
        p = f"down_blocks.{i}"
        if kind == "AttnDownBlock2D":
            for j in range(lpb):
                attention(f"{p}.attentions.{j}", cout)
        for j in range(lpb):
            resnet(f"{p}.resnets.{j}", cin if j == 0 else cout, cout)
        if i < n - 1:
            conv(f"{p}.downsamplers.0.conv", cout, cout, 3)
    rev = boc[::-1]
    for i, kind in enumerate(cfg["up_block_types"]):
        prev = rev[max(i - 1, 0)]
        cout = rev[i]
        cskip_last = rev[min(i + 1, n - 1)]
        p = f"up_blocks.{i}"
        if kind == "AttnUpBlock2D":
            for j in range(lpb + 1):
                attention(f"{p}.attentions.{j}", cout)
        for j in range(lpb + 1):
            rin = prev if j == 0 else cout
            rskip = cskip_last if j == lpb else cout
            resnet(f"{p}.resnets.{j}", rin + rskip, cout)
        if i < n - 1:
            conv(f"{p}.upsamplers.0.conv", cout, cout, 3)
    c = boc[-1]                                   # mid_block is registered after up_blocks in diffusers
    attention("mid_block.attentions.0", c, group_norm=not scale_shift)
    resnet("mid_block.resnets.0", c, c)
    resnet("mid_block.resnets.1", c, c)
    norm("conv_norm_out", boc[0])
    conv("conv_out", cfg["out_channels"], boc[0], 3)
    return keys


DIT_XL_2 = dict(input_size=32, patch_size=2, in_channels=4, hidden_size=1152, depth=28, num_heads=16,
                mlp_ratio=4.0, class_dropout_prob=0.1, num_classes=1000, learn_sigma=True)

# google/ddpm-cifar10-32 config.json (diffusers UNet2DModel), as published on the Hugging Face hub.
DDPM_CIFAR10 = {
    "_class_name": "UNet2DModel", "act_fn": "silu", "add_attention": True, "attention_head_dim": None,
    "block_out_channels": [128, 256, 256, 256], "center_input_sample": False, "class_embed_type": None,
    "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"],
    "downsample_padding": 0, "flip_sin_to_cos": False, "freq_shift": 1, "in_channels": 3, "layers_per_block": 2,
    "mid_block_scale_factor": 1, "norm_eps": 1e-06, "norm_num_groups": 32, "num_class_embeds": None,
    "out_channels": 3, "resnet_time_scale_shift": "default", "sample_size": 32,
    "time_embedding_type": "positional",
    "up_block_types": ["UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"],
}


def check_and_write_keys():
    """Faithfulness self-check of the re-implementations' state_dict names against the full-size reference
    models, and writes golden/keys/*.json for the Java tests."""
    with tm.no_init():
        dit = tm.DiT(**DIT_XL_2)
    got = shapes_of(dit)
    want = expected_dit_keys(**{k: v for k, v in DIT_XL_2.items() if k != "num_heads"})
    if got != want:
        diff = sorted(set(map(str, got)) ^ set(map(str, want)))
        raise SystemExit(f"DiT-XL/2 state_dict mismatch: {diff[:10]}")
    n_params = sum(int(np.prod(s)) for _, s in got)
    # DiT paper, Table 4: DiT-XL/2 has 675M parameters; 292 tensors = 8 + 28 * 10 + 4.
    if len(got) != 292 or round(n_params / 1e6) != 675:
        raise SystemExit(f"DiT-XL/2: {len(got)} tensors, {n_params} parameters (expected 292, ~675M)")
    if dit.blocks[0].attn.num_heads != 16 or dit.blocks[0].attn.head_dim != 72:
        raise SystemExit("DiT-XL/2 heads")
    del dit

    with tm.no_init():
        unet = tm.UNet2DModel(DDPM_CIFAR10)
    got_u = shapes_of(unet)
    want_u = expected_unet_keys(DDPM_CIFAR10)
    if got_u != want_u:
        diff = sorted(set(map(str, got_u)) ^ set(map(str, want_u)))
        raise SystemExit(f"ddpm-cifar10 state_dict mismatch: {diff[:10]}")
    n_params_u = sum(int(np.prod(s)) for _, s in got_u)
    # DDPM paper (Ho et al. 2020), CIFAR10 model: 35.7M parameters.
    if round(n_params_u / 1e5) != 357:
        raise SystemExit(f"ddpm-cifar10: {n_params_u} parameters (expected ~35.7M)")
    # attention_head_dim null -> dim_head = channels -> one head everywhere
    heads = sorted({m.heads for m in unet.modules() if isinstance(m, tm.AttentionBlock)})
    if heads != [1]:
        raise SystemExit(f"ddpm-cifar10 attention heads {heads}, expected [1]")
    del unet

    write_json(os.path.join(OUT, "keys", "dit-xl-2.json"), {
        "model": "DiT-XL/2 (facebookresearch/DiT models.py, DiT_XL_2(input_size=32, num_classes=1000))",
        "config": {"_class_name": "DiT", **DIT_XL_2},
        "num_tensors": len(got), "num_parameters": n_params,
        "keys": {k: s for k, s in got}})
    write_json(os.path.join(OUT, "keys", "ddpm-cifar10.json"), {
        "model": "google/ddpm-cifar10-32 (diffusers UNet2DModel, current attention names to_q/to_k/to_v/to_out.0)",
        "config": DDPM_CIFAR10,
        "num_tensors": len(got_u), "num_parameters": n_params_u,
        "keys": {k: s for k, s in got_u}})
    print(f"keys: DiT-XL/2 {len(got)} tensors {n_params} params; ddpm-cifar10 {len(got_u)} tensors {n_params_u} params")


# ============================================================================================ random weights
def randomize_(model, seed):
    """Random, non-degenerate weights (NOT the DiT zero init), drawn in named_parameters() order from one seeded
    generator: Linear/Conv weights ~ N(0, s) with s = clamp(1/sqrt(fan_in), 0.05, 0.2) so activations stay
    O(1); embedding tables ~ N(0, 0.2); biases ~ N(0, 0.05); norm weights ~ 1 + N(0, 0.1).
    DiT's pos_embed keeps its fixed sin-cos table."""
    norm_params, embed_params = set(), set()
    for mname, m in model.named_modules():
        if isinstance(m, (nn.GroupNorm, nn.LayerNorm)):
            norm_params.add(f"{mname}.weight")
        if isinstance(m, nn.Embedding):
            embed_params.add(f"{mname}.weight")
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name == "pos_embed":
                continue
            r = torch.randn(p.shape, generator=g, dtype=torch.float32)
            if name in norm_params:
                p.copy_(1.0 + 0.1 * r)
            elif p.dim() == 1:
                p.copy_(0.05 * r)
            elif name in embed_params:
                p.copy_(0.2 * r)
            else:
                std = min(0.2, max(0.05, p[0].numel() ** -0.5))
                p.copy_(std * r)


# ============================================================================================ ADM DDIM
def linear_betas(t=1000):
    """ADM get_named_beta_schedule("linear", T): linspace(1e-4 * 1000/T, 0.02 * 1000/T), float64."""
    scale = 1000 / t
    return np.linspace(scale * 0.0001, scale * 0.02, t, dtype=np.float64)


def space_timesteps(num_timesteps, section_counts):
    """ADM respace.py space_timesteps: "ddimN" = the first integer stride giving exactly N steps; otherwise
    comma-separated section counts with evenly rounded fractional strides."""
    if isinstance(section_counts, str):
        if section_counts.startswith("ddim"):
            want = int(section_counts[4:])
            for stride in range(1, num_timesteps):
                if len(range(0, num_timesteps, stride)) == want:
                    return set(range(0, num_timesteps, stride))
            raise ValueError(f"cannot create exactly {want} steps with an integer stride")
        section_counts = [int(x) for x in section_counts.split(",")]
    size_per, extra = divmod(num_timesteps, len(section_counts))
    start, steps = 0, []
    for i, count in enumerate(section_counts):
        size = size_per + (1 if i < extra else 0)
        if size < count:
            raise ValueError(f"cannot divide section of {size} steps into {count}")
        stride = 1 if count <= 1 else (size - 1) / (count - 1)
        cur = 0.0
        for _ in range(count):
            steps.append(start + round(cur))
            cur += stride
        start += size
    return set(steps)


class SpacedSchedule:
    """ADM SpacedDiffusion constants: betas re-derived from the retained alphas_cumprod, then the
    GaussianDiffusion float64 tables recomputed from them; timestep_map maps index -> original t."""

    def __init__(self, betas, use_timesteps):
        base_ac = np.cumprod(1.0 - betas, axis=0)
        last, new_betas, self.timestep_map = 1.0, [], []
        for i, ac in enumerate(base_ac):
            if i in use_timesteps:
                new_betas.append(1 - ac / last)
                last = ac
                self.timestep_map.append(i)
        b = np.array(new_betas, dtype=np.float64)
        self.num_timesteps = len(b)
        self.alphas_cumprod = np.cumprod(1.0 - b, axis=0)
        self.alphas_cumprod_prev = np.append(1.0, self.alphas_cumprod[:-1])
        self.sqrt_recip_alphas_cumprod = np.sqrt(1.0 / self.alphas_cumprod)
        self.sqrt_recipm1_alphas_cumprod = np.sqrt(1.0 / self.alphas_cumprod - 1)


def extract(arr, t, shape):
    """ADM _extract_into_tensor: float64 table -> gather -> float32 -> broadcast."""
    res = torch.from_numpy(arr)[t].float()
    while res.dim() < len(shape):
        res = res[..., None]
    return res + torch.zeros(shape)


def ddim_sample_loop(sched, model_fn, noise, eta=0.0):
    """ADM ddim_sample_loop_progressive with clip_denoised=False; returns the list of x after every step.
    model_fn(x, t_original) -> model output (first C channels = eps; learned-sigma channels ignored)."""
    if eta != 0.0:
        raise ValueError("golden DDIM uses eta = 0")
    x = noise
    c = x.shape[1]
    tmap = torch.tensor(sched.timestep_map, dtype=torch.int64)
    traj = []
    for i in reversed(range(sched.num_timesteps)):
        t = torch.tensor([i] * x.shape[0], dtype=torch.int64)
        out = model_fn(x, tmap[t])
        if out.shape[1] == 2 * c:
            eps_model = out[:, :c]
        elif out.shape[1] == c:
            eps_model = out
        else:
            raise ValueError(f"model output channels {out.shape[1]} for {c} input channels")
        x0 = extract(sched.sqrt_recip_alphas_cumprod, t, x.shape) * x \
            - extract(sched.sqrt_recipm1_alphas_cumprod, t, x.shape) * eps_model
        eps = (extract(sched.sqrt_recip_alphas_cumprod, t, x.shape) * x - x0) \
            / extract(sched.sqrt_recipm1_alphas_cumprod, t, x.shape)
        ab = extract(sched.alphas_cumprod, t, x.shape)
        ab_prev = extract(sched.alphas_cumprod_prev, t, x.shape)
        sigma = eta * torch.sqrt((1 - ab_prev) / (1 - ab)) * torch.sqrt(1 - ab / ab_prev)
        x = x0 * torch.sqrt(ab_prev) + torch.sqrt(1 - ab_prev - sigma ** 2) * eps
        # (+ nonzero_mask * sigma * noise, which is exactly 0 for eta = 0)
        traj.append(x.clone())
    return traj


def ddim_metadata(sched, **extra):
    md = {"generator": GENERATOR, "torch": torch.__version__, "schedule": "linear", "beta_start": "0.0001",
          "beta_end": "0.02", "T": "1000", "steps": "ddim10", "eta": "0", "clip_denoised": "false",
          "timesteps": ",".join(str(sched.timestep_map[i]) for i in reversed(range(sched.num_timesteps)))}
    md.update({k: str(v) for k, v in extra.items()})
    return md


# ============================================================================================ models
DIT_SMALL = {"_class_name": "DiT", "input_size": 8, "patch_size": 2, "in_channels": 4, "hidden_size": 64,
             "depth": 2, "num_heads": 4, "mlp_ratio": 4.0, "class_dropout_prob": 0.1, "num_classes": 10,
             "learn_sigma": True}


def unet_config(**over):
    """A UNet2DModel config.json with every field diffusers (0.40) writes for UNet2DModel."""
    cfg = {"_class_name": "UNet2DModel", "_diffusers_version": "0.40.0.dev0"}
    cfg.update(tm.UNET_DEFAULTS)
    cfg.update(over)
    return cfg


UNET_SMALL = unet_config(
    sample_size=16, in_channels=3, out_channels=3, block_out_channels=[16, 32], layers_per_block=1,
    down_block_types=["DownBlock2D", "AttnDownBlock2D"], up_block_types=["AttnUpBlock2D", "UpBlock2D"],
    norm_num_groups=8, attention_head_dim=8, time_embedding_type="positional", flip_sin_to_cos=True,
    freq_shift=0, act_fn="silu", downsample_padding=1, resnet_time_scale_shift="default", add_attention=True,
    center_input_sample=False, mid_block_scale_factor=1, norm_eps=1e-5, class_embed_type=None,
    num_class_embeds=None)

UNET_SMALL_CLS = unet_config(
    sample_size=16, in_channels=3, out_channels=3, block_out_channels=[16, 32, 32], layers_per_block=2,
    down_block_types=["DownBlock2D", "AttnDownBlock2D", "DownBlock2D"],
    up_block_types=["UpBlock2D", "AttnUpBlock2D", "UpBlock2D"],
    norm_num_groups=4, attention_head_dim=8, time_embedding_type="positional", flip_sin_to_cos=False,
    freq_shift=1, act_fn="silu", downsample_padding=0, resnet_time_scale_shift="scale_shift", add_attention=True,
    center_input_sample=False, mid_block_scale_factor=1, norm_eps=1e-6, class_embed_type=None,
    num_class_embeds=10)


def make_dit(sched):
    folder = os.path.join(OUT, "dit-small")
    write_json(os.path.join(folder, "config.json"), DIT_SMALL)
    torch.manual_seed(0)
    model = tm.dit_from_config(DIT_SMALL).eval()
    randomize_(model, seed=1001)
    write_safetensors(os.path.join(folder, "model.safetensors"), dict(model.state_dict()),
                      {"format": "pt", "generator": GENERATOR})
    c, s, nc = DIT_SMALL["in_channels"], DIT_SMALL["input_size"], DIT_SMALL["num_classes"]
    g = torch.Generator().manual_seed(2001)
    with torch.no_grad():
        x = torch.randn(3, c, s, s, generator=g)
        t = torch.tensor([0, 500, 999], dtype=torch.int64)
        y = torch.tensor([3, 7, nc], dtype=torch.int64)           # nc = the null (CFG) class
        out = model(x, t, y)
        half = torch.randn(2, c, s, s, generator=g)
        cfg_x = torch.cat([half, half], 0)
        cfg_t = torch.tensor([250, 750, 250, 750], dtype=torch.int64)
        cfg_y = torch.tensor([1, 8, nc, nc], dtype=torch.int64)
        cfg_all = model.forward_with_cfg(cfg_x, cfg_t, cfg_y, 4.0, guided_channels=c)
        cfg_dit = model.forward_with_cfg(cfg_x, cfg_t, cfg_y, 4.0, guided_channels=3)
    write_safetensors(os.path.join(folder, "io.safetensors"),
                      {"x": x, "t": t, "y": y, "out": out, "cfg_x": cfg_x, "cfg_t": cfg_t, "cfg_y": cfg_y,
                       "cfg_out_all": cfg_all, "cfg_out_dit": cfg_dit},
                      {"generator": GENERATOR, "torch": torch.__version__, "cfg_scale": "4.0",
                       "cfg_out_all": "forward_with_cfg, guidance on all in_channels eps channels",
                       "cfg_out_dit": "forward_with_cfg as in facebookresearch/DiT (guidance on channels 0..2)"})

    n = 2
    noise = torch.randn(n, c, s, s, generator=g)
    yd = torch.tensor([2, 9], dtype=torch.int64)
    z = torch.cat([noise, noise], 0)                                # as DiT sample.py builds the CFG batch
    y2 = torch.cat([yd, torch.full((n,), nc, dtype=torch.int64)], 0)
    with torch.no_grad():
        traj = ddim_sample_loop(sched, lambda xx, tt: model.forward_with_cfg(xx, tt, y2, 4.0, guided_channels=c), z)
    tensors = {"noise": noise, "y": yd, "samples": traj[-1][:n]}
    for k, xk in enumerate(traj):
        tensors[f"xt_{k}"] = xk[:n]
    write_safetensors(os.path.join(folder, "ddim.safetensors"), tensors,
                      ddim_metadata(sched, cfg_scale="4.0", guidance="all", null_class=nc,
                                    note="model run on the 2N CFG batch [noise; noise] with y [y; null], "
                                         "first N rows stored"))
    print(f"dit-small: out max|.| {out.abs().max():.3f}, ddim samples max|.| {traj[-1].abs().max():.3f}")
    return model


def make_unet(name, cfg, seed, labels):
    folder = os.path.join(OUT, name)
    write_json(os.path.join(folder, "config.json"), cfg, sort_keys=True)
    model = tm.UNet2DModel(cfg).eval()
    randomize_(model, seed=seed)
    write_safetensors(os.path.join(folder, "diffusion_pytorch_model.safetensors"), dict(model.state_dict()),
                      {"format": "pt", "generator": GENERATOR})
    c, s = cfg["in_channels"], cfg["sample_size"]
    g = torch.Generator().manual_seed(seed + 1000)
    with torch.no_grad():
        x = torch.randn(3, c, s, s, generator=g)
        t = torch.tensor([0, 500, 999], dtype=torch.int64)
        y = torch.tensor(labels[:3], dtype=torch.int64) if labels is not None else None
        out = model(x, t, y)
    io = {"x": x, "t": t, "out": out}
    if y is not None:
        io["y"] = y
    write_safetensors(os.path.join(folder, "io.safetensors"), io, {"generator": GENERATOR,
                                                                   "torch": torch.__version__})
    noise = torch.randn(2, c, s, s, generator=g)
    yd = torch.tensor(labels[3:5], dtype=torch.int64) if labels is not None else None
    with torch.no_grad():
        traj = ddim_sample_loop(sched_global, lambda xx, tt: model(xx, tt, yd), noise)
    tensors = {"noise": noise, "samples": traj[-1]}
    if yd is not None:
        tensors["y"] = yd
    for k, xk in enumerate(traj):
        tensors[f"xt_{k}"] = xk
    write_safetensors(os.path.join(folder, "ddim.safetensors"), tensors,
                      ddim_metadata(sched_global, guidance="none"))
    print(f"{name}: out max|.| {out.abs().max():.3f}, ddim samples max|.| {traj[-1].abs().max():.3f}")
    return model


sched_global = None


def main():
    global sched_global
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    check_and_write_keys()
    sched_global = SpacedSchedule(linear_betas(1000), space_timesteps(1000, "ddim10"))
    assert sched_global.timestep_map == list(range(0, 1000, 100))
    only = set(sys.argv[1:])
    if not only or "dit" in only:
        make_dit(sched_global)
    if not only or "unet" in only:
        make_unet("unet-small", UNET_SMALL, seed=3001, labels=None)
        make_unet("unet-small-cls", UNET_SMALL_CLS, seed=4001, labels=[0, 4, 9, 3, 6])
    total = 0
    for root, _, files in os.walk(OUT):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    print(f"golden total size: {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
