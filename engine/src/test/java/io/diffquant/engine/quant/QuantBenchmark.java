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
 * {@code java -cp ... io.diffquant.engine.quant.QuantBenchmark [batch] [steps] [pairs] [threads]}.
 */
public final class QuantBenchmark {
    public static void main(String[] args) throws Exception {
        int batch = args.length > 0 ? Integer.parseInt(args[0]) : 16;
        int steps = args.length > 1 ? Integer.parseInt(args[1]) : 20;
        int pairs = args.length > 2 ? Integer.parseInt(args[2]) : 5;
        if (args.length > 3) Parallel.setThreads(Integer.parseInt(args[3]));
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
            QuantConfig fp4 = CalibrationJob.run(new CalibrationJob.Request(m, id, "fp4dit", Map.of("reconstruction", "none"), null, null, null, null));
            QuantConfig qdit = CalibrationJob.run(new CalibrationJob.Request(m, id, "q-dit", Map.of("w_bits", 4, "a_bits", 8), null, null, null, null));

            // packed sizes of INT4 weights (all Linear/Conv2d) against FP32
            for (String g : List.of("group128", "channel")) {
                QuantConfig w4 = CalibrationJob.run(new CalibrationJob.Request(m, id, "q-dit", Map.of("w_bits", 4), List.of(
                        io.diffquant.engine.quant.spec.LayerOverride.parse("*=w:int4-asym/" + g, "size"),
                        io.diffquant.engine.quant.spec.LayerOverride.parse("*=w:on", "size")), null, null, null));
                QuantizedModel q = QuantConfigs.attach(w4, m, false);
                Path f = cache.resolve("w4-" + g + ".safetensors");
                var s = io.diffquant.engine.quant.export.QuantizedCheckpoint.write(q, w4, f);
                q.detach();
                System.out.printf("INT4 %s weights: %d tensors, %.3f MB codes+scales+zero points vs %.3f MB FP32 = 1/%.2f (%.1f %%); with decode tables %.1f %%; whole file %.1f %% of the FP32 model%n",
                        g, s.quantizedTensors(), s.quantizedBytes() / 1e6, s.quantizedFp32Bytes() / 1e6, 1 / s.weightRatio(), 100 * s.weightRatio(),
                        100.0 * (s.quantizedBytes() + s.lutBytes()) / s.quantizedFp32Bytes(), 100 * s.fileRatio());
            }
            int[] y = new int[batch];
            for (int i = 0; i < batch; i++) y[i] = i % 10;
            SampleRequest req = SampleRequest.forModel(m, batch).respacing("ddim" + steps).labels(y).seed(3).build();
            // interleaved A/B pairs (FP run, quantized run) so that load drift on a shared machine affects both alike
            Map<String, QuantConfig> configs = new java.util.LinkedHashMap<>();
            configs.put("explicit attention only (identity probe hooks, FP32)", null);
            configs.put("rtn W4A8 (static per-tensor INT8 acts, attention quantized)", rtn);
            configs.put("q-dit W4A8 (group 128 weights, dynamic group acts)", qdit);
            configs.put("fp4dit W4A8 (E2M1 weights, per-token FP8 acts)", fp4);
            for (int i = 0; i < 2; i++) Sampling.runToEnd(req, false);
            for (var e : configs.entrySet()) {
                double[] ratio = new double[pairs], cpuRatio = new double[pairs];
                double fpSum = 0, qSum = 0, fpCpu = 0, qCpu = 0;
                for (int i = 0; i < pairs; i++) {
                    warmUp(m, req);
                    double[] fp = time(req);
                    Runnable undo = attach(m, e.getValue());
                    warmUp(m, req);
                    double[] qt = time(req);
                    undo.run();
                    ratio[i] = qt[0] / fp[0];
                    cpuRatio[i] = qt[1] / fp[1];
                    fpSum += fp[0];
                    qSum += qt[0];
                    fpCpu += fp[1];
                    qCpu += qt[1];
                }
                java.util.Arrays.sort(ratio);
                java.util.Arrays.sort(cpuRatio);
                System.out.printf("%s: wall %.2fx FP32 (median of %d interleaved pairs; mean %.3f s vs %.3f s), process CPU time %.2fx (%.3f s vs %.3f s)%n",
                        e.getKey(), ratio[pairs / 2], pairs, qSum / pairs, fpSum / pairs, cpuRatio[pairs / 2], qCpu / pairs, fpCpu / pairs);
            }
        } finally {
            try (Stream<Path> s = Files.walk(cache)) {
                s.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            }
        }
    }

    private static final com.sun.management.OperatingSystemMXBean OS =
            (com.sun.management.OperatingSystemMXBean) java.lang.management.ManagementFactory.getOperatingSystemMXBean();

    /**
     * One sampling run: {wall seconds, process CPU seconds}. The CPU time of this process does not count other
     * processes' load on a shared machine, so its ratio is the steadier measure there.
     */
    static double[] time(SampleRequest req) {
        long a = System.nanoTime(), c = OS.getProcessCpuTime();
        Tensor out = Sampling.runToEnd(req, false).samples();
        if (!out.allFinite()) throw new IllegalStateException("non-finite samples");
        return new double[] {(System.nanoTime() - a) / 1e9, (OS.getProcessCpuTime() - c) / 1e9};
    }

    /**
     * One untimed forward: switching between the full-precision and the quantized model changes the JIT's type
     * profiles (hooks, formats), and the recompilation it triggers is not part of the steady-state cost.
     */
    static void warmUp(DiT m, SampleRequest req) {
        int n = req.batch();
        Tensor x = Tensor.zeros(req.shape());
        float[] t = new float[n];
        java.util.Arrays.fill(t, 500);
        m.forward(x, t, req.labels());
    }

    /** Attaches a config (null: identity hooks on the post-softmax probes); returns the undo. */
    static Runnable attach(DiT m, QuantConfig c) throws java.io.IOException {
        if (c != null) {
            QuantizedModel q = QuantConfigs.attach(c, m, false);
            return q::detach;
        }
        List<Runnable> undo = new java.util.ArrayList<>();
        for (var l : m.layers().all()) if (l.name().endsWith(".softmax")) {
            var h = new io.diffquant.engine.model.LayerHook() { };
            l.addHook(h);
            undo.add(() -> l.removeHook(h));
        }
        return () -> undo.forEach(Runnable::run);
    }
}
