package io.diffquant.app.cli;

import io.diffquant.engine.backend.ExecutionBackend;
import io.diffquant.engine.backend.ExecutionBackends;
import io.diffquant.engine.backend.ExecutionInfo;
import io.diffquant.engine.backend.PreparedDenoiser;
import io.diffquant.engine.backend.cpu.Int8Gemm;
import io.diffquant.engine.backend.cpu.Int8Linear;
import io.diffquant.engine.backend.cpu.Int8Specs;
import io.diffquant.engine.diffusion.SampleRequest;
import io.diffquant.engine.diffusion.Sampling;
import io.diffquant.engine.diffusion.SamplingResult;
import io.diffquant.engine.metrics.ImageMetrics;
import io.diffquant.engine.model.Denoiser;
import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.model.Layer;
import io.diffquant.engine.model.Linear;
import io.diffquant.engine.model.ModelFolder;
import io.diffquant.engine.model.dit.DiT;
import io.diffquant.engine.model.dit.DiTConfig;
import io.diffquant.engine.quant.QuantizedModel;
import io.diffquant.engine.quant.calib.WeightCalibrator;
import io.diffquant.engine.quant.config.ModelIdentity;
import io.diffquant.engine.quant.config.QuantConfig;
import io.diffquant.engine.quant.export.QuantizedCheckpoint;
import io.diffquant.engine.quant.format.Granularity;
import io.diffquant.engine.quant.format.IntFormat;
import io.diffquant.engine.quant.spec.LayerOverride;
import io.diffquant.engine.quant.spec.PointSpec;
import io.diffquant.engine.quant.spec.QuantPlan;
import io.diffquant.engine.quant.spec.SpecPatch;
import io.diffquant.engine.quant.spec.TensorSpec;
import io.diffquant.engine.quant.spec.RangeSpec;
import io.diffquant.engine.tensor.Blas;
import io.diffquant.engine.tensor.DnnlBlas;
import io.diffquant.engine.tensor.NativeThreads;
import io.diffquant.engine.tensor.Ops;
import io.diffquant.engine.tensor.Parallel;
import io.diffquant.engine.tensor.Tensor;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.Callable;

/**
 * Real low-bit execution against FP32 and fake quantization, measured in one run on the same models (issue 7 item 6,
 * CPU part): per-kernel throughput of the int8 Linear (quantize + oneDNN s8*s8->s32 GEMM + dequantize) and of the raw
 * int8 GEMM against FP32 at the models' shapes; end-to-end DDIM sampling time of a dit-fmnist-shaped and a
 * DiT-S/2-sized model for FP32, fake W8A8 (jvm) and real W8A8 (cpu-int8, and any other --backend), with the images'
 * PSNR against fake quantization; weight memory FP32 vs packed W8 and W4 checkpoints.
 */
@Command(name = "bench-backends", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Execution backends benchmark, one run, same models: int8 vs FP32 kernels at the model shapes, end-to-end",
                "sampling time for FP32, fake W8A8 (jvm) and real W8A8 (cpu-int8, or other --backend), image PSNR against fake",
                "quantization, and weight memory FP32 vs packed W8/W4. Models: dit-fmnist shape (28x28x1, random weights unless",
                "--dit-fmnist DIR) and a random DiT-S/2 (32x32x4 latent, 1000 classes). See docs/backends.md."})
final class BenchBackendsCommand implements Callable<Integer> {
    @Option(names = "--backend", split = ",", defaultValue = "cpu-int8", paramLabel = "ID",
            description = "backends to measure against FP32 and fake W8A8 (default: ${DEFAULT-VALUE})") List<String> backends;
    @Option(names = "--threads", defaultValue = "1", description = "engine and oneDNN threads for every side (default: ${DEFAULT-VALUE})") int threads;
    @Option(names = "--steps", defaultValue = "10", description = "DDIM steps per sampling run (default: ${DEFAULT-VALUE})") int steps;
    @Option(names = "--reps", defaultValue = "3", description = "timed sampling runs per configuration, interleaved, after one warm-up (median reported; default: ${DEFAULT-VALUE})") int reps;
    @Option(names = "--dit-s-batch", defaultValue = "2", description = "images per sampling run of the DiT-S/2 model (default: ${DEFAULT-VALUE})") int ditSBatch;
    @Option(names = "--fmnist-batch", defaultValue = "16", description = "images per sampling run of the dit-fmnist model (default: ${DEFAULT-VALUE})") int fmnistBatch;
    @Option(names = "--kernel-seconds", defaultValue = "0.4", description = "minimum time per kernel measurement (default: ${DEFAULT-VALUE})") double kernelSeconds;
    @Option(names = "--dit-fmnist", paramLabel = "DIR", description = "a trained dit-fmnist model folder to use instead of random weights") Path ditFmnist;
    @Option(names = "--models", split = ",", defaultValue = "dit-fmnist,dit-s-2", description = "models to run (default: ${DEFAULT-VALUE})") List<String> models;
    @Option(names = "--skip-kernels", description = "no per-kernel table") boolean skipKernels;
    @Option(names = "--skip-sampling", description = "no end-to-end sampling") boolean skipSampling;
    @Option(names = "--skip-memory", description = "no weight-memory table") boolean skipMemory;

    private Path root() { return Path.of(System.getProperty("diffquant.root", ".")); }

    @Override public Integer call() throws Exception {
        if (threads < 1 || steps < 1 || reps < 1 || ditSBatch < 1 || fmnistBatch < 1) throw new IllegalArgumentException("--threads, --steps, --reps and the batches must be >= 1");
        for (String b : backends) ExecutionBackends.choose(b);   // typos fail before any work; missing ones log their fallback
        Parallel.setThreads(threads);
        String load0 = loadAverage();
        System.out.printf(Locale.ROOT, "machine: %d cores visible, load average %s (other processes share the cores: compare the ratios, not the absolute times)%n",
                Runtime.getRuntime().availableProcessors(), load0);
        System.out.printf(Locale.ROOT, "threads: %d engine / %d oneDNN for every side; FP32 GEMM %s (zero-copy %s), int8 GEMM oneDNN dnnl_gemm_s8s8s32 (zero-copy %s)%n",
                threads, threads, Blas.get().name(), DnnlBlas.zeroCopy(), Int8Gemm.zeroCopy());
        String why = Int8Gemm.unavailableReason();
        if (why != null) System.out.println("int8 GEMM unavailable: " + why);
        List<DiffusionModel> ms = new ArrayList<>();
        List<String> names = new ArrayList<>();
        for (String name : models) {
            switch (name) {
                case "dit-fmnist" -> {
                    ms.add(ditFmnist != null ? ModelFolder.load(ditFmnist).model()
                            : randomDiT(DiTConfig.fromJson(root().resolve("tools/train/dit-fmnist.json")), 1));
                    names.add(ditFmnist != null ? "dit-fmnist (" + ditFmnist.getFileName() + ")" : "dit-fmnist (random)");
                }
                case "dit-s-2" -> {
                    ms.add(randomDiT(DiTConfig.named("DiT-S/2", 32, 1000, true), 2));
                    names.add("DiT-S/2 32x32x4 (random)");
                }
                default -> throw new IllegalArgumentException("--models: unknown model '" + name + "' (dit-fmnist, dit-s-2)");
            }
        }
        int[] batches = new int[ms.size()];
        for (int i = 0; i < ms.size(); i++) batches[i] = models.get(i).equals("dit-s-2") ? ditSBatch : fmnistBatch;
        Runnable body = () -> {
            try {
                if (!skipKernels) kernels(ms, names, batches);
                if (!skipSampling) for (int i = 0; i < ms.size(); i++) sampling(ms.get(i), names.get(i), batches[i]);
                if (!skipMemory) for (int i = 0; i < ms.size(); i++) memory(ms.get(i), names.get(i));
            } catch (Exception e) {
                throw new IllegalStateException(e.getMessage(), e);
            }
        };
        // one thread: oneDNN's OpenMP on this thread is single-threaded too, for FP32 and int8 alike
        if (threads == 1) NativeThreads.singleThreaded(body);
        else body.run();
        System.out.printf(Locale.ROOT, "load average at the end: %s%n", loadAverage());
        return 0;
    }

    // ------------------------------------------------------------------ kernels

    private void kernels(List<DiffusionModel> ms, List<String> names, int[] batches) {
        System.out.println();
        System.out.println("== kernels at the model shapes (M = images x tokens; adaLN layers have M = images)");
        System.out.printf("%-26s %-22s %17s %12s %12s %7s %12s %12s %7s%n", "model", "layer", "M x K x N", "FP32 linear", "int8 linear", "ratio",
                "sgemm", "s8 GEMM", "ratio");
        for (int mi = 0; mi < ms.size(); mi++) {
            DiffusionModel m = ms.get(mi);
            if (!(m instanceof DiT d)) continue;
            int tokens = d.config().tokens();
            Map<String, int[]> shapes = new LinkedHashMap<>();
            for (Layer l : m.layers().all()) {
                if (!(l instanceof Linear lin) || !l.name().startsWith("blocks.0.")) continue;
                int rows = l.name().contains("adaLN") ? batches[mi] : batches[mi] * tokens;
                shapes.put(l.name().substring("blocks.0.".length()), new int[] {rows, lin.in(), lin.out()});
            }
            QuantizedModel q = Int8Specs.attach(m, 8);
            double fl = 0, fi = 0, gs = 0, gi = 0;
            for (var e : shapes.entrySet()) {
                int rows = e.getValue()[0], in = e.getValue()[1], out = e.getValue()[2];
                Linear lin = (Linear) m.layers().get("blocks.0." + e.getKey());
                Int8Linear packed = Int8Linear.pack(lin.name(), q.weightCodes(lin.name()), lin.param("bias"), IntFormat.symmetric(8));
                Random r = new Random(rows);
                Tensor x = Tensor.zeros(rows, in);
                for (int i = 0; i < x.size(); i++) x.data()[i] = (float) r.nextGaussian();
                Tensor w = lin.param("weight"), b = lin.param("bias");
                double ops = 2.0 * rows * in * out;
                double tLin = time(() -> Ops.linear(x, w, b));
                double tInt = time(() -> packed.forward(x));
                float[] c = new float[rows * out];
                byte[] a8 = new byte[rows * in], w8 = new byte[out * in];
                for (int i = 0; i < a8.length; i++) a8[i] = (byte) (r.nextInt(255) - 127);
                for (int i = 0; i < w8.length; i++) w8[i] = (byte) (r.nextInt(255) - 127);
                int[] c32 = new int[rows * out];
                double tS = time(() -> Blas.get().sgemm(false, true, rows, out, in, 1f, x.data(), 0, in, w.data(), 0, in, 0f, c, 0, out));
                double tI = time(() -> Int8Gemm.gemm(rows, out, in, a8, w8, c32, out));
                fl += tLin; fi += tInt; gs += tS; gi += tI;
                System.out.printf(Locale.ROOT, "%-26s %-22s %17s %8.1f GF/s %7.1f GOP/s %6.2fx %7.1f GF/s %6.1f GOP/s %6.2fx%n", names.get(mi), e.getKey(),
                        rows + "x" + in + "x" + out, ops / tLin / 1e9, ops / tInt / 1e9, tLin / tInt, ops / tS / 1e9, ops / tI / 1e9, tS / tI);
            }
            System.out.printf(Locale.ROOT, "%-26s %-22s %17s %12s %12s %6.2fx %12s %12s %6.2fx%n", names.get(mi), "one block, all Linear", "", "", "", fl / fi, "", "", gs / gi);
            q.detach();
        }
    }

    private double time(Runnable body) {
        for (int i = 0; i < 2; i++) body.run();
        List<Double> ts = new ArrayList<>();
        long start = System.nanoTime();
        while (ts.size() < 5 || (System.nanoTime() - start) / 1e9 < kernelSeconds) {
            long t0 = System.nanoTime();
            body.run();
            ts.add((System.nanoTime() - t0) / 1e9);
        }
        return median(ts);
    }

    // ------------------------------------------------------------------ sampling

    /** One sampling configuration: a name and how to open its denoiser. */
    private record Config(String name, java.util.function.Supplier<PreparedDenoiser> open) {}

    private void sampling(DiffusionModel m, String name, int batch) {
        System.out.println();
        System.out.printf(Locale.ROOT, "== end-to-end sampling: %s, %d images, DDIM %d steps, eta 0, no guidance, seed 0; %d timed runs each after a warm-up, interleaved%n",
                name, batch, steps, reps);
        List<Config> configs = new ArrayList<>();
        configs.add(new Config("FP32", () -> ExecutionBackends.prepare(ExecutionBackend.JVM, m, null)));
        QuantizedModel[] att = new QuantizedModel[1];
        configs.add(new Config("fake W8A8 (jvm)", () -> {
            att[0] = Int8Specs.attach(m, 8);
            return ExecutionBackends.prepare(ExecutionBackend.JVM, m, att[0]);
        }));
        for (String b : backends) configs.add(new Config("real W8A8 (" + b + ")", () -> {
            att[0] = Int8Specs.attach(m, 8);
            return ExecutionBackends.prepare(b, m, att[0]);
        }));
        int nc = configs.size();
        double[][] times = new double[nc][reps];
        Tensor[] images = new Tensor[nc];
        ExecutionInfo[] infos = new ExecutionInfo[nc];
        for (int rep = -1; rep < reps; rep++) {
            for (int c = 0; c < nc; c++) {
                try (PreparedDenoiser d = configs.get(c).open().get()) {
                    long t0 = System.nanoTime();
                    SamplingResult r = Sampling.runToEnd(request(m, d, batch), false);
                    double secs = (System.nanoTime() - t0) / 1e9;
                    if (rep >= 0) times[c][rep] = secs;
                    images[c] = r.samples();
                    infos[c] = r.execution();
                } finally {
                    if (att[0] != null) {
                        att[0].detach();
                        att[0] = null;
                    }
                }
            }
        }
        double fp = median(times[0]), fake = median(times[1]);
        System.out.printf("%-22s %12s %10s %10s %15s  %s%n", "configuration", "s per run", "vs FP32", "vs fake", "PSNR vs fake", "execution");
        for (int c = 0; c < nc; c++) {
            double t = median(times[c]);
            String psnr = c == 1 ? "-" : String.format(Locale.ROOT, "%.1f dB", ImageMetrics.psnr(clamp(images[1]), clamp(images[c]), ImageMetrics.RANGE_SIGNED_UNIT));
            System.out.printf(Locale.ROOT, "%-22s %12.3f %9.2fx %9.2fx %15s  %s%n", configs.get(c).name(), t, fp / t, fake / t, psnr, infos[c].label());
        }
        System.out.printf(Locale.ROOT, "(times per run: %s)%n", Arrays.deepToString(round(times)));
    }

    private SampleRequest request(DiffusionModel m, Denoiser d, int batch) {
        SampleRequest.Builder b = SampleRequest.forModel(m, batch).denoiser(d).ddim(0).respacing(io.diffquant.engine.diffusion.SampleBatches.respacingFor("ddim", steps)).seed(0);
        if (m.numClasses() > 0) {
            int[] y = new int[batch];
            for (int i = 0; i < batch; i++) y[i] = (i * 7) % m.numClasses();
            b.labels(y);
        }
        return b.build();
    }

    // ------------------------------------------------------------------ memory

    private void memory(DiffusionModel m, String name) throws Exception {
        System.out.println();
        System.out.println("== weight memory: " + name + " (quantized: every Linear/Conv2d weight; biases, norms, embeddings and pos_embed stay FP32)");
        System.out.printf("%-34s %14s %14s %10s %14s %10s%n", "format", "weights MB", "FP32 MB", "ratio", "file MB", "of FP32");
        Path tmp = Files.createTempDirectory("diffquant-bench-mem");
        try {
            for (Object[] v : new Object[][] {{"W8 int8-sym per channel", IntFormat.symmetric(8), Granularity.CHANNEL},
                    {"W4 int4-sym per channel", IntFormat.symmetric(4), Granularity.CHANNEL},
                    {"W4 int4-asym group 128 (Q-DiT)", IntFormat.asymmetric(4), Granularity.group(128)}}) {
                PointSpec spec = new PointSpec(TensorSpec.weight((io.diffquant.engine.quant.format.NumberFormat) v[1], (Granularity) v[2], RangeSpec.MINMAX), TensorSpec.OFF);
                QuantPlan plan = QuantPlan.resolve(m, spec, List.<LayerOverride>of());
                QuantizedModel q = QuantizedModel.attach(m, plan, WeightCalibrator.calibrate(m, plan));
                QuantConfig cfg = new QuantConfig(ModelIdentity.of(m, "bench"), null, null, spec, List.of(), q.params(), null, null);
                Path f = tmp.resolve("w.safetensors");
                QuantizedCheckpoint.Summary s = QuantizedCheckpoint.write(q, cfg, f);
                q.detach();
                Files.deleteIfExists(f);
                System.out.printf(Locale.ROOT, "%-34s %14.3f %14.3f %9.1f%% %14.3f %9.1f%%%n", v[0], s.quantizedBytes() / 1e6, s.quantizedFp32Bytes() / 1e6,
                        100 * s.weightRatio(), s.fileBytes() / 1e6, 100 * s.fileRatio());
            }
            QuantizedModel q = Int8Specs.attach(m, 8);
            try (PreparedDenoiser d = ExecutionBackends.prepare(ExecutionBackend.CPU_INT8, m, q)) {
                long packed = io.diffquant.engine.backend.cpu.CpuInt8Backend.packedBytes(d);
                long fp = 0;
                for (Layer l : m.layers().all()) if (l instanceof Linear) fp += 4L * l.parameterCount();
                if (packed >= 0) System.out.printf(Locale.ROOT, "%-34s %14.3f %14.3f %9.1f%%   (int8 levels + FP32 steps + FP32 bias of the Linear layers)%n",
                        "cpu-int8 in memory (W8, Linear)", packed / 1e6, fp / 1e6, 100.0 * packed / fp);
            }
            q.detach();
        } finally {
            Files.deleteIfExists(tmp);
        }
    }

    // ------------------------------------------------------------------ helpers

    /** Random weights: N(0, 1/fan_in) for Linear/Conv weights and the label table, N(0, 0.02^2) biases; pos_embed as made. */
    static DiT randomDiT(DiTConfig cfg, long seed) {
        DiT m = new DiT(cfg);
        Random r = new Random(seed);
        Map<String, Tensor> sd = new LinkedHashMap<>();
        for (var e : m.stateDict().entrySet()) {
            Tensor t = e.getValue();
            if (e.getKey().equals("pos_embed")) {
                sd.put(e.getKey(), t.copy());
                continue;
            }
            int[] s = t.shape();
            double std = s.length >= 2 ? 1 / Math.sqrt((double) t.size() / s[0]) : 0.02;
            float[] d = new float[t.size()];
            for (int i = 0; i < d.length; i++) d[i] = (float) (r.nextGaussian() * std);
            sd.put(e.getKey(), Tensor.of(d, s));
        }
        m.loadWeights(sd, "random(" + seed + ")");
        return m;
    }

    static float[] clamp(Tensor t) {
        float[] d = t.data().clone();
        for (int i = 0; i < d.length; i++) d[i] = Math.max(-1f, Math.min(1f, d[i]));
        return d;
    }

    static double median(List<Double> v) {
        double[] a = v.stream().mapToDouble(Double::doubleValue).toArray();
        return median(a);
    }

    static double median(double[] v) {
        double[] a = v.clone();
        Arrays.sort(a);
        return a.length % 2 == 1 ? a[a.length / 2] : 0.5 * (a[a.length / 2 - 1] + a[a.length / 2]);
    }

    private static double[][] round(double[][] t) {
        double[][] r = new double[t.length][];
        for (int i = 0; i < t.length; i++) {
            r[i] = new double[t[i].length];
            for (int j = 0; j < t[i].length; j++) r[i][j] = Math.round(t[i][j] * 1000) / 1000.0;
        }
        return r;
    }

    static String loadAverage() {
        try {
            String[] f = Files.readString(Path.of("/proc/loadavg")).trim().split("\\s+");
            return f[0] + " / " + f[1] + " / " + f[2] + " (1/5/15 min)";
        } catch (Exception e) {
            return "unknown";
        }
    }
}
