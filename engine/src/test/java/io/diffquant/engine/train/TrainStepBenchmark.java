package io.diffquant.engine.train;

import io.diffquant.engine.diffusion.NoiseSchedule;
import io.diffquant.engine.model.dit.DiT;
import io.diffquant.engine.model.dit.DiTConfig;
import io.diffquant.engine.tensor.Backends;
import io.diffquant.engine.tensor.Blas;
import io.diffquant.engine.tensor.Parallel;
import io.diffquant.engine.tensor.Tape;
import io.diffquant.engine.tensor.Tensor;

import java.util.Map;
import java.util.Random;

/**
 * Timing harness (not a unit test): ms per training step (forward under the tape, backward, AdamW, EMA) of a DiT
 * on 28x28x1 (Fashion-MNIST shape), class-conditional with learned sigma, random data. Run from the engine
 * module's test classpath:
 * {@code java --enable-native-access=ALL-UNNAMED -cp ... io.diffquant.engine.train.TrainStepBenchmark
 * [patch] [hidden] [depth] [heads] [batch] [steps] [blas native|java] [threads]} or {@code ... TrainStepBenchmark unet [ch0] [ch1] [layersPerBlock] [batch] [steps]}
 * or {@code ... TrainStepBenchmark config <model config.json> [steps] [threads] [batch]} (the shipped configs under
 * tools/train: CPU seconds per full training step, measured as process CPU time, plus the backward rules' profile).
 */
public final class TrainStepBenchmark {
    public static void main(String[] args) {
        if (args.length > 0 && args[0].equals("config")) {
            config(args);
            return;
        }
        if (args.length > 0 && args[0].equals("unet")) {
            unet(args);
            return;
        }
        int patch = arg(args, 0, 2), hidden = arg(args, 1, 128), depth = arg(args, 2, 4), heads = arg(args, 3, 4);
        int batch = arg(args, 4, 64), steps = arg(args, 5, 10);
        if (args.length > 6) Backends.useBlas(args[6]);
        if (args.length > 7) Parallel.setThreads(Integer.parseInt(args[7]));
        DiTConfig cfg = new DiTConfig(28, patch, 1, hidden, depth, heads, 4.0, 0.1, 10, true);
        DiT model = new DiT(cfg);
        ModelGradCheckTest.randomize(model, 1);
        Random r = new Random(2);
        Tensor images = Tensor.zeros(512, 1, 28, 28);
        int[] labels = new int[512];
        for (int i = 0; i < images.size(); i++) images.data()[i] = (float) Math.tanh(r.nextGaussian());
        for (int i = 0; i < labels.length; i++) labels[i] = r.nextInt(10);
        Dataset data = Dataset.of(images, labels);
        DiffusionObjective.Config obj = new DiffusionObjective.Config(NoiseSchedule.linear(1000), 0.1, 1.0);
        TrainingRun run = DiffusionTrainer.start(model, data, TrainConfig.defaults(1, batch), obj);
        System.out.printf("DiT 28x28x1 patch %d hidden %d depth %d heads %d batch %d: %d params, %s, %d threads%n", patch, hidden,
                depth, heads, batch, model.parameterCount(), Blas.get().name(), Parallel.threads());
        // forward only (no tape) vs forward under the tape vs full step
        Tensor x = images.sliceRows(0, batch);
        float[] t = new float[batch];
        int[] y = new int[batch];
        for (int i = 0; i < batch; i++) { t[i] = r.nextInt(1000); y[i] = labels[i]; }
        for (int i = 0; i < 2; i++) { model.forward(x, t, y); run.next(); }
        long f0 = System.nanoTime();
        for (int i = 0; i < steps; i++) model.forward(x, t, y);
        double fwd = (System.nanoTime() - f0) / 1e6 / steps;
        Map<String, Tensor> params = DiffusionTrainer.trainableParameters(model);
        long b0 = System.nanoTime();
        double tapeFwd = 0;
        Map<String, long[]> prof = null;
        for (int i = 0; i < steps; i++) {
            try (Tape tape = Tape.start(params.values())) {
                tape.profileBackward(i == steps - 1);
                long a = System.nanoTime();
                Tensor out = model.forward(x, t, y);
                tapeFwd += (System.nanoTime() - a) / 1e6;
                tape.backward(io.diffquant.engine.tensor.Ops.mean(io.diffquant.engine.tensor.Ops.mul(out, out)));
                prof = tape.backwardProfile();
            }
        }
        double fb = (System.nanoTime() - b0) / 1e6 / steps;
        tapeFwd /= steps;
        long s0 = System.nanoTime();
        for (int i = 0; i < steps; i++) run.next();
        double step = (System.nanoTime() - s0) / 1e6 / steps;
        System.out.printf("forward %.1f ms | forward under tape %.1f ms | forward+backward %.1f ms | full train step %.1f ms = %.0f images/s%n",
                fwd, tapeFwd, fb, step, batch * 1000 / step);
        System.out.println("backward by op (last step):");
        prof.entrySet().stream().sorted((p, q) -> Long.compare(q.getValue()[1], p.getValue()[1]))
                .forEach(e -> System.out.printf("  %-22s %4d calls %8.1f ms%n", e.getKey(), e.getValue()[0], e.getValue()[1] / 1e6));
    }

    /** unet [ch0] [ch1] [layersPerBlock] [batch] [steps]: UNet2DModel 28x28x1, DownBlock2D + AttnDownBlock2D, unconditional. */
    private static void unet(String[] args) {
        int c0 = arg(args, 1, 32), c1 = arg(args, 2, 64), lpb = arg(args, 3, 1), batch = arg(args, 4, 64), steps = arg(args, 5, 3);
        var cfg = new io.diffquant.engine.model.unet.UNet2DConfig(28, 1, 1, false, "positional", null, 0f, true,
                java.util.List.of("DownBlock2D", "AttnDownBlock2D"), "UNetMidBlock2D", java.util.List.of("AttnUpBlock2D", "UpBlock2D"),
                java.util.List.of(c0, c1), lpb, 1f, 1, "conv", "conv", 0f, "silu", 8, 8, null, 1e-5f, "default", true, null, null, null);
        var model = new io.diffquant.engine.model.unet.UNet2DModel(cfg);
        ModelGradCheckTest.randomize(model, 1);
        Random r = new Random(2);
        Tensor images = Tensor.zeros(256, 1, 28, 28);
        for (int i = 0; i < images.size(); i++) images.data()[i] = (float) Math.tanh(r.nextGaussian());
        TrainingRun run = DiffusionTrainer.start(model, Dataset.of(images, null), TrainConfig.defaults(1, batch),
                new DiffusionObjective.Config(NoiseSchedule.linear(1000), 0, 1.0));
        System.out.printf("UNet2DModel 28x28x1 channels [%d, %d] layers/block %d batch %d: %d params, %s, %d threads%n", c0, c1, lpb,
                batch, model.parameterCount(), Blas.get().name(), Parallel.threads());
        run.next();
        long s0 = System.nanoTime();
        for (int i = 0; i < steps; i++) run.next();
        double step = (System.nanoTime() - s0) / 1e6 / steps;
        System.out.printf("full train step %.1f ms = %.0f images/s%n", step, batch * 1000 / step);
        Tensor x = images.sliceRows(0, batch);
        float[] t = new float[batch];
        for (int i = 0; i < batch; i++) t[i] = r.nextInt(1000);
        long f0 = System.nanoTime();
        model.forward(x, t, null);
        System.out.printf("forward %.1f ms%n", (System.nanoTime() - f0) / 1e6);
        try (Tape tape = Tape.start(DiffusionTrainer.trainableParameters(model).values())) {
            tape.profileBackward(true);
            long a = System.nanoTime();
            Tensor out = model.forward(x, t, null);
            long b = System.nanoTime();
            tape.backward(io.diffquant.engine.tensor.Ops.mean(io.diffquant.engine.tensor.Ops.mul(out, out)));
            System.out.printf("forward under tape %.1f ms, backward %.1f ms%n", (b - a) / 1e6, (System.nanoTime() - b) / 1e6);
            tape.backwardProfile().entrySet().stream().sorted((p, q) -> Long.compare(q.getValue()[1], p.getValue()[1])).limit(10)
                    .forEach(e -> System.out.printf("  %-22s %4d calls %8.1f ms%n", e.getKey(), e.getValue()[0], e.getValue()[1] / 1e6));
        }
    }

    /**
     * config &lt;model config.json&gt; [steps] [threads] [batch]: the model of a shipped training config (DiT or UNet2DModel)
     * initialised as {@code diffquant train} does (seed 0), trained on random images; CPU seconds per step of the whole
     * process (all threads: the engine pool, oneDNN's OpenMP team, JIT and GC included) and of the calling thread.
     */
    private static void config(String[] args) {
        String file = args[1];
        int steps = arg(args, 2, 4), threads = arg(args, 3, 1), batch = arg(args, 4, 64);
        Parallel.setThreads(threads);
        io.diffquant.engine.tensor.NativeThreads.setCallerThreads(threads);
        io.diffquant.engine.model.DiffusionModel model;
        try {
            model = TrainingJob.modelFromConfig(java.nio.file.Files.readString(java.nio.file.Path.of(file)), file);
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
        ModelInit.initialize(model, 0);
        Random r = new Random(2);
        Tensor images = Tensor.zeros(512, 1, 28, 28);
        int[] labels = new int[512];
        for (int i = 0; i < images.size(); i++) images.data()[i] = (float) Math.tanh(r.nextGaussian());
        for (int i = 0; i < labels.length; i++) labels[i] = r.nextInt(10);
        boolean dit = model instanceof DiT;
        Dataset data = Dataset.of(images, dit ? labels : null);
        TrainingRun run = DiffusionTrainer.start(model, data, TrainConfig.defaults(0, batch),
                new DiffusionObjective.Config(NoiseSchedule.linear(1000), dit ? 0.1 : 0, 1.0));
        var os = (com.sun.management.OperatingSystemMXBean) java.lang.management.ManagementFactory.getOperatingSystemMXBean();
        var tmx = java.lang.management.ManagementFactory.getThreadMXBean();
        System.out.printf("%s (%s): %d params, batch %d, %s, %d threads%n", file, model.architecture(), model.parameterCount(), batch,
                Blas.get().name(), Parallel.threads());
        for (int i = 0; i < 3; i++) run.next(); // warm-up (JIT)
        double best = Double.MAX_VALUE, sum = 0;
        for (int i = 0; i < steps; i++) {
            long p0 = os.getProcessCpuTime(), t0 = tmx.getCurrentThreadCpuTime(), w0 = System.nanoTime();
            var rep = run.next();
            long p1 = os.getProcessCpuTime(), t1 = tmx.getCurrentThreadCpuTime(), w1 = System.nanoTime();
            double cpu = (p1 - p0) / 1e9;
            best = Math.min(best, cpu);
            sum += cpu;
            System.out.printf("step %d: process CPU %.3f s, caller thread CPU %.3f s, wall %.3f s, loss %.5f%n", rep.step(), cpu,
                    (t1 - t0) / 1e9, (w1 - w0) / 1e9, rep.loss());
        }
        System.out.printf("CPU-s per step: mean %.3f, min %.3f%n", sum / steps, best);
        // the backward rules by op (wall time, one step, caller thread)
        Tensor x = images.sliceRows(0, batch);
        float[] t = new float[batch];
        int[] y = new int[batch];
        for (int i = 0; i < batch; i++) { t[i] = r.nextInt(1000); y[i] = labels[i]; }
        try (Tape tape = Tape.start(DiffusionTrainer.trainableParameters(model).values())) {
            tape.profileBackward(true).profileForward(true);
            long a = tmx.getCurrentThreadCpuTime();
            Tensor out = model.forward(x, t, dit ? y : null);
            long b = tmx.getCurrentThreadCpuTime();
            tape.backward(io.diffquant.engine.tensor.Ops.mean(io.diffquant.engine.tensor.Ops.mul(out, out)));
            System.out.printf("forward under tape %.3f CPU-s, backward %.3f CPU-s (caller thread)%n", (b - a) / 1e9,
                    (tmx.getCurrentThreadCpuTime() - b) / 1e9);
            tape.backwardProfile().entrySet().stream().sorted((p, q) -> Long.compare(q.getValue()[2], p.getValue()[2])).limit(14)
                    .forEach(e -> System.out.printf("  %-22s %4d calls %8.1f ms wall %8.1f ms CPU%n", e.getKey(), e.getValue()[0],
                            e.getValue()[1] / 1e6, e.getValue()[2] / 1e6));
            System.out.println("forward by op (CPU time since the previous recorded op):");
            tape.forwardProfile().entrySet().stream().sorted((p, q) -> Long.compare(q.getValue()[1], p.getValue()[1])).limit(10)
                    .forEach(e -> System.out.printf("  %-22s %4d calls %8.1f ms CPU%n", e.getKey(), e.getValue()[0], e.getValue()[1] / 1e6));
        }
    }

    private static int arg(String[] a, int i, int def) { return a.length > i ? Integer.parseInt(a[i]) : def; }
}
