"""PyTorch re-implementation of diffusers' AutoencoderKL (the Stable Diffusion VAE), inference paths only.

Written from scratch after reading huggingface/diffusers src/diffusers/models/:

  * autoencoders/autoencoder_kl.py  -> AutoencoderKL (quant_conv / post_quant_conv, encode -> posterior, decode)
  * autoencoders/vae.py             -> Encoder, Decoder, DiagonalGaussianDistribution
  * unets/unet_2d_blocks.py         -> DownEncoderBlock2D, UpDecoderBlock2D, UNetMidBlock2D (temb_channels None)
  * resnet.py                       -> ResnetBlock2D without a time embedding (no time_emb_proj)
  * attention_processor.py          -> Attention(_from_deprecated_attn_block=True) + AttnProcessor math
  * downsampling.py / upsampling.py -> Downsample2D(padding=0) / Upsample2D(use_conv=True)

Module attribute names and registration order follow diffusers, so state_dict() keys (and their order) are the
official ones, e.g. "decoder.mid_block.attentions.0.to_q.weight", "encoder.down_blocks.0.downsamplers.0.conv.bias".
The attention, down- and upsampling modules are the ones of torch_models.py (diffusers' UNet2DModel uses the very
same classes); only the temb-free ResNet block is new here.
"""
import torch
import torch.nn as nn

import torch_models as tm

# diffusers AutoencoderKL.__init__ defaults (register_to_config)
VAE_DEFAULTS = {
    "in_channels": 3, "out_channels": 3, "down_block_types": ["DownEncoderBlock2D"],
    "up_block_types": ["UpDecoderBlock2D"], "block_out_channels": [64], "layers_per_block": 1, "act_fn": "silu",
    "latent_channels": 4, "norm_num_groups": 32, "sample_size": 32, "scaling_factor": 0.18215, "shift_factor": None,
    "latents_mean": None, "latents_std": None, "force_upcast": True, "use_quant_conv": True,
    "use_post_quant_conv": True, "mid_block_add_attention": True,
}

VAE_EPS = 1e-6  # Encoder/Decoder pass resnet_eps=1e-6 everywhere, and eps=1e-6 to conv_norm_out


class VaeResnetBlock2D(nn.Module):
    """diffusers resnet.py ResnetBlock2D with temb_channels=None, time_embedding_norm "default", pre-norm:
    h = conv1(act(norm1(x))); h = conv2(act(norm2(h))); out = (shortcut(x) + h) / output_scale_factor,
    shortcut = 1x1 conv_shortcut when the channel count changes."""

    def __init__(self, in_channels, out_channels, groups, eps=VAE_EPS, act_fn="silu", output_scale_factor=1.0):
        super().__init__()
        self.output_scale_factor = output_scale_factor
        self.norm1 = nn.GroupNorm(groups, in_channels, eps=eps, affine=True)
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=1)
        self.norm2 = nn.GroupNorm(groups, out_channels, eps=eps, affine=True)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, stride=1, padding=1)
        self.nonlinearity = tm._act(act_fn)
        self.conv_shortcut = (nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=1, padding=0)
                              if in_channels != out_channels else None)

    def forward(self, x):
        h = self.conv1(self.nonlinearity(self.norm1(x)))
        h = self.conv2(self.nonlinearity(self.norm2(h)))
        skip = self.conv_shortcut(x) if self.conv_shortcut is not None else x
        return (skip + h) / self.output_scale_factor


class DownEncoderBlock2D(nn.Module):
    """diffusers unet_2d_blocks.py DownEncoderBlock2D: resnets, then (unless final) Downsample2D with
    padding 0 (F.pad (0, 1, 0, 1) then a 3x3 stride-2 conv), as vae.py Encoder builds it."""

    def __init__(self, num_layers, in_channels, out_channels, add_downsample, groups, act_fn):
        super().__init__()
        self.resnets = nn.ModuleList([VaeResnetBlock2D(in_channels if i == 0 else out_channels, out_channels, groups,
                                                       act_fn=act_fn) for i in range(num_layers)])
        self.downsamplers = nn.ModuleList([tm.Downsample2D(out_channels, padding=0)]) if add_downsample else None

    def forward(self, h):
        for r in self.resnets:
            h = r(h)
        if self.downsamplers is not None:
            h = self.downsamplers[0](h)
        return h


class UpDecoderBlock2D(nn.Module):
    """diffusers unet_2d_blocks.py UpDecoderBlock2D: resnets (the first takes in_channels), then (unless final)
    Upsample2D = nearest 2x + 3x3 conv."""

    def __init__(self, num_layers, in_channels, out_channels, add_upsample, groups, act_fn):
        super().__init__()
        self.resnets = nn.ModuleList([VaeResnetBlock2D(in_channels if i == 0 else out_channels, out_channels, groups,
                                                       act_fn=act_fn) for i in range(num_layers)])
        self.upsamplers = nn.ModuleList([tm.Upsample2D(out_channels)]) if add_upsample else None

    def forward(self, h):
        for r in self.resnets:
            h = r(h)
        if self.upsamplers is not None:
            h = self.upsamplers[0](h)
        return h


class VaeMidBlock2D(nn.Module):
    """diffusers UNetMidBlock2D as vae.py builds it: temb None, "default" shift, attention_head_dim = channels
    (one head), attention group norm with resnet_groups and eps 1e-6; attentions registered before resnets."""

    def __init__(self, channels, groups, act_fn, add_attention):
        super().__init__()
        self.attentions = (nn.ModuleList([tm.AttentionBlock(channels, 1, channels, groups, VAE_EPS, 1.0)])
                           if add_attention else None)
        self.resnets = nn.ModuleList([VaeResnetBlock2D(channels, channels, groups, act_fn=act_fn) for _ in range(2)])

    def forward(self, h):
        h = self.resnets[0](h)
        if self.attentions is not None:
            h = self.attentions[0](h)
        return self.resnets[1](h)


class Encoder(nn.Module):
    """diffusers autoencoders/vae.py Encoder (double_z=True): conv_in, DownEncoderBlock2D per level, mid block,
    GroupNorm(eps 1e-6) + SiLU, conv_out to 2 * latent_channels (mean and logvar)."""

    def __init__(self, cfg):
        super().__init__()
        boc = list(cfg["block_out_channels"])
        groups, act, lpb = cfg["norm_num_groups"], cfg["act_fn"], cfg["layers_per_block"]
        self.conv_in = nn.Conv2d(cfg["in_channels"], boc[0], kernel_size=3, stride=1, padding=1)
        self.down_blocks = nn.ModuleList([])
        out_ch = boc[0]
        for i, kind in enumerate(cfg["down_block_types"]):
            if kind != "DownEncoderBlock2D":
                raise NotImplementedError(f"down block type {kind}")
            in_ch, out_ch = out_ch, boc[i]
            self.down_blocks.append(DownEncoderBlock2D(lpb, in_ch, out_ch, i != len(boc) - 1, groups, act))
        self.mid_block = VaeMidBlock2D(boc[-1], groups, act, cfg["mid_block_add_attention"])
        self.conv_norm_out = nn.GroupNorm(groups, boc[-1], eps=VAE_EPS)
        self.conv_act = nn.SiLU()
        self.conv_out = nn.Conv2d(boc[-1], 2 * cfg["latent_channels"], 3, padding=1)

    def forward(self, x):
        h = self.conv_in(x)
        for blk in self.down_blocks:
            h = blk(h)
        h = self.mid_block(h)
        return self.conv_out(self.conv_act(self.conv_norm_out(h)))


class Decoder(nn.Module):
    """diffusers autoencoders/vae.py Decoder (norm_type "group"): conv_in to block_out_channels[-1], mid block,
    UpDecoderBlock2D per level on the reversed channels (layers_per_block + 1 resnets each), GroupNorm + SiLU,
    conv_out. up_blocks is created (empty) before mid_block, so its keys come first in state_dict()."""

    def __init__(self, cfg):
        super().__init__()
        boc = list(cfg["block_out_channels"])
        groups, act, lpb = cfg["norm_num_groups"], cfg["act_fn"], cfg["layers_per_block"]
        self.conv_in = nn.Conv2d(cfg["latent_channels"], boc[-1], kernel_size=3, stride=1, padding=1)
        self.up_blocks = nn.ModuleList([])
        self.mid_block = VaeMidBlock2D(boc[-1], groups, act, cfg["mid_block_add_attention"])
        rev = boc[::-1]
        out_ch = rev[0]
        for i, kind in enumerate(cfg["up_block_types"]):
            if kind != "UpDecoderBlock2D":
                raise NotImplementedError(f"up block type {kind}")
            prev, out_ch = out_ch, rev[i]
            self.up_blocks.append(UpDecoderBlock2D(lpb + 1, prev, out_ch, i != len(boc) - 1, groups, act))
        self.conv_norm_out = nn.GroupNorm(groups, boc[0], eps=VAE_EPS)
        self.conv_act = nn.SiLU()
        self.conv_out = nn.Conv2d(boc[0], cfg["out_channels"], 3, padding=1)

    def forward(self, z):
        h = self.conv_in(z)
        h = self.mid_block(h)
        for blk in self.up_blocks:
            h = blk(h)
        return self.conv_out(self.conv_act(self.conv_norm_out(h)))


class DiagonalGaussian:
    """diffusers vae.py DiagonalGaussianDistribution: moments split into (mean, logvar) along channels,
    logvar clamped to [-30, 20], std = exp(0.5 logvar), sample = mean + std * noise."""

    def __init__(self, moments):
        self.mean, logvar = torch.chunk(moments, 2, dim=1)
        self.logvar = torch.clamp(logvar, -30.0, 20.0)
        self.std = torch.exp(0.5 * self.logvar)

    def sample(self, noise):
        return self.mean + self.std * noise


class AutoencoderKL(nn.Module):
    """diffusers autoencoders/autoencoder_kl.py AutoencoderKL (no tiling, no slicing): registration order
    encoder, decoder, quant_conv, post_quant_conv."""

    def __init__(self, config):
        super().__init__()
        cfg = dict(VAE_DEFAULTS)
        cfg.update({k: v for k, v in config.items() if not k.startswith("_")})
        self.config = cfg
        boc = cfg["block_out_channels"]
        if not (len(boc) == len(cfg["down_block_types"]) == len(cfg["up_block_types"])):
            raise ValueError("block_out_channels, down_block_types and up_block_types must have equal length")
        lc = cfg["latent_channels"]
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.quant_conv = nn.Conv2d(2 * lc, 2 * lc, 1) if cfg["use_quant_conv"] else None
        self.post_quant_conv = nn.Conv2d(lc, lc, 1) if cfg["use_post_quant_conv"] else None

    def encode(self, x):
        """Images [N, in, H, W] -> the posterior (mean/logvar in the VAE's own, unscaled latent space)."""
        h = self.encoder(x)
        if self.quant_conv is not None:
            h = self.quant_conv(h)
        return DiagonalGaussian(h)

    def moments(self, x):
        h = self.encoder(x)
        return self.quant_conv(h) if self.quant_conv is not None else h

    def decode(self, z):
        """Raw (unscaled) latents -> images, as AutoencoderKL.decode (pipelines divide by scaling_factor first)."""
        if self.post_quant_conv is not None:
            z = self.post_quant_conv(z)
        return self.decoder(z)
