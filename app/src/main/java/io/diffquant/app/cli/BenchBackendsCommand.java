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
import io.diffquant.engine.model.dit.DiTRandomWeights;
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
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
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
                "quantization, and weight memory FP32 vs packed W8/W4 checkpoints; a summary against issue 7's bars. Models: the",
                "shipped dit-fmnist (assets/dit-fmnist, or --dit-fmnist DIR) and a random DiT-S/2 (32x32x4 latent, 1000 classes,",
                "learn_sigma). Prints Markdown tables; --out/--json keep them. See docs/backends.md."})
final class BenchBackendsCommand implements Callable<Integer> {
    @Option(names = "--backend", split = ",", defaultValue = "cpu-int8", paramLabel = "ID",
            description = "backends to measure against FP32 and fake W8A8 (default: ${DEFAULT-VALUE})") List<String> backends;
    @Option(names = "--threads", defaultValue = "1", description = "engine and oneDNN threads for every side (default: ${DEFAULT-VALUE})") int threads;
    @Option(names = "--steps", defaultValue = "10", description = "DDIM steps per sampling run (default: ${DEFAULT-VALUE})") int steps;
    @Option(names = "--reps", defaultValue = "3", description = "timed sampling runs per configuration, interleaved, after one warm-up (median reported; default: ${DEFAULT-VALUE})") int reps;
    @Option(names = "--dit-s-batch", defaultValue = "2", description = "images per sampling run of the DiT-S/2 model (default: ${DEFAULT-VALUE})") int ditSBatch;
    @Option(names = "--fmnist-batch", defaultValue = "16", description = "images per sampling run of the dit-fmnist model (default: ${DEFAULT-VALUE})") int fmnistBatch;
    @Option(names = "--kernel-seconds", defaultValue = "0.4", description = "minimum time per kernel measurement (default: ${DEFAULT-VALUE})") double kernelSeconds;
    @Option(names = "--dit-fmnist", paramLabel = "DIR", description = "the dit-fmnist model folder (default: the shipped assets/dit-fmnist; random weights of its shape when that is missing)") Path ditFmnist;
    @Option(names = "--models", split = ",", defaultValue = "dit-fmnist,dit-s-2", description = "models to run (default: ${DEFAULT-VALUE})") List<String> models;
    @Option(names = "--skip-kernels", description = "no per-kernel table") boolean skipKernels;
    @Option(names = "--skip-sampling", description = "no end-to-end sampling") boolean skipSampling;
    @Option(names = "--skip-memory", description = "no weight-memory table") boolean skipMemory;
    @Option(names = "--out", paramLabel = "FILE", description = "also write the report (Markdown tables, as printed) to FILE") Path out;
    @Option(names = "--json", paramLabel = "FILE", description = "also write every measured number as JSON to FILE") Path json;

    private BenchReport report;
    private final List<SamplingRow> samplingRows = new ArrayList<>();
    private final List<MemoryRow> memoryRows = new ArrayList<>();
    private final Map<String, double[]> blockLinear = new LinkedHashMap<>();

    private static final java.lang.management.ThreadMXBean MX = java.lang.management.ManagementFactory.getThreadMXBean();

    private Path root() { return Path.of(System.getProperty("diffquant.root", ".")); }

    /**
     * With one thread every kernel (oneDNN included) runs on the calling thread, so its CPU time is the work done,
     * unaffected by other processes taking the cores; wall time otherwise.
     */
    private boolean cpuClock() { return threads == 1 && MX.isCurrentThreadCpuTimeSupported(); }

    private long now() { return cpuClock() ? MX.getCurrentThreadCpuTime() : System.nanoTime(); }

    @Override public Integer call() throws Exception {
        if (threads < 1 || steps < 1 || reps < 1 || ditSBatch < 1 || fmnistBatch < 1) throw new IllegalArgumentException("--threads, --steps, --reps and the batches must be >= 1");
        for (String b : backends) ExecutionBackends.requireKnown(b);   // typos fail before any work
        for (Path f : new Path[] {out, json}) if (f != null && Files.isDirectory(f)) throw new IllegalArgumentException("--out/--json: " + f + " is a directory, expected a file");
        Parallel.setThreads(threads);
        report = new BenchReport(System.out);
        String load0 = loadAverage();
        ObjectNode machine = report.json.putObject("machine");
        machine.put("cores", Runtime.getRuntime().availableProcessors());
        machine.put("load_average_start", load0);
        machine.put("threads", threads);
        machine.put("fp32_gemm", Blas.get().name());
        machine.put("clock", cpuClock() ? "thread CPU time" : "wall");
        machine.put("started", java.time.ZonedDateTime.now().format(java.time.format.DateTimeFormatter.ISO_OFFSET_DATE_TIME));
        report.line("## bench-backends");
        report.blank();
        report.line(BenchReport.f("- machine: %d cores visible, load average %s at the start (other processes share the cores: compare the ratios, not the absolute times)",
                Runtime.getRuntime().availableProcessors(), load0));
        report.line(BenchReport.f("- threads: %d engine / %d oneDNN for every side; FP32 GEMM %s (zero-copy %s), int8 GEMM oneDNN dnnl_gemm_s8s8s32 (zero-copy %s)",
                threads, threads, Blas.get().name(), DnnlBlas.zeroCopy(), Int8Gemm.zeroCopy()));
        report.line(cpuClock() ? "- clock: CPU time of the benchmark thread (one thread does all the work, oneDNN included, so other processes on the cores do not inflate it); sampling also shows wall time"
                : "- clock: wall time");
        String why = Int8Gemm.unavailableReason();
        if (why != null) report.line("- int8 GEMM unavailable: " + why);
        List<DiffusionModel> ms = new ArrayList<>();
        List<String> names = new ArrayList<>();
        for (String name : models) {
            switch (name) {
                case "dit-fmnist" -> {
                    Path dir = ditFmnist != null ? ditFmnist : root().resolve("assets/dit-fmnist");
                    boolean shipped = Files.isRegularFile(dir.resolve("config.json"));
                    if (ditFmnist != null && !shipped) throw new IllegalArgumentException("--dit-fmnist: " + ditFmnist + " holds no model (config.json missing)");
                    ms.add(shipped ? ModelFolder.load(dir).model() : DiTRandomWeights.create(DiTConfig.fromJson(root().resolve("tools/train/dit-fmnist.json")), 1));
                    names.add(shipped ? "dit-fmnist (" + dir.getFileName() + ")" : "dit-fmnist (random)");
                }
                case "dit-s-2" -> {
                    ms.add(DiTRandomWeights.create(DiTConfig.named("DiT-S/2", 32, 1000, true), 2));
                    names.add("DiT-S/2 32x32x4 (random)");
                }
                default -> throw new IllegalArgumentException("--models: unknown model '" + name + "' (dit-fmnist, dit-s-2)");
            }
        }
        int[] batches = new int[ms.size()];
        for (int i = 0; i < ms.size(); i++) batches[i] = models.get(i).equals("dit-s-2") ? ditSBatch : fmnistBatch;
        for (int i = 0; i < ms.size(); i++) {
            ObjectNode mo = report.array("models").addObject();
            mo.put("id", models.get(i));
            mo.put("name", names.get(i));
            mo.put("parameters", ms.get(i).parameterCount());
            mo.put("batch", batches[i]);
        }
        report.line("- models: " + String.join("; ", names.stream().map(n -> n + " (" + BenchReport.f("%.2f M parameters", ms.get(names.indexOf(n)).parameterCount() / 1e6) + ")").toList()));
        Runnable body = () -> {
            try {
                if (!skipKernels) kernels(ms, names, batches);
                if (!skipSampling) for (int i = 0; i < ms.size(); i++) sampling(ms.get(i), names.get(i), models.get(i), batches[i]);
                if (!skipMemory) for (int i = 0; i < ms.size(); i++) memory(ms.get(i), names.get(i), models.get(i));
            } catch (Exception e) {
                throw new IllegalStateException(e.getMessage(), e);
            }
        };
        // one thread: oneDNN's OpenMP on this thread is single-threaded too, for FP32 and int8 alike
        if (threads == 1) NativeThreads.singleThreaded(body);
        else body.run();
        summary();
        String load1 = loadAverage();
        machine.put("load_average_end", load1);
        report.blank();
        report.line("load average at the end: " + load1);
        report.write(out, json);
        if (out != null || json != null) System.out.println("written: " + (out == null ? "" : out + " ") + (json == null ? "" : json));
        return 0;
    }

    // ------------------------------------------------------------------ kernels

    private void kernels(List<DiffusionModel> ms, List<String> names, int[] batches) {
        report.heading("Kernels at the model shapes (one DiT block's Linear layers; M = images x tokens, adaLN layers M = images)");
        report.line("FP32 linear = the engine's Linear (oneDNN sgemm + bias); int8 linear = per-token quantization + oneDNN s8*s8->s32 GEMM + "
                + "dequantization and bias; sgemm / s8 GEMM = the bare GEMMs on the same shapes (random data). Throughput in GFLOP/s "
                + "(GOP/s for int8) counting 2 M K N; ratio = int8 / FP32.");
        report.blank();
        List<List<String>> rows = new ArrayList<>();
        ArrayNode ja = report.array("kernels");
        for (int mi = 0; mi < ms.size(); mi++) {
            DiffusionModel m = ms.get(mi);
            if (!(m instanceof DiT d)) continue;
            int tokens = d.config().tokens();
            Map<String, int[]> shapes = new LinkedHashMap<>();
            for (Layer l : m.layers().all()) {
                if (!(l instanceof Linear lin) || !l.name().startsWith("blocks.0.")) continue;
                int rowsM = l.name().contains("adaLN") ? batches[mi] : batches[mi] * tokens;
                shapes.put(l.name().substring("blocks.0.".length()), new int[] {rowsM, lin.in(), lin.out()});
            }
            QuantizedModel q = Int8Specs.attach(m, 8);
            double fl = 0, fi = 0, gs = 0, gi = 0;
            for (var e : shapes.entrySet()) {
                int rowsM = e.getValue()[0], in = e.getValue()[1], outN = e.getValue()[2];
                Linear lin = (Linear) m.layers().get("blocks.0." + e.getKey());
                Int8Linear packed = Int8Linear.pack(lin.name(), q.weightCodes(lin.name()), lin.param("bias"), IntFormat.symmetric(8));
                Random r = new Random(rowsM);
                Tensor x = Tensor.zeros(rowsM, in);
                for (int i = 0; i < x.size(); i++) x.data()[i] = (float) r.nextGaussian();
                Tensor w = lin.param("weight"), b = lin.param("bias");
                double ops = 2.0 * rowsM * in * outN;
                double tLin = time(() -> Ops.linear(x, w, b));
                double tInt = time(() -> packed.forward(x));
                float[] c = new float[rowsM * outN];
                byte[] a8 = new byte[rowsM * in], w8 = new byte[outN * in];
                for (int i = 0; i < a8.length; i++) a8[i] = (byte) (r.nextInt(255) - 127);
                for (int i = 0; i < w8.length; i++) w8[i] = (byte) (r.nextInt(255) - 127);
                int[] c32 = new int[rowsM * outN];
                double tS = time(() -> Blas.get().sgemm(false, true, rowsM, outN, in, 1f, x.data(), 0, in, w.data(), 0, in, 0f, c, 0, outN));
                double tI = time(() -> Int8Gemm.gemm(rowsM, outN, in, a8, w8, c32, outN));
                fl += tLin; fi += tInt; gs += tS; gi += tI;
                rows.add(List.of(names.get(mi), e.getKey(), rowsM + "x" + in + "x" + outN, BenchReport.f("%.1f", ops / tLin / 1e9), BenchReport.f("%.1f", ops / tInt / 1e9),
                        BenchReport.ratio(tLin / tInt), BenchReport.f("%.1f", ops / tS / 1e9), BenchReport.f("%.1f", ops / tI / 1e9), BenchReport.ratio(tS / tI)));
                ObjectNode o = ja.addObject();
                o.put("model", models.get(mi));
                o.put("layer", e.getKey());
                o.put("m", rowsM);
                o.put("k", in);
                o.put("n", outN);
                o.put("fp32_linear_s", tLin);
                o.put("int8_linear_s", tInt);
                o.put("sgemm_s", tS);
                o.put("s8_gemm_s", tI);
            }
            rows.add(List.of(names.get(mi), "**one block, all Linear**", "", "", "", BenchReport.ratio(fl / fi), "", "", BenchReport.ratio(gs / gi)));
            blockLinear.put(models.get(mi), new double[] {fl / fi, gs / gi});
            q.detach();
        }
        report.table(List.of("model", "layer", "M x K x N", "FP32 linear GF/s", "int8 linear GOP/s", "ratio", "sgemm GF/s", "s8 GEMM GOP/s", "ratio"), rows);
    }

    private double time(Runnable body) {
        long warm = System.nanoTime();
        while (System.nanoTime() - warm < 2e8 * kernelSeconds / 0.4) body.run();        // JIT warm-up
        List<Double> ts = new ArrayList<>();
        long start = now();
        while (ts.size() < 7 || (now() - start) / 1e9 < kernelSeconds) {
            long t0 = now();
            body.run();
            ts.add((now() - t0) / 1e9);
        }
        return median(ts);
    }

    // ------------------------------------------------------------------ sampling

    /** One sampling configuration: a name and how to open its denoiser. */
    private record Config(String name, String id, java.util.function.Supplier<PreparedDenoiser> open) {}

    /** End-to-end result of one configuration, for the summary. */
    record SamplingRow(String model, String config, double seconds, double wall, double vsFp32, double wallVsFp32, double psnrVsFake, double forwardPsnr, String execution) {}

    private void sampling(DiffusionModel m, String name, String modelId, int batch) {
        report.heading(BenchReport.f("End-to-end sampling: %s, %d images, DDIM %d steps", name, batch, steps));
        report.line(BenchReport.f("eta 0, no guidance, seed 0, labels (7 i) mod classes; %d timed runs per configuration after one warm-up, interleaved "
                + "(a load change hits every configuration alike); median per run. PSNR of the images (clamped to [-1, 1]) against fake W8A8; \"1 forward PSNR\": of one denoiser "
                + "output (same noise input, t = 500) against fake W8A8's, over its value range: the kernels' agreement before the sampler amplifies "
                + "differences (a random network amplifies them more than a trained one).", reps));
        report.blank();
        List<Config> configs = new ArrayList<>();
        configs.add(new Config("FP32", "fp32", () -> ExecutionBackends.prepare(ExecutionBackend.JVM, m, null)));
        QuantizedModel[] att = new QuantizedModel[1];
        configs.add(new Config("fake W8A8 (jvm)", "fake-w8a8", () -> {
            att[0] = Int8Specs.attach(m, 8);
            return ExecutionBackends.prepare(ExecutionBackend.JVM, m, att[0]);
        }));
        for (String b : backends) {
            ExecutionBackends.Choice choice = ExecutionBackends.choose(b);     // one log line if it falls back
            configs.add(new Config("real W8A8 (" + b + ")", "real-w8a8-" + b, () -> {
                att[0] = Int8Specs.attach(m, 8);
                return ExecutionBackends.prepare(choice, m, att[0]);
            }));
        }
        int nc = configs.size();
        double[][] times = new double[nc][reps], walls = new double[nc][reps];
        Tensor[] images = new Tensor[nc];
        ExecutionInfo[] infos = new ExecutionInfo[nc];
        for (int rep = -1; rep < reps; rep++) {
            for (int c = 0; c < nc; c++) {
                try (PreparedDenoiser d = configs.get(c).open().get()) {
                    long t0 = now(), w0 = System.nanoTime();
                    SamplingResult r = Sampling.runToEnd(request(m, d, batch), false);
                    double secs = (now() - t0) / 1e9, wall = (System.nanoTime() - w0) / 1e9;
                    if (rep >= 0) {
                        times[c][rep] = secs;
                        walls[c][rep] = wall;
                    }
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
        // one denoiser call on the same input (t = 500): the kernels' agreement, without the sampler's amplification
        Tensor x0 = Tensor.zeros(batch, m.inChannels(), m.sampleSize(), m.sampleSize());
        Random rx = new Random(5);
        for (int i = 0; i < x0.size(); i++) x0.data()[i] = (float) rx.nextGaussian();
        float[] t500 = new float[batch];
        Arrays.fill(t500, 500f);
        int[] ys = m.numClasses() > 0 ? new int[batch] : null;
        for (int i = 0; ys != null && i < batch; i++) ys[i] = (i * 7) % m.numClasses();     // as request()
        Tensor[] eps = new Tensor[nc];
        for (int c = 0; c < nc; c++) {
            try (PreparedDenoiser d = configs.get(c).open().get()) {
                eps[c] = d.forward(x0, t500, ys);
            } finally {
                if (att[0] != null) {
                    att[0].detach();
                    att[0] = null;
                }
            }
        }
        float lo = Float.POSITIVE_INFINITY, hi = Float.NEGATIVE_INFINITY;
        for (float v : eps[1].data()) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
        double epsRange = Math.max(1e-30, (double) hi - lo);
        double fp = median(times[0]), fake = median(times[1]), fpWall = median(walls[0]);
        List<List<String>> rows = new ArrayList<>();
        ArrayNode ja = report.array("sampling");
        for (int c = 0; c < nc; c++) {
            double t = median(times[c]), w = median(walls[c]);
            double psnr = c == 1 ? Double.NaN : ImageMetrics.psnr(clamp(images[1]), clamp(images[c]), ImageMetrics.RANGE_SIGNED_UNIT);
            double psnrEps = c == 1 ? Double.NaN : ImageMetrics.psnr(eps[1].data(), eps[c].data(), epsRange);
            rows.add(List.of(configs.get(c).name(), BenchReport.f("%.3f", t), BenchReport.ratio(fp / t), BenchReport.ratio(fake / t), BenchReport.f("%.3f", w),
                    BenchReport.ratio(fpWall / w), c == 1 ? "-" : BenchReport.f("%.1f dB", psnr), c == 1 ? "-" : BenchReport.f("%.1f dB", psnrEps), infos[c].label()));
            SamplingRow sr = new SamplingRow(modelId, configs.get(c).id(), t, w, fp / t, fpWall / w, psnr, psnrEps, infos[c].label());
            samplingRows.add(sr);
            ObjectNode o = ja.addObject();
            o.put("model", modelId);
            o.put("config", configs.get(c).id());
            o.put("images", batch);
            o.put("steps", steps);
            o.put(cpuClock() ? "cpu_seconds" : "seconds", t);
            o.put("wall_seconds", w);
            o.put("speedup_vs_fp32", fp / t);
            o.put("wall_speedup_vs_fp32", fpWall / w);
            o.put("speedup_vs_fake", fake / t);
            if (c != 1) {
                o.put("psnr_vs_fake_db", psnr);
                o.put("one_forward_psnr_vs_fake_db", psnrEps);
            }
            o.put("execution", infos[c].label());
            ArrayNode runs = o.putArray("runs");
            for (int i = 0; i < reps; i++) runs.addArray().add(times[c][i]).add(walls[c][i]);
        }
        report.table(List.of("configuration", cpuClock() ? "CPU s/run" : "s/run", "vs FP32", "vs fake", "wall s/run", "wall vs FP32", "PSNR vs fake", "1 forward PSNR", "execution"), rows);
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

    /** Weight memory of one packing, for the summary. */
    record MemoryRow(String model, String format, double quantizedMb, double fp32Mb, double weightRatio, double fileMb, double fileRatio) {}

    private void memory(DiffusionModel m, String name, String modelId) throws Exception {
        report.heading("Weight memory: " + name);
        report.line("Packed checkpoints (`quantize`'s safetensors export, docs/export-format.md): every Linear/Conv2d weight as packed codes "
                + "plus its FP32 scales (and zero points); biases, norms, embeddings and pos_embed stay FP32. \"weights\" = codes + scales + zero "
                + "points of the quantized tensors vs their FP32 size; \"file\" = the whole checkpoint file (config and header included) vs the FP32 "
                + "model's tensors.");
        report.blank();
        List<List<String>> rows = new ArrayList<>();
        ArrayNode ja = report.array("memory");
        long fp32Model = 0;
        for (Tensor t : m.stateDict().values()) fp32Model += 4L * t.size();
        rows.add(List.of("FP32 (all tensors)", "-", "-", "-", BenchReport.f("%.3f", fp32Model / 1e6), "100.0%"));
        Path tmp = Files.createTempDirectory("diffquant-bench-mem");
        try {
            for (Object[] v : new Object[][] {{"W8 int8-sym per channel", "w8-channel", IntFormat.symmetric(8), Granularity.CHANNEL},
                    {"W4 int4-sym per channel", "w4-channel", IntFormat.symmetric(4), Granularity.CHANNEL},
                    {"W4 int4-asym group 128 (Q-DiT)", "w4-group128", IntFormat.asymmetric(4), Granularity.group(128)}}) {
                PointSpec spec = new PointSpec(TensorSpec.weight((io.diffquant.engine.quant.format.NumberFormat) v[2], (Granularity) v[3], RangeSpec.MINMAX), TensorSpec.OFF);
                QuantPlan plan = QuantPlan.resolve(m, spec, List.<LayerOverride>of());
                QuantizedModel q = QuantizedModel.attach(m, plan, WeightCalibrator.calibrate(m, plan));
                QuantConfig cfg = new QuantConfig(ModelIdentity.of(m, "bench"), null, null, spec, List.of(), q.params(), null, null);
                Path f = tmp.resolve("w.safetensors");
                QuantizedCheckpoint.Summary s;
                try {
                    s = QuantizedCheckpoint.write(q, cfg, f);
                } finally {
                    q.detach();
                    Files.deleteIfExists(f);
                }
                rows.add(List.of((String) v[0], BenchReport.f("%.3f", s.quantizedBytes() / 1e6), BenchReport.f("%.3f", s.quantizedFp32Bytes() / 1e6),
                        BenchReport.f("%.1f%%", 100 * s.weightRatio()), BenchReport.f("%.3f", s.fileBytes() / 1e6), BenchReport.f("%.1f%% (1/%.2f)", 100 * s.fileRatio(), 1 / s.fileRatio())));
                memoryRows.add(new MemoryRow(modelId, (String) v[1], s.quantizedBytes() / 1e6, s.quantizedFp32Bytes() / 1e6, s.weightRatio(), s.fileBytes() / 1e6, s.fileRatio()));
                ObjectNode o = ja.addObject();
                o.put("model", modelId);
                o.put("format", (String) v[1]);
                o.put("quantized_bytes", s.quantizedBytes());
                o.put("quantized_fp32_bytes", s.quantizedFp32Bytes());
                o.put("other_bytes", s.otherBytes());
                o.put("file_bytes", s.fileBytes());
                o.put("weight_ratio", s.weightRatio());
                o.put("file_ratio", s.fileRatio());
            }
            QuantizedModel q = Int8Specs.attach(m, 8);
            try (PreparedDenoiser d = ExecutionBackends.prepare(ExecutionBackend.CPU_INT8, m, q)) {
                long packed = io.diffquant.engine.backend.cpu.CpuInt8Backend.packedBytes(d);
                long fp = 0;
                for (Layer l : m.layers().all()) if (l instanceof Linear) fp += 4L * l.parameterCount();
                if (packed >= 0) {
                    rows.add(List.of("cpu-int8 in memory (W8, Linear layers: int8 levels + FP32 steps + FP32 bias)", BenchReport.f("%.3f", packed / 1e6),
                            BenchReport.f("%.3f", fp / 1e6), BenchReport.f("%.1f%%", 100.0 * packed / fp), "-", "-"));
                    ObjectNode o = ja.addObject();
                    o.put("model", modelId);
                    o.put("format", "cpu-int8-in-memory");
                    o.put("quantized_bytes", packed);
                    o.put("quantized_fp32_bytes", fp);
                }
            } finally {
                q.detach();
            }
        } finally {
            Files.deleteIfExists(tmp);
        }
        report.table(List.of("format", "weights MB", "FP32 MB", "weights of FP32", "file MB", "file of FP32 model"), rows);
    }

    // ------------------------------------------------------------------ summary

    /** The issue-7 bars against what this run measured (DiT-S/2 speed and PSNR, packed W4 size), as a table and JSON. */
    private void summary() {
        report.heading("Summary against issue 7's bars");
        List<List<String>> rows = new ArrayList<>();
        ArrayNode ja = report.array("bars");
        for (SamplingRow r : samplingRows) {
            if (!r.config().startsWith("real-w8a8-")) continue;
            boolean ditS = r.model().equals("dit-s-2");
            String clock = cpuClock() ? "CPU" : "wall";
            rows.add(List.of(r.model(), r.config() + " vs FP32, end-to-end (" + clock + ")", ditS ? ">= 2.00x" : "(info)", BenchReport.ratio(r.vsFp32()),
                    ditS ? BenchReport.bar(r.vsFp32() >= 2.0) : "-"));
            if (cpuClock()) rows.add(List.of(r.model(), r.config() + " vs FP32, end-to-end (wall)", ditS ? ">= 2.00x" : "(info)", BenchReport.ratio(r.wallVsFp32()),
                    ditS ? BenchReport.bar(r.wallVsFp32() >= 2.0) : "-"));
            rows.add(List.of(r.model(), r.config() + " images vs fake W8A8", ">= 40 dB", BenchReport.f("%.1f dB", r.psnrVsFake()), BenchReport.bar(r.psnrVsFake() >= 40)));
            rows.add(List.of(r.model(), r.config() + " one denoiser output vs fake W8A8 (same input)", "(info)", BenchReport.f("%.1f dB", r.forwardPsnr()), "-"));
            addBar(ja, r.model(), r.config() + "_speedup_vs_fp32", 2.0, r.vsFp32(), ditS ? r.vsFp32() >= 2.0 : null);
            addBar(ja, r.model(), r.config() + "_psnr_vs_fake_db", 40.0, r.psnrVsFake(), r.psnrVsFake() >= 40);
        }
        for (Map.Entry<String, double[]> e : blockLinear.entrySet())
            rows.add(List.of(e.getKey(), "one block's Linear layers: int8 linear vs FP32 linear (bare GEMMs)", "(info)",
                    BenchReport.ratio(e.getValue()[0]) + " (" + BenchReport.ratio(e.getValue()[1]) + ")", "-"));
        for (MemoryRow r : memoryRows) {
            boolean w4 = r.format().startsWith("w4");
            rows.add(List.of(r.model(), "packed " + r.format() + " checkpoint file vs FP32, scales included", w4 ? "<= 16.7% (1/6)" : "(info)",
                    BenchReport.f("%.1f%%", 100 * r.fileRatio()), w4 ? BenchReport.bar(r.fileRatio() <= 1.0 / 6) : "-"));
            if (w4) addBar(ja, r.model(), r.format() + "_file_ratio", 1.0 / 6, r.fileRatio(), r.fileRatio() <= 1.0 / 6);
        }
        if (rows.isEmpty()) {
            report.line("(nothing measured that a bar applies to)");
            return;
        }
        report.table(List.of("model", "measure", "bar", "measured", "result"), rows);
    }

    private static void addBar(ArrayNode ja, String model, String measure, double bar, double value, Boolean pass) {
        ObjectNode o = ja.addObject();
        o.put("model", model);
        o.put("measure", measure);
        o.put("bar", bar);
        o.put("value", value);
        if (pass != null) o.put("pass", pass);
    }

    // ------------------------------------------------------------------ helpers


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
