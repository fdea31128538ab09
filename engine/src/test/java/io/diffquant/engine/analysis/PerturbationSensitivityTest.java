package io.diffquant.engine.analysis;

import io.diffquant.engine.model.dit.DiT;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class PerturbationSensitivityTest {

    @Test void zeroNoiseReproducesFullPrecisionAndNoiseGrowsTheError() {
        DiT m = AnalysisTestSupport.tinyDiT(14);
        AnalysisSession s = new AnalysisSession(m, AnalysisTestSupport.fast());
        PerturbationSensitivity.Result r = PerturbationSensitivity.evaluate(s, new double[] {0, 0.05, 0.5}, 3, null);
        assertEquals(List.of("blocks.0.adaLN_modulation.1", "blocks.1.adaLN_modulation.1", "final_layer.adaLN_modulation.1"), r.temporal().sites());
        assertEquals(List.of("blocks.0", "blocks.1"), r.nonTemporal().sites());
        assertEquals(0.0, r.temporal().mse()[0], 0.0);
        assertEquals(0.0, r.nonTemporal().mse()[0], 0.0);
        for (PerturbationSensitivity.Sweep w : List.of(r.temporal(), r.nonTemporal())) {
            assertTrue(w.mse()[1] > 0, w.target() + " λ=0.05");
            assertTrue(w.mse()[2] > w.mse()[1], w.target() + " grows with λ");
            for (double f : w.fid()) assertTrue(Double.isNaN(f), "no metrics: no FID");
        }
        assertTrue(Double.isNaN(r.fpFid()));
        assertTrue(m.layers().all().stream().allMatch(l -> l.hooks().isEmpty()), "perturbation hooks removed");
    }

    @Test void theNoiseIsDeterministic() {
        DiT m = AnalysisTestSupport.tinyDiT(15);
        AnalysisSession s = new AnalysisSession(m, AnalysisTestSupport.fast());
        PerturbationSensitivity.Result a = PerturbationSensitivity.evaluate(s, new double[] {0.1}, 3, null);
        PerturbationSensitivity.Result b = PerturbationSensitivity.evaluate(s, new double[] {0.1}, 3, null);
        assertArrayEquals(a.temporal().mse(), b.temporal().mse(), 0.0);
        assertArrayEquals(a.nonTemporal().mse(), b.nonTemporal().mse(), 0.0);
    }

    @Test void perturberAddsNoiseOfTheRowStd() {
        PerturbationSensitivity.Perturber p = new PerturbationSensitivity.Perturber(3, 0.5f);
        int n = 2, d = 20000;
        float[] x = new float[n * d];
        java.util.Random r = new java.util.Random(1);
        for (int j = 0; j < d; j++) { x[j] = (float) (2 * r.nextGaussian()); x[d + j] = (float) (0.1 * r.nextGaussian() + 5); }
        io.diffquant.engine.tensor.Tensor y = p.perturb(io.diffquant.engine.tensor.Tensor.of(x, n, d), 0);
        double[] expectStd = {0.5 * 2, 0.5 * 0.1};
        for (int i = 0; i < n; i++) {
            double ss = 0;
            for (int j = i * d; j < (i + 1) * d; j++) ss += Math.pow(y.data()[j] - x[j], 2);
            assertEquals(expectStd[i], Math.sqrt(ss / d), 0.03 * expectStd[i], "row " + i);
        }
    }
}
