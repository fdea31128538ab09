package io.diffquant.app.cli;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.diffquant.engine.backend.ExecutionBackend;
import io.diffquant.engine.backend.ExecutionBackends;
import io.diffquant.engine.backend.PreparedDenoiser;
import io.diffquant.engine.diffusion.SampleBatches;
import io.diffquant.engine.diffusion.SampleRequest;
import io.diffquant.engine.diffusion.Sampling;
import io.diffquant.engine.metrics.ImageMetrics;
import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.model.ModelFolder;
import io.diffquant.engine.quant.QuantizedModel;
import io.diffquant.engine.quant.calib.CalibrationSettings;
import io.diffquant.engine.quant.config.ModelIdentity;
import io.diffquant.engine.quant.config.QuantConfig;
import io.diffquant.engine.quant.config.QuantConfigs;
import io.diffquant.engine.quant.preset.CalibrationJob;
import io.diffquant.engine.quant.preset.Presets;
import io.diffquant.engine.quant.results.ResultConfig;
import io.diffquant.engine.tensor.NativeThreads;
import io.diffquant.engine.tensor.Parallel;
import io.diffquant.engine.tensor.Tensor;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.stream.Stream;

/**
 * Issue 4's benchmark bar: the cost of fake-quantized sampling against FP32 sampling of the same model and batch
 * (W4A8 at most 1.3x), for presets x bit settings x INT/FP formats, interleaved in one run, and the wall time of each
 * preset's calibration ({@code rtn} on dit-fmnist under 10 s).
 */
@Command(name = "bench-quant", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Fake-quantization cost, one run, same model and batch: DDIM sampling time of each preset x bits x format",
                "(INT and FP) against FP32 sampling, interleaved (FP32, every configuration, FP32, ...), median of --pairs rounds;",
                "and the calibration time of each configuration (issue 4's bars: W4A8 sampling <= 1.3x FP32, rtn calibration of",
                "dit-fmnist < 10 s). Prints Markdown tables; --out/--json keep them. See docs/backends.md."})
final class BenchQuantCommand implements Callable<Integer> {
    @Mixin ModelOption model;
    @Option(names = "--presets", split = ",", defaultValue = "rtn,q-dit", paramLabel = "P", description = "presets (default: ${DEFAULT-VALUE})") List<String> presets;
    @Option(names = "--bits", split = ",", defaultValue = "W4A8", paramLabel = "WxAy", description = "bit settings (default: ${DEFAULT-VALUE})") List<String> bits;
    @Option(names = "--formats", split = ",", defaultValue = "int,fp", paramLabel = "F", description = "int and/or fp (default: ${DEFAULT-VALUE})") List<String> formats;
    @Option(names = "--option", paramLabel = "KEY=VALUE", description = "preset option given to every preset that has it, repeatable") List<String> options = new ArrayList<>();
    @Option(names = "--batch", defaultValue = "16", description = "images per sampling run (default: ${DEFAULT-VALUE})") int batch;
    @Option(names = "--steps", defaultValue = "20", description = "DDIM steps per sampling run (default: ${DEFAULT-VALUE})") int steps;
    @Option(names = "--pairs", defaultValue = "5", description = "timed rounds (FP32 then every configuration), after one warm-up round (default: ${DEFAULT-VALUE})") int pairs;
    @Option(names = "--threads", defaultValue = "1", description = "engine and oneDNN threads (default: ${DEFAULT-VALUE})") int threads;
    @Option(names = "--out", paramLabel = "FILE", description = "also write the report (Markdown) to FILE") Path out;
    @Option(names = "--json", paramLabel = "FILE", description = "also write the numbers as JSON to FILE") Path json;

    private static final java.lang.management.ThreadMXBean MX = java.lang.management.ManagementFactory.getThreadMXBean();

    private boolean cpuClock() { return threads == 1 && MX.isCurrentThreadCpuTimeSupported(); }

    private long now() { return cpuClock() ? MX.getCurrentThreadCpuTime() : System.nanoTime(); }

    @Override public Integer call() throws Exception {
        if (batch < 1 || steps < 1 || pairs < 1 || threads < 1) throw new IllegalArgumentException("--batch, --steps, --pairs and --threads must be >= 1");
        for (Path f : new Path[] {out, json}) if (f != null && Files.isDirectory(f)) throw new IllegalArgumentException("--out/--json: " + f + " is a directory, expected a file");
        List<ResultConfig> configs;
        try {
            configs = ResultConfig.grid(presets, bits, formats);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("--presets/--bits/--formats: " + e.getMessage(), e);
        }
        Map<String, String> opts = new java.util.LinkedHashMap<>();
        for (String o : options) {
            int eq = o.indexOf('=');
            if (eq <= 0) throw new IllegalArgumentException("--option expects KEY=VALUE, got '" + o + "'");
            opts.put(o.substring(0, eq).trim(), o.substring(eq + 1).trim());
        }
        ModelFolder.Loaded loaded = model.load();
        DiffusionModel m = loaded.model();
        String modelName = loaded.folder().toAbsolutePath().normalize().getFileName().toString();
        ModelIdentity id = ModelIdentity.of(m, modelName);
        Parallel.setThreads(threads);
        BenchReport report = new BenchReport(System.out);
        report.line("## bench-quant: fake-quantization cost on " + modelName);
        report.blank();
        report.line(BenchReport.f("- model: `%s` (%s, %.2f M parameters); %d images per run, DDIM %d steps, eta 0, no guidance, seed 0",
                loaded.folder(), m.architecture(), m.parameterCount() / 1e6, batch, steps));
        report.line(BenchReport.f("- machine: %d cores visible, load average %s at the start; %d engine / oneDNN thread(s)",
                Runtime.getRuntime().availableProcessors(), BenchBackendsCommand.loadAverage(), threads));
        report.line(cpuClock() ? "- clock: CPU time of the benchmark thread (it does all the work, oneDNN included); wall time beside it"
                : "- clock: wall time");
        report.json.put("model", loaded.folder().toString());
        report.json.put("batch", batch);
        report.json.put("steps", steps);
        report.json.put("threads", threads);
        report.json.put("clock", cpuClock() ? "thread CPU time" : "wall");

        // calibration (wall time, the user's wait), each with its own fresh calibration data
        report.heading("Calibration (wall time, including recording the FP calibration data)");
        List<QuantConfig> qcs = new ArrayList<>();
        List<List<String>> crow = new ArrayList<>();
        ArrayNode cj = report.array("calibration");
        Path cache = Files.createTempDirectory("diffquant-bench-quant");
        try {
            for (ResultConfig c : configs) {
                long t0 = System.nanoTime();
                // the TFMQ presets are calibrated with the DDIM step count the benchmark samples with: their per-timestep
                // parameters (FSC, the feature cache) are keyed by the timestep values of the calibration sampler; the
                // others keep their default calibration (the rtn / q-diffusion time bars are about that)
                CalibrationSettings cs = null;
                if (c.preset().startsWith("tfmq")) {
                    CalibrationSettings d = Presets.byName(c.preset()).defaultCalibration();
                    cs = d.withSampling("ddim", steps, d.samples(), d.batch(), d.seed());
                }
                QuantConfig qc = CalibrationJob.run(new CalibrationJob.Request(m, id, c.preset(), c.options(opts), null, cs, cache.resolve(c.id()), null));
                double s = (System.nanoTime() - t0) / 1e9;
                qcs.add(qc);
                // the bars hold for the presets' default calibration only (an --option such as reconstruction=none changes its cost)
                boolean rtn = c.preset().equals("rtn") && opts.isEmpty(), qd = c.preset().equals("q-diffusion") && opts.isEmpty();
                crow.add(List.of(c.label(), BenchReport.f("%.2f", s), rtn ? "< 10 s" : qd ? "< 600 s" : "-",
                        rtn ? BenchReport.bar(s < 10) : qd ? BenchReport.bar(s < 600) : "-"));
                ObjectNode o = cj.addObject();
                o.put("config", c.label());
                o.put("seconds", s);
            }
        } finally {
            try (Stream<Path> st = Files.walk(cache)) {
                st.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            }
        }
        report.table(List.of("configuration", "calibration s", "bar", "result"), crow);

        int nc = configs.size() + 1;
        double[][] t = new double[nc][pairs], w = new double[nc][pairs];
        Tensor[] images = new Tensor[nc];
        Runnable body = () -> {
            for (int round = -1; round < pairs; round++) {
                for (int c = 0; c < nc; c++) {
                    QuantizedModel q = null;
                    try {
                        if (c > 0) q = QuantConfigs.attach(qcs.get(c - 1), m, false);
                        try (PreparedDenoiser d = ExecutionBackends.prepare(ExecutionBackend.JVM, m, q)) {
                            warmUp(m, d);       // the JIT's type profiles change with the hooks: one untimed forward
                            SampleRequest req = SampleBatches.request(m, SampleBatches.Settings.ddim(steps, 1.0, 0, batch), 0, batch,
                                    SampleBatches.labels(m, batch, null, 10), d);
                            long c0 = now(), w0 = System.nanoTime();
                            Tensor img = Sampling.runToEnd(req, false).samples();
                            if (round >= 0) {
                                t[c][round] = (now() - c0) / 1e9;
                                w[c][round] = (System.nanoTime() - w0) / 1e9;
                            }
                            if (!img.allFinite()) throw new IllegalStateException("non-finite samples from " + (c == 0 ? "FP32" : configs.get(c - 1).label()));
                            images[c] = img;
                        }
                    } catch (Exception e) {
                        throw new IllegalStateException(e.getMessage(), e);
                    } finally {
                        if (q != null) q.detach();
                    }
                }
            }
        };
        if (threads == 1) NativeThreads.singleThreaded(body);
        else body.run();

        report.heading(BenchReport.f("Sampling cost against FP32 (%d interleaved rounds after a warm-up; ratio = median over the rounds of "
                + "configuration time / FP32 time of the same round)", pairs));
        List<List<String>> rows = new ArrayList<>();
        ArrayNode sj = report.array("sampling");
        double fp = BenchBackendsCommand.median(t[0]), fpw = BenchBackendsCommand.median(w[0]);
        rows.add(List.of("FP32", BenchReport.f("%.3f", fp), "1.00x", BenchReport.f("%.3f", fpw), "1.00x", "-", "-", "-"));
        for (int c = 1; c < nc; c++) {
            double[] r = new double[pairs], rw = new double[pairs];
            for (int i = 0; i < pairs; i++) {
                r[i] = t[c][i] / t[0][i];
                rw[i] = w[c][i] / w[0][i];
            }
            double ratio = BenchBackendsCommand.median(r), wallRatio = BenchBackendsCommand.median(rw);
            double psnr = ImageMetrics.psnr(BenchBackendsCommand.clamp(images[0]), BenchBackendsCommand.clamp(images[c]), ImageMetrics.RANGE_SIGNED_UNIT);
            ResultConfig rc = configs.get(c - 1);
            boolean w4a8 = rc.wBits() == 4 && rc.aBits() == 8;
            rows.add(List.of(rc.label(), BenchReport.f("%.3f", BenchBackendsCommand.median(t[c])), BenchReport.f("%.2fx", ratio),
                    BenchReport.f("%.3f", BenchBackendsCommand.median(w[c])), BenchReport.f("%.2fx", wallRatio), BenchReport.f("%.1f dB", psnr),
                    w4a8 ? "<= 1.30x" : "-", w4a8 ? BenchReport.bar(ratio <= 1.3) : "-"));
            ObjectNode o = sj.addObject();
            o.put("config", rc.label());
            o.put("seconds", BenchBackendsCommand.median(t[c]));
            o.put("wall_seconds", BenchBackendsCommand.median(w[c]));
            o.put("fp32_seconds", fp);
            o.put("ratio_vs_fp32", ratio);
            o.put("wall_ratio_vs_fp32", wallRatio);
            o.put("psnr_vs_fp32_db", psnr);
            if (w4a8) o.put("pass", ratio <= 1.3);
        }
        report.table(List.of("configuration", cpuClock() ? "CPU s/run" : "s/run", "vs FP32", "wall s/run", "wall vs FP32", "PSNR vs FP32", "bar", "result"), rows);
        report.blank();
        report.line("load average at the end: " + BenchBackendsCommand.loadAverage());
        report.write(out, json);
        if (out != null || json != null) System.out.println("written: " + (out == null ? "" : out + " ") + (json == null ? "" : json));
        return 0;
    }

    /** One untimed forward at t = 500 (recompilation after switching hooks is not part of the steady-state cost). */
    private void warmUp(DiffusionModel m, PreparedDenoiser d) {
        Tensor x = Tensor.zeros(batch, m.inChannels(), m.sampleSize(), m.sampleSize());
        float[] ts = new float[batch];
        java.util.Arrays.fill(ts, 500f);
        d.forward(x, ts, m.numClasses() > 0 ? SampleBatches.labels(m, batch, null, 10) : null);
    }
}
