package io.diffquant.engine.backend.cpu;

import io.diffquant.engine.model.ForwardContext;
import io.diffquant.engine.model.Layer;
import io.diffquant.engine.model.LayerHook;
import io.diffquant.engine.model.dit.DiT;
import io.diffquant.engine.quant.QuantizedModel;
import io.diffquant.engine.tensor.Tape;
import io.diffquant.engine.tensor.Tensor;
import io.diffquant.engine.tensor.TransformerOps;

import java.util.Map;

/**
 * The DiT forward pass of the {@code cpu-int8} backend (facebookresearch/DiT models.py, DiTBlock, the same op sequence
 * as {@link DiT#block}). A block whose five Linear layers all run on int8 kernels, and which has no other hook, runs
 * here: the int8 outputs belong to this pass, so the MLP runs fused ({@link Int8Linear#mlpGeluTanhGatedResidual}: fc1's
 * sums go through GELU straight to fc2's int8 codes) and the gated residuals are applied while proj's and fc2's outputs
 * are dequantized. The model's own block code must copy there, because a hook might keep the tensor. silu(c)
 * is computed once for all blocks. Any other block (other hooks, fake-quantized layers, a recording tape) runs through
 * {@link DiT#block} unchanged. The embedding, conditioning and final layer always run through the model's layers, with
 * their hooks. The result equals the per-layer hook path exactly: same kernels, same order.
 */
final class Int8DiTForward {
    /** DiT's LayerNorm epsilon (elementwise_affine=False, eps=1e-6), as {@code DiT.LN_EPS}. */
    static final float LN_EPS = 1e-6f;
    static final String[] LINEARS = {"adaLN_modulation.1", "attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2"};

    private Int8DiTForward() {}

    /** The forward pass; {@code hooks} maps layer names to the backend's hooks. */
    static Tensor forward(DiT dit, QuantizedModel q, Map<String, CpuInt8Backend.Hook> hooks, Tensor x, float[] t, int[] y) {
        ForwardContext ctx = dit.context(x, t, y);
        Tensor h = dit.embed(x, ctx);
        Tensor c = dit.conditioning(ctx);
        Tensor siluC = null;
        int heads = dit.config().numHeads();
        float scale = (float) Math.pow(dit.config().headDim(), -0.5);
        for (int i = 0; i < dit.depth(); i++) {
            CpuInt8Backend.Hook[] hs = fusable(dit, q, hooks, i);
            if (hs == null) {
                h = dit.block(i, h, c, ctx);
                continue;
            }
            if (siluC == null) siluC = TransformerOps.silu(c);
            h = block(hs, h, siluC, ctx, heads, scale);
        }
        return dit.head(h, c, ctx);
    }

    /** The number of blocks that would run fused now (for tests and tools). */
    static int fusedBlocks(DiT dit, QuantizedModel q, Map<String, CpuInt8Backend.Hook> hooks) {
        int n = 0;
        for (int i = 0; i < dit.depth(); i++) if (fusable(dit, q, hooks, i) != null) n++;
        return n;
    }

    /**
     * The hooks of block i's Linear layers in {@link #LINEARS} order when the block can run here: no tape records, every
     * Linear carries exactly the backend's hook and the handed-over fake-quant hook, and no other layer of the block
     * (norms, attention probes) carries any hook. Null otherwise. Checked at every call (hooks may change between calls).
     */
    static CpuInt8Backend.Hook[] fusable(DiT dit, QuantizedModel q, Map<String, CpuInt8Backend.Hook> hooks, int i) {
        if (Tape.active() != null) return null;
        String b = "blocks." + i + ".";
        CpuInt8Backend.Hook[] hs = new CpuInt8Backend.Hook[LINEARS.length];
        for (int k = 0; k < LINEARS.length; k++) {
            CpuInt8Backend.Hook h = hooks.get(b + LINEARS[k]);
            if (h == null || !q.handedOver(h.layer.name())) return null;
            var lh = h.layer.hooks();
            if (lh.size() != 2 || !lh.contains(h)) return null;
            hs[k] = h;
        }
        for (String p : new String[] {"norm1", "norm2", "attn.q", "attn.k", "attn.v", "attn.softmax"}) {
            Layer l = dit.layers().get(b + p);
            if (l == null || !l.hooks().isEmpty()) return null;
        }
        return hs;
    }

    /** DiTBlock: x + gate_msa * attn(modulate(norm1(x))), then x + gate_mlp * mlp(modulate(norm2(x))); x is not modified. */
    private static Tensor block(CpuInt8Backend.Hook[] hs, Tensor x, Tensor siluC, ForwardContext ctx, int heads, float scale) {
        Tensor mod = run(hs[0], siluC, ctx);                                               // [N, 6D]
        Tensor h = TransformerOps.layerNormModulate(x, mod, 6, 0, 1, LN_EPS);
        Tensor qkv = run(hs[1], h, ctx);                                                   // [N, T, 3D]
        Tensor a = TransformerOps.attentionFromQkv(qkv, heads, scale);
        // x + gate_msa * proj(a), the gated residual applied while proj's output is dequantized
        x = hs[2].running().forwardGatedResidual(a, hs[2].step(ctx), x, mod, 6, 2);
        h = TransformerOps.layerNormModulate(x, mod, 6, 3, 4, LN_EPS);
        // x + gate_mlp * fc2(gelu(fc1(h))) fused per block of rows: the hidden activation goes from fc1's s32 sums to
        // fc2's int8 codes without becoming a tensor, and the gated residual is applied in fc2's dequantization
        return Int8Linear.mlpGeluTanhGatedResidual(hs[3].running(), hs[4].running(), h, hs[3].step(ctx), hs[4].step(ctx), x, mod, 6, 5);
    }

    private static Tensor run(LayerHook h, Tensor x, ForwardContext ctx) {
        CpuInt8Backend.Hook hook = (CpuInt8Backend.Hook) h;
        return hook.replace(hook.layer, x, ctx);
    }
}
