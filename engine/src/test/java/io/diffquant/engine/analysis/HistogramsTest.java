package io.diffquant.engine.analysis;

import io.diffquant.engine.model.dit.DiT;
import io.diffquant.engine.quant.calib.WeightCalibrator;
import io.diffquant.engine.quant.format.FpFormat;
import io.diffquant.engine.quant.format.Granularity;
import io.diffquant.engine.quant.format.IntFormat;
import io.diffquant.engine.quant.format.QuantParams;
import io.diffquant.engine.quant.spec.CalibrationMode;
import io.diffquant.engine.quant.spec.RangeSpec;
import io.diffquant.engine.quant.spec.TensorSpec;
import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class HistogramsTest {

    @Test void weightCountsSumToTheElementsAndTheGridIsTheFormats() {
        DiT m = AnalysisTestSupport.tinyDiT(10);
        TensorSpec spec = TensorSpec.weight(IntFormat.asymmetric(4), Granularity.TENSOR, RangeSpec.MINMAX);
        List<Histograms.Histogram> hs = Histograms.weights(m, List.of("blocks.0.*"), 37, spec);
        assertEquals(5, hs.size(), "qkv, proj, fc1, fc2, adaLN of block 0");
        for (Histograms.Histogram h : hs) {
            Tensor w = m.layers().get(h.layer()).param("weight");
            assertEquals(37, h.bins());
            long sum = 0;
            for (long c : h.counts()) sum += c;
            assertEquals(w.size(), sum);
            assertEquals(w.size(), h.elements());
            float lo = Float.MAX_VALUE, hi = -Float.MAX_VALUE;
            for (float v : w.data()) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
            assertEquals(lo, h.lo(), 0.0);
            assertEquals(hi, h.hi(), 0.0);
            QuantParams p = WeightCalibrator.params(m.layers().get(h.layer()), spec);
            float[] grid = IntFormat.asymmetric(4).grid(p, 0);
            assertEquals(16, grid.length);
            assertArrayEquals(grid, h.grid());
            // an independent count of the first bin
            double width = (h.hi() - h.lo()) / 37;
            long first = 0;
            for (float v : w.data()) if ((int) ((v - h.lo()) / width) <= 0) first++;
            assertEquals(first, h.counts()[0]);
        }
    }

    @Test void e2m1GridOnPerChannelWeightsIsTheWidestChannel() {
        DiT m = AnalysisTestSupport.tinyDiT(11);
        FpFormat e2m1 = new FpFormat(2, 1, true);
        TensorSpec spec = TensorSpec.weight(e2m1, Granularity.CHANNEL, RangeSpec.MINMAX);
        Histograms.Histogram h = Histograms.weights(m, List.of("blocks.1.mlp.fc2"), 50, spec).getFirst();
        float[] w = m.layers().get("blocks.1.mlp.fc2").param("weight").data();
        float absmax = 0;
        for (float v : w) absmax = Math.max(absmax, Math.abs(v));
        // E2M1 with maxval = absmax: {0, ±0.5, ±1, ±1.5, ±2, ±3, ±4, ±6} * absmax / 6
        float[] unit = {-6, -4, -3, -2, -1.5f, -1, -0.5f, 0, 0.5f, 1, 1.5f, 2, 3, 4, 6};
        assertEquals(unit.length, h.grid().length);
        for (int i = 0; i < unit.length; i++) assertEquals(unit[i] * absmax / 6, h.grid()[i], 1e-6 * absmax);
        assertTrue(h.gridNote().contains("widest"), h.gridNote());
    }

    @Test void activationCountsPerTimestepSumToTheInputElements() {
        DiT m = AnalysisTestSupport.tinyDiT(12);
        AnalysisSession s = new AnalysisSession(m, AnalysisTestSupport.fast());
        TensorSpec spec = TensorSpec.input(IntFormat.asymmetric(8), Granularity.TENSOR, RangeSpec.MINMAX, CalibrationMode.PER_TIMESTEP);
        List<Histograms.Histogram> hs = Histograms.activations(s, List.of("blocks.0.mlp.fc2", "blocks.0.adaLN_modulation.1"), 20, spec);
        assertEquals(2 * (4 + 1), hs.size(), "per layer: 4 timesteps and all together");
        int[] ts = s.timesteps();
        // fc2 input: 3 samples x 16 tokens x 128 hidden; adaLN input: 3 samples x 32
        for (Histograms.Histogram h : hs) {
            long per = h.layer().endsWith("fc2") ? 3L * 16 * 128 : 3L * 32;
            long sum = 0;
            for (long c : h.counts()) sum += c;
            boolean all = Float.isNaN(h.timestep());
            assertEquals(all ? 4 * per : per, sum, h.layer() + " t=" + h.timestep());
            assertEquals(sum, h.elements());
            assertEquals(256, h.grid().length);
        }
        for (int k = 0; k < 4; k++) assertEquals(ts[k], hs.get(k).timestep(), 0f, "sampling order");
        assertTrue(m.layers().all().stream().allMatch(l -> l.hooks().isEmpty()));
        // another format: the FP counts come from the session's cache, only the grids change
        long calls = s.denoiserCalls();
        TensorSpec int4 = TensorSpec.input(IntFormat.asymmetric(4), Granularity.TENSOR, RangeSpec.MINMAX, CalibrationMode.STATIC);
        List<Histograms.Histogram> again = Histograms.activations(s, List.of("blocks.0.mlp.fc2", "blocks.0.adaLN_modulation.1"), 20, int4);
        assertEquals(calls, s.denoiserCalls(), "no forward pass for a new grid");
        for (int i = 0; i < hs.size(); i++) {
            assertArrayEquals(hs.get(i).counts(), again.get(i).counts());
            assertEquals(16, again.get(i).grid().length);
        }
    }

    @Test void unknownLayersAreNamed() {
        DiT m = AnalysisTestSupport.tinyDiT(13);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Histograms.weights(m, List.of("nope.*"), 10, null));
        assertTrue(e.getMessage().contains("nope.*"), e.getMessage());
    }
}
