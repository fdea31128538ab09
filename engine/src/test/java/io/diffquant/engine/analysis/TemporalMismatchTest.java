package io.diffquant.engine.analysis;

import io.diffquant.engine.model.dit.DiT;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class TemporalMismatchTest {

    /** e(t_k) = (k, 0) for 4 timesteps, one feature of width 2, two labels with e(t_k, y=1) = (k, 1). */
    private static FeatureTable line(float[][] rows) {
        float[] d = new float[rows.length * 2 * 2];
        for (int k = 0; k < rows.length; k++) {
            d[(k * 2) * 2] = rows[k][0];
            d[(k * 2) * 2 + 1] = rows[k][1];
            d[(k * 2 + 1) * 2] = rows[k][0];
            d[(k * 2 + 1) * 2 + 1] = rows[k][1] + 1;
        }
        return new FeatureTable(List.of("f"), new int[] {750, 500, 250, 0}, new int[] {0, 1}, Map.of("f", d));
    }

    @Test void exactFeaturesHaveZeroDiagonalAndNoMismatch() {
        FeatureTable fp = line(new float[][] {{0, 0}, {1, 0}, {2, 0}, {3, 0}});
        TemporalMismatch.Result r = TemporalMismatch.compute("fp", fp, fp);
        TemporalMismatch.FeatureMismatch f = r.feature("f");
        for (int k = 0; k < 4; k++) {
            assertEquals(0.0, f.distance()[k][k], 0.0);
            for (int k2 = 0; k2 < 4; k2++) assertEquals(Math.abs(k - k2), f.distance()[k][k2], 1e-12);
        }
        assertArrayEquals(new int[] {0, 1, 2, 3}, f.nearest());
        assertEquals(0.0, f.rate(), 0.0);
        assertEquals(0.0, r.all().rate(), 0.0);
    }

    @Test void aShiftedFeatureIsNearestToTheNextTimestep() {
        FeatureTable fp = line(new float[][] {{0, 0}, {1, 0}, {2, 0}, {3, 0}});
        // ê(t_0) = (0.9, 0): nearer to e(t_1) = (1, 0) than to e(t_0); ê(t_2) = (2.4, 0): still nearest to t_2
        FeatureTable q = line(new float[][] {{0.9f, 0}, {1, 0}, {2.4f, 0}, {3, 0}});
        TemporalMismatch.Result r = TemporalMismatch.compute("q", fp, q);
        TemporalMismatch.FeatureMismatch f = r.feature("f");
        assertArrayEquals(new int[] {1, 1, 2, 3}, f.nearest());
        assertEquals(0.9, f.distance()[0][0], 1e-6);
        assertEquals(0.1, f.distance()[0][1], 1e-6);
        assertEquals(0.4, f.distance()[2][2], 1e-6);
        assertEquals(0.25, f.rate(), 0.0, "one of four timesteps (both labels) mismatched");
        assertEquals(0.25, r.all().rate(), 0.0, "a single feature: 'all' equals it");
    }

    @Test void quantizedModelShowsMismatchOnlyAgainstOtherTimesteps() {
        DiT m = AnalysisTestSupport.tinyDiT(5);
        AnalysisSession s = new AnalysisSession(m, AnalysisTestSupport.fast());
        List<TemporalMismatch.Result> rs = TemporalMismatch.evaluate(s, List.of(Variant.fullPrecision("fp"),
                Variant.of("w8", AnalysisTestSupport.rtn(m, 8), false)));
        TemporalMismatch.Result fp = rs.get(0), w8 = rs.get(1);
        assertEquals(0.0, fp.all().rate(), 0.0);
        for (int k = 0; k < 4; k++) {
            assertEquals(0.0, fp.all().distance()[k][k], 0.0);
            assertTrue(w8.all().distance()[k][k] > 0);
        }
        assertEquals(0.0, w8.all().rate(), 0.0, "8-bit weights keep every feature nearest to its own timestep");
    }
}
