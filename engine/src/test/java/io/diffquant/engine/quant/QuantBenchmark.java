package io.diffquant.engine.quant;

import io.diffquant.engine.diffusion.SampleRequest;
import io.diffquant.engine.diffusion.Sampling;
import io.diffquant.engine.model.dit.DiT;
import io.diffquant.engine.model.dit.DiTConfig;
import io.diffquant.engine.quant.config.ModelIdentity;
import io.diffquant.engine.quant.config.QuantConfig;
import io.diffquant.engine.quant.config.QuantConfigs;
import io.diffquant.engine.quant.preset.CalibrationJob;
import io.diffquant.engine.tensor.Parallel;
import io.diffquant.engine.tensor.Tensor;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

/**
 * Timing harness (not a unit test): fake-quant sampling time against FP32 on the same model and batch (target <= 1.3x
 * for W4A8), and the wall time of {@code rtn} calibration, on a random DiT the size of the shipped dit-fmnist
 * (input 28, patch 2, 1 channel, hidden 256, depth 6, 4 heads, 10 classes). Run from the engine module's test classpath:
 * {@code java -cp ... io.diffquant.engine.quant.QuantBenchmark [batch] [steps] [threads]}.
 */
public final class QuantBenchmark {
    public static void main(String[] args) throws Exception {
        int batch = args.length > 0 ? Integer.parseInt(args[0]) : 16;
        int steps = args.length > 1 ? Integer.parseInt(args[1]) : 20;
        if (args.length > 2) Parallel.setThreads(Integer.parseInt(args[2]));
        DiTConfig cfg = new DiTConfig(28, 2, 1, 256, 6, 4, 4.0, 0.1, 10, true);
        DiT m = QuantTestSupport.randomDiT(cfg, 1, 0.02);
        ModelIdentity id = ModelIdentity.of(m, "random-dit-fmnist-size");
        System.out.printf("model: DiT input 28, patch 2, hidden 256, depth 6 (%.1f M parameters); %d threads; batch %d, DDIM %d steps%n",
                m.parameterCount() / 1e6, Parallel.threads(), batch, steps);
        Path cache = Files.createTempDirectory("quant-bench");
        try {
            // rtn calibration: cold (records the FP calibration data) and warm (data cached)
            long t0 = System.nanoTime();
            QuantConfig rtn = CalibrationJob.run(new CalibrationJob.Request(m, id, "rtn", Map.of("w_bits", 4, "a_bits", 8), null, null, cache.resolve("rtn"), null));
            long t1 = System.nanoTime();
            CalibrationJob.run(new CalibrationJob.Request(m, id, "rtn", Map.of("w_bits", 4, "a_bits", 8), null, null, cache.resolve("rtn"), null));
            long t2 = System.nanoTime();
            System.out.printf("rtn W4A8 calibration: %.2f s including recording the calibration data (%s), %.2f s with the data cached%n",
                    (t1 - t0) / 1e9, io.diffquant.engine.quant.preset.Presets.byName("rtn").defaultCalibration().subset().describe(), (t2 - t1) / 1e9);
            QuantConfig fp4 = CalibrationJob.run(new CalibrationJob.Request(m, id, "fp4dit", Map.of(), null, null, null, null));
            QuantConfig qdit = CalibrationJob.run(new CalibrationJob.Request(m, id, "q-dit", Map.of("w_bits", 4, "a_bits", 8), null, null, null, null));

            int[] y = new int[batch];
            for (int i = 0; i < batch; i++) y[i] = i % 10;
            SampleRequest req = SampleRequest.forModel(m, batch).respacing("ddim" + steps).labels(y).seed(3).build();
            double fp = time(req, 3);
            System.out.printf("FP32 sampling: %.3f s%n", fp);
            // the cost of the explicit attention path alone (identity hooks on the post-softmax probes)
            List<Runnable> undo = new java.util.ArrayList<>();
            for (var l : m.layers().all()) if (l.name().endsWith(".softmax")) {
                var h = new io.diffquant.engine.model.LayerHook() { };
                l.addHook(h);
                undo.add(() -> l.removeHook(h));
            }
            double explicit = time(req, 3);
            undo.forEach(Runnable::run);
            System.out.printf("FP32 with explicit attention (identity probe hooks): %.3f s = %.2fx%n", explicit, explicit / fp);
            for (var e : List.of(Map.entry("rtn W4A8 (static per-tensor INT8 acts, attention quantized)", rtn),
                    Map.entry("q-dit W4A8 (group 128 weights, dynamic group acts)", qdit), Map.entry("fp4dit W4A8 (E2M1 weights, per-token FP8 acts)", fp4))) {
                QuantizedModel q = QuantConfigs.attach(e.getValue(), m, false);
                double t = time(req, 3);
                q.detach();
                System.out.printf("%s: %.3f s = %.2fx FP32%n", e.getKey(), t, t / fp);
            }
        } finally {
            try (Stream<Path> s = Files.walk(cache)) {
                s.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            }
        }
    }

    /** Median of n sampling runs (after one warm-up) in seconds. */
    static double time(SampleRequest req, int n) {
        Tensor warm = Sampling.runToEnd(req, false).samples();
        if (!warm.allFinite()) throw new IllegalStateException("non-finite samples");
        double[] t = new double[n];
        for (int i = 0; i < n; i++) {
            long a = System.nanoTime();
            Sampling.runToEnd(req, false);
            t[i] = (System.nanoTime() - a) / 1e9;
        }
        java.util.Arrays.sort(t);
        return t[n / 2];
    }
}
