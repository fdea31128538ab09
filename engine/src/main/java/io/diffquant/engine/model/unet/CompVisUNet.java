package io.diffquant.engine.model.unet;

import io.diffquant.engine.tensor.Tensor;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Function;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The CompVis / DDIM layout of the DDPM UNet (ermongroup/ddim models/diffusion.py {@code Model}, = pesser/
 * pytorch_diffusion; the CIFAR-10 model Q-Diffusion and TFMQ-DM quantize) expressed as a diffusers
 * {@link UNet2DModel}: the config that builds the same network, and the state_dict name mapping both ways.
 *
 * <p>Correspondence: {@code temb.dense.0/1} = {@code time_embedding.linear_1/2}; {@code down.i.block.j} =
 * {@code down_blocks.i.resnets.j} ({@code temb_proj} = {@code time_emb_proj}, {@code nin_shortcut} =
 * {@code conv_shortcut}); {@code down.i.attn.j.{norm,q,k,v,proj_out}} = {@code down_blocks.i.attentions.j.
 * {group_norm,to_q,to_k,to_v,to_out.0}} where the CompVis projections are 1x1 convs [C, C, 1, 1] and the diffusers
 * ones linears [C, C]; {@code down.i.downsample.conv} = {@code down_blocks.i.downsamplers.0.conv};
 * {@code mid.block_1, attn_1, block_2} = {@code mid_block.resnets.0, attentions.0, resnets.1}; {@code norm_out} =
 * {@code conv_norm_out}. CompVis {@code up} is indexed by resolution level ({@code up.0} is the full-resolution
 * level, built with {@code insert(0, ...)} and run last), diffusers {@code up_blocks} in execution order, so
 * {@code up.i} = {@code up_blocks.(L-1-i)} for L levels ({@code up.i.upsample.conv} = {@code
 * up_blocks.(L-1-i).upsamplers.0.conv}). The time embedding is sin|cos with shift 1 (flip_sin_to_cos false,
 * freq_shift 1), GroupNorm eps 1e-6, downsampling pads (0,1,0,1) then a stride-2 conv (downsample_padding 0).
 */
public final class CompVisUNet {
    private CompVisUNet() {}

    /**
     * The diffusers config of the CompVis model {@code Model(ch, out_ch, ch_mult, num_res_blocks, attn_resolutions,
     * resamp_with_conv=True, in_channels, resolution)} (GroupNorm with 32 groups, as CompVis hard-codes).
     */
    public static UNet2DConfig config(int ch, List<Integer> chMult, int numResBlocks, List<Integer> attnResolutions,
                                      int resolution, int inChannels, int outCh) {
        return config(ch, chMult, numResBlocks, attnResolutions, resolution, inChannels, outCh, 32);
    }

    /** As {@link #config(int, List, int, List, int, int, int)} with another GroupNorm group count. */
    public static UNet2DConfig config(int ch, List<Integer> chMult, int numResBlocks, List<Integer> attnResolutions,
                                      int resolution, int inChannels, int outCh, int groups) {
        if (chMult.isEmpty() || chMult.get(0) != 1) throw new IllegalArgumentException("CompVis UNet: ch_mult " + chMult
                + " must start with 1 (diffusers' UNet2DModel sizes the time embedding and conv_in from block_out_channels[0])");
        List<Integer> boc = new ArrayList<>();
        List<String> down = new ArrayList<>(), up = new ArrayList<>();
        int res = resolution;
        for (int m : chMult) {
            boc.add(ch * m);
            down.add(attnResolutions.contains(res) ? "AttnDownBlock2D" : "DownBlock2D");
            res /= 2;
        }
        for (int i = down.size() - 1; i >= 0; i--) up.add(down.get(i).equals("AttnDownBlock2D") ? "AttnUpBlock2D" : "UpBlock2D");
        return new UNet2DConfig(resolution, inChannels, outCh, false, "positional", null, 1f, false, down, "UNetMidBlock2D",
                up, boc, numResBlocks, 1f, 0, "conv", "conv", 0f, "silu", null, groups, null, 1e-6f, "default", true,
                null, null, null);
    }

    /** The DDPM CIFAR-10 model (ddim configs/cifar10.yml: ch 128, ch_mult 1,2,2,2, 2 res blocks, attention at 16, 32x32). */
    public static UNet2DConfig cifar10() {
        return config(128, List.of(1, 2, 2, 2), 2, List.of(16), 32, 3, 3);
    }

    /**
     * The diffusers config of a CompVis state_dict read off its names and shapes (ch, ch_mult, num_res_blocks, which
     * levels have attention, in/out channels); the resolution cannot be seen in the weights and is given.
     */
    public static UNet2DConfig inferConfig(Map<String, int[]> shapes, int resolution, int groups) {
        Map<String, int[]> s = new LinkedHashMap<>();
        shapes.forEach((k, v) -> s.put(stripModulePrefix(k), v));
        int[] convIn = need(s, "conv_in.weight"), convOut = need(s, "conv_out.weight");
        int ch = convIn[0];
        int levels = levels(s.keySet());
        int nrb = 0;
        while (s.containsKey("down.0.block." + nrb + ".conv1.weight")) nrb++;
        if (nrb == 0) throw new IllegalArgumentException("CompVis state_dict: no down.0.block.0.conv1.weight");
        List<Integer> mult = new ArrayList<>(), attn = new ArrayList<>();
        int res = resolution;
        for (int i = 0; i < levels; i++) {
            int out = need(s, "down." + i + ".block.0.conv1.weight")[0];
            if (out % ch != 0) throw new IllegalArgumentException("CompVis state_dict: down." + i + " has " + out
                    + " channels, not a multiple of ch = " + ch);
            mult.add(out / ch);
            if (s.containsKey("down." + i + ".attn.0.q.weight")) attn.add(res);
            res /= 2;
        }
        if (s.containsKey("logvar")) throw new IllegalArgumentException("CompVis state_dict has 'logvar' (a \"bayesian\" model): not supported");
        return config(ch, mult, nrb, attn, resolution, convIn[1], convOut[0], groups);
    }

    private static int[] need(Map<String, int[]> s, String k) {
        int[] v = s.get(k);
        if (v == null) throw new IllegalArgumentException("CompVis state_dict: tensor '" + k + "' is missing");
        return v;
    }

    /** True when the names look like a CompVis/DDIM UNet (temb.dense.0 and conv_in, optionally under "module."). */
    public static boolean isCompVis(Collection<String> names) {
        boolean temb = false, convIn = false;
        for (String n : names) {
            String k = stripModulePrefix(n);
            if (k.startsWith("temb.dense.0.")) temb = true;
            if (k.equals("conv_in.weight")) convIn = true;
        }
        return temb && convIn;
    }

    /** Number of resolution levels (1 + the largest {@code down.i} index). */
    public static int levels(Collection<String> names) {
        int max = -1;
        Pattern p = Pattern.compile("^down\\.(\\d+)\\.");
        for (String n : names) {
            Matcher m = p.matcher(stripModulePrefix(n));
            if (m.find()) max = Math.max(max, Integer.parseInt(m.group(1)));
        }
        if (max < 0) throw new IllegalArgumentException("CompVis state_dict: no down.<level> tensors");
        return max + 1;
    }

    /** Drops the {@code module.} prefix that torch.nn.DataParallel adds (ermongroup/ddim saves its model wrapped). */
    public static String stripModulePrefix(String n) { return n.startsWith("module.") ? n.substring(7) : n; }

    // ------------------------------------------------------------------------------------------ names

    private static final Pattern DOWN = Pattern.compile("^down\\.(\\d+)\\.(block|attn)\\.(\\d+)\\.(.+)$");
    private static final Pattern DOWNSAMPLE = Pattern.compile("^down\\.(\\d+)\\.downsample\\.conv\\.(.+)$");
    private static final Pattern UP = Pattern.compile("^up\\.(\\d+)\\.(block|attn)\\.(\\d+)\\.(.+)$");
    private static final Pattern UPSAMPLE = Pattern.compile("^up\\.(\\d+)\\.upsample\\.conv\\.(.+)$");
    private static final Pattern MID = Pattern.compile("^mid\\.(block_1|attn_1|block_2)\\.(.+)$");

    private static final Map<String, String> RESNET = Map.of("norm1", "norm1", "conv1", "conv1", "temb_proj", "time_emb_proj",
            "norm2", "norm2", "conv2", "conv2", "nin_shortcut", "conv_shortcut");
    private static final Map<String, String> ATTN = Map.of("norm", "group_norm", "q", "to_q", "k", "to_k", "v", "to_v",
            "proj_out", "to_out.0");

    /** The diffusers name of a CompVis tensor name; {@code levels} = number of resolution levels. */
    public static String toDiffusers(String name, int levels) {
        String n = stripModulePrefix(name);
        switch (n) {
            case "temb.dense.0.weight", "temb.dense.0.bias" -> { return "time_embedding.linear_1." + leaf(n); }
            case "temb.dense.1.weight", "temb.dense.1.bias" -> { return "time_embedding.linear_2." + leaf(n); }
            case "conv_in.weight", "conv_in.bias", "conv_out.weight", "conv_out.bias" -> { return n; }
            case "norm_out.weight", "norm_out.bias" -> { return "conv_norm_out." + leaf(n); }
            default -> { }
        }
        Matcher m;
        if ((m = DOWN.matcher(n)).matches()) return "down_blocks." + level(m.group(1), levels, name) + part(m.group(2), m.group(3), m.group(4), name);
        if ((m = UP.matcher(n)).matches())
            return "up_blocks." + (levels - 1 - level(m.group(1), levels, name)) + part(m.group(2), m.group(3), m.group(4), name);
        if ((m = DOWNSAMPLE.matcher(n)).matches()) return "down_blocks." + level(m.group(1), levels, name) + ".downsamplers.0.conv." + param(m.group(2), name);
        if ((m = UPSAMPLE.matcher(n)).matches())
            return "up_blocks." + (levels - 1 - level(m.group(1), levels, name)) + ".upsamplers.0.conv." + param(m.group(2), name);
        if ((m = MID.matcher(n)).matches()) {
            return switch (m.group(1)) {
                case "block_1" -> "mid_block" + part("block", "0", m.group(2), name);
                case "block_2" -> "mid_block" + part("block", "1", m.group(2), name);
                default -> "mid_block" + part("attn", "0", m.group(2), name);
            };
        }
        throw unknown(name);
    }

    private static String part(String kind, String j, String rest, String name) {
        int dot = rest.indexOf('.');
        if (dot < 0) throw unknown(name);
        String mod = rest.substring(0, dot), p = param(rest.substring(dot + 1), name);
        String mapped = (kind.equals("block") ? RESNET : ATTN).get(mod);
        if (mapped == null) throw unknown(name);
        return (kind.equals("block") ? ".resnets." : ".attentions.") + j + "." + mapped + "." + p;
    }

    private static String param(String p, String name) {
        if (!p.equals("weight") && !p.equals("bias")) throw unknown(name);
        return p;
    }

    private static int level(String s, int levels, String name) {
        int i = Integer.parseInt(s);
        if (i >= levels) throw new IllegalArgumentException("CompVis tensor '" + name + "': level " + i + " but the model has "
                + levels + " levels");
        return i;
    }

    private static String leaf(String n) { return n.substring(n.lastIndexOf('.') + 1); }

    private static IllegalArgumentException unknown(String name) {
        return new IllegalArgumentException("tensor '" + name + "' is not part of the CompVis/DDIM UNet layout "
                + "(temb.dense, conv_in, down.*, mid.*, up.*, norm_out, conv_out)");
    }

    private static final Pattern D_RES = Pattern.compile("^(down|up)_blocks\\.(\\d+)\\.(resnets|attentions)\\.(\\d+)\\.(.+)\\.(weight|bias)$");
    private static final Pattern D_SAMPLE = Pattern.compile("^(down|up)_blocks\\.(\\d+)\\.(downsamplers|upsamplers)\\.0\\.conv\\.(weight|bias)$");
    private static final Pattern D_MID = Pattern.compile("^mid_block\\.(resnets|attentions)\\.(\\d+)\\.(.+)\\.(weight|bias)$");

    /** The CompVis name of a diffusers UNet2DModel tensor name (inverse of {@link #toDiffusers}). */
    public static String toCompVis(String name, int levels) {
        switch (name) {
            case "time_embedding.linear_1.weight", "time_embedding.linear_1.bias" -> { return "temb.dense.0." + leaf(name); }
            case "time_embedding.linear_2.weight", "time_embedding.linear_2.bias" -> { return "temb.dense.1." + leaf(name); }
            case "conv_in.weight", "conv_in.bias", "conv_out.weight", "conv_out.bias" -> { return name; }
            case "conv_norm_out.weight", "conv_norm_out.bias" -> { return "norm_out." + leaf(name); }
            default -> { }
        }
        Matcher m;
        if ((m = D_RES.matcher(name)).matches()) {
            int i = Integer.parseInt(m.group(2));
            int lvl = m.group(1).equals("down") ? i : levels - 1 - i;
            if (i >= levels) throw notCompVis(name);
            return m.group(1) + "." + lvl + "." + inverse(m.group(3), m.group(4), m.group(5), name) + "." + m.group(6);
        }
        if ((m = D_SAMPLE.matcher(name)).matches()) {
            int i = Integer.parseInt(m.group(2));
            if (i >= levels) throw notCompVis(name);
            return m.group(1).equals("down") ? "down." + i + ".downsample.conv." + m.group(4)
                    : "up." + (levels - 1 - i) + ".upsample.conv." + m.group(4);
        }
        if ((m = D_MID.matcher(name)).matches()) {
            String j = m.group(2);
            String mod = m.group(1).equals("resnets") ? (j.equals("0") ? "block_1" : j.equals("1") ? "block_2" : null)
                    : (j.equals("0") ? "attn_1" : null);
            if (mod == null) throw notCompVis(name);
            String local = inverseLocal(m.group(1), m.group(3), name);
            return "mid." + mod + "." + local + "." + m.group(4);
        }
        throw notCompVis(name);
    }

    private static String inverse(String kind, String j, String local, String name) {
        return (kind.equals("resnets") ? "block." : "attn.") + j + "." + inverseLocal(kind, local, name);
    }

    private static String inverseLocal(String kind, String local, String name) {
        for (var e : (kind.equals("resnets") ? RESNET : ATTN).entrySet()) if (e.getValue().equals(local)) return e.getKey();
        throw notCompVis(name);
    }

    private static IllegalArgumentException notCompVis(String name) {
        return new IllegalArgumentException("tensor '" + name + "' has no CompVis/DDIM counterpart (only the DDPM UNet layout "
                + "converts: positional time embedding, no class embedding, conv resampling)");
    }

    private static boolean isAttentionProjection(String diffusersName) {
        return diffusersName.contains(".attentions.") && diffusersName.endsWith(".weight")
                && (diffusersName.contains(".to_q.") || diffusersName.contains(".to_k.") || diffusersName.contains(".to_v.")
                || diffusersName.contains(".to_out.0."));
    }

    // ------------------------------------------------------------------------------------------ state_dicts

    /**
     * A CompVis state_dict under diffusers names, with the 1x1-conv attention projections [C, C, 1, 1] as linear
     * weights [C, C] (same buffer, reshaped). Loads into {@link UNet2DModel#loadWeights} for the config of
     * {@link #inferConfig}.
     */
    public static Map<String, Tensor> toDiffusers(Map<String, Tensor> compVis) {
        int levels = levels(compVis.keySet());
        return convert(compVis, n -> toDiffusers(n, levels), true);
    }

    /** A diffusers UNet2DModel state_dict under CompVis names, attention projections back to [C, C, 1, 1]. */
    public static Map<String, Tensor> toCompVis(Map<String, Tensor> diffusers) {
        int levels = 0;
        Pattern p = Pattern.compile("^down_blocks\\.(\\d+)\\.");
        for (String n : diffusers.keySet()) {
            Matcher m = p.matcher(n);
            if (m.find()) levels = Math.max(levels, Integer.parseInt(m.group(1)) + 1);
        }
        int l = levels;
        return convert(diffusers, n -> toCompVis(n, l), false);
    }

    private static Map<String, Tensor> convert(Map<String, Tensor> in, Function<String, String> rename, boolean toDiffusers) {
        Map<String, Tensor> out = new LinkedHashMap<>();
        for (var e : in.entrySet()) {
            String to = rename.apply(e.getKey());
            Tensor t = e.getValue();
            String dName = toDiffusers ? to : e.getKey();
            if (isAttentionProjection(dName)) {
                if (toDiffusers) {
                    if (t.rank() != 4 || t.dim(2) != 1 || t.dim(3) != 1) throw new IllegalArgumentException("tensor '" + e.getKey()
                            + "': expected a 1x1 conv weight [C, C, 1, 1], got " + Arrays.toString(t.shape()));
                    t = t.reshape(t.dim(0), t.dim(1));
                } else {
                    if (t.rank() != 2) throw new IllegalArgumentException("tensor '" + e.getKey() + "': expected a linear weight [C, C], got "
                            + Arrays.toString(t.shape()));
                    t = t.reshape(t.dim(0), t.dim(1), 1, 1);
                }
            }
            if (out.put(to, t) != null) throw new IllegalArgumentException("two tensors map to '" + to + "' (duplicate names, e.g. with and without 'module.')");
        }
        return out;
    }

    /** {@link #toDiffusers(Map)} for shapes only (e.g. a checkpoint header), without reading any tensor. */
    public static Map<String, int[]> toDiffusersShapes(Map<String, int[]> compVis) {
        int levels = levels(compVis.keySet());
        Map<String, int[]> out = new LinkedHashMap<>();
        for (var e : compVis.entrySet()) {
            String to = toDiffusers(e.getKey(), levels);
            int[] s = e.getValue();
            out.put(to, isAttentionProjection(to) && s.length == 4 ? new int[] {s[0], s[1]} : s.clone());
        }
        return out;
    }
}
