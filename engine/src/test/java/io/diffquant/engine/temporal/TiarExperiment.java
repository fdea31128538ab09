package io.diffquant.engine.temporal;

import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.quant.CalibratedParams;
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

/** Manual experiment (not a test): TIAR settings vs error and time. Run with -Dtest=TiarExperiment -Dtiar.exp=true. */
class TiarExperiment {
    @Test void sweep() {
        if (!Boolean.getBoolean("tiar.exp")) return;
        DiffusionModel m = TemporalTestSupport.dit(TemporalTestSupport.DIT, 31);
        for (NumberFormat wf : new NumberFormat[] {IntFormat.asymmetric(4), FpFormat.of(2, 1)}) {
            PointSpec w = new PointSpec(TensorSpec.weight(wf, Granularity.CHANNEL, RangeSpec.MINMAX), TensorSpec.OFF);
            QuantPlan plan = QuantPlan.resolve(m, w, List.of());
            CalibratedParams rtn = WeightCalibrator.calibrate(m, plan);
            double base = TiarTest.meanError(m, plan, rtn);
            for (int it : new int[] {400, 1500}) for (double lr : new double[] {1e-3, 1e-2}) for (int b : new int[] {32, 1000}) {
                long t0 = System.nanoTime();
                CalibratedParams p = Tiar.run(m, plan, rtn, TiarTest.GRID, null, ReconSettings.defaults().withSeed(3).withLr(lr), it, b);
                double s = (System.nanoTime() - t0) / 1e9;
                System.out.printf("%s it %d lr %g batch %d: rtn %.5f tiar %.5f ratio %.2f, %.1f s%n", wf.id(), it, lr, b, base,
                        TiarTest.meanError(m, plan, p), base / TiarTest.meanError(m, plan, p), s);
            }
        }
    }
}
