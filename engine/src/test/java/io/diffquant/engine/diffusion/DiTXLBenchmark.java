package io.diffquant.engine.diffusion;

import io.diffquant.engine.analysis.FlopCounter;
import io.diffquant.engine.io.AtomicFiles;
import io.diffquant.engine.io.DType;
import io.diffquant.engine.io.ImageGrid;
import io.diffquant.engine.io.SafetensorsWriter;
import io.diffquant.engine.model.Conv2d;
import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.model.ForwardContext;
import io.diffquant.engine.model.Layer;
import io.diffquant.engine.model.LayerHook;
import io.diffquant.engine.model.Linear;
import io.diffquant.engine.model.MemoryBudget;
import io.diffquant.engine.model.ModelFolder;
import io.diffquant.engine.model.dit.DiT;
import io.diffquant.engine.model.dit.DiTConfig;
import io.diffquant.engine.model.vae.AutoencoderKL;
import io.diffquant.engine.model.vae.AutoencoderKLConfig;
import io.diffquant.engine.tensor.Blas;
import io.diffquant.engine.tensor.Parallel;
import io.diffquant.engine.tensor.Tensor;
import io.diffquant.engine.tensor.TransformerOps;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * Benchmark harness (not a unit test): a full-size DiT-XL/2 for 256 px (input 32, learn_sigma, 1000 classes) with
 * random weights is written to a temporary model folder and loaded through the memory-mapped path, then samples one
 * image in 20 DDIM steps with classifier-free guidance (scale 4, DiT's sample.py), decoded by a random-weight SD VAE
 * (AutoencoderKLConfig.stableDiffusion()). Prints load time, peak heap, sampling time and throughput against the
 * FLOP count of FlopCounter. Run with a heap of about 8 GB:
 * {@code java -Xmx8g -cp <engine classes, test classes, dependencies> io.diffquant.engine.diffusion.DiTXLBenchmark [dir] [steps] [threads]}.
 */
public final class DiTXLBenchmark {
    public static void main(String[] args) throws Exception {
        Path dir = args.length > 0 ? Path.of(args[0]) : Files.createTempDirectory("dit-xl-2-random");
        int steps = args.length > 1 ? Integer.parseInt(args[1]) : 20;
        if (args.length > 2) Parallel.setThreads(Integer.parseInt(args[2]));
        System.out.printf("machine: %d cores, %s, GEMM %s, %d threads, max heap %.1f GiB, physical memory %.1f GiB%n",
                Runtime.getRuntime().availableProcessors(), System.getProperty("os.arch"), Blas.get().name(), Parallel.threads(),
                Runtime.getRuntime().maxMemory() / 1073741824.0, MemoryBudget.physicalMemory() / 1073741824.0);

        // 1. random DiT-XL/2 weights, streamed to model.safetensors one tensor at a time
        DiTConfig cfg = DiTConfig.named("DiT-XL/2", 32, 1000, true);
        Map<String, int[]> layout = DiT.stateDictLayout(cfg);
        long t0 = System.nanoTime();
        Files.createDirectories(dir);
        SafetensorsWriter w = new SafetensorsWriter().metadata("format", "pt").metadata("note", "random weights (benchmark)");
        long seed = 1;
        for (var e : layout.entrySet()) {
            String name = e.getKey();
            int[] shape = e.getValue();
            long s = seed++;
            w.addDeferred(name, DType.F32, shape, () -> name.equals("pos_embed")
                    ? TransformerOps.sincosPosEmbed2d(cfg.hiddenSize(), cfg.gridSize()) : random(shape, s, name.endsWith(".bias")));
        }
        w.write(dir.resolve(ModelFolder.DIT_WEIGHTS));
        AtomicFiles.writeString(dir.resolve(ModelFolder.CONFIG), cfg.toJson());
        System.out.printf("wrote %s (%.2f GB) in %.1f s%n", dir.resolve(ModelFolder.DIT_WEIGHTS),
                Files.size(dir.resolve(ModelFolder.DIT_WEIGHTS)) / 1e9, (System.nanoTime() - t0) / 1e9);

        // 2. load through the mapped path
        System.gc();
        MemoryBudget.resetPeak();
        long heapBefore = MemoryBudget.usedHeap();
        t0 = System.nanoTime();
        DiffusionModel dit = ModelFolder.load(dir).model();
        double loadSecs = (System.nanoTime() - t0) / 1e9;
        long peakLoad = MemoryBudget.peakHeap();
        System.out.printf("DiT-XL/2: %,d parameters (%.1f MiB FP32) loaded in %.1f s; heap before %.0f MiB, after %.0f MiB, peak while loading %.0f MiB%n",
                dit.parameterCount(), 4.0 * dit.parameterCount() / 1048576, loadSecs, heapBefore / 1048576.0,
                MemoryBudget.usedHeap() / 1048576.0, peakLoad / 1048576.0);

        // 3. random SD VAE (decoder used)
        AutoencoderKL vae = new AutoencoderKL(AutoencoderKLConfig.stableDiffusion());
        long vs = 1000;
        for (var e : vae.stateDict().entrySet()) {
            Tensor t = e.getValue();
            boolean norm = e.getKey().contains("norm") && e.getKey().endsWith(".weight") && t.rank() == 1;
            Tensor r = norm ? Tensor.full(1f, t.shape()) : random(t.shape(), vs++, e.getKey().endsWith(".bias"));
            System.arraycopy(r.data(), 0, t.data(), 0, t.size());
        }
        LatentDiffusionPipeline p = new LatentDiffusionPipeline(dit, vae);

        // 4. FLOPs of one guided model call (batch 2 = conditional + null class) and of the decode
        Tensor x2 = random(new int[] {2, 4, 32, 32}, 7, false);
        long flopsCall = FlopCounter.count(dit, x2, new float[] {500, 500}, new int[] {207, 1000});
        long[] vaeFlops = {0};
        List<Layer> hooked = new ArrayList<>();
        LayerHook counter = new LayerHook() {
            @Override public Tensor output(Layer l, Tensor out, ForwardContext ctx) {
                if (l instanceof Linear lin) vaeFlops[0] += 2L * (out.size() / lin.out()) * lin.in() * lin.out();
                else if (l instanceof Conv2d c) vaeFlops[0] += 2L * out.size() * c.in() * c.kernel() * c.kernel();
                return out;
            }
        };
        for (Layer l : vae.layers().all()) if (l instanceof Linear || l instanceof Conv2d) { l.addHook(counter); hooked.add(l); }

        // 5. sample one 256 px image: 20 DDIM steps, CFG 4 (DiT-compatible), class 207, then decode
        MemoryBudget.resetPeak();
        SampleRequest req = p.request(new int[] {207}, 4.0, "ddim", steps, 0).build();
        long cpu0 = processCpuNanos();
        t0 = System.nanoTime();
        SamplingRun run = Sampling.start(req);
        List<Double> stepSecs = new ArrayList<>();
        while (run.hasNext()) {
            long s0 = System.nanoTime();
            run.next();
            stepSecs.add((System.nanoTime() - s0) / 1e9);
        }
        double sampleSecs = (System.nanoTime() - t0) / 1e9;
        double sampleCpu = (processCpuNanos() - cpu0) / 1e9;
        long cpu1 = processCpuNanos();
        t0 = System.nanoTime();
        Tensor img = p.decode(run.result());
        double decodeSecs = (System.nanoTime() - t0) / 1e9;
        double decodeCpu = (processCpuNanos() - cpu1) / 1e9;
        for (Layer l : hooked) l.removeHook(counter);
        long peakRun = MemoryBudget.peakHeap();
        ImageGrid.writePng(ImageGrid.grid(img, 1, 0), dir.resolve("sample.png"));
        double gfCall = flopsCall / 1e9;
        System.out.printf("sampling: %d DDIM steps (respacing %s, CFG 4.0 => batch 2 per call), %.1f s total, %.2f s/step (first %.2f, median %.2f)%n",
                steps, req.respacing(), sampleSecs, sampleSecs / steps, stepSecs.get(0), median(stepSecs));
        System.out.printf("  FLOPs per guided call (batch 2): %.1f GFLOP (%.1f GFLOP per image-forward); %.1f GFLOP for the run; %.1f GFLOP/s%n",
                gfCall, gfCall / 2, gfCall * steps, gfCall * steps / sampleSecs);
        System.out.printf("  process CPU time while sampling %.1f s (%.2f cores busy on average; other processes share this machine)%n",
                sampleCpu, sampleCpu / sampleSecs);
        System.out.printf("VAE decode 32x32x4 -> 256x256x3: %.1f s, %.1f GFLOP (Linear+Conv2d), %.1f GFLOP/s%n",
                decodeSecs, vaeFlops[0] / 1e9, vaeFlops[0] / 1e9 / decodeSecs);
        System.out.printf("  process CPU time while decoding %.1f s%n", decodeCpu);
        System.out.printf("image %s, finite %s; total %.1f s for 1 image; peak heap during sampling+decode %.0f MiB%n",
                java.util.Arrays.toString(img.shape()), img.allFinite(), sampleSecs + decodeSecs, peakRun / 1048576.0);
    }

    /** Uniform with the std of N(0, 1/fan_in) (biases 0.02); fan_in = numel / shape[0]. */
    static Tensor random(int[] shape, long seed, boolean bias) {
        Tensor t = Tensor.zeros(shape);
        float[] d = t.data();
        double std = bias || shape.length < 2 ? 0.02 : 1.0 / Math.sqrt((double) d.length / shape[0]);
        float a = (float) (Math.sqrt(3) * std);
        SplittableRandom r = new SplittableRandom(seed);
        for (int i = 0; i < d.length; i++) d[i] = (float) (2 * r.nextDouble() - 1) * a;
        return t;
    }

    private static long processCpuNanos() {
        if (java.lang.management.ManagementFactory.getOperatingSystemMXBean() instanceof com.sun.management.OperatingSystemMXBean os)
            return os.getProcessCpuTime();
        return 0;
    }

    private static double median(List<Double> v) {
        double[] a = v.stream().mapToDouble(Double::doubleValue).sorted().toArray();
        return a.length % 2 == 1 ? a[a.length / 2] : 0.5 * (a[a.length / 2 - 1] + a[a.length / 2]);
    }
}
