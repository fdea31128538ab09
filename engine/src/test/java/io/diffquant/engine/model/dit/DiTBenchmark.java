package io.diffquant.engine.model.dit;

import io.diffquant.engine.model.ForwardContext;
import io.diffquant.engine.model.LayerHook;
import io.diffquant.engine.model.Layer;
import io.diffquant.engine.model.LayerKind;
import io.diffquant.engine.tensor.Blas;
import io.diffquant.engine.tensor.Parallel;
import io.diffquant.engine.tensor.Tensor;

import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;

/**
 * Timing harness (not a unit test, surefire does not pick it up): wall-clock ms and process CPU ms per DiT
 * forward with random weights; default DiT-S/2 on 32x32x4 latents, batch 8. After {@code ./mvnw -pl engine
 * test-compile}, run with JDK 25 from the repository root:
 * {@code java --enable-native-access=ALL-UNNAMED -cp engine/target/test-classes:engine/target/classes:<deps>
 * io.diffquant.engine.model.dit.DiTBenchmark [model] [batch] [iters] [threads] [--profile]}
 * (deps: {@code ./mvnw -q -pl engine dependency:build-classpath -Dmdep.outputFile=/dev/stdout}).
 * {@code --profile} adds the time spent inside each GEMM layer (its hooks make some outputs non-owned).
 */
public final class DiTBenchmark {
    public static void main(String[] args) {
        String name = args.length > 0 ? args[0] : "DiT-S/2";
        int batch = args.length > 1 ? Integer.parseInt(args[1]) : 8;
        int iters = args.length > 2 ? Integer.parseInt(args[2]) : 10;
        if (args.length > 3) Parallel.setThreads(Integer.parseInt(args[3]));
        boolean profile = Arrays.asList(args).contains("--profile");
        DiTConfig cfg = DiTConfig.named(name, 32, 1000, true);
        DiT model = new DiT(cfg);
        Random r = new Random(0);
        Map<String, Tensor> sd = new LinkedHashMap<>();
        for (var e : model.stateDict().entrySet()) {
            Tensor t = Tensor.zeros(e.getValue().shape());
            float[] d = t.data();
            if (e.getKey().equals("pos_embed")) System.arraycopy(e.getValue().data(), 0, d, 0, d.length);
            else for (int i = 0; i < d.length; i++) d[i] = (float) (r.nextGaussian() * 0.05);
            sd.put(e.getKey(), t);
        }
        model.loadWeights(sd, "random");
        Tensor x = Tensor.zeros(batch, cfg.inChannels(), cfg.inputSize(), cfg.inputSize());
        for (int i = 0; i < x.size(); i++) x.data()[i] = (float) r.nextGaussian();
        float[] t = new float[batch];
        int[] y = new int[batch];
        for (int i = 0; i < batch; i++) { t[i] = (i * 997) % 1000; y[i] = i % 1000; }
        Map<String, long[]> prof = new LinkedHashMap<>();
        if (profile) {
            // time spent inside the GEMM layers (hooks make proj/fc1/fc2 outputs non-owned: a slight distortion)
            for (Layer l : model.layers().ofKind(LayerKind.LINEAR, LayerKind.CONV2D)) {
                String kind = l.name().replaceAll("blocks\\.\\d+\\.", "blocks.*.");
                long[] acc = prof.computeIfAbsent(kind, k -> new long[2]);
                l.addHook(new LayerHook() {
                    long start;
                    @Override public Tensor input(Layer layer, Tensor in, ForwardContext ctx) { start = System.nanoTime(); return in; }
                    @Override public Tensor output(Layer layer, Tensor out, ForwardContext ctx) {
                        acc[0] += System.nanoTime() - start;
                        acc[1]++;
                        return out;
                    }
                });
            }
        }
        System.out.printf("%s batch %d, %d Java threads, blas %s, %.1f M params%n", name, batch, Parallel.threads(),
                Blas.get().name(), model.parameterCount() / 1e6);
        for (int w = 0; w < 5; w++) model.forward(x, t, y);
        double[] ms = new double[iters];
        var os = (com.sun.management.OperatingSystemMXBean) java.lang.management.ManagementFactory.getOperatingSystemMXBean();
        long cpu0 = os.getProcessCpuTime();
        for (int i = 0; i < iters; i++) {
            long t0 = System.nanoTime();
            model.forward(x, t, y);
            ms[i] = (System.nanoTime() - t0) / 1e6;
        }
        double cpuMs = (os.getProcessCpuTime() - cpu0) / 1e6 / iters;
        if (profile) {
            double total = Arrays.stream(ms).sum();
            double inLayers = 0;
            for (var e : prof.entrySet()) {
                double layerMs = e.getValue()[0] / 1e6 * iters / (iters + 5.0);
                inLayers += layerMs;
                System.out.printf("  %-36s %8.1f ms per forward%n", e.getKey(), layerMs / iters);
            }
            System.out.printf("  %-36s %8.1f ms per forward%n", "(outside the GEMM layers)", (total - inLayers) / iters);
        }
        double[] s = ms.clone();
        Arrays.sort(s);
        System.out.printf("ms per forward: median %.1f  min %.1f  process CPU %.1f ms  (all %s)%n", s[iters / 2], s[0], cpuMs,
                Arrays.toString(Arrays.stream(ms).mapToLong(Math::round).toArray()));
    }
}
