package io.diffquant.engine.analysis;

import io.diffquant.engine.model.dit.DiT;
import io.diffquant.engine.model.dit.DiTConfig;
import io.diffquant.engine.quant.CalibratedParams;
import io.diffquant.engine.quant.QuantTestSupport;
import io.diffquant.engine.quant.calib.WeightCalibrator;
import io.diffquant.engine.quant.config.ModelIdentity;
import io.diffquant.engine.quant.config.QuantConfig;
import io.diffquant.engine.quant.format.Granularity;
import io.diffquant.engine.quant.format.IntFormat;
import io.diffquant.engine.quant.spec.CalibrationMode;
import io.diffquant.engine.quant.spec.LayerOverride;
import io.diffquant.engine.quant.spec.PointSpec;
import io.diffquant.engine.quant.spec.QuantPlan;
import io.diffquant.engine.quant.spec.RangeSpec;
import io.diffquant.engine.quant.spec.TensorSpec;
import io.diffquant.engine.tensor.Tensor;

import java.util.List;
import java.util.Locale;

/**
 * Timing harness (not a unit test): how long re-evaluating the per-timestep temporal feature error of one toggled
 * configuration takes on a random DiT of the dit-fmnist size (tools/train/dit-fmnist.json: 28x28x1, patch 4, hidden 192,
 * depth 6, 4 heads, learn_sigma, 10 classes; 50 DDIM timesteps x 10 labels), against the first evaluation (which also
 * computes the cached FP table) and against one full denoiser call on a batch of 10 as the peer. Run from the engine
 * module's test classpath (the "whole config" line attaches every layer instead of only the TIB, for comparison): {@code java -cp ... io.diffquant.engine.analysis.AnalysisBenchmark [steps] [repeats]}.
 */
public final class AnalysisBenchmark {
    public static void main(String[] args) {
        int steps = args.length > 0 ? Integer.parseInt(args[0]) : 50;
        int repeats = args.length > 1 ? Integer.parseInt(args[1]) : 5;
        DiT m = QuantTestSupport.randomDiT(new DiTConfig(28, 4, 1, 192, 6, 4, 4.0, 0.1, 10, true), 1, 0.05);
        AnalysisSession s = new AnalysisSession(m, AnalysisSettings.DEFAULT.withSteps(steps));
        Variant w4 = Variant.of("w4", config(m, 4, false), false);
        Variant w4a8 = Variant.of("w4a8-dyn", config(m, 4, true), false);
        long t0 = System.nanoTime();
        TemporalFeatureError.ConfigError first = TemporalFeatureError.evaluate(s, w4);
        double firstSecs = (System.nanoTime() - t0) / 1e9;
        System.out.printf(Locale.ROOT, "first evaluation (FP table + w4): %.3f s; %d timesteps x %d labels, %d features%n", firstSecs,
                s.timesteps().length, s.featureLabels().length, s.fpFeatures().features().size());
        Variant w4a8Whole = new Variant("w4a8-dyn, whole config attached", w4a8.application()::apply);
        for (Variant v : List.of(w4, w4a8, w4a8Whole)) {
            double best = Double.MAX_VALUE, sum = 0;
            TemporalFeatureError.ConfigError e = null;
            for (int r = 0; r < repeats; r++) {
                e = TemporalFeatureError.evaluate(s, v);
                best = Math.min(best, e.seconds());
                sum += e.seconds();
            }
            System.out.printf(Locale.ROOT, "re-evaluation %-34s best %.3f s, mean %.3f s (mean rel. L2 %.4g)%n", v.name(), best, sum / repeats,
                    e.meanRelativeL2());
        }
        Tensor x = Tensor.zeros(10, 1, 28, 28);
        float[] t = new float[10];
        java.util.Arrays.fill(t, 500);
        int[] y = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
        m.forward(x, t, y);
        double best = Double.MAX_VALUE;
        for (int r = 0; r < repeats; r++) {
            long a = System.nanoTime();
            m.forward(x, t, y);
            best = Math.min(best, (System.nanoTime() - a) / 1e9);
        }
        System.out.printf(Locale.ROOT, "peer: one FP denoiser call on 10 images: best %.3f s (a full-denoiser feature table would need %d of them)%n",
                best, s.timesteps().length);
        if (first.meanRelativeL2() <= 0) throw new IllegalStateException("w4 left the features unchanged");
    }

    static QuantConfig config(DiT m, int bits, boolean dynamicActivations) {
        TensorSpec in = dynamicActivations ? TensorSpec.input(IntFormat.asymmetric(8), Granularity.parse("token"), RangeSpec.MINMAX,
                CalibrationMode.DYNAMIC) : TensorSpec.OFF;
        PointSpec d = new PointSpec(TensorSpec.weight(IntFormat.asymmetric(bits), Granularity.CHANNEL, RangeSpec.MINMAX), in);
        List<LayerOverride> ov = new java.util.ArrayList<>();
        if (dynamicActivations) for (String g : List.of("x_embedder.proj", "*.attn.q", "*.attn.k", "*.attn.v", "*.attn.softmax"))
            ov.add(LayerOverride.parse(g + "=a:off", "benchmark"));
        QuantPlan plan = QuantPlan.resolve(m, d, ov);
        CalibratedParams p = WeightCalibrator.calibrate(m, plan);
        return new QuantConfig(ModelIdentity.of(m, "bench"), null, null, d, ov, p, null, null);
    }
}
