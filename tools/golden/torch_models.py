"""PyTorch re-implementations of the two reference denoisers, plus a tiny safetensors reader/writer.

Used by tools/golden/make_golden.py (golden files for the Java engine) and tools/bench/torch_bench.py
(the PyTorch peer of the engine benchmark). Written from scratch after reading the reference code:

  * facebookresearch/DiT  models.py            -> DiT, DiTBlock, FinalLayer, TimestepEmbedder, LabelEmbedder,
                                                   2-D sin-cos pos_embed, forward_with_cfg
  * timm  models/vision_transformer.py,
          layers/patch_embed.py, layers/mlp.py -> PatchEmbed, Attention, Mlp (as imported by DiT's models.py)
  * huggingface/diffusers  src/diffusers/models/
          unets/unet_2d.py                     -> UNet2DModel
          unets/unet_2d_blocks.py              -> DownBlock2D, AttnDownBlock2D, UpBlock2D, AttnUpBlock2D,
                                                   UNetMidBlock2D
          resnet.py                            -> ResnetBlock2D
          embeddings.py                        -> Timesteps (get_timestep_embedding), TimestepEmbedding
          attention_processor.py               -> Attention (+ AttnProcessor math) as used by UNet2DModel
          downsampling.py / upsampling.py      -> Downsample2D / Upsample2D

Module attribute names are chosen so that state_dict() keys equal those of the reference implementations
(e.g. "blocks.0.adaLN_modulation.1.weight", "down_blocks.1.attentions.0.to_out.0.weight").
Only the inference paths are implemented (no dropout, no label dropout, no gradient checkpointing).
"""
import json
import math
import struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


# ============================================================================================ safetensors
_DTYPES = {
    torch.float32: ("F32", "<f4"),
    torch.int64: ("I64", "<i8"),
}
_NP_FROM_CODE = {"F32": "<f4", "I64": "<i8", "F16": "<f2", "BF16": None, "I32": "<i4", "F64": "<f8"}


def save_safetensors(path, tensors, metadata=None):
    """Writes a safetensors file: u64 LE header length, JSON header (space-padded to a multiple of 8),
    then the raw little-endian tensor bytes, tensors laid out in sorted name order. Deterministic."""
    names = sorted(tensors)
    header = {}
    blobs = []
    offset = 0
    for name in names:
        t = tensors[name]
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor, got {type(t)}")
        if t.dtype not in _DTYPES:
            raise TypeError(f"{name}: unsupported dtype {t.dtype} (only float32 and int64)")
        code, npdt = _DTYPES[t.dtype]
        data = t.detach().cpu().contiguous().numpy().astype(npdt, copy=False).tobytes(order="C")
        header[name] = {"dtype": code, "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in sorted(metadata.items())}
    hjson = json.dumps(header, separators=(",", ":"), sort_keys=False).encode("utf-8")
    pad = (-len(hjson)) % 8
    hjson += b" " * pad
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for b in blobs:
            f.write(b)


def load_safetensors(path):
    """Reads a safetensors file written by any writer (F32/F16/F64/I32/I64). Returns (dict name->tensor, metadata)."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError(f"{path}: too short for a safetensors file")
    (n,) = struct.unpack("<Q", raw[:8])
    if 8 + n > len(raw):
        raise ValueError(f"{path}: header length {n} exceeds file size {len(raw)}")
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    base = 8 + n
    meta = header.pop("__metadata__", {}) or {}
    out = {}
    for name, info in header.items():
        code = info["dtype"]
        npdt = _NP_FROM_CODE.get(code)
        if npdt is None:
            raise ValueError(f"{path}: tensor {name}: unsupported dtype {code}")
        b, e = info["data_offsets"]
        arr = np.frombuffer(raw, dtype=npdt, count=(e - b) // np.dtype(npdt).itemsize, offset=base + b)
        arr = arr.reshape(info["shape"]).copy()
        t = torch.from_numpy(arr)
        if t.dtype in (torch.float16, torch.float64):
            t = t.float()
        out[name] = t
    return out, meta


# ============================================================================================ DiT
def modulate(x, shift, scale):
    """adaLN modulation of DiT models.py: x * (1 + scale) + shift, broadcast over tokens."""
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class PatchEmbed(nn.Module):
    """timm layers/patch_embed.py PatchEmbed (flatten=True, no norm): conv k=p stride=p, then (N, T, D)."""

    def __init__(self, img_size, patch_size, in_chans, embed_dim, bias=True):
        super().__init__()
        self.img_size = (img_size, img_size)
        self.patch_size = (patch_size, patch_size)
        self.grid_size = (img_size // patch_size, img_size // patch_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size, bias=bias)

    def forward(self, x):
        if tuple(x.shape[2:]) != self.img_size:
            raise ValueError(f"PatchEmbed: input size {tuple(x.shape[2:])} != {self.img_size}")
        y = self.proj(x)                       # (N, D, H/p, W/p)
        return y.flatten(2).transpose(1, 2)    # (N, T, D), token index = row * (W/p) + col


class Attention(nn.Module):
    """timm models/vision_transformer.py Attention: fused qkv Linear, softmax(q k^T * hd^-0.5) v, proj."""

    def __init__(self, dim, num_heads=8, qkv_bias=False):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        n, t, c = x.shape
        qkv = self.qkv(x).reshape(n, t, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]       # (N, heads, T, hd)
        q = q * self.scale
        a = (q @ k.transpose(-2, -1)).softmax(dim=-1)
        y = (a @ v).transpose(1, 2).reshape(n, t, c)
        return self.proj(y)


class Mlp(nn.Module):
    """timm layers/mlp.py Mlp: fc1 -> GELU(tanh approximation, as DiT passes) -> fc2."""

    def __init__(self, in_features, hidden_features):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU(approximate="tanh")
        self.fc2 = nn.Linear(hidden_features, in_features)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class TimestepEmbedder(nn.Module):
    """DiT models.py TimestepEmbedder: GLIDE sinusoidal [cos | sin] (dim 256, max_period 1e4) -> MLP(SiLU)."""

    def __init__(self, hidden_size, frequency_embedding_size=256):
        super().__init__()
        self.frequency_embedding_size = frequency_embedding_size
        self.mlp = nn.Sequential(
            nn.Linear(frequency_embedding_size, hidden_size, bias=True),
            nn.SiLU(),
            nn.Linear(hidden_size, hidden_size, bias=True),
        )

    @staticmethod
    def timestep_embedding(t, dim, max_period=10000):
        half = dim // 2
        k = torch.arange(0, half, dtype=torch.float32)
        freqs = torch.exp(-math.log(max_period) * k / half)
        args = t[:, None].float() * freqs[None]
        emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
        if dim % 2:
            emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
        return emb

    def forward(self, t):
        return self.mlp(self.timestep_embedding(t, self.frequency_embedding_size))


class LabelEmbedder(nn.Module):
    """DiT models.py LabelEmbedder: table of num_classes (+1 null class when dropout_prob > 0) rows."""

    def __init__(self, num_classes, hidden_size, dropout_prob):
        super().__init__()
        self.num_classes = num_classes
        self.dropout_prob = dropout_prob
        self.embedding_table = nn.Embedding(num_classes + (1 if dropout_prob > 0 else 0), hidden_size)

    def forward(self, labels):
        # Inference only: no token dropping (the null class is selected by passing label num_classes).
        return self.embedding_table(labels)


class DiTBlock(nn.Module):
    """DiT models.py DiTBlock: adaLN-Zero conditioned attention + MLP, LayerNorm(no affine, eps 1e-6)."""

    def __init__(self, hidden_size, num_heads, mlp_ratio=4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(hidden_size, num_heads=num_heads, qkv_bias=True)
        self.norm2 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(hidden_size, int(hidden_size * mlp_ratio))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 6 * hidden_size, bias=True))

    def forward(self, x, c):
        sh_a, sc_a, g_a, sh_m, sc_m, g_m = self.adaLN_modulation(c).chunk(6, dim=1)
        x = x + g_a.unsqueeze(1) * self.attn(modulate(self.norm1(x), sh_a, sc_a))
        x = x + g_m.unsqueeze(1) * self.mlp(modulate(self.norm2(x), sh_m, sc_m))
        return x


class FinalLayer(nn.Module):
    """DiT models.py FinalLayer: adaLN (shift, scale) on LayerNorm, then Linear to p*p*out_channels."""

    def __init__(self, hidden_size, patch_size, out_channels):
        super().__init__()
        self.norm_final = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(hidden_size, patch_size * patch_size * out_channels, bias=True)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 2 * hidden_size, bias=True))

    def forward(self, x, c):
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)
        return self.linear(modulate(self.norm_final(x), shift, scale))


def sincos_1d(dim, positions):
    """MAE util/pos_embed.py 1-D table (float64): [sin(pos*omega) | cos(pos*omega)], omega_k = 1e4^(-k/(dim/2))."""
    if dim % 2:
        raise ValueError("sin-cos embedding dim must be even")
    omega = np.arange(dim // 2, dtype=np.float64)
    omega /= dim / 2.0
    omega = 1.0 / 10000 ** omega
    out = np.outer(positions.reshape(-1).astype(np.float64), omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def get_2d_sincos_pos_embed(embed_dim, grid_size):
    """DiT/MAE 2-D table, (G*G, D) float64: token r*G+c gets [1-D(D/2, c) | 1-D(D/2, r)]
    (the reference meshgrid puts the column coordinate first)."""
    if embed_dim % 2:
        raise ValueError("embed_dim must be even")
    coords = np.arange(grid_size, dtype=np.float32)
    col, row = np.meshgrid(coords, coords)     # col[r, c] = c, row[r, c] = r
    return np.concatenate([sincos_1d(embed_dim // 2, col), sincos_1d(embed_dim // 2, row)], axis=1)


class DiT(nn.Module):
    """facebookresearch/DiT models.py DiT (inference): patchify + pos_embed, adaLN-Zero blocks, unpatchify."""

    def __init__(self, input_size=32, patch_size=2, in_channels=4, hidden_size=1152, depth=28, num_heads=16,
                 mlp_ratio=4.0, class_dropout_prob=0.1, num_classes=1000, learn_sigma=True):
        super().__init__()
        self.learn_sigma = learn_sigma
        self.in_channels = in_channels
        self.out_channels = in_channels * 2 if learn_sigma else in_channels
        self.patch_size = patch_size
        self.num_heads = num_heads
        self.num_classes = num_classes
        self.x_embedder = PatchEmbed(input_size, patch_size, in_channels, hidden_size, bias=True)
        self.t_embedder = TimestepEmbedder(hidden_size)
        self.y_embedder = LabelEmbedder(num_classes, hidden_size, class_dropout_prob)
        n = self.x_embedder.num_patches
        self.pos_embed = nn.Parameter(torch.zeros(1, n, hidden_size), requires_grad=False)
        self.blocks = nn.ModuleList([DiTBlock(hidden_size, num_heads, mlp_ratio) for _ in range(depth)])
        self.final_layer = FinalLayer(hidden_size, patch_size, self.out_channels)
        self.reset_pos_embed()

    def reset_pos_embed(self):
        g = int(self.x_embedder.num_patches ** 0.5)
        table = get_2d_sincos_pos_embed(self.pos_embed.shape[-1], g)
        with torch.no_grad():
            self.pos_embed.copy_(torch.from_numpy(table).float().unsqueeze(0))

    def unpatchify(self, x):
        """(N, T, p*p*C) -> (N, C, H, W); the patch vector is ordered (p_row, p_col, channel)."""
        c = self.out_channels
        p = self.patch_size
        h = w = int(round(x.shape[1] ** 0.5))
        if h * w != x.shape[1]:
            raise ValueError("unpatchify: token count is not a square")
        x = x.reshape(x.shape[0], h, w, p, p, c)
        x = x.permute(0, 5, 1, 3, 2, 4)          # n c h p w q
        return x.reshape(x.shape[0], c, h * p, w * p)

    def forward(self, x, t, y):
        x = self.x_embedder(x) + self.pos_embed
        c = self.t_embedder(t) + self.y_embedder(y)
        for block in self.blocks:
            x = block(x, c)
        return self.unpatchify(self.final_layer(x, c))

    def forward_with_cfg(self, x, t, y, cfg_scale, guided_channels=3):
        """DiT models.py forward_with_cfg. guided_channels=3 is the official default ("exact reproducibility"),
        guided_channels=in_channels is the standard all-channel guidance on eps (the commented-out variant)."""
        half = x[: len(x) // 2]
        out = self.forward(torch.cat([half, half], dim=0), t, y)
        eps, rest = out[:, :guided_channels], out[:, guided_channels:]
        cond, uncond = torch.split(eps, len(eps) // 2, dim=0)
        half_eps = uncond + cfg_scale * (cond - uncond)
        return torch.cat([torch.cat([half_eps, half_eps], dim=0), rest], dim=1)


DIT_CONFIG_KEYS = ("input_size", "patch_size", "in_channels", "hidden_size", "depth", "num_heads", "mlp_ratio",
                   "class_dropout_prob", "num_classes", "learn_sigma")


def dit_from_config(cfg):
    return DiT(**{k: cfg[k] for k in DIT_CONFIG_KEYS if k in cfg})


# ============================================================================================ UNet2DModel
def _act(name):
    if name in ("silu", "swish"):
        return nn.SiLU()
    if name == "gelu":
        return nn.GELU()
    if name == "mish":
        return nn.Mish()
    if name == "relu":
        return nn.ReLU()
    raise ValueError(f"unsupported act_fn {name!r}")


def get_timestep_embedding(timesteps, embedding_dim, flip_sin_to_cos=False, downscale_freq_shift=1.0,
                           scale=1.0, max_period=10000):
    """diffusers embeddings.py get_timestep_embedding: freq_k = exp(-ln(max_period) k / (half - shift)),
    [sin | cos] (or [cos | sin] when flip_sin_to_cos), zero pad when odd."""
    half = embedding_dim // 2
    expo = -math.log(max_period) * torch.arange(0, half, dtype=torch.float32)
    expo = expo / (half - downscale_freq_shift)
    args = timesteps[:, None].float() * torch.exp(expo)[None, :]
    args = scale * args
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=-1)
    if flip_sin_to_cos:
        emb = torch.cat([emb[:, half:], emb[:, :half]], dim=-1)
    if embedding_dim % 2 == 1:
        emb = F.pad(emb, (0, 1, 0, 0))
    return emb


class Timesteps(nn.Module):
    """diffusers embeddings.py Timesteps (no parameters)."""

    def __init__(self, num_channels, flip_sin_to_cos, downscale_freq_shift):
        super().__init__()
        self.num_channels = num_channels
        self.flip_sin_to_cos = flip_sin_to_cos
        self.downscale_freq_shift = downscale_freq_shift

    def forward(self, t):
        return get_timestep_embedding(t, self.num_channels, self.flip_sin_to_cos, self.downscale_freq_shift)


class TimestepEmbedding(nn.Module):
    """diffusers embeddings.py TimestepEmbedding: linear_1 -> act -> linear_2."""

    def __init__(self, in_channels, time_embed_dim, act_fn="silu"):
        super().__init__()
        self.linear_1 = nn.Linear(in_channels, time_embed_dim)
        self.act = _act(act_fn)
        self.linear_2 = nn.Linear(time_embed_dim, time_embed_dim)

    def forward(self, x):
        return self.linear_2(self.act(self.linear_1(x)))


class ResnetBlock2D(nn.Module):
    """diffusers resnet.py ResnetBlock2D (pre-norm; time_embedding_norm "default" adds proj(act(temb)) before
    norm2, "scale_shift" applies norm2(h) * (1 + scale) + shift; 1x1 conv_shortcut when channels change;
    output (shortcut + h) / output_scale_factor)."""

    def __init__(self, in_channels, out_channels, temb_channels, groups, eps, act_fn="silu",
                 time_embedding_norm="default", output_scale_factor=1.0):
        super().__init__()
        self.time_embedding_norm = time_embedding_norm
        self.output_scale_factor = output_scale_factor
        self.norm1 = nn.GroupNorm(groups, in_channels, eps=eps, affine=True)
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=1)
        if time_embedding_norm == "default":
            self.time_emb_proj = nn.Linear(temb_channels, out_channels)
        elif time_embedding_norm == "scale_shift":
            self.time_emb_proj = nn.Linear(temb_channels, 2 * out_channels)
        else:
            raise ValueError(f"unsupported resnet_time_scale_shift {time_embedding_norm!r}")
        self.norm2 = nn.GroupNorm(groups, out_channels, eps=eps, affine=True)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, stride=1, padding=1)
        self.nonlinearity = _act(act_fn)
        self.conv_shortcut = (nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=1, padding=0)
                              if in_channels != out_channels else None)

    def forward(self, x, temb):
        h = self.conv1(self.nonlinearity(self.norm1(x)))
        e = self.time_emb_proj(self.nonlinearity(temb))[:, :, None, None]
        if self.time_embedding_norm == "default":
            h = self.norm2(h + e)
        else:
            scale, shift = torch.chunk(e, 2, dim=1)
            h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.nonlinearity(h))
        skip = self.conv_shortcut(x) if self.conv_shortcut is not None else x
        return (skip + h) / self.output_scale_factor


class AttentionBlock(nn.Module):
    """diffusers attention_processor.py Attention as UNet2DModel builds it (_from_deprecated_attn_block):
    optional group_norm, to_q/to_k/to_v/to_out.0 with bias, heads = C // attention_head_dim,
    scale dim_head^-0.5, float32 softmax, residual connection, then / rescale_output_factor."""

    def __init__(self, channels, heads, dim_head, norm_num_groups, eps, rescale_output_factor=1.0):
        super().__init__()
        self.heads = heads
        self.dim_head = dim_head
        self.scale = dim_head ** -0.5
        self.rescale_output_factor = rescale_output_factor
        inner = heads * dim_head
        self.group_norm = (nn.GroupNorm(norm_num_groups, channels, eps=eps, affine=True)
                           if norm_num_groups is not None else None)
        self.to_q = nn.Linear(channels, inner, bias=True)
        self.to_k = nn.Linear(channels, inner, bias=True)
        self.to_v = nn.Linear(channels, inner, bias=True)
        self.to_out = nn.ModuleList([nn.Linear(inner, channels, bias=True), nn.Dropout(0.0)])

    def forward(self, x):
        n, c, hh, ww = x.shape
        residual = x
        h = x.view(n, c, hh * ww).transpose(1, 2)                         # (N, L, C)
        if self.group_norm is not None:
            h = self.group_norm(h.transpose(1, 2)).transpose(1, 2)

        def split(t):                                                     # (N, L, heads*d) -> (N*heads, L, d)
            return t.reshape(n, -1, self.heads, self.dim_head).permute(0, 2, 1, 3).reshape(
                n * self.heads, -1, self.dim_head)

        q, k, v = split(self.to_q(h)), split(self.to_k(h)), split(self.to_v(h))
        scores = torch.bmm(q, k.transpose(1, 2)) * self.scale
        probs = scores.float().softmax(dim=-1).to(q.dtype)       # upcast_softmax, then back to the input dtype
        o = torch.bmm(probs, v)
        o = o.reshape(n, self.heads, -1, self.dim_head).permute(0, 2, 1, 3).reshape(n, -1, self.heads * self.dim_head)
        o = self.to_out[0](o)
        o = o.transpose(1, 2).reshape(n, c, hh, ww)
        return (o + residual) / self.rescale_output_factor


class Downsample2D(nn.Module):
    """diffusers downsampling.py Downsample2D(use_conv=True, name="op"): 3x3 conv stride 2; with padding 0
    the input is first padded (0, 1, 0, 1) on the right/bottom (the DDPM CIFAR-10 layout)."""

    def __init__(self, channels, padding):
        super().__init__()
        self.padding = padding
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, stride=2, padding=padding)

    def forward(self, x):
        if self.padding == 0:
            x = F.pad(x, (0, 1, 0, 1), mode="constant", value=0)
        return self.conv(x)


class Upsample2D(nn.Module):
    """diffusers upsampling.py Upsample2D(use_conv=True): nearest 2x, then 3x3 conv padding 1."""

    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class DownBlock2D(nn.Module):
    """diffusers unet_2d_blocks.py DownBlock2D / AttnDownBlock2D (with_attention): each resnet (and attention)
    output is a skip; the downsampler output is one more skip."""

    def __init__(self, num_layers, in_channels, out_channels, temb_channels, add_downsample, eps, act_fn, groups,
                 downsample_padding, time_scale_shift, with_attention=False, attention_head_dim=None):
        super().__init__()
        resnets = [ResnetBlock2D(in_channels if i == 0 else out_channels, out_channels, temb_channels, groups, eps,
                                 act_fn, time_scale_shift) for i in range(num_layers)]
        # diffusers registers attentions before resnets (state_dict order)
        if with_attention:
            d = attention_head_dim if attention_head_dim is not None else out_channels
            self.attentions = nn.ModuleList([
                AttentionBlock(out_channels, out_channels // d, d, groups, eps) for _ in range(num_layers)])
        else:
            self.attentions = None
        self.resnets = nn.ModuleList(resnets)
        self.downsamplers = (nn.ModuleList([Downsample2D(out_channels, downsample_padding)])
                             if add_downsample else None)

    def forward(self, h, temb):
        skips = []
        for i, resnet in enumerate(self.resnets):
            h = resnet(h, temb)
            if self.attentions is not None:
                h = self.attentions[i](h)
            skips.append(h)
        if self.downsamplers is not None:
            h = self.downsamplers[0](h)
            skips.append(h)
        return h, skips


class UpBlock2D(nn.Module):
    """diffusers unet_2d_blocks.py UpBlock2D / AttnUpBlock2D (with_attention): each resnet takes
    cat([h, skip.pop()], dim=1); resnet i has input prev_output_channel (i=0) or out_channels, plus skip
    channels in_channels (last resnet) or out_channels; nearest 2x + conv upsampler unless final."""

    def __init__(self, num_layers, in_channels, prev_output_channel, out_channels, temb_channels, add_upsample,
                 eps, act_fn, groups, time_scale_shift, with_attention=False, attention_head_dim=None):
        super().__init__()
        res = []
        for i in range(num_layers):
            skip_ch = in_channels if i == num_layers - 1 else out_channels
            in_ch = prev_output_channel if i == 0 else out_channels
            res.append(ResnetBlock2D(in_ch + skip_ch, out_channels, temb_channels, groups, eps, act_fn,
                                     time_scale_shift))
        if with_attention:
            d = attention_head_dim if attention_head_dim is not None else out_channels
            self.attentions = nn.ModuleList([
                AttentionBlock(out_channels, out_channels // d, d, groups, eps) for _ in range(num_layers)])
        else:
            self.attentions = None
        self.resnets = nn.ModuleList(res)
        self.upsamplers = nn.ModuleList([Upsample2D(out_channels)]) if add_upsample else None

    def forward(self, h, skips, temb):
        for i, resnet in enumerate(self.resnets):
            h = torch.cat([h, skips.pop()], dim=1)
            h = resnet(h, temb)
            if self.attentions is not None:
                h = self.attentions[i](h)
        if self.upsamplers is not None:
            h = self.upsamplers[0](h)
        return h


class UNetMidBlock2D(nn.Module):
    """diffusers unet_2d_blocks.py UNetMidBlock2D (num_layers 1): resnets.0 -> attentions.0 -> resnets.1;
    attention group norm only when attn_norm_num_groups is set or resnet_time_scale_shift == "default"."""

    def __init__(self, channels, temb_channels, eps, act_fn, groups, attn_groups, time_scale_shift,
                 output_scale_factor, attention_head_dim, add_attention):
        super().__init__()
        if attn_groups is None:
            attn_groups = groups if time_scale_shift == "default" else None
        d = attention_head_dim if attention_head_dim is not None else channels
        self.attentions = (nn.ModuleList([AttentionBlock(channels, channels // d, d, attn_groups, eps,
                                                         output_scale_factor)])
                           if add_attention else None)
        self.resnets = nn.ModuleList([
            ResnetBlock2D(channels, channels, temb_channels, groups, eps, act_fn, time_scale_shift,
                          output_scale_factor) for _ in range(2)])

    def forward(self, h, temb):
        h = self.resnets[0](h, temb)
        if self.attentions is not None:
            h = self.attentions[0](h)
        return self.resnets[1](h, temb)


UNET_DEFAULTS = {
    "sample_size": None, "in_channels": 3, "out_channels": 3, "center_input_sample": False,
    "time_embedding_type": "positional", "time_embedding_dim": None, "freq_shift": 0, "flip_sin_to_cos": True,
    "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"],
    "mid_block_type": "UNetMidBlock2D",
    "up_block_types": ["AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"],
    "block_out_channels": [224, 448, 672, 896], "layers_per_block": 2, "mid_block_scale_factor": 1,
    "downsample_padding": 1, "downsample_type": "conv", "upsample_type": "conv", "dropout": 0.0,
    "act_fn": "silu", "attention_head_dim": 8, "norm_num_groups": 32, "attn_norm_num_groups": None,
    "norm_eps": 1e-5, "resnet_time_scale_shift": "default", "add_attention": True, "class_embed_type": None,
    "num_class_embeds": None, "num_train_timesteps": None,
}


class UNet2DModel(nn.Module):
    """huggingface/diffusers unets/unet_2d.py UNet2DModel (positional time embedding, conv resampling,
    DownBlock2D/AttnDownBlock2D/UpBlock2D/AttnUpBlock2D, UNetMidBlock2D, optional nn.Embedding class_embedding)."""

    def __init__(self, config):
        super().__init__()
        cfg = dict(UNET_DEFAULTS)
        cfg.update({k: v for k, v in config.items() if not k.startswith("_")})
        self.config = cfg
        if cfg["time_embedding_type"] != "positional":
            raise NotImplementedError("only time_embedding_type 'positional'")
        if cfg["downsample_type"] != "conv" or cfg["upsample_type"] != "conv":
            raise NotImplementedError("only conv down/upsampling")
        if cfg["class_embed_type"] is not None:
            raise NotImplementedError("only class_embed_type null (with or without num_class_embeds)")
        boc = list(cfg["block_out_channels"])
        down_types, up_types = list(cfg["down_block_types"]), list(cfg["up_block_types"])
        if len(down_types) != len(up_types) or len(boc) != len(down_types):
            raise ValueError("block_out_channels, down_block_types and up_block_types must have equal length")
        temb_dim = cfg["time_embedding_dim"] or boc[0] * 4
        eps, act, groups, tss = cfg["norm_eps"], cfg["act_fn"], cfg["norm_num_groups"], cfg["resnet_time_scale_shift"]
        ahd = cfg["attention_head_dim"]

        self.conv_in = nn.Conv2d(cfg["in_channels"], boc[0], kernel_size=3, padding=1)
        self.time_proj = Timesteps(boc[0], cfg["flip_sin_to_cos"], cfg["freq_shift"])
        self.time_embedding = TimestepEmbedding(boc[0], temb_dim)
        self.class_embedding = (nn.Embedding(cfg["num_class_embeds"], temb_dim)
                                if cfg["num_class_embeds"] is not None else None)

        # registration order as in diffusers (down_blocks, up_blocks, then mid_block) -> same state_dict order
        self.down_blocks = nn.ModuleList()
        self.up_blocks = nn.ModuleList()
        out_ch = boc[0]
        for i, kind in enumerate(down_types):
            in_ch, out_ch = out_ch, boc[i]
            if kind not in ("DownBlock2D", "AttnDownBlock2D"):
                raise NotImplementedError(f"down block type {kind}")
            self.down_blocks.append(DownBlock2D(
                cfg["layers_per_block"], in_ch, out_ch, temb_dim, i != len(boc) - 1, eps, act, groups,
                cfg["downsample_padding"], tss, with_attention=(kind == "AttnDownBlock2D"),
                attention_head_dim=ahd if ahd is not None else out_ch))

        if cfg["mid_block_type"] is None:
            self.mid_block = None
        elif cfg["mid_block_type"] == "UNetMidBlock2D":
            self.mid_block = UNetMidBlock2D(boc[-1], temb_dim, eps, act, groups, cfg["attn_norm_num_groups"], tss,
                                            cfg["mid_block_scale_factor"], ahd if ahd is not None else boc[-1],
                                            cfg["add_attention"])
        else:
            raise NotImplementedError(f"mid_block_type {cfg['mid_block_type']}")

        rev = list(reversed(boc))
        out_ch = rev[0]
        for i, kind in enumerate(up_types):
            prev, out_ch = out_ch, rev[i]
            in_ch = rev[min(i + 1, len(boc) - 1)]
            if kind not in ("UpBlock2D", "AttnUpBlock2D"):
                raise NotImplementedError(f"up block type {kind}")
            self.up_blocks.append(UpBlock2D(
                cfg["layers_per_block"] + 1, in_ch, prev, out_ch, temb_dim, i != len(boc) - 1, eps, act, groups,
                tss, with_attention=(kind == "AttnUpBlock2D"), attention_head_dim=ahd if ahd is not None else out_ch))

        g_out = groups if groups is not None else min(boc[0] // 4, 32)
        self.conv_norm_out = nn.GroupNorm(g_out, boc[0], eps=eps)
        self.conv_act = nn.SiLU()          # diffusers hard-codes SiLU here, whatever act_fn says
        self.conv_out = nn.Conv2d(boc[0], cfg["out_channels"], kernel_size=3, padding=1)

    def forward(self, sample, timesteps, class_labels=None):
        if self.config["center_input_sample"]:
            sample = 2 * sample - 1.0
        if timesteps.dim() == 0:
            timesteps = timesteps[None]
        timesteps = timesteps * torch.ones(sample.shape[0], dtype=timesteps.dtype)
        emb = self.time_embedding(self.time_proj(timesteps))
        if self.class_embedding is not None:
            if class_labels is None:
                raise ValueError("class_labels should be provided when doing class conditioning")
            emb = emb + self.class_embedding(class_labels)
        elif class_labels is not None:
            raise ValueError("class_embedding needs to be initialized in order to use class conditioning")
        h = self.conv_in(sample)
        skips = [h]
        for blk in self.down_blocks:
            h, s = blk(h, emb)
            skips.extend(s)
        if self.mid_block is not None:
            h = self.mid_block(h, emb)
        for blk in self.up_blocks:
            h = blk(h, skips, emb)
        if skips:
            raise AssertionError("unconsumed skip connections")
        return self.conv_out(self.conv_act(self.conv_norm_out(h)))


# ============================================================================================ helpers
class no_init:
    """Context manager that turns the default parameter initialisation of nn layers into a no-op, so that a
    large model (DiT-XL/2) can be built cheaply just to inspect its state_dict names and shapes."""
    _targets = (nn.Linear, nn.modules.conv._ConvNd, nn.Embedding, nn.GroupNorm, nn.LayerNorm)

    def __enter__(self):
        self._saved = [(c, c.reset_parameters) for c in self._targets]
        for c in self._targets:
            c.reset_parameters = lambda self_: None
        return self

    def __exit__(self, *exc):
        for c, f in self._saved:
            c.reset_parameters = f
        return False


def load_model_folder(folder):
    """Builds a DiT or UNet2DModel from a product model folder (config.json + safetensors weights)."""
    import os
    with open(os.path.join(folder, "config.json")) as f:
        cfg = json.load(f)
    kind = cfg.get("_class_name")
    if kind == "DiT":
        model = dit_from_config(cfg)
        wfile = "model.safetensors"
    elif kind == "UNet2DModel":
        model = UNet2DModel(cfg)
        wfile = "diffusion_pytorch_model.safetensors"
    else:
        raise ValueError(f"{folder}/config.json: unknown _class_name {kind!r} (expected DiT or UNet2DModel)")
    tensors, _ = load_safetensors(os.path.join(folder, wfile))
    sd = model.state_dict()
    missing = sorted(set(sd) - set(tensors))
    extra = sorted(set(tensors) - set(sd))
    if missing or extra:
        raise ValueError(f"{folder}/{wfile}: missing {missing[:5]} unexpected {extra[:5]}")
    for k, v in sd.items():
        if tuple(tensors[k].shape) != tuple(v.shape):
            raise ValueError(f"{folder}/{wfile}: {k} has shape {tuple(tensors[k].shape)}, expected {tuple(v.shape)}")
    model.load_state_dict(tensors, strict=True)
    model.eval()
    return model, cfg
