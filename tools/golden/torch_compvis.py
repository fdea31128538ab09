"""PyTorch re-implementation of the CompVis / DDIM layout of the DDPM UNet (the CIFAR-10 model of Ho et al.).

Written from scratch after reading ermongroup/ddim models/diffusion.py (= pesser/pytorch_diffusion, the model
Q-Diffusion and TFMQ-DM quantize). Module attribute names follow that code, so state_dict() keys are the
CompVis ones: temb.dense.{0,1}, conv_in, down.{i}.block.{j}.{norm1,conv1,temb_proj,norm2,conv2,nin_shortcut},
down.{i}.attn.{j}.{norm,q,k,v,proj_out} (1x1 convs), down.{i}.downsample.conv, mid.{block_1,attn_1,block_2},
up.{i}.block.{j}, up.{i}.attn.{j}, up.{i}.upsample.conv, norm_out, conv_out.

`up` is indexed by resolution level (up[0] = full resolution), as the reference builds it with insert(0, ...);
the forward pass walks it from the lowest resolution. The one deviation: the GroupNorm group count is a
parameter (the reference hard-codes 32) so that a small random golden model can have 16 channels.
Inference only (dropout omitted), resamp_with_conv=True only.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def timestep_embedding(t, dim):
    """sin | cos with frequencies exp(-ln(10000) k / (half - 1)), zero pad for odd dim."""
    half = dim // 2
    freqs = torch.exp(torch.arange(half, dtype=torch.float32) * -(math.log(10000) / (half - 1)))
    a = t.float()[:, None] * freqs[None, :]
    e = torch.cat([torch.sin(a), torch.cos(a)], dim=1)
    if dim % 2 == 1:
        e = F.pad(e, (0, 1, 0, 0))
    return e


def swish(x):
    return x * torch.sigmoid(x)


def group_norm(c, groups):
    return nn.GroupNorm(groups, c, eps=1e-6, affine=True)


class ResBlock(nn.Module):
    def __init__(self, cin, cout, temb, groups):
        super().__init__()
        self.norm1 = group_norm(cin, groups)
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1)
        self.temb_proj = nn.Linear(temb, cout)
        self.norm2 = group_norm(cout, groups)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        if cin != cout:
            self.nin_shortcut = nn.Conv2d(cin, cout, 1, 1, 0)
        self.cin, self.cout = cin, cout

    def forward(self, x, temb):
        h = self.conv1(swish(self.norm1(x)))
        h = h + self.temb_proj(swish(temb))[:, :, None, None]
        h = self.conv2(swish(self.norm2(h)))
        if self.cin != self.cout:
            x = self.nin_shortcut(x)
        return x + h


class Attn(nn.Module):
    """Single-head spatial self-attention with 1x1-conv projections."""

    def __init__(self, c, groups):
        super().__init__()
        self.norm = group_norm(c, groups)
        self.q = nn.Conv2d(c, c, 1)
        self.k = nn.Conv2d(c, c, 1)
        self.v = nn.Conv2d(c, c, 1)
        self.proj_out = nn.Conv2d(c, c, 1)

    def forward(self, x):
        h = self.norm(x)
        b, c, hh, ww = x.shape
        q = self.q(h).reshape(b, c, hh * ww).transpose(1, 2)      # b, hw, c
        k = self.k(h).reshape(b, c, hh * ww)                      # b, c, hw
        v = self.v(h).reshape(b, c, hh * ww)                      # b, c, hw
        p = torch.softmax(torch.bmm(q, k) * (c ** -0.5), dim=2)   # b, hw(q), hw(k)
        o = torch.bmm(v, p.transpose(1, 2)).reshape(b, c, hh, ww)
        return x + self.proj_out(o)



class CompVisUNet(nn.Module):
    """cfg keys: ch, out_ch, ch_mult, num_res_blocks, attn_resolutions, in_channels, resolution, groups."""

    def __init__(self, cfg):
        super().__init__()
        ch, mult, nrb = cfg["ch"], tuple(cfg["ch_mult"]), cfg["num_res_blocks"]
        groups = cfg.get("groups", 32)
        self.ch, self.nrb, self.levels = ch, nrb, len(mult)
        temb = 4 * ch
        self.temb = nn.Module()
        self.temb.dense = nn.ModuleList([nn.Linear(ch, temb), nn.Linear(temb, temb)])
        self.conv_in = nn.Conv2d(cfg["in_channels"], ch, 3, 1, 1)
        res = cfg["resolution"]
        in_mult = (1,) + mult
        self.down = nn.ModuleList()
        cur = None
        for lvl in range(self.levels):
            m = nn.Module()
            m.block, m.attn = nn.ModuleList(), nn.ModuleList()
            cur = ch * in_mult[lvl]
            for _ in range(nrb):
                m.block.append(ResBlock(cur, ch * mult[lvl], temb, groups))
                cur = ch * mult[lvl]
                if res in cfg["attn_resolutions"]:
                    m.attn.append(Attn(cur, groups))
            if lvl != self.levels - 1:
                m.downsample = nn.Module()
                m.downsample.conv = nn.Conv2d(cur, cur, 3, 2, 0)
                res //= 2
            self.down.append(m)
        self.mid = nn.Module()
        self.mid.block_1 = ResBlock(cur, cur, temb, groups)
        self.mid.attn_1 = Attn(cur, groups)
        self.mid.block_2 = ResBlock(cur, cur, temb, groups)
        ups = []
        for lvl in reversed(range(self.levels)):
            m = nn.Module()
            m.block, m.attn = nn.ModuleList(), nn.ModuleList()
            out = ch * mult[lvl]
            for j in range(nrb + 1):
                skip = ch * in_mult[lvl] if j == nrb else ch * mult[lvl]
                m.block.append(ResBlock(cur + skip, out, temb, groups))
                cur = out
                if res in cfg["attn_resolutions"]:
                    m.attn.append(Attn(cur, groups))
            if lvl != 0:
                m.upsample = nn.Module()
                m.upsample.conv = nn.Conv2d(cur, cur, 3, 1, 1)
                res *= 2
            ups.append(m)
        self.up = nn.ModuleList(list(reversed(ups)))    # up[lvl], lvl 0 = full resolution
        self.norm_out = group_norm(cur, groups)
        self.conv_out = nn.Conv2d(cur, cfg["out_ch"], 3, 1, 1)

    def forward(self, x, t):
        temb = self.temb.dense[1](swish(self.temb.dense[0](timestep_embedding(t, self.ch))))
        hs = [self.conv_in(x)]
        for lvl in range(self.levels):
            d = self.down[lvl]
            for j in range(self.nrb):
                h = d.block[j](hs[-1], temb)
                if len(d.attn) > 0:
                    h = d.attn[j](h)
                hs.append(h)
            if lvl != self.levels - 1:
                hs.append(d.downsample.conv(F.pad(hs[-1], (0, 1, 0, 1))))
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(hs[-1], temb)), temb)
        for lvl in reversed(range(self.levels)):
            u = self.up[lvl]
            for j in range(self.nrb + 1):
                h = u.block[j](torch.cat([h, hs.pop()], dim=1), temb)
                if len(u.attn) > 0:
                    h = u.attn[j](h)
            if lvl != 0:
                h = u.upsample.conv(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.conv_out(swish(self.norm_out(h)))
