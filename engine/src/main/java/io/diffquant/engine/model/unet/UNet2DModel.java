package io.diffquant.engine.model.unet;

import io.diffquant.engine.model.BlockObserver;
import io.diffquant.engine.model.Conv2d;
import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.model.Embedding;
import io.diffquant.engine.model.ForwardContext;
import io.diffquant.engine.model.Layer;
import io.diffquant.engine.model.Linear;
import io.diffquant.engine.model.Norm;
import io.diffquant.engine.tensor.ConvOps;
import io.diffquant.engine.tensor.Ops;
import io.diffquant.engine.tensor.Tensor;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * diffusers' UNet2DModel (huggingface/diffusers src/diffusers/models/unets/unet_2d.py with the DownBlock2D,
 * AttnDownBlock2D, UNetMidBlock2D, UpBlock2D and AttnUpBlock2D of unet_2d_blocks.py): every layer is registered
 * under its exact state_dict prefix, so a diffusers checkpoint (e.g. google/ddpm-cifar10-32) loads unchanged.
 *
 * <p>Layer tags: {@code temporal=true} on the Temporal Information Block of TFMQ-DM (time_embedding.linear_1/2, the
 * class embedding, every time_emb_proj and the learned time table); {@code block=<prefix>} on every layer (the
 * ResNet or attention block it belongs to, else its own module prefix) for block reconstruction;
 * {@code concat-split=<channels>} on conv1/conv_shortcut of the up-block ResNets (Q-Diffusion's split quantization).
 * Layers are registered in execution order (down, mid, up); {@link #stateDict()} therefore lists mid_block before
 * up_blocks, unlike PyTorch, which does not matter for loading.
 */
public final class UNet2DModel extends DiffusionModel {
    private final UNet2DConfig cfg;
    private final int tembDim;
    private final Embedding timeProjLearned;
    private final Linear timeLinear1, timeLinear2;
    private final String classKind;
    private final Embedding classEmbedding;
    private final Linear classLinear1, classLinear2;
    private final Conv2d convIn;
    private final List<DownLevel> down = new ArrayList<>();
    private final ResnetBlock2D midResnet0, midResnet1;
    private final AttentionBlock midAttention;
    private final List<UpLevel> up = new ArrayList<>();
    private final Norm convNormOut;
    private final Conv2d convOut;
    private volatile boolean fastPaths = true;

    private record DownLevel(List<ResnetBlock2D> resnets, List<AttentionBlock> attentions, Conv2d downConv,
                             int padding, ResnetBlock2D downResnet) {}

    private record UpLevel(List<ResnetBlock2D> resnets, List<AttentionBlock> attentions, Conv2d upConv,
                           ResnetBlock2D upResnet) {}

    /** Builds the network for a config with zero weights (GroupNorm weights one); load weights with {@link #loadWeights}. */
    public UNet2DModel(UNet2DConfig cfg) {
        this.cfg = cfg;
        List<Integer> boc = cfg.blockOutChannels();
        int c0 = boc.get(0), levels = boc.size(), groups = cfg.normNumGroups();
        float eps = cfg.normEps();
        boolean ss = cfg.scaleShift();
        tembDim = cfg.timeEmbedDim();
        int tin = cfg.timestepInputDim();

        // time
        switch (cfg.timeEmbeddingType()) {
            case "fourier" -> {
                declareBuffer("time_proj.weight", Tensor.zeros(c0));
                timeProjLearned = null;
            }
            case "learned" -> timeProjLearned = tag(layers.add(new Embedding("time_proj", "weight", cfg.numTrainTimesteps(), c0)),
                    "time_proj", true);
            default -> timeProjLearned = null;
        }
        timeLinear1 = tag(layers.add(new Linear("time_embedding.linear_1", tin, tembDim, true)), "time_embedding", true);
        timeLinear2 = tag(layers.add(new Linear("time_embedding.linear_2", tembDim, tembDim, true)), "time_embedding", true);

        // class
        classKind = cfg.classEmbeddingKind();
        if ("embedding".equals(classKind)) {
            classEmbedding = tag(layers.add(new Embedding("class_embedding", "weight", cfg.numClassEmbeds(), tembDim)),
                    "class_embedding", true);
            classLinear1 = classLinear2 = null;
        } else if ("timestep".equals(classKind)) {
            classEmbedding = null;
            classLinear1 = tag(layers.add(new Linear("class_embedding.linear_1", tin, tembDim, true)), "class_embedding", true);
            classLinear2 = tag(layers.add(new Linear("class_embedding.linear_2", tembDim, tembDim, true)), "class_embedding", true);
        } else {
            classEmbedding = null;
            classLinear1 = classLinear2 = null;
        }

        convIn = tag(layers.add(new Conv2d("conv_in", cfg.inChannels(), c0, 3, 1, 1, true)), "conv_in", false);

        // down
        int outCh = c0;
        for (int i = 0; i < levels; i++) {
            int inCh = outCh;
            outCh = boc.get(i);
            boolean attn = cfg.downBlockTypes().get(i).equals("AttnDownBlock2D");
            boolean last = i == levels - 1;
            String p = "down_blocks." + i;
            List<ResnetBlock2D> rs = new ArrayList<>();
            List<AttentionBlock> as = attn ? new ArrayList<>() : null;
            for (int j = 0; j < cfg.layersPerBlock(); j++) {
                rs.add(new ResnetBlock2D(layers, p + ".resnets." + j, j == 0 ? inCh : outCh, outCh, tembDim, groups, eps, ss,
                        1f, ResnetBlock2D.Resample.NONE, -1));
                if (attn) as.add(new AttentionBlock(layers, p + ".attentions." + j, outCh, cfg.headDim(outCh), groups, eps, 1f));
            }
            Conv2d dc = null;
            ResnetBlock2D dr = null;
            if (!last) {
                // only AttnDownBlock2D honours downsample_type; DownBlock2D always uses the strided conv
                if (attn && "resnet".equals(cfg.downsampleType())) {
                    dr = new ResnetBlock2D(layers, p + ".downsamplers.0", outCh, outCh, tembDim, groups, eps, ss, 1f,
                            ResnetBlock2D.Resample.DOWN, -1);
                } else {
                    dc = tag(layers.add(new Conv2d(p + ".downsamplers.0.conv", outCh, outCh, 3, 2, cfg.downsamplePadding(), true)),
                            p + ".downsamplers.0", false);
                }
            }
            down.add(new DownLevel(rs, as, dc, cfg.downsamplePadding(), dr));
        }

        // mid
        int cl = boc.get(levels - 1);
        if (cfg.hasMidBlock()) {
            float msf = cfg.midBlockScaleFactor();
            midResnet0 = new ResnetBlock2D(layers, "mid_block.resnets.0", cl, cl, tembDim, groups, eps, ss, msf, ResnetBlock2D.Resample.NONE, -1);
            midAttention = cfg.addAttention()
                    ? new AttentionBlock(layers, "mid_block.attentions.0", cl, cfg.headDim(cl), cfg.midAttentionGroups(), eps, msf)
                    : null;
            midResnet1 = new ResnetBlock2D(layers, "mid_block.resnets.1", cl, cl, tembDim, groups, eps, ss, msf, ResnetBlock2D.Resample.NONE, -1);
        } else {
            midResnet0 = midResnet1 = null;
            midAttention = null;
        }

        // up
        List<Integer> rev = new ArrayList<>(boc);
        java.util.Collections.reverse(rev);
        outCh = rev.get(0);
        for (int i = 0; i < levels; i++) {
            int prev = outCh;
            outCh = rev.get(i);
            int inCh = rev.get(Math.min(i + 1, levels - 1));
            boolean attn = cfg.upBlockTypes().get(i).equals("AttnUpBlock2D");
            boolean last = i == levels - 1;
            String p = "up_blocks." + i;
            int nl = cfg.layersPerBlock() + 1;
            List<ResnetBlock2D> rs = new ArrayList<>();
            List<AttentionBlock> as = attn ? new ArrayList<>() : null;
            for (int j = 0; j < nl; j++) {
                int skip = j == nl - 1 ? inCh : outCh;
                int rin = j == 0 ? prev : outCh;
                rs.add(new ResnetBlock2D(layers, p + ".resnets." + j, rin + skip, outCh, tembDim, groups, eps, ss, 1f,
                        ResnetBlock2D.Resample.NONE, rin));
                if (attn) as.add(new AttentionBlock(layers, p + ".attentions." + j, outCh, cfg.headDim(outCh), groups, eps, 1f));
            }
            Conv2d uc = null;
            ResnetBlock2D ur = null;
            if (!last) {
                if (attn && "resnet".equals(cfg.upsampleType())) {
                    ur = new ResnetBlock2D(layers, p + ".upsamplers.0", outCh, outCh, tembDim, groups, eps, ss, 1f,
                            ResnetBlock2D.Resample.UP, -1);
                } else {
                    uc = tag(layers.add(new Conv2d(p + ".upsamplers.0.conv", outCh, outCh, 3, 1, 1, true)), p + ".upsamplers.0", false);
                }
            }
            up.add(new UpLevel(rs, as, uc, ur));
        }

        convNormOut = tag(layers.add(new Norm("conv_norm_out", Norm.Type.GROUP, c0, groups, eps, true)), "conv_norm_out", false);
        convOut = tag(layers.add(new Conv2d("conv_out", c0, cfg.outChannels(), 3, 1, 1, true)), "conv_out", false);
    }

    private static <L extends Layer> L tag(L l, String block, boolean temporal) {
        l.tag("block", block);
        if (temporal) l.tag("temporal", "true");
        return l;
    }

    public UNet2DConfig config() { return cfg; }

    @Override public String architecture() { return UNet2DConfig.CLASS_NAME; }
    @Override public int inChannels() { return cfg.inChannels(); }
    @Override public int outChannels() { return cfg.outChannels(); }
    /** sample_size, or 0 when the config leaves it open. */
    @Override public int sampleSize() { return cfg.sampleSize() == null ? 0 : cfg.sampleSize(); }
    /** num_class_embeds for an nn.Embedding (or "timestep") class embedding; 0 otherwise. diffusers has no null class. */
    @Override public int numClasses() {
        return classKind != null && !"identity".equals(classKind) && cfg.numClassEmbeds() != null ? cfg.numClassEmbeds() : 0;
    }
    /** UNet2DModel predicts eps only. */
    @Override public boolean learnSigma() { return false; }
    /** True when forward needs class labels. */
    public boolean classConditional() { return classKind != null; }
    /** time_embed_dim: width of temb and of every class embedding. */
    public int timeEmbedDim() { return tembDim; }

    /**
     * Fused kernels (GroupNorm+SiLU, GroupNorm+scale-shift+SiLU, one-pass attention, nearest-upsample+conv) where no
     * hook observes the intermediate they skip; off = the explicit composition of single ops (the slow twin, for tests).
     */
    public void setFastPaths(boolean on) { fastPaths = on; }
    public boolean fastPaths() { return fastPaths; }

    // ------------------------------------------------------------------ weights

    /**
     * Loads a diffusers state_dict (strict: names and shapes must match the config). Names of the deprecated
     * attention block ({@code query/key/value/proj_attn}, still found in old checkpoints such as
     * google/ddpm-cifar10-32) are mapped to {@code to_q/to_k/to_v/to_out.0} as diffusers'
     * {@code _fix_state_dict_keys_on_load} does, and a fourier {@code time_proj.W} to {@code time_proj.weight}.
     */
    public void loadWeights(Map<String, Tensor> sd, String source) {
        Map<String, Tensor> fixed = new LinkedHashMap<>();
        for (var e : sd.entrySet()) fixed.put(renameLegacy(e.getKey()), e.getValue());
        if (fixed.size() != sd.size()) throw new IllegalArgumentException(source
                + ": the state_dict holds both the legacy and the current name of some attention tensors");
        loadStateDict(fixed, source);
    }

    private static final String[][] LEGACY = {
            {".query.", ".to_q."}, {".key.", ".to_k."}, {".value.", ".to_v."}, {".proj_attn.", ".to_out.0."}};

    private static String renameLegacy(String k) {
        if (k.equals("time_proj.W")) return "time_proj.weight";
        if (!k.contains(".attentions.")) return k;
        for (String[] r : LEGACY) {
            int i = k.lastIndexOf(r[0]);
            if (i >= 0 && (k.endsWith(r[0] + "weight") || k.endsWith(r[0] + "bias")))
                return k.substring(0, i) + r[1] + k.substring(i + r[0].length());
        }
        return k;
    }

    // ------------------------------------------------------------------ forward

    /**
     * @param x [N, in_channels, H, W]; H and W multiples of 2^(levels-1)
     * @param t timestep per sample (original values; sigmas for fourier models)
     * @param y class label per sample when the model has a class embedding (nn.Embedding or "timestep"), else null
     * @return [N, out_channels, H, W]
     */
    @Override
    public Tensor forward(Tensor x, float[] t, int[] y) {
        checkLabels(y);
        return run(x, t, y, null, null);
    }

    private void checkLabels(int[] y) {
        if ("identity".equals(classKind)) throw new IllegalArgumentException(
                "UNet2DModel with class_embed_type \"identity\" takes class embedding vectors: use forwardWithClassEmbedding");
        if (classKind == null && y != null) throw new IllegalArgumentException(
                "class labels given but this UNet2DModel has no class embedding (class_embed_type and num_class_embeds are null)");
        if (classKind != null && y == null) throw new IllegalArgumentException(
                "this UNet2DModel is class-conditional (" + classKind + " class embedding): class labels are required");
    }

    /**
     * {@link #forward} with an observer of every ResNet and attention block (in execution order, see
     * {@link #blockNames()}): ResNet inputs are {feature map (after the skip concatenation in up blocks), SiLU(temb)},
     * attention inputs {feature map}. The observer may throw to stop the pass.
     */
    public Tensor forward(Tensor x, float[] t, int[] y, BlockObserver observer) {
        checkLabels(y);
        return run(x, t, y, null, observer);
    }

    /** The ResNet and attention blocks by name (the {@code block} tag of their layers), in execution order. */
    public java.util.List<String> blockNames() { return new ArrayList<>(blocks().keySet()); }

    /**
     * Runs one ResNet or attention block alone on the inputs {@link #forward(Tensor, float[], int[], BlockObserver)}
     * showed for it (fused paths as {@link #fastPaths()}).
     */
    public Tensor runBlock(String name, Tensor[] inputs, ForwardContext ctx) {
        Object b = blocks().get(name);
        if (b == null) throw new IllegalArgumentException("UNet2DModel has no ResNet or attention block '" + name + "'; blocks: " + blocks().keySet());
        if (b instanceof ResnetBlock2D r) {
            if (inputs.length != 2) throw new IllegalArgumentException(name + ": a ResNet block takes {x, SiLU(temb)}, got " + inputs.length + " inputs");
            return r.forward(inputs[0], inputs[1], ctx, fastPaths);
        }
        if (inputs.length != 1) throw new IllegalArgumentException(name + ": an attention block takes {x}, got " + inputs.length + " inputs");
        return ((AttentionBlock) b).forward(inputs[0], ctx, fastPaths);
    }

    private volatile Map<String, Object> blockMap;

    private Map<String, Object> blocks() {
        Map<String, Object> m = blockMap;
        if (m != null) return m;
        m = new LinkedHashMap<>();
        for (DownLevel lv : down) {
            for (int j = 0; j < lv.resnets.size(); j++) {
                m.put(lv.resnets.get(j).prefix, lv.resnets.get(j));
                if (lv.attentions != null) m.put(lv.attentions.get(j).prefix, lv.attentions.get(j));
            }
            if (lv.downResnet != null) m.put(lv.downResnet.prefix, lv.downResnet);
        }
        if (midResnet0 != null) {
            m.put(midResnet0.prefix, midResnet0);
            if (midAttention != null) m.put(midAttention.prefix, midAttention);
            m.put(midResnet1.prefix, midResnet1);
        }
        for (UpLevel lv : up) {
            for (int j = 0; j < lv.resnets.size(); j++) {
                m.put(lv.resnets.get(j).prefix, lv.resnets.get(j));
                if (lv.attentions != null) m.put(lv.attentions.get(j).prefix, lv.attentions.get(j));
            }
            if (lv.upResnet != null) m.put(lv.upResnet.prefix, lv.upResnet);
        }
        blockMap = java.util.Collections.unmodifiableMap(m);
        return blockMap;
    }

    private static Tensor resnet(ResnetBlock2D r, Tensor h, Tensor tembAct, ForwardContext ctx, boolean fast, BlockObserver obs) {
        if (obs == null) return r.forward(h, tembAct, ctx, fast);
        obs.input(r.prefix, new Tensor[] {h, tembAct}, ctx);
        Tensor y = r.forward(h, tembAct, ctx, fast);
        obs.output(r.prefix, y, ctx);
        return y;
    }

    private static Tensor attention(AttentionBlock a, Tensor h, ForwardContext ctx, boolean fast, BlockObserver obs) {
        if (obs == null) return a.forward(h, ctx, fast);
        obs.input(a.prefix, new Tensor[] {h}, ctx);
        Tensor y = a.forward(h, ctx, fast);
        obs.output(a.prefix, y, ctx);
        return y;
    }

    /** Forward of a class_embed_type "identity" model: classEmb [N, time_embed_dim] is added to temb as is. */
    public Tensor forwardWithClassEmbedding(Tensor x, float[] t, Tensor classEmb) {
        if (!"identity".equals(classKind)) throw new IllegalArgumentException("forwardWithClassEmbedding needs class_embed_type \"identity\"");
        if (classEmb == null || classEmb.rank() != 2 || classEmb.dim(0) != t.length || classEmb.dim(1) != tembDim)
            throw new IllegalArgumentException("class embedding must be [" + t.length + ", " + tembDim + "], got "
                    + (classEmb == null ? "null" : Arrays.toString(classEmb.shape())));
        return run(x, t, null, classEmb, null);
    }

    private Tensor run(Tensor x, float[] t, int[] y, Tensor classEmb, BlockObserver obs) {
        checkInput(x, t, y);
        boolean fast = fastPaths;
        ForwardContext ctx = new ForwardContext(t.clone(), y == null ? null : y.clone());

        // 0. center input
        if (cfg.centerInputSample()) x = ConvOps.affine(x, 2f, -1f);

        // 1. time (+ class) embedding
        Tensor emb = embedding(t, y, classEmb, ctx);
        Tensor tembAct = ConvOps.silu(emb);

        // 2. conv_in, 3. down
        Tensor h = convIn.forward(x, ctx);
        List<Tensor> skips = new ArrayList<>();
        skips.add(h);
        for (DownLevel lv : down) {
            for (int j = 0; j < lv.resnets.size(); j++) {
                h = resnet(lv.resnets.get(j), h, tembAct, ctx, fast, obs);
                if (lv.attentions != null) h = attention(lv.attentions.get(j), h, ctx, fast, obs);
                skips.add(h);
            }
            if (lv.downConv != null) {
                Tensor hp = lv.padding == 0 ? ConvOps.pad(h, 0, 1, 0, 1) : h;
                h = lv.downConv.forward(hp, ctx);
                skips.add(h);
            } else if (lv.downResnet != null) {
                h = resnet(lv.downResnet, h, tembAct, ctx, fast, obs);
                skips.add(h);
            }
        }

        // 4. mid
        if (midResnet0 != null) {
            h = resnet(midResnet0, h, tembAct, ctx, fast, obs);
            if (midAttention != null) h = attention(midAttention, h, ctx, fast, obs);
            h = resnet(midResnet1, h, tembAct, ctx, fast, obs);
        }

        // 5. up
        for (UpLevel lv : up) {
            for (int j = 0; j < lv.resnets.size(); j++) {
                Tensor skip = skips.removeLast();
                ResnetBlock2D r = lv.resnets.get(j);
                h = resnet(r, r.concatInput(h, skip, ctx), tembAct, ctx, fast, obs);
                if (lv.attentions != null) h = attention(lv.attentions.get(j), h, ctx, fast, obs);
            }
            if (lv.upConv != null) {
                // Upsample2D: nearest 2x then the 3x3 conv; fused (no 4x image) when nobody observes the conv
                h = fast && lv.upConv.hooks().isEmpty()
                        ? ConvOps.upsample2xConv3x3(h, lv.upConv.param("weight"), lv.upConv.param("bias"))
                        : lv.upConv.forward(Ops.upsampleNearest2x(h), ctx);
            }
            else if (lv.upResnet != null) h = resnet(lv.upResnet, h, tembAct, ctx, fast, obs);
        }

        // 6. out
        h = normAct(convNormOut, h, null, ctx, fast);
        h = convOut.forward(h, ctx);
        if ("fourier".equals(cfg.timeEmbeddingType())) h = ConvOps.divPerSample(h, t);
        return h;
    }

    /**
     * temb = time_embedding(time_proj(t)) plus the class embedding of y (pre-SiLU) [N, time_embed_dim]: the shared input of
     * TFMQ's Temporal Information Block (every ResNet block's time_emb_proj takes SiLU of it). Exactly what
     * {@link #forward} computes, through the same layers and hooks. Not for class_embed_type "identity" (its class
     * vectors are an input, not a finite set).
     * @param ctx the call's timesteps and labels (labels required iff the model is class-conditional)
     */
    public Tensor timeEmbedding(ForwardContext ctx) {
        checkLabels(ctx.y());
        return embedding(ctx.t(), ctx.y(), null, ctx);
    }

    /** The ResNet blocks' time projection layers (time_emb_proj), in execution order. */
    public List<Linear> timeProjections() {
        List<Linear> out = new ArrayList<>();
        for (Object b : blocks().values()) if (b instanceof ResnetBlock2D r) out.add(r.timeEmbProj);
        return out;
    }

    private Tensor embedding(float[] t, int[] y, Tensor classEmb, ForwardContext ctx) {
        Tensor emb = timeLinear2.forward(ConvOps.silu(timeLinear1.forward(timeProjection(t, ctx), ctx)), ctx);
        if (classKind != null) {
            Tensor ce = switch (classKind) {
                case "embedding" -> {
                    float[] ids = new float[y.length];
                    for (int i = 0; i < y.length; i++) ids[i] = y[i];
                    yield classEmbedding.forward(Tensor.of(ids, y.length), ctx);
                }
                case "timestep" -> {
                    float[] yl = new float[y.length];
                    for (int i = 0; i < y.length; i++) yl[i] = y[i];
                    yield classLinear2.forward(ConvOps.silu(classLinear1.forward(timeProjection(yl, ctx), ctx)), ctx);
                }
                default -> classEmb;
            };
            emb = Ops.add(emb, ce);
        }
        return emb;
    }

    private Tensor timeProjection(float[] t, ForwardContext ctx) {
        int c0 = cfg.channels(0);
        return switch (cfg.timeEmbeddingType()) {
            case "fourier" -> ConvOps.fourierEmbedding(t, buffer("time_proj.weight"));
            case "learned" -> {
                int rows = cfg.numTrainTimesteps();
                for (float v : t) if (v != Math.rint(v) || v < 0 || v >= rows) throw new IllegalArgumentException(
                        "learned time embedding: timestep " + v + " is not an integer in [0, " + rows + ")");
                yield timeProjLearned.forward(Tensor.of(t.clone(), t.length), ctx);
            }
            default -> Ops.timestepEmbedding(t, c0, cfg.flipSinToCos(), cfg.freqShift(), 10000.0);
        };
    }

    private void checkInput(Tensor x, float[] t, int[] y) {
        if (x == null || x.rank() != 4) throw new IllegalArgumentException("UNet2DModel input must be [N, C, H, W], got "
                + (x == null ? "null" : Arrays.toString(x.shape())));
        int n = x.dim(0), f = 1 << (cfg.levels() - 1);
        if (x.dim(1) != cfg.inChannels()) throw new IllegalArgumentException("UNet2DModel input has " + x.dim(1)
                + " channels, in_channels is " + cfg.inChannels());
        if (x.dim(2) % f != 0 || x.dim(3) % f != 0 || x.dim(2) == 0 || x.dim(3) == 0) throw new IllegalArgumentException(
                "UNet2DModel input " + x.dim(2) + "x" + x.dim(3) + " must be a positive multiple of " + f + " (2^(levels-1)) in both dimensions");
        if (t == null || t.length != n) throw new IllegalArgumentException("UNet2DModel: " + (t == null ? "no" : t.length)
                + " timesteps for a batch of " + n);
        for (float v : t) if (!Float.isFinite(v)) throw new IllegalArgumentException("UNet2DModel: timestep " + v + " is not finite");
        if (y != null) {
            if (y.length != n) throw new IllegalArgumentException("UNet2DModel: " + y.length + " class labels for a batch of " + n);
            if ("embedding".equals(classKind)) for (int i = 0; i < n; i++)
                if (y[i] < 0 || y[i] >= cfg.numClassEmbeds()) throw new IllegalArgumentException("UNet2DModel: class label y["
                        + i + "] = " + y[i] + " outside [0, " + cfg.numClassEmbeds() + ") of class_embedding");
        }
    }

    // ------------------------------------------------------------------ shared helpers for the blocks

    /**
     * SiLU(GroupNorm(x)) (with the ResNet scale-shift {@code ss} [N, 2C] between them when non-null). Fused in one
     * kernel when {@code fast} and the norm has no hooks (nobody may observe its output), else the norm layer's own
     * forward followed by the single ops.
     */
    static Tensor normAct(Norm norm, Tensor x, Tensor ss, ForwardContext ctx, boolean fast) {
        if (fast && norm.hooks().isEmpty())
            return ConvOps.groupNormAct(x, norm.groups(), norm.param("weight"), norm.param("bias"), norm.eps(), ss, true);
        Tensor h = norm.forward(x, ctx);
        if (ss != null) h = ConvOps.scaleShift(h, ss);
        return ConvOps.silu(h);
    }

    /** The layer's output, safe to modify in place: a copy when hooks may hold on to it. */
    static Tensor owned(Layer l, Tensor y) {
        return l.hooks().isEmpty() ? y : y.copy();
    }
}
