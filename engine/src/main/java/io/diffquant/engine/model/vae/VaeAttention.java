package io.diffquant.engine.model.vae;

import io.diffquant.engine.model.ForwardContext;
import io.diffquant.engine.model.Layer;
import io.diffquant.engine.model.LayerRegistry;
import io.diffquant.engine.model.Linear;
import io.diffquant.engine.model.Norm;
import io.diffquant.engine.model.Probe;
import io.diffquant.engine.tensor.ConvOps;
import io.diffquant.engine.tensor.Tensor;

/**
 * The mid-block self-attention of the VAE: diffusers' {@code Attention(C, heads=C // head_dim, dim_head=head_dim,
 * norm_num_groups=groups, eps=1e-6, residual_connection=True, bias=True, upcast_softmax=True,
 * _from_deprecated_attn_block=True)} (src/diffusers/models/attention_processor.py, AttnProcessor math) with
 * head_dim = C, i.e. one head: group_norm, to_q/to_k/to_v on the [N, HW, C] tokens,
 * softmax(q k^T / sqrt(head_dim)) v, to_out.0, + residual.
 * Probes {@code <prefix>.q/.k/.v} see the projections [N, HW, C], {@code <prefix>.softmax} the probabilities
 * [N, heads, HW, HW]. Registration order as diffusers: group_norm, to_q, to_k, to_v, to_out.0 (probes interleaved;
 * they hold no tensors).
 */
final class VaeAttention {
    final String prefix;
    final int channels, heads, headDim;
    final Norm groupNorm;
    final Linear toQ, toK, toV, toOut;
    final Probe q, k, v, softmax;
    private final float scale;

    VaeAttention(LayerRegistry reg, String prefix, int channels, int headDim, int groups, float eps) {
        if (headDim < 1 || channels % headDim != 0) throw new IllegalArgumentException(prefix + ": head dim " + headDim
                + " does not divide " + channels + " channels");
        this.prefix = prefix;
        this.channels = channels;
        this.headDim = headDim;
        this.heads = channels / headDim;
        this.scale = (float) Math.pow(headDim, -0.5);
        groupNorm = block(reg.add(new Norm(prefix + ".group_norm", Norm.Type.GROUP, channels, groups, eps, true)));
        toQ = block(reg.add(new Linear(prefix + ".to_q", channels, channels, true)));
        toK = block(reg.add(new Linear(prefix + ".to_k", channels, channels, true)));
        toV = block(reg.add(new Linear(prefix + ".to_v", channels, channels, true)));
        q = block(reg.add(new Probe(prefix + ".q")));
        k = block(reg.add(new Probe(prefix + ".k")));
        v = block(reg.add(new Probe(prefix + ".v")));
        softmax = block(reg.add(new Probe(prefix + ".softmax")));
        toOut = block(reg.add(new Linear(prefix + ".to_out.0", channels, channels, true)));
    }

    private <L extends Layer> L block(L l) {
        l.tag("block", prefix);
        return l;
    }

    /** @param fast one-pass attention kernel when nobody observes the probabilities (the softmax probe has no hooks) */
    Tensor forward(Tensor x, ForwardContext ctx, boolean fast) {
        int n = x.dim(0), c = x.dim(1), hh = x.dim(2), ww = x.dim(3), t = hh * ww;
        if (c != channels) throw new IllegalArgumentException(prefix + ": input has " + c + " channels, the block expects " + channels);
        Tensor h = groupNorm.forward(x, ctx);
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
        ConvOps.residualAddInPlace(y, x, 1f);
        return y;
    }
}
