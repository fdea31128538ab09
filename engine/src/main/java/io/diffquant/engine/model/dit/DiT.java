package io.diffquant.engine.model.dit;

import io.diffquant.engine.model.Conv2d;
import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.model.Embedding;
import io.diffquant.engine.model.ForwardContext;
import io.diffquant.engine.model.Layer;
import io.diffquant.engine.model.Linear;
import io.diffquant.engine.model.Norm;
import io.diffquant.engine.model.Probe;
import io.diffquant.engine.tensor.Ops;
import io.diffquant.engine.tensor.Tensor;
import io.diffquant.engine.tensor.TransformerOps;

import java.util.Arrays;
import java.util.List;
import java.util.Map;

/**
 * The DiT denoiser of facebookresearch/DiT models.py (Peebles &amp; Xie, "Scalable Diffusion Models with
 * Transformers"): patch embedding + fixed 2-D sin-cos positions, timestep/label embedders, adaLN-Zero
 * transformer blocks and the final layer, with the official module tree and state_dict names
 * (see ALGORITHMS.md §2). Every Linear/Conv2d/Embedding runs through {@link Layer#forward} so hooks apply;
 * attention internals are exposed as the probes {@code blocks.N.attn.{q,k,v,softmax}}.
 */
public final class DiT extends DiffusionModel {
    /** Tag key/value of the TFMQ Temporal Information Block members. */
    public static final String TAG_TEMPORAL = "temporal";
    /** Tag key naming the block ("blocks.N") a layer belongs to. */
    public static final String TAG_BLOCK = "block";

    static final int FREQUENCY_EMBEDDING_SIZE = 256;
    static final double MAX_PERIOD = 10000;
    static final float LN_EPS = 1e-6f;

    private final DiTConfig cfg;
    private final Conv2d xEmbedder;
    private final Linear tMlp0, tMlp2;
    private final Embedding yEmbedder;
    private final Block[] blocks;
    private final Norm normFinal;
    private final Linear finalLinear, finalAdaLN;
    private final float attnScale;

    /** The layers of blocks.N. */
    private record Block(Norm norm1, Linear qkv, Probe q, Probe k, Probe v, Probe softmax, Linear proj, Norm norm2,
                         Linear fc1, Linear fc2, Linear adaLN) {
        boolean explicitAttention() {
            return !q.hooks().isEmpty() || !k.hooks().isEmpty() || !v.hooks().isEmpty() || !softmax.hooks().isEmpty();
        }
    }

    /** A DiT with all weights zero and pos_embed set to the fixed 2-D sin-cos embedding. */
    public DiT(DiTConfig cfg) {
        this.cfg = cfg;
        int d = cfg.hiddenSize(), p = cfg.patchSize();
        xEmbedder = layers.add(new Conv2d("x_embedder.proj", cfg.inChannels(), d, p, p, 0, true));
        declareBuffer("pos_embed", TransformerOps.sincosPosEmbed2d(d, cfg.gridSize()));
        tMlp0 = layers.add(new Linear("t_embedder.mlp.0", FREQUENCY_EMBEDDING_SIZE, d, true));
        tMlp2 = layers.add(new Linear("t_embedder.mlp.2", d, d, true));
        tMlp0.tag(TAG_TEMPORAL, "true");
        tMlp2.tag(TAG_TEMPORAL, "true");
        if (cfg.classConditional()) {
            yEmbedder = layers.add(new Embedding("y_embedder.embedding_table", "weight", cfg.embeddingRows(), d));
            yEmbedder.tag(TAG_TEMPORAL, "true");
        } else {
            yEmbedder = null;
        }
        blocks = new Block[cfg.depth()];
        for (int i = 0; i < blocks.length; i++) {
            String b = "blocks." + i;
            Block blk = new Block(
                    layers.add(new Norm(b + ".norm1", Norm.Type.LAYER, d, 1, LN_EPS, false)),
                    layers.add(new Linear(b + ".attn.qkv", d, 3 * d, true)),
                    layers.add(new Probe(b + ".attn.q")),
                    layers.add(new Probe(b + ".attn.k")),
                    layers.add(new Probe(b + ".attn.v")),
                    layers.add(new Probe(b + ".attn.softmax")),
                    layers.add(new Linear(b + ".attn.proj", d, d, true)),
                    layers.add(new Norm(b + ".norm2", Norm.Type.LAYER, d, 1, LN_EPS, false)),
                    layers.add(new Linear(b + ".mlp.fc1", d, cfg.mlpHidden(), true)),
                    layers.add(new Linear(b + ".mlp.fc2", cfg.mlpHidden(), d, true)),
                    layers.add(new Linear(b + ".adaLN_modulation.1", d, 6 * d, true)));
            for (Layer l : List.of(blk.norm1, blk.qkv, blk.q, blk.k, blk.v, blk.softmax, blk.proj, blk.norm2, blk.fc1,
                    blk.fc2, blk.adaLN)) l.tag(TAG_BLOCK, b);
            blk.adaLN.tag(TAG_TEMPORAL, "true");
            blocks[i] = blk;
        }
        normFinal = layers.add(new Norm("final_layer.norm_final", Norm.Type.LAYER, d, 1, LN_EPS, false));
        finalLinear = layers.add(new Linear("final_layer.linear", d, p * p * cfg.outChannels(), true));
        finalAdaLN = layers.add(new Linear("final_layer.adaLN_modulation.1", d, 2 * d, true));
        finalAdaLN.tag(TAG_TEMPORAL, "true");
        attnScale = (float) Math.pow(cfg.headDim(), -0.5);
    }

    public DiTConfig config() { return cfg; }
    public int depth() { return blocks.length; }

    @Override public String architecture() { return DiTConfig.CLASS_NAME; }
    @Override public int inChannels() { return cfg.inChannels(); }
    @Override public int outChannels() { return cfg.outChannels(); }
    @Override public int sampleSize() { return cfg.inputSize(); }
    @Override public int numClasses() { return cfg.numClasses(); }
    @Override public boolean learnSigma() { return cfg.learnSigma(); }

    /** The position embedding buffer [1, T, hidden] (the fixed sin-cos one, or the checkpoint's). */
    public Tensor posEmbed() { return buffer("pos_embed"); }

    /**
     * The state_dict names and shapes a model of this config has (= {@code new DiT(cfg).stateDict()}), in the
     * official order, without allocating the weights: e.g. to check a checkpoint header before loading it.
     */
    public static Map<String, int[]> stateDictLayout(DiTConfig cfg) {
        int d = cfg.hiddenSize(), p = cfg.patchSize(), mlp = cfg.mlpHidden();
        Map<String, int[]> m = new java.util.LinkedHashMap<>();
        m.put("pos_embed", new int[] {1, cfg.tokens(), d});
        m.put("x_embedder.proj.weight", new int[] {d, cfg.inChannels(), p, p});
        m.put("x_embedder.proj.bias", new int[] {d});
        linearLayout(m, "t_embedder.mlp.0", FREQUENCY_EMBEDDING_SIZE, d);
        linearLayout(m, "t_embedder.mlp.2", d, d);
        if (cfg.classConditional()) m.put("y_embedder.embedding_table.weight", new int[] {cfg.embeddingRows(), d});
        for (int i = 0; i < cfg.depth(); i++) {
            String b = "blocks." + i;
            linearLayout(m, b + ".attn.qkv", d, 3 * d);
            linearLayout(m, b + ".attn.proj", d, d);
            linearLayout(m, b + ".mlp.fc1", d, mlp);
            linearLayout(m, b + ".mlp.fc2", mlp, d);
            linearLayout(m, b + ".adaLN_modulation.1", d, 6 * d);
        }
        linearLayout(m, "final_layer.linear", d, p * p * cfg.outChannels());
        linearLayout(m, "final_layer.adaLN_modulation.1", d, 2 * d);
        return m;
    }

    private static void linearLayout(Map<String, int[]> m, String name, int in, int out) {
        m.put(name + ".weight", new int[] {out, in});
        m.put(name + ".bias", new int[] {out});
    }

    /** Loads an official-named state_dict (strict: names and shapes must match this config). */
    public void loadWeights(Map<String, Tensor> stateDict, String source) { loadStateDict(stateDict, source); }

    // ------------------------------------------------------------------ forward

    /**
     * DiT.forward(x, t, y) in eval mode (no label dropout).
     * @param x [N, in_channels, input_size, input_size]
     * @param t original timestep values, length N
     * @param y labels in [0, embedding rows) (num_classes = the null class), length N; null iff unconditional
     * @return [N, out_channels, input_size, input_size]
     */
    @Override
    public Tensor forward(Tensor x, float[] t, int[] y) {
        ForwardContext ctx = context(x, t, y);
        Tensor h = embed(x, ctx);
        Tensor c = conditioning(ctx);
        for (int i = 0; i < blocks.length; i++) h = block(i, h, c, ctx);
        return head(h, c, ctx);
    }

    /**
     * DiT.forward_with_cfg: the first half of x is used for both halves of the batch (y's second half should
     * hold the null class), then eps = uncond + cfgScale (cond - uncond) in both halves.
     * @param ditCompatible true: guidance on the first 3 output channels as the official code; false: on all
     *                      in_channels eps channels. The remaining channels are passed through.
     */
    public Tensor forwardWithCfg(Tensor x, float[] t, int[] y, float cfgScale, boolean ditCompatible) {
        if (x.rank() != 4 || x.dim(0) == 0 || x.dim(0) % 2 != 0) throw new IllegalArgumentException(
                "forwardWithCfg: the batch must be [2M, C, H, W] (conditional half, unconditional half), got "
                        + Arrays.toString(x.shape()));
        Tensor half = x.sliceRows(0, x.dim(0) / 2);
        Tensor out = forward(Tensor.concatRows(half, half), t, y);
        int guided = ditCompatible ? Math.min(3, cfg.outChannels()) : cfg.inChannels();
        return TransformerOps.classifierFreeGuidance(out, guided, cfgScale);
    }

    /** Checks the inputs of a forward call and builds its context. */
    public ForwardContext context(Tensor x, float[] t, int[] y) {
        int s = cfg.inputSize();
        if (x == null || x.rank() != 4 || x.dim(1) != cfg.inChannels() || x.dim(2) != s || x.dim(3) != s)
            throw new IllegalArgumentException("DiT: input x must be [N, " + cfg.inChannels() + ", " + s + ", " + s
                    + "], got " + (x == null ? "null" : Arrays.toString(x.shape())));
        int n = x.dim(0);
        if (t == null || t.length != n) throw new IllegalArgumentException("DiT: t must hold " + n
                + " timesteps, got " + (t == null ? "null" : t.length));
        for (int i = 0; i < n; i++) if (!Float.isFinite(t[i]))
            throw new IllegalArgumentException("DiT: t[" + i + "] = " + t[i] + " is not finite");
        if (cfg.classConditional()) {
            if (y == null) throw new IllegalArgumentException("DiT: this model is class-conditional ("
                    + cfg.numClasses() + " classes): labels y are required");
            if (y.length != n) throw new IllegalArgumentException("DiT: y must hold " + n + " labels, got " + y.length);
            int rows = cfg.embeddingRows();
            for (int i = 0; i < n; i++) if (y[i] < 0 || y[i] >= rows)
                throw new IllegalArgumentException("DiT: label y[" + i + "] = " + y[i] + " is outside [0, " + (rows - 1) + "]"
                        + (rows > cfg.numClasses() ? " (" + cfg.numClasses() + " = the null class)" : ""));
        } else if (y != null) {
            throw new IllegalArgumentException("DiT: this model is unconditional (num_classes 0): y must be null");
        }
        return new ForwardContext(t.clone(), y == null ? null : y.clone());
    }

    /** x_embedder(x) + pos_embed: [N, T, hidden]. */
    public Tensor embed(Tensor x, ForwardContext ctx) {
        return TransformerOps.patchTokens(xEmbedder.forward(x, ctx), posEmbed());
    }

    /** c = t_embedder(t) + y_embedder(y): [N, hidden]. */
    public Tensor conditioning(ForwardContext ctx) {
        Tensor freq = Ops.timestepEmbedding(ctx.t(), FREQUENCY_EMBEDDING_SIZE, true, 0f, MAX_PERIOD);
        Tensor h = tMlp0.forward(freq, ctx);
        Tensor c = tMlp2.forward(TransformerOps.silu(h), ctx);
        if (yEmbedder == null) return c;
        int[] y = ctx.y();
        float[] ids = new float[y.length];
        for (int i = 0; i < y.length; i++) ids[i] = y[i];
        Tensor ye = yEmbedder.forward(Tensor.of(ids, ids.length), ctx);
        return Ops.add(c, ye);
    }

    /**
     * DiTBlock i: x + gate_msa * attn(modulate(norm1(x))), then x + gate_mlp * mlp(modulate(norm2(x))).
     * Neither x nor c is modified.
     */
    public Tensor block(int i, Tensor x, Tensor c, ForwardContext ctx) {
        Block b = blocks[i];
        Tensor mod = b.adaLN.forward(TransformerOps.silu(c), ctx);            // [N, 6D]
        Tensor h = normModulate(b.norm1, x, mod, 6, 0, 1, ctx);
        Tensor qkv = b.qkv.forward(h, ctx);                                   // [N, T, 3D]
        Tensor a = b.explicitAttention() ? explicitAttention(b, qkv, ctx)
                : TransformerOps.attentionFromQkv(qkv, cfg.numHeads(), attnScale);
        Tensor ao = b.proj.forward(a, ctx);
        x = TransformerOps.gatedResidual(x, ao, mod, 6, 2, owned(b.proj));
        h = normModulate(b.norm2, x, mod, 6, 3, 4, ctx);
        Tensor fo;
        if (owned(b.fc1) && owned(b.fc2)) {
            // no hook can see the hidden activation: fused (it stays native where oneDNN is reachable)
            fo = TransformerOps.mlpGeluTanh(h, b.fc1.param("weight"), b.fc1.param("bias"), b.fc2.param("weight"),
                    b.fc2.param("bias"));
        } else {
            Tensor f = b.fc1.forward(h, ctx);                                 // [N, T, mlp]
            if (owned(b.fc1)) TransformerOps.geluTanhInPlace(f);
            else f = TransformerOps.geluTanh(f);
            fo = b.fc2.forward(f, ctx);
        }
        return TransformerOps.gatedResidual(x, fo, mod, 6, 5, owned(b.fc2));
    }

    /** final_layer (adaLN modulate + linear) and unpatchify: [N, out_channels, H, W]. */
    public Tensor head(Tensor x, Tensor c, ForwardContext ctx) {
        Tensor mod = finalAdaLN.forward(TransformerOps.silu(c), ctx);          // [N, 2D]
        Tensor h = normModulate(normFinal, x, mod, 2, 0, 1, ctx);
        Tensor o = finalLinear.forward(h, ctx);
        return TransformerOps.unpatchify(o, cfg.patchSize(), cfg.outChannels());
    }

    /** softmax(q k^T * scale) v with the probes applied to q, k, v and the probabilities. */
    private Tensor explicitAttention(Block b, Tensor qkv, ForwardContext ctx) {
        Tensor[] s = TransformerOps.splitQkv(qkv, cfg.numHeads());
        Tensor q = b.q.forward(s[0], ctx), k = b.k.forward(s[1], ctx), v = b.v.forward(s[2], ctx);
        Tensor p = TransformerOps.attentionScores(q, k, attnScale);
        TransformerOps.softmaxInPlace(p);
        p = b.softmax.forward(p, ctx);
        return TransformerOps.attentionApply(p, v);
    }

    private Tensor normModulate(Norm norm, Tensor x, Tensor mod, int chunks, int shift, int scale, ForwardContext ctx) {
        if (norm.hooks().isEmpty()) return TransformerOps.layerNormModulate(x, mod, chunks, shift, scale, LN_EPS);
        return TransformerOps.modulate(norm.forward(x, ctx), mod, chunks, shift, scale);
    }

    /** A layer's output may be overwritten when no hook could have kept a reference to it. */
    private static boolean owned(Layer l) { return l.hooks().isEmpty(); }
}
