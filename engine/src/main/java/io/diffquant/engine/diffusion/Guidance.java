package io.diffquant.engine.diffusion;

import io.diffquant.engine.tensor.Parallel;
import io.diffquant.engine.tensor.Tensor;

/**
 * Classifier-free guidance settings and the combination ε = ε_u + s (ε_c - ε_u) (Ho &amp; Salimans 2022;
 * facebookresearch/DiT models.py {@code forward_with_cfg}). The batch is doubled as [cond; uncond] with the
 * unconditional half labelled {@code nullClass} (= the model's num_classes).
 *
 * @param scale     guidance scale s (applied whenever guidance is set, even s = 1, as DiT's sample.py)
 * @param mode      which eps channels are guided
 * @param nullClass the label of the unconditional half
 */
public record Guidance(double scale, GuidanceMode mode, int nullClass) {
    public Guidance {
        if (!Double.isFinite(scale)) throw new IllegalArgumentException("guidance scale must be finite, got " + scale);
        if (mode == null) mode = GuidanceMode.ALL_CHANNELS;
        if (nullClass < 0) throw new IllegalArgumentException("guidance null class must be >= 0 (the model's num_classes), got "
                + nullClass);
    }

    /** All-channel guidance with null class {@code numClasses}. */
    public static Guidance of(double scale, int numClasses) { return new Guidance(scale, GuidanceMode.ALL_CHANNELS, numClasses); }

    /**
     * Combines the doubled model output [2N, outC, H, W] = [cond; uncond] into the cond half [N, outC, H, W]:
     * the guided channels get ε_u + s (ε_c - ε_u) in float32 (s cast to float, as torch does), every other channel
     * (the rest of eps in DiT-compatible mode, and learned-sigma v channels) is taken from the cond half.
     *
     * @param epsChannels C, the number of eps channels (the model's input channels)
     */
    public static Tensor combine(Tensor out2n, int epsChannels, double scale, GuidanceMode mode) {
        if (out2n.rank() != 4) throw new IllegalArgumentException("guidance: model output must be [2N, outC, H, W], got "
                + out2n);
        int b2 = out2n.dim(0), oc = out2n.dim(1), h = out2n.dim(2), w = out2n.dim(3);
        if (b2 % 2 != 0) throw new IllegalArgumentException("guidance: model output batch " + b2 + " is not even ([cond; uncond])");
        if (epsChannels < 1 || epsChannels > oc) throw new IllegalArgumentException("guidance: " + epsChannels
                + " eps channels but the model output has " + oc);
        int guided;
        if (mode == GuidanceMode.DIT_COMPATIBLE) {
            if (epsChannels < 3) throw new IllegalArgumentException("guidance: DiT-compatible mode guides 3 channels but the "
                    + "model has only " + epsChannels + " eps channels; use ALL_CHANNELS");
            guided = 3;
        } else {
            guided = epsChannels;
        }
        int n = b2 / 2;
        int plane = h * w;
        int per = oc * plane;
        Tensor out = out2n.sliceRows(0, n); // cond half: every unguided channel already in place
        float[] src = out2n.data(), dst = out.data();
        float s = (float) scale;
        int g = guided * plane;
        Parallel.forRange(n, 1, (from, to) -> {
            for (int i = from; i < to; i++) {
                int c0 = i * per, u0 = (n + i) * per;
                for (int j = 0; j < g; j++) {
                    float u = src[u0 + j];
                    dst[c0 + j] = u + s * (src[c0 + j] - u);
                }
            }
        });
        return out;
    }
}
