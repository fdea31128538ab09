package io.diffquant.engine.temporal;

import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.quant.CalibratedParams;
import io.diffquant.engine.quant.QuantizedModel;
import io.diffquant.engine.quant.calib.WeightCalibrator;
import io.diffquant.engine.quant.format.FpFormat;
import io.diffquant.engine.quant.format.Granularity;
import io.diffquant.engine.quant.format.IntFormat;
import io.diffquant.engine.quant.format.NumberFormat;
import io.diffquant.engine.quant.recon.ReconSettings;
import io.diffquant.engine.quant.spec.PointSpec;
import io.diffquant.engine.quant.spec.QuantPlan;
import io.diffquant.engine.quant.spec.RangeSpec;
import io.diffquant.engine.quant.spec.TensorSpec;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** TIAR lowers the temporal feature error of the quantized TIB against round to nearest (INT and scale-aware FP). */
class TiarTest {
    static final float[] GRID = {999, 899, 799, 699, 599, 499, 399, 299, 199, 99, 1};

    static double meanError(DiffusionModel m, QuantPlan plan, CalibratedParams params) {
        TemporalFeatures fp = TemporalFeatures.compute(m, GRID, null);
        QuantizedModel q = QuantizedModel.attach(m, plan, params);
        try {
            return TemporalErrors.compare(fp, TemporalFeatures.computeQuantized(q, GRID, null)).mean(TemporalErrors.Metric.REL_L2);
        } finally {
            q.detach();
        }
    }

    static void check(DiffusionModel m, NumberFormat wf, double factor) {
        PointSpec w = new PointSpec(TensorSpec.weight(wf, Granularity.CHANNEL, RangeSpec.MINMAX), TensorSpec.OFF);
        QuantPlan plan = QuantPlan.resolve(m, w, List.of());
        CalibratedParams rtn = WeightCalibrator.calibrate(m, plan);
        Tiar.Run run = Tiar.start(m, plan, rtn, GRID, null, ReconSettings.defaults().withSeed(3).withLr(1e-2), 400, 1000);
        while (run.hasNext()) run.next();
        CalibratedParams tiar = run.result();
        Tiar.Report r = run.report();
        TemporalInfoBlock tib = TemporalInfoBlock.of(m);
        assertEquals(tib.linearLayers(m), r.layers(), "every quantized TIB linear is reconstructed");
        for (String l : r.layers()) assertNotNull(tiar.weight(l).codes(), l + " has learned codes");
        assertNull(tiar.weight("blocks.0.attn.qkv").codes(), "non-TIB layers keep round to nearest");
        double before = meanError(m, plan, rtn), after = meanError(m, plan, tiar);
        assertTrue(r.tiarLoss() < r.rtnLoss(), "TIAR loss " + r.tiarLoss() + " vs RTN " + r.rtnLoss());
        assertTrue(after * factor < before, wf.id() + ": temporal feature error " + after + " after TIAR vs " + before + " with RTN");
    }

    @Test void tiarBeatsRoundToNearestAtW4Int() {
        check(TemporalTestSupport.dit(TemporalTestSupport.DIT, 31), IntFormat.asymmetric(4), 2);
    }

    @Test void tiarBeatsRoundToNearestAtFp4() {
        check(TemporalTestSupport.dit(TemporalTestSupport.DIT, 32), FpFormat.of(2, 1), 1.5);
    }

    /**
     * The heap check before TIAR: the learned weights are exactly the TIB linears' weight elements (counted here from the
     * layer shapes), the feature table is timesteps x labels x TIB width floats, and a heap too small for
     * 60 bytes per weight plus the table gives a message naming TIAR, the heap to set and the cheaper setting.
     */
    @Test void tiarWorkspaceIsCheckedBeforeAnythingIsAllocated() {
        DiffusionModel m = TemporalTestSupport.dit(TemporalTestSupport.DIT, 31);
        QuantPlan plan = QuantPlan.resolve(m, new PointSpec(TensorSpec.weight(IntFormat.asymmetric(4), Granularity.CHANNEL, RangeSpec.MINMAX),
                TensorSpec.OFF), List.of());
        TemporalInfoBlock tib = TemporalInfoBlock.of(m);
        long n = 0;
        for (String l : tib.linearLayers(m)) n += m.layers().get(l).param("weight").size();
        assertEquals(n, Tiar.learnedWeights(m, plan, tib));
        int labels = tib.labels() == null ? 1 : tib.labels().length;
        assertEquals(4L * GRID.length * labels * tib.totalWidth(), Tiar.tableBytes(tib, GRID, null));
        long need = n * Tiar.BYTES_PER_WEIGHT + Tiar.tableBytes(tib, GRID, null);
        io.diffquant.engine.model.MemoryBudget.checkWorkspace(need, need + 100, 100, 0, "TIAR", "tiar = false");   // fits exactly
        var e = org.junit.jupiter.api.Assertions.assertThrows(io.diffquant.engine.model.MemoryBudget.InsufficientMemoryException.class,
                () -> io.diffquant.engine.model.MemoryBudget.checkWorkspace(need, need + 100, 101, 0, "TIAR on the TIB", "calibrate without TIAR (option tiar = false)"));
        assertTrue(e.getMessage().startsWith("TIAR on the TIB needs about ") && e.getMessage().contains("DIFFQUANT_HEAP=-Xmx")
                && e.getMessage().endsWith("; or calibrate without TIAR (option tiar = false)"), e.getMessage());
        assertEquals(need, e.needBytes());
    }
}
