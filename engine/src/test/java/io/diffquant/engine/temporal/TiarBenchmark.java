package io.diffquant.engine.temporal;

import io.diffquant.engine.diffusion.Respacing;
import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.model.ModelFolder;
import io.diffquant.engine.quant.CalibratedParams;
import io.diffquant.engine.quant.QuantizedModel;
import io.diffquant.engine.quant.calib.WeightCalibrator;
import io.diffquant.engine.quant.format.Granularity;
import io.diffquant.engine.quant.format.IntFormat;
import io.diffquant.engine.quant.recon.ReconSettings;
import io.diffquant.engine.quant.spec.PointSpec;
import io.diffquant.engine.quant.spec.QuantPlan;
import io.diffquant.engine.quant.spec.RangeSpec;
import io.diffquant.engine.quant.spec.TensorSpec;

import java.nio.file.Path;
import java.util.List;
import java.util.Locale;

/**
 * TIAR cost and effect on a model (not a unit test): {@code TiarBenchmark <model folder> [iters,batch,lr ...]} with W4
 * per-channel INT weights on the TIB (activations in FP), DDIM 50 timesteps, every label: the temporal feature error
 * with round to nearest and after TIAR, and the time.
 */
public final class TiarBenchmark {
    public static void main(String[] args) throws Exception {
        DiffusionModel m = ModelFolder.load(Path.of(args[0])).model();
        int[] ts = Respacing.spaceTimesteps(1000, "ddim50");
        float[] t = new float[ts.length];
        for (int i = 0; i < ts.length; i++) t[ts.length - 1 - i] = ts[i];
        PointSpec w4 = new PointSpec(TensorSpec.weight(IntFormat.asymmetric(4), Granularity.CHANNEL, RangeSpec.MINMAX), TensorSpec.OFF);
        QuantPlan plan = QuantPlan.resolve(m, w4, List.of());
        CalibratedParams rtn = WeightCalibrator.calibrate(m, plan);
        TemporalFeatures fp = TemporalFeatures.compute(m, t, null);
        double base = error(m, plan, rtn, fp, t);
        System.out.printf(Locale.ROOT, "RTN W4 TIB: mean rel L2 %.4g (%d timesteps x %d labels)%n", base, t.length, fp.labelCount());
        for (int k = 1; k < args.length; k++) {
            String[] p = args[k].split(",");
            int it = Integer.parseInt(p[0]), b = Integer.parseInt(p[1]);
            double lr = Double.parseDouble(p[2]);
            long t0 = System.nanoTime();
            CalibratedParams q = Tiar.run(m, plan, rtn, t, null, ReconSettings.defaults().withLr(lr), it, b);
            double s = (System.nanoTime() - t0) / 1e9;
            double e = error(m, plan, q, fp, t);
            System.out.printf(Locale.ROOT, "TIAR %d steps, batch %d, lr %g: mean rel L2 %.4g (%.1fx lower than RTN), %.1f s%n", it, b, lr, e, base / e, s);
        }
    }

    static double error(DiffusionModel m, QuantPlan plan, CalibratedParams p, TemporalFeatures fp, float[] t) {
        QuantizedModel q = QuantizedModel.attach(m, plan, p);
        try {
            return TemporalErrors.compare(fp, TemporalFeatures.computeQuantized(q, t, null)).mean(TemporalErrors.Metric.REL_L2);
        } finally {
            q.detach();
        }
    }
}
