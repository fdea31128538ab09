package io.diffquant.engine.model.unet;

import io.diffquant.engine.model.Conv2d;
import io.diffquant.engine.model.ForwardContext;
import io.diffquant.engine.model.Layer;
import io.diffquant.engine.model.LayerRegistry;
import io.diffquant.engine.model.Linear;
import io.diffquant.engine.model.Norm;
import io.diffquant.engine.model.Probe;
import io.diffquant.engine.tensor.ConvOps;
import io.diffquant.engine.tensor.Ops;
import io.diffquant.engine.tensor.Tensor;

/**
 * diffusers' ResnetBlock2D (src/diffusers/models/resnet.py) with pre-norm, SiLU, time_embedding_norm "default" or
 * "scale_shift", optional nearest-2x up / 2x2-average down resampling ({@code up=True}/{@code down=True}, kernel None)
 * and a 1x1 conv_shortcut when the channel count changes. In an up block its input is the skip concatenation,
 * observed by the probe {@code <prefix>.concat}.
 */
final class ResnetBlock2D {
    enum Resample { NONE, UP, DOWN }

    final String prefix;
    final int in, out;
    final Probe concat;
    final Norm norm1, norm2;
    final Conv2d conv1, conv2, convShortcut;
    final Linear timeEmbProj;
    private final boolean scaleShift;
    private final float outputScaleFactor;
    private final Resample resample;

    /**
     * @param concatFirst channels of the first (upsampled) part of a skip concatenation, or -1 when the input is
     *                    not a concatenation
     */
    ResnetBlock2D(LayerRegistry reg, String prefix, int in, int out, int tembDim, int groups, float eps,
                  boolean scaleShift, float outputScaleFactor, Resample resample, int concatFirst) {
        this.prefix = prefix;
        this.in = in;
        this.out = out;
        this.scaleShift = scaleShift;
        this.outputScaleFactor = outputScaleFactor;
        this.resample = resample;
        concat = concatFirst >= 0 ? block(reg.add(new Probe(prefix + ".concat"))) : null;
        norm1 = block(reg.add(new Norm(prefix + ".norm1", Norm.Type.GROUP, in, groups, eps, true)));
        conv1 = block(reg.add(new Conv2d(prefix + ".conv1", in, out, 3, 1, 1, true)));
        timeEmbProj = block(reg.add(new Linear(prefix + ".time_emb_proj", tembDim, scaleShift ? 2 * out : out, true)));
        timeEmbProj.tag("temporal", "true");
        norm2 = block(reg.add(new Norm(prefix + ".norm2", Norm.Type.GROUP, out, groups, eps, true)));
        conv2 = block(reg.add(new Conv2d(prefix + ".conv2", out, out, 3, 1, 1, true)));
        convShortcut = in != out ? block(reg.add(new Conv2d(prefix + ".conv_shortcut", in, out, 1, 1, 0, true))) : null;
        if (concatFirst >= 0) {
            conv1.tag("concat-split", Integer.toString(concatFirst));
            if (convShortcut != null) convShortcut.tag("concat-split", Integer.toString(concatFirst));
        }
    }

    private <L extends Layer> L block(L l) {
        l.tag("block", prefix);
        return l;
    }

    /** The block's input in an up block: torch.cat([hidden, skip], dim=1) observed by the concat probe. */
    Tensor concatInput(Tensor hidden, Tensor skip, ForwardContext ctx) {
        return concat.forward(Ops.concatChannels(hidden, skip), ctx);
    }

    /**
     * @param tembAct SiLU(temb) [N, temb_channels] (the block's {@code nonlinearity(temb)}, shared by all blocks)
     * @param fast    use the fused GroupNorm+SiLU kernels where the norm layers carry no hooks
     */
    Tensor forward(Tensor x, Tensor tembAct, ForwardContext ctx, boolean fast) {
        if (x.dim(1) != in) throw new IllegalArgumentException(prefix + ": input has " + x.dim(1) + " channels, the block expects " + in);
        Tensor h = UNet2DModel.normAct(norm1, x, null, ctx, fast);
        if (resample == Resample.UP) {
            x = Ops.upsampleNearest2x(x);
            h = Ops.upsampleNearest2x(h);
        } else if (resample == Resample.DOWN) {
            x = Ops.avgPool2x(x);
            h = Ops.avgPool2x(h);
        }
        h = conv1.forward(h, ctx);
        Tensor tp = timeEmbProj.forward(tembAct, ctx);
        if (scaleShift) {
            h = UNet2DModel.normAct(norm2, h, tp, ctx, fast);
        } else {
            h = UNet2DModel.owned(conv1, h);
            Ops.addPerSampleChannel(h, tp);
            h = UNet2DModel.normAct(norm2, h, null, ctx, fast);
        }
        h = conv2.forward(h, ctx);
        Tensor sc = convShortcut != null ? convShortcut.forward(x, ctx) : x;
        Tensor y = UNet2DModel.owned(conv2, h);
        ConvOps.residualAddInPlace(y, sc, outputScaleFactor);
        return y;
    }
}
