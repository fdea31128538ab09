package io.diffquant.engine.temporal;

import io.diffquant.engine.diffusion.Respacing;
import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.model.ModelFolder;
import io.diffquant.engine.quant.QuantizedModel;
import io.diffquant.engine.quant.config.QuantConfig;
import io.diffquant.engine.quant.config.QuantConfigCodec;
import io.diffquant.engine.quant.config.QuantConfigs;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.Locale;

/**
 * Temporal feature error of configs against full precision (not a unit test): {@code TemporalBenchmark <model folder>
 * <config.json>...} prints, per config, the mean relative L2 / MSE / cosine of every temporal feature over every sampling
 * timestep of its calibration settings and every label, per feature, and the cache memory.
 */
public final class TemporalBenchmark {
    public static void main(String[] args) throws Exception {
        DiffusionModel m = ModelFolder.load(Path.of(args[0])).model();
        TemporalInfoBlock tib = TemporalInfoBlock.of(m);
        TemporalFeatures fp = null;
        for (int k = 1; k < args.length; k++) {
            QuantConfig c = QuantConfigCodec.read(Path.of(args[k]));
            int[] ts = Respacing.spaceTimesteps(1000, c.calibration().respacing());
            float[] t = new float[ts.length];
            for (int i = 0; i < ts.length; i++) t[ts.length - 1 - i] = ts[i];
            if (fp == null || !Arrays.equals(fp.timesteps(), t)) fp = TemporalFeatures.compute(m, tib, t, null);
            long t0 = System.nanoTime();
            QuantizedModel q = QuantConfigs.attach(c, m, false);
            TemporalFeatures qf = TemporalFeatures.computeQuantized(q, t, null);
            q.detach();
            double secs = (System.nanoTime() - t0) / 1e9;
            TemporalErrors e = TemporalErrors.compare(fp, qf);
            System.out.printf(Locale.ROOT, "%s (%s): %d timesteps x %d labels: mean rel L2 %.4g, MSE %.4g, cosine %.6f (%.2f s)%s%n", args[k],
                    c.method() == null ? "-" : c.method().preset(), t.length, fp.labelCount(), e.mean(TemporalErrors.Metric.REL_L2),
                    e.mean(TemporalErrors.Metric.MSE), e.mean(TemporalErrors.Metric.COSINE), secs,
                    c.temporal() != null && c.temporal().cached() != null ? String.format(Locale.ROOT, ", cache %d bytes, %d of %d entries cached",
                            c.temporal().cached().bytes(), c.temporal().cachedEntries(), tib.features().size() * t.length) : "");
            StringBuilder sb = new StringBuilder("    per feature rel L2:");
            for (TemporalInfoBlock.Feature f : tib.features())
                sb.append(String.format(Locale.ROOT, " %s %.3g", f.name(), e.mean(TemporalErrors.Metric.REL_L2, f.index())));
            System.out.println(sb);
        }
    }
}
