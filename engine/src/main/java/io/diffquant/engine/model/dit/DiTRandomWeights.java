package io.diffquant.engine.model.dit;

import io.diffquant.engine.tensor.Tensor;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;

/**
 * Random DiT weights in the regime of a trained DiT rather than of an arbitrary network, for benchmarks of models that
 * cannot be downloaded here (a DiT-S/2-sized model): DiT's {@code initialize_weights} (facebookresearch/DiT models.py:
 * Xavier-uniform Linear/Conv weights, N(0, 0.02²) label table and timestep MLP), except that the adaLN modulations and
 * the final layer, which DiT zero-initialises (every block an identity, the output 0), get N(0, 0.02²) weights, and
 * biases N(0, 0.02²) so the bias paths are exercised.
 *
 * <p>With N(0, 1/fan_in) everywhere instead, the blocks' gates are O(1) and the network amplifies any rounding
 * difference chaotically: two W8A8 executions whose single forward passes agree to a relative 6e-3 end up ~20 dB
 * apart after 10 DDIM steps of a DiT-S/2, which says nothing about a trained model.
 */
public final class DiTRandomWeights {
    private DiTRandomWeights() {}

    /** A DiT of the given config with the weights described in the class comment, deterministic in {@code seed}. */
    public static DiT create(DiTConfig cfg, long seed) {
        DiT m = new DiT(cfg);
        Random r = new Random(seed);
        Map<String, Tensor> sd = new LinkedHashMap<>();
        for (var e : m.stateDict().entrySet()) {
            String k = e.getKey();
            Tensor t = e.getValue();
            if (k.equals("pos_embed")) {
                sd.put(k, t.copy());
                continue;
            }
            int[] s = t.shape();
            boolean small = s.length < 2 || k.contains("adaLN_modulation") || k.startsWith("final_layer")
                    || k.startsWith("y_embedder") || k.startsWith("t_embedder");
            float[] d = new float[t.size()];
            if (small) {
                for (int i = 0; i < d.length; i++) d[i] = (float) (r.nextGaussian() * 0.02);
            } else {
                int fanOut = s[0], fanIn = t.size() / s[0];
                double a = Math.sqrt(6.0 / (fanIn + fanOut));          // Xavier uniform bound
                for (int i = 0; i < d.length; i++) d[i] = (float) ((r.nextDouble() * 2 - 1) * a);
            }
            sd.put(k, Tensor.of(d, s));
        }
        m.loadWeights(sd, "random(" + seed + ")");
        return m;
    }
}
