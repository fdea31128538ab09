package io.diffquant.engine.analysis;

import io.diffquant.engine.model.dit.DiT;
import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class TrajectoryDeviationTest {

    @Test void fullPrecisionAgainstItselfIsZeroAndQuantizedIsPositive() {
        DiT m = AnalysisTestSupport.tinyDiT(6);
        AnalysisSession s = new AnalysisSession(m, AnalysisTestSupport.fast());
        TrajectoryDeviation.Result r = TrajectoryDeviation.evaluate(s, List.of(Variant.fullPrecision("fp"),
                Variant.of("w4", AnalysisTestSupport.rtn(m, 4), false)));
        assertArrayEquals(s.timesteps(), r.timesteps());
        assertEquals(3, r.samples());
        TrajectoryDeviation.Series fp = r.config("fp"), w4 = r.config("w4");
        for (int k = 0; k < 4; k++) {
            assertEquals(0.0, fp.l2()[k], 0.0, "same noise, same model: the same trajectory bit for bit");
            assertEquals(0.0, fp.mse()[k], 0.0);
            assertTrue(w4.l2()[k] > 0, "step " + k);
            assertTrue(w4.relative()[k] > 0);
        }
        assertTrue(w4.finalL2() > w4.l2()[0], "the deviation grows along the trajectory");
        long perRun = 4L * 1;   // 4 steps, one batch of 3 samples
        assertEquals(3 * perRun, s.denoiserCalls(), "FP once (cached) plus one run per configuration");
    }

    @Test void compareMeasuresAKnownOffset() {
        Tensor a = Tensor.zeros(2, 1, 2, 2), b = Tensor.full(0.5f, 2, 1, 2, 2);
        a.data()[0] = 1;   // sample 0 has ||x_fp|| = 1
        AnalysisSession.Trajectory fp = new AnalysisSession.Trajectory(a, new int[] {10}, List.of(a), null);
        AnalysisSession.Trajectory q = new AnalysisSession.Trajectory(a, new int[] {10}, List.of(b), null);
        TrajectoryDeviation.Series s = TrajectoryDeviation.compare("q", fp, q);
        // sample 0: diff (-0.5, 0.5, 0.5, 0.5), norm 1; sample 1: diff 0.5 x 4, norm 1
        assertEquals(1.0, s.l2()[0], 1e-12);
        assertEquals(0.25, s.mse()[0], 1e-12);
        assertEquals(Double.POSITIVE_INFINITY, s.relative()[0], "sample 1 has x_fp = 0");
    }
}
