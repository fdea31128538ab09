package io.diffquant.engine.analysis;

import io.diffquant.engine.model.dit.DiTConfig;

/**
 * Closed-form FLOP count of one DiT forward (facebookresearch/DiT models.py), with the conventions of
 * {@link FlopCounter}: 2 per multiply-add of every Linear and Conv2d and 4·T²·D per self-attention (q·kᵀ and
 * probabilities·v over all heads); embeddings, norms, activations and softmax are not counted. Per image and
 * token count T = (input/patch)², width D, MLP width M:
 * patch embedding 2·T·C·p²·D; timestep MLP 2·(256·D + D²); per block adaLN 2·D·6D, qkv 2·T·D·3D, attention 4·T²·D,
 * proj 2·T·D², MLP 4·T·D·M; final layer adaLN 2·D·2D and linear 2·T·D·p²·C_out. The paper's "Gflops" (118.6 for
 * DiT-XL/2 at 256 px) count multiply-adds, half of this figure.
 */
public final class AnalyticFlops {
    private AnalyticFlops() {}

    /** FLOPs of {@code DiT.forward} on a batch of {@code batch} images. */
    public static long dit(DiTConfig c, int batch) {
        long t = c.tokens(), d = c.hiddenSize(), p2 = (long) c.patchSize() * c.patchSize(), m = c.mlpHidden();
        long embed = 2 * t * c.inChannels() * p2 * d;
        long temb = 2 * (256 * d + d * d);
        long block = 2 * d * 6 * d + 2 * t * d * 3 * d + 4 * t * t * d + 2 * t * d * d + 4 * t * d * m;
        long fin = 2 * d * 2 * d + 2 * t * d * p2 * c.outChannels();
        return batch * (embed + temb + c.depth() * block + fin);
    }
}
