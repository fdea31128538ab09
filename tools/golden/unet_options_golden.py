"""Golden file for the UNet2DModel options that tools/golden/make_golden.py's models do not exercise: fourier time
embedding (GaussianFourierProjection, output divided by sigma), class_embed_type "timestep", downsample_type /
upsample_type "resnet" (ResnetBlock2D with down/up), center_input_sample, mid_block_scale_factor != 1,
attn_norm_num_groups, time_embedding_dim, resnet_time_scale_shift "scale_shift" and an attention_head_dim that does
not divide the channels (inner dim < channels).

The model below is an independent PyTorch re-implementation of diffusers' UNet2DModel written from a reading of
huggingface/diffusers src/diffusers/models/unets/unet_2d.py, unet_2d_blocks.py, resnet.py, embeddings.py,
attention_processor.py (AttnProcessor), downsampling.py and upsampling.py (no diffusers code copied); it is not
the verified-bit-identical tools/golden/torch_models.py, which does not implement these options.

    /usr/bin/python3 tools/golden/unet_options_golden.py    # writes engine/src/test/resources/golden/unet-options/
"""
import json
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_models import save_safetensors  # noqa: E402

class Resnet(nn.Module):
    def __init__(self, cin, cout, temb, groups, eps, tss, osf, up=False, down=False):
        super().__init__()
        self.tss, self.osf, self.up, self.down = tss, osf, up, down
        self.norm1 = nn.GroupNorm(groups, cin, eps=eps)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb, cout * (2 if tss == "scale_shift" else 1))
        self.norm2 = nn.GroupNorm(groups, cout, eps=eps)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, temb):
        h = F.silu(self.norm1(x))
        if self.up:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
            h = F.interpolate(h, scale_factor=2.0, mode="nearest")
        elif self.down:
            x = F.avg_pool2d(x, 2, 2)
            h = F.avg_pool2d(h, 2, 2)
        h = self.conv1(h)
        t = self.time_emb_proj(F.silu(temb))[:, :, None, None]
        if self.tss == "default":
            h = self.norm2(h + t)
        else:
            sc, sh = torch.chunk(t, 2, dim=1)
            h = self.norm2(h) * (1 + sc) + sh
        h = self.conv2(F.silu(h))
        if self.conv_shortcut is not None:
            x = self.conv_shortcut(x)
        return (x + h) / self.osf


class Attn(nn.Module):
    def __init__(self, c, head_dim, groups, eps, rescale):
        super().__init__()
        self.heads = c // head_dim
        self.d = head_dim
        inner = self.heads * head_dim
        self.rescale = rescale
        self.group_norm = nn.GroupNorm(groups, c, eps=eps) if groups is not None else None
        self.to_q = nn.Linear(c, inner)
        self.to_k = nn.Linear(c, inner)
        self.to_v = nn.Linear(c, inner)
        self.to_out = nn.ModuleList([nn.Linear(inner, c)])

    def forward(self, x):
        b, c, hh, ww = x.shape
        res = x
        h = x.view(b, c, hh * ww).transpose(1, 2)
        if self.group_norm is not None:
            h = self.group_norm(h.transpose(1, 2)).transpose(1, 2)
        q, k, v = self.to_q(h), self.to_k(h), self.to_v(h)

        def split(z):
            return z.reshape(b, -1, self.heads, self.d).permute(0, 2, 1, 3).reshape(b * self.heads, -1, self.d)

        q, k, v = split(q), split(k), split(v)
        s = torch.baddbmm(torch.empty(q.shape[0], q.shape[1], k.shape[1]), q, k.transpose(-1, -2), beta=0,
                          alpha=self.d ** -0.5)
        p = s.float().softmax(dim=-1)
        o = torch.bmm(p, v)
        o = o.reshape(b, self.heads, -1, self.d).permute(0, 2, 1, 3).reshape(b, -1, self.heads * self.d)
        o = self.to_out[0](o)
        o = o.transpose(-1, -2).reshape(b, c, hh, ww)
        return (o + res) / self.rescale


class Down(nn.Module):
    def __init__(self, c, padding):
        super().__init__()
        self.padding = padding
        self.conv = nn.Conv2d(c, c, 3, stride=2, padding=padding)

    def forward(self, x):
        if self.padding == 0:
            x = F.pad(x, (0, 1, 0, 1))
        return self.conv(x)


class Up(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Block(nn.Module):
    pass


class UNet(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        g = lambda k, d: cfg.get(k, d) if cfg.get(k, d) is not None or d is None else d
        self.cfg = cfg
        boc = cfg["block_out_channels"]
        lpb = g("layers_per_block", 2)
        eps = g("norm_eps", 1e-5)
        groups = g("norm_num_groups", 32)
        tss = g("resnet_time_scale_shift", "default")
        ahd = cfg.get("attention_head_dim", 8)
        temb = cfg.get("time_embedding_dim") or boc[0] * 4
        self.tet = g("time_embedding_type", "positional")
        self.flip = g("flip_sin_to_cos", True)
        self.shift = g("freq_shift", 0)
        self.c0 = boc[0]
        if self.tet == "fourier":
            self.time_proj = nn.Module()
            self.time_proj.weight = nn.Parameter(torch.randn(boc[0]) * 16, requires_grad=False)
            tin = 2 * boc[0]
        else:
            tin = boc[0]
        self.time_embedding = nn.Module()
        self.time_embedding.linear_1 = nn.Linear(tin, temb)
        self.time_embedding.linear_2 = nn.Linear(temb, temb)
        cet, nce = cfg.get("class_embed_type"), cfg.get("num_class_embeds")
        self.cet = cet
        if cet is None and nce is not None:
            self.class_embedding = nn.Embedding(nce, temb)
        elif cet == "timestep":
            self.class_embedding = nn.Module()
            self.class_embedding.linear_1 = nn.Linear(tin, temb)
            self.class_embedding.linear_2 = nn.Linear(temb, temb)
        else:
            self.class_embedding = None
        self.conv_in = nn.Conv2d(cfg.get("in_channels", 3), boc[0], 3, padding=1)
        dtype = g("downsample_type", "conv")
        utype = g("upsample_type", "conv")
        pad = g("downsample_padding", 1)
        self.down_blocks = nn.ModuleList()
        out = boc[0]
        for i, t in enumerate(cfg["down_block_types"]):
            cin, out = out, boc[i]
            final = i == len(boc) - 1
            blk = Block()
            blk.attn = t == "AttnDownBlock2D"
            blk.resnets = nn.ModuleList([Resnet(cin if j == 0 else out, out, temb, groups, eps, tss, 1.0)
                                         for j in range(lpb)])
            if blk.attn:
                blk.attentions = nn.ModuleList([Attn(out, ahd or out, groups, eps, 1.0) for _ in range(lpb)])
            if not final:
                if blk.attn and dtype == "resnet":
                    blk.downsamplers = nn.ModuleList([Resnet(out, out, temb, groups, eps, tss, 1.0, down=True)])
                    blk.rdown = True
                else:
                    blk.downsamplers = nn.ModuleList([Down(out, pad)])
                    blk.rdown = False
            else:
                blk.downsamplers = None
            self.down_blocks.append(blk)
        msf = g("mid_block_scale_factor", 1)
        c = boc[-1]
        self.mid_block = Block()
        self.mid_block.resnets = nn.ModuleList([Resnet(c, c, temb, groups, eps, tss, msf) for _ in range(2)])
        attn_groups = cfg.get("attn_norm_num_groups")
        if attn_groups is None:
            attn_groups = groups if tss == "default" else None
        self.mid_attn = g("add_attention", True)
        if self.mid_attn:
            self.mid_block.attentions = nn.ModuleList([Attn(c, ahd or c, attn_groups, eps, msf)])
        rev = list(reversed(boc))
        out = rev[0]
        self.up_blocks = nn.ModuleList()
        for i, t in enumerate(cfg["up_block_types"]):
            prev, out = out, rev[i]
            cin = rev[min(i + 1, len(boc) - 1)]
            final = i == len(boc) - 1
            blk = Block()
            blk.attn = t == "AttnUpBlock2D"
            n = lpb + 1
            rs = []
            for j in range(n):
                skip = cin if j == n - 1 else out
                rin = prev if j == 0 else out
                rs.append(Resnet(rin + skip, out, temb, groups, eps, tss, 1.0))
            blk.resnets = nn.ModuleList(rs)
            if blk.attn:
                blk.attentions = nn.ModuleList([Attn(out, ahd or out, groups, eps, 1.0) for _ in range(n)])
            if not final:
                if blk.attn and utype == "resnet":
                    blk.upsamplers = nn.ModuleList([Resnet(out, out, temb, groups, eps, tss, 1.0, up=True)])
                    blk.rup = True
                else:
                    blk.upsamplers = nn.ModuleList([Up(out)])
                    blk.rup = False
            else:
                blk.upsamplers = None
            self.up_blocks.append(blk)
        self.conv_norm_out = nn.GroupNorm(groups, boc[0], eps=eps)
        self.conv_out = nn.Conv2d(boc[0], cfg.get("out_channels", 3), 3, padding=1)

    def proj(self, t):
        if self.tet == "fourier":
            xp = torch.log(t)[:, None] * self.time_proj.weight[None, :] * 2 * math.pi
            return torch.cat([torch.sin(xp), torch.cos(xp)], dim=-1)
        half = self.c0 // 2
        e = -math.log(10000) * torch.arange(0, half, dtype=torch.float32) / (half - self.shift)
        e = t[:, None].float() * torch.exp(e)[None, :]
        e = torch.cat([torch.sin(e), torch.cos(e)], dim=-1)
        if self.flip:
            e = torch.cat([e[:, half:], e[:, :half]], dim=-1)
        if self.c0 % 2 == 1:
            e = F.pad(e, (0, 1, 0, 0))
        return e

    def forward(self, x, t, y=None):
        if self.cfg.get("center_input_sample"):
            x = 2 * x - 1.0
        te = self.time_embedding
        emb = te.linear_2(F.silu(te.linear_1(self.proj(t))))
        if self.class_embedding is not None:
            if self.cet == "timestep":
                ce = self.class_embedding
                emb = emb + ce.linear_2(F.silu(ce.linear_1(self.proj(y))))
            else:
                emb = emb + self.class_embedding(y)
        h = self.conv_in(x)
        res = [h]
        for blk in self.down_blocks:
            for j, r in enumerate(blk.resnets):
                h = r(h, emb)
                if blk.attn:
                    h = blk.attentions[j](h)
                res.append(h)
            if blk.downsamplers is not None:
                h = blk.downsamplers[0](h, emb) if blk.rdown else blk.downsamplers[0](h)
                res.append(h)
        m = self.mid_block
        h = m.resnets[0](h, emb)
        if self.mid_attn:
            h = m.attentions[0](h)
        h = m.resnets[1](h, emb)
        for blk in self.up_blocks:
            for j, r in enumerate(blk.resnets):
                h = torch.cat([h, res.pop()], dim=1)
                h = r(h, emb)
                if blk.attn:
                    h = blk.attentions[j](h)
            if blk.upsamplers is not None:
                h = blk.upsamplers[0](h, emb) if blk.rup else blk.upsamplers[0](h)
        h = self.conv_out(F.silu(self.conv_norm_out(h)))
        if self.tet == "fourier":
            h = h / t.reshape(-1, 1, 1, 1)
        return h



CONFIG = {
    "_class_name": "UNet2DModel", "sample_size": 8, "in_channels": 2, "out_channels": 3,
    "block_out_channels": [8, 12], "layers_per_block": 1,
    "down_block_types": ["AttnDownBlock2D", "AttnDownBlock2D"], "up_block_types": ["AttnUpBlock2D", "AttnUpBlock2D"],
    "norm_num_groups": 4, "attention_head_dim": 5, "time_embedding_type": "fourier", "class_embed_type": "timestep",
    "downsample_type": "resnet", "upsample_type": "resnet", "center_input_sample": True, "mid_block_scale_factor": 2.0,
    "time_embedding_dim": 20, "attn_norm_num_groups": 2, "resnet_time_scale_shift": "scale_shift", "norm_eps": 1e-5,
    "flip_sin_to_cos": True, "freq_shift": 0,
}


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "engine", "src", "test", "resources",
                       "golden", "unet-options")
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(5001)
    torch.set_num_threads(1)
    model = UNet(CONFIG).eval()
    with torch.no_grad():
        for k, v in model.state_dict().items():
            if k == "time_proj.weight":
                v.copy_(torch.randn_like(v) * 2)
            elif "norm" in k and k.endswith(".weight"):
                v.copy_(1 + 0.2 * torch.randn_like(v))
            else:
                v.copy_(0.2 * torch.randn_like(v))
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(CONFIG, f, indent=2, sort_keys=True)
        f.write("\n")
    save_safetensors(os.path.join(out, "diffusion_pytorch_model.safetensors"), dict(model.state_dict()),
                     {"format": "pt", "generator": "tools/golden/unet_options_golden.py"})
    x = torch.randn(3, 2, 8, 8)
    t = torch.tensor([0.5, 2.0, 10.0])
    y = torch.tensor([1, 7, 42], dtype=torch.int64)
    with torch.no_grad():
        o = model(x, t, y)
    save_safetensors(os.path.join(out, "io.safetensors"), {"x": x, "t": t, "y": y, "out": o},
                     {"generator": "tools/golden/unet_options_golden.py", "torch": torch.__version__})
    print("unet-options: %d parameters, out max|.| %.3f" % (sum(v.numel() for v in model.state_dict().values()),
                                                              o.abs().max().item()))


if __name__ == "__main__":
    main()
