package io.diffquant.engine.model.vae;

import io.diffquant.engine.model.Conv2d;
import io.diffquant.engine.model.ForwardContext;
import io.diffquant.engine.model.Layer;
import io.diffquant.engine.model.LayerRegistry;
import io.diffquant.engine.model.Norm;
import io.diffquant.engine.tensor.ConvOps;
import io.diffquant.engine.tensor.Tensor;

/**
 * diffusers' ResnetBlock2D (src/diffusers/models/resnet.py) as the VAE builds it: no time embedding
 * ({@code temb_channels=None}, so no time_emb_proj), pre-norm GroupNorm + SiLU, two 3x3 convs, a 1x1 conv_shortcut
 * when the channel count changes, output_scale_factor 1:
 * {@code y = shortcut(x) + conv2(silu(norm2(conv1(silu(norm1(x))))))}.
 * Registration order as diffusers: norm1, conv1, norm2, conv2, conv_shortcut.
 */
final class VaeResnetBlock {
    final String prefix;
    final int in, out;
    final Norm norm1, norm2;
    final Conv2d conv1, conv2, convShortcut;

    VaeResnetBlock(LayerRegistry reg, String prefix, int in, int out, int groups, float eps) {
        this.prefix = prefix;
        this.in = in;
        this.out = out;
        norm1 = block(reg.add(new Norm(prefix + ".norm1", Norm.Type.GROUP, in, groups, eps, true)));
        conv1 = block(reg.add(new Conv2d(prefix + ".conv1", in, out, 3, 1, 1, true)));
        norm2 = block(reg.add(new Norm(prefix + ".norm2", Norm.Type.GROUP, out, groups, eps, true)));
        conv2 = block(reg.add(new Conv2d(prefix + ".conv2", out, out, 3, 1, 1, true)));
        convShortcut = in != out ? block(reg.add(new Conv2d(prefix + ".conv_shortcut", in, out, 1, 1, 0, true))) : null;
    }

    private <L extends Layer> L block(L l) {
        l.tag("block", prefix);
        return l;
    }

    /** @param fast fused GroupNorm+SiLU where the norm layers carry no hooks */
    Tensor forward(Tensor x, ForwardContext ctx, boolean fast) {
        if (x.dim(1) != in) throw new IllegalArgumentException(prefix + ": input has " + x.dim(1) + " channels, the block expects " + in);
        Tensor h = AutoencoderKL.normAct(norm1, x, ctx, fast);
        h = conv1.forward(h, ctx);
        h = AutoencoderKL.normAct(norm2, h, ctx, fast);
        h = conv2.forward(h, ctx);
        Tensor sc = convShortcut != null ? convShortcut.forward(x, ctx) : x;
        Tensor y = AutoencoderKL.owned(conv2, h);
        ConvOps.residualAddInPlace(y, sc, 1f);
        return y;
    }
}
