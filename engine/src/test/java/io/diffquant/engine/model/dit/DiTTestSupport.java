package io.diffquant.engine.model.dit;

import static io.diffquant.engine.testing.Golden.*;
import io.diffquant.engine.tensor.Tensor;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

/** Shared helpers of the DiT tests. */
final class DiTTestSupport {
    private DiTTestSupport() {}

    static Tensor rand(Random r, double std, int... shape) {
        Tensor t = Tensor.zeros(shape);
        for (int i = 0; i < t.size(); i++) t.data()[i] = (float) (r.nextGaussian() * std);
        return t;
    }

    /** A model with every parameter N(0, std) (pos_embed keeps its sin-cos values), and that state_dict. */
    static DiT randomModel(DiTConfig cfg, long seed, double std) {
        DiT m = new DiT(cfg);
        m.loadWeights(randomStateDict(m, seed, std), "random(" + seed + ")");
        return m;
    }

    static Map<String, Tensor> randomStateDict(DiT m, long seed, double std) {
        Random r = new Random(seed);
        Map<String, Tensor> sd = new LinkedHashMap<>();
        for (var e : m.stateDict().entrySet())
            sd.put(e.getKey(), e.getKey().equals("pos_embed") ? e.getValue().copy() : rand(r, std, e.getValue().shape()));
        return sd;
    }


    static double maxAbs(Tensor a) {
        double m = 0;
        for (float v : a.data()) m = Math.max(m, Math.abs(v));
        return m;
    }
}
