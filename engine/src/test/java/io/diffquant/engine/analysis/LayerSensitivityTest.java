package io.diffquant.engine.analysis;

import io.diffquant.engine.model.dit.DiT;
import io.diffquant.engine.quant.spec.PointSpec;
import io.diffquant.engine.quant.spec.TensorSpec;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class LayerSensitivityTest {

    @Test void twoBitLayerRanksAboveEightBitLayer() {
        DiT m = AnalysisTestSupport.tinyDiT(7);
        AnalysisSession s = new AnalysisSession(m, AnalysisTestSupport.fast());
        PointSpec w2 = new PointSpec(AnalysisTestSupport.weightInt(2), TensorSpec.OFF);
        PointSpec w8 = new PointSpec(AnalysisTestSupport.weightInt(8), TensorSpec.OFF);
        List<LayerSensitivity.LayerProbe> probes = List.of(
                new LayerSensitivity.LayerProbe("blocks.0.mlp.fc1", w8),
                new LayerSensitivity.LayerProbe("blocks.1.mlp.fc1", w2),
                new LayerSensitivity.LayerProbe("blocks.0.mlp.fc1", w2));
        LayerSensitivity.Result r = LayerSensitivity.evaluate(s, probes);
        assertEquals(3, r.relativeError().length);
        assertEquals(4, r.relativeError()[0].length, "one column per sampling timestep");
        for (double[] row : r.relativeError()) for (double v : row) assertTrue(v > 0);
        assertTrue(r.meanError()[1] > r.meanError()[0], "2-bit fc1 of block 1 above 8-bit fc1 of block 0");
        assertTrue(r.meanError()[2] > 100 * r.meanError()[0], "the same layer: 2 bits " + r.meanError()[2] + " vs 8 bits " + r.meanError()[0]);
        assertEquals(0, r.ranking()[r.ranking().length - 1], "the 8-bit probe ranks last");
        double mean = 0;
        for (double v : r.relativeError()[1]) mean += v / 4;
        assertEquals(mean, r.meanError()[1], 1e-15);
        assertTrue(m.layers().all().stream().allMatch(l -> l.hooks().isEmpty()), "every probe is detached");
    }

    @Test void allLayersListsEveryWeightLayerAndErrorsNameTheLayer() {
        DiT m = AnalysisTestSupport.tinyDiT(8);
        PointSpec w4 = new PointSpec(AnalysisTestSupport.weightInt(4), TensorSpec.OFF);
        List<LayerSensitivity.LayerProbe> all = LayerSensitivity.allLayers(m, w4);
        // x_embedder, t_embedder.mlp.0/2, 2 blocks x (qkv, proj, fc1, fc2, adaLN), final linear + adaLN
        assertEquals(3 + 10 + 2, all.size());
        AnalysisSession s = new AnalysisSession(m, AnalysisTestSupport.fast());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> LayerSensitivity.evaluate(s, List.of(new LayerSensitivity.LayerProbe("blocks.9.mlp.fc1", w4))));
        assertTrue(e.getMessage().contains("blocks.9.mlp.fc1"), e.getMessage());
    }

    @Test void fullPrecisionOutputsAreComputedOnce() {
        DiT m = AnalysisTestSupport.tinyDiT(9);
        AnalysisSession s = new AnalysisSession(m, AnalysisTestSupport.fast());
        PointSpec w4 = new PointSpec(AnalysisTestSupport.weightInt(4), TensorSpec.OFF);
        LayerSensitivity.evaluate(s, List.of(new LayerSensitivity.LayerProbe("blocks.0.attn.qkv", w4)));
        long after1 = s.denoiserCalls();
        assertEquals(4 + 4 + 4, after1, "FP trajectory (4 steps) + FP outputs (4) + the probe (4)");
        LayerSensitivity.Result r = LayerSensitivity.evaluate(s, List.of(new LayerSensitivity.LayerProbe("blocks.0.attn.qkv", w4),
                new LayerSensitivity.LayerProbe("blocks.1.attn.qkv", w4)));
        assertEquals(after1 + 8, s.denoiserCalls(), "only the probes run again");
        assertArrayEquals(s.timesteps(), r.timesteps());
    }
}
