package io.diffquant.engine.model.unet;

import io.diffquant.engine.model.ForwardContext;
import io.diffquant.engine.model.Layer;
import io.diffquant.engine.model.LayerRegistry;
import io.diffquant.engine.model.Linear;
import io.diffquant.engine.model.Norm;
import io.diffquant.engine.model.Probe;
import io.diffquant.engine.tensor.ConvOps;
import io.diffquant.engine.tensor.Tensor;

/**
 * diffusers' spatial self-attention of the UNet blocks: {@code Attention(..., residual_connection=True, bias=True,
 * upcast_softmax=True, _from_deprecated_attn_block=True)} run by AttnProcessor (src/diffusers/models/
 * attention_processor.py): optional group_norm, to_q/to_k/to_v on the [N, HW, C] tokens, heads = C // head_dim,
 * softmax(q k^T / sqrt(head_dim)) v, to_out.0, + residual, / rescale_output_factor.
 * Probes {@code <prefix>.q/.k/.v} see the projections [N, HW, inner], {@code <prefix>.softmax} the probabilities
 * [N, heads, HW, HW]. The VAE's mid-block attention is the same module with one head (head_dim = C) and
 * rescale 1, so {@code model.vae} uses this class too.
 */
public final class AttentionBlock {
    public final String prefix;
    public final int channels, heads, headDim;
    final Norm groupNorm;
    final Linear toQ, toK, toV, toOut;
    final Probe q, k, v, softmax;
    private final float scale, rescale;

    /**
     * Registers group_norm (when {@code groups} is not null), to_q, to_k, to_v, the q/k/v/softmax probes and to_out.0
     * in diffusers' order under {@code prefix}.
     */
    public AttentionBlock(LayerRegistry reg, String prefix, int channels, int headDim, Integer groups, float eps, float rescale) {
        this.prefix = prefix;
        this.channels = channels;
        this.headDim = headDim;
        this.heads = channels / headDim;
        if (heads < 1) throw new IllegalArgumentException(prefix + ": attention_head_dim " + headDim + " exceeds " + channels + " channels");
        int inner = heads * headDim;
        this.scale = (float) Math.pow(headDim, -0.5);
        this.rescale = rescale;
        groupNorm = groups != null ? block(reg.add(new Norm(prefix + ".group_norm", Norm.Type.GROUP, channels, groups, eps, true))) : null;
        toQ = block(reg.add(new Linear(prefix + ".to_q", channels, inner, true)));
        toK = block(reg.add(new Linear(prefix + ".to_k", channels, inner, true)));
        toV = block(reg.add(new Linear(prefix + ".to_v", channels, inner, true)));
        q = block(reg.add(new Probe(prefix + ".q")));
        k = block(reg.add(new Probe(prefix + ".k")));
        v = block(reg.add(new Probe(prefix + ".v")));
        softmax = block(reg.add(new Probe(prefix + ".softmax")));
        toOut = block(reg.add(new Linear(prefix + ".to_out.0", inner, channels, true)));
    }

    private <L extends Layer> L block(L l) {
        l.tag("block", prefix);
        return l;
    }

    /**
     * @param fast fused attention kernel when nobody observes the probabilities (the softmax probe has no hooks);
     *             otherwise explicit logits, softmax, probe, weighted values
     */
    public Tensor forward(Tensor x, ForwardContext ctx, boolean fast) {
        int n = x.dim(0), c = x.dim(1), hh = x.dim(2), ww = x.dim(3), t = hh * ww;
        if (c != channels) throw new IllegalArgumentException(prefix + ": input has " + c + " channels, the block expects " + channels);
        Tensor h = x;
        if (groupNorm != null) h = fast && groupNorm.hooks().isEmpty()
                ? ConvOps.groupNormAct(x, groupNorm.groups(), groupNorm.param("weight"), groupNorm.param("bias"), groupNorm.eps(), null, false)
                : groupNorm.forward(x, ctx);
        Tensor tokens = ConvOps.transposeLast2(h.reshape(n, c, t));
        Tensor qq = q.forward(toQ.forward(tokens, ctx), ctx);
        Tensor kk = k.forward(toK.forward(tokens, ctx), ctx);
        Tensor vv = v.forward(toV.forward(tokens, ctx), ctx);
        Tensor o;
        if (fast && softmax.hooks().isEmpty()) {
            o = ConvOps.multiHeadAttention(qq, kk, vv, heads, scale);
        } else {
            Tensor p = ConvOps.softmax(ConvOps.attentionScores(qq, kk, heads, scale));
            p = softmax.forward(p, ctx);
            o = ConvOps.attentionValues(p, vv, heads);
        }
        o = toOut.forward(o, ctx);
        Tensor y = ConvOps.transposeLast2(o).reshape(n, c, hh, ww);
        ConvOps.residualAddInPlace(y, x, rescale);
        return y;
    }
}
