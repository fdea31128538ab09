package io.diffquant.app.cli;

import io.diffquant.engine.analysis.AnalysisSession;
import io.diffquant.engine.analysis.AnalysisSettings;
import io.diffquant.engine.analysis.Histograms;
import io.diffquant.engine.analysis.LayerSensitivity;
import io.diffquant.engine.analysis.PerturbationSensitivity;
import io.diffquant.engine.analysis.TemporalFeatureError;
import io.diffquant.engine.analysis.TemporalMismatch;
import io.diffquant.engine.analysis.TrajectoryDeviation;
import io.diffquant.engine.analysis.Variant;
import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.model.MemoryBudget;
import io.diffquant.engine.model.RandomCheckpoints;
import io.diffquant.engine.quant.QuantizedModel;
import io.diffquant.engine.quant.calib.CalibrationRecorder;
import io.diffquant.engine.quant.calib.CalibrationSet;
import io.diffquant.engine.quant.calib.CalibrationSettings;
import io.diffquant.engine.quant.config.ModelIdentity;
import io.diffquant.engine.quant.config.QuantConfig;
import io.diffquant.engine.quant.config.QuantConfigCodec;
import io.diffquant.engine.quant.config.QuantConfigs;
import io.diffquant.engine.quant.config.TemporalSection;
import io.diffquant.engine.quant.export.QuantizedCheckpoint;
import io.diffquant.engine.quant.preset.CalibrationJob;
import io.diffquant.engine.quant.preset.OptionDef;
import io.diffquant.engine.quant.preset.Preset;
import io.diffquant.engine.quant.preset.Presets;
import io.diffquant.engine.quant.recon.ReconSettings;
import io.diffquant.engine.quant.preset.TfmqPreset;
import io.diffquant.engine.quant.spec.PointSpec;
import io.diffquant.engine.quant.spec.QuantPlan;
import io.diffquant.engine.tensor.Tensor;
import io.diffquant.engine.temporal.TemporalInfoBlock;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;

/**
 * {@code bench-full --methods / --analyses} on one denoiser (issue 8, "every analysis and method works on the full-size
 * models"): the calibration data is recorded once, then every method preset ({@link Presets}) is calibrated with a small
 * stated budget, its config and quantized checkpoint are exported, the checkpoint is loaded back into a fresh model and
 * must reproduce the fake-quant output of one denoiser call; every analysis of {@code diffquant analyze}
 * ({@link AnalysisRuns}) runs on the calibrated configs. Each step is timed with its peak heap. The unit test runs the
 * same methods on small models with the real parameter names.
 */
final class FullSizeSuite {
    /** Seconds and peak heap (bytes) of one measured step. */
    record Stage(double seconds, long peakHeap) {
        Stage plus(Stage o) { return new Stage(seconds + o.seconds, Math.max(peakHeap, o.peakHeap)); }
    }

    @FunctionalInterface
    interface Body<T> { T run() throws Exception; }

    /** Runs {@code body} with the heap pools' peaks reset; returns its value, the time and the peak through {@code out}. */
    static <T> T measure(Body<T> body, Stage[] out) throws Exception {
        System.gc();
        MemoryBudget.resetPeak();
        long t0 = System.nanoTime();
        T v = body.run();
        out[0] = new Stage((System.nanoTime() - t0) / 1e9, MemoryBudget.peakHeap());
        return v;
    }

    /**
     * The reduced calibration budget (options a preset does not declare are not passed to it).
     * @param wBits      weight bits, or null for each preset's default
     * @param aBits      activation bits, or null for each preset's default
     * @param reconIters reconstruction steps per block or layer ({@code recon_iters}; the presets' default is 300, the papers' 20,000)
     * @param reconBatch rows per reconstruction step ({@code recon_batch}; default 32)
     * @param tiarIters  TIAR Adam steps ({@code tiar_iters}, per stage when blockwise; default 2000)
     * @param tiarBatch  (timestep, label) pairs per TIAR step ({@code tiar_batch}; default 128)
     */
    record Budget(Integer wBits, Integer aBits, int reconIters, int reconBatch, int tiarIters, int tiarBatch) {
        Map<String, Object> options(Preset p) {
            Set<String> declared = new LinkedHashSet<>();
            for (OptionDef d : p.options()) declared.add(d.name());
            Map<String, Object> o = new LinkedHashMap<>();
            if (wBits != null) o.put("w_bits", wBits);
            if (aBits != null) o.put("a_bits", aBits);
            o.put(ReconSettings.ITERS, reconIters);
            o.put(ReconSettings.BATCH, reconBatch);
            o.put(TfmqPreset.TIAR_ITERS, tiarIters);
            o.put(TfmqPreset.TIAR_BATCH, tiarBatch);
            o.keySet().retainAll(declared);
            return o;
        }
    }

    /**
     * What the analyses use.
     * @param sensitivityLayers layers (globs) layer-sensitivity probes one at a time; empty = all
     * @param sensitivityEvery  probe every k-th of those layers in model order (1 = all)
     * @param histogramLayers   layers (globs) whose weight and input histograms are made; empty = all
     * @param configs           presets whose configs temporal-error, mismatch and trajectory compare with FP (each must be
     *                          calibrated in this suite; empty = every calibrated preset)
     */
    record AnalysisOptions(AnalysisSettings settings, double[] lambdas, int images, PointSpec spec, List<String> sensitivityLayers,
                           int sensitivityEvery, List<String> histogramLayers, int bins, List<String> configs) {}

    /**
     * One preset's outcome.
     * @param options         the preset options given (the budget)
     * @param bits            "W4A8"-style label of the preset's weight / activation bits
     * @param avgWeightBits   average stored bits per Linear/Conv2d weight element (scales and zero points included)
     * @param checkpointBytes size of the quantized checkpoint
     * @param configFile      the exported config (JSON + sidecars), for the analyses
     * @param checkpointFile  the exported quantized checkpoint
     * @param maxAbsDiff      max |reloaded − fake-quant| over the probe call's output
     * @param bitwise         whether the two outputs are bitwise identical
     * @param outputMaxAbs    max |fake-quant output| (the scale of the difference)
     */
    record PresetResult(String preset, Map<String, Object> options, String bits, Stage calibrate, Stage export, Stage reload,
                        double avgWeightBits, int quantizedTensors, long checkpointBytes, long temporalBytes, Path configFile,
                        Path checkpointFile, float probeT, double maxAbsDiff, boolean bitwise, double outputMaxAbs, boolean outputFinite,
                        String tiar) {
        Stage total() { return calibrate.plus(export).plus(reload); }
    }

    /** One analysis's outcome: the engine result (e.g. TemporalFeatureError.Result), its summary line and a key number for the table. */
    record AnalysisResult(String analysis, Stage stage, Object result, String summary, String key) {}

    private final DiffusionModel model;
    private final ModelIdentity identity;
    private final CalibrationSettings calibration;
    private final Path work;
    private final Map<String, PresetResult> calibrated = new LinkedHashMap<>();
    private final Tensor probeX;
    private final int[] probeY;
    private int[] calibTimesteps;
    private AnalysisSession session;

    /**
     * @param work where calibration data, configs and checkpoints are written (created; the caller deletes it)
     */
    FullSizeSuite(DiffusionModel model, ModelIdentity identity, CalibrationSettings calibration, Path work) throws IOException {
        this.model = model;
        this.identity = identity;
        this.calibration = calibration;
        this.work = work;
        Files.createDirectories(work);
        this.probeX = RandomCheckpoints.random("probe x", new int[] {1, model.inChannels(), model.sampleSize(), model.sampleSize()}, 11);
        this.probeY = model.numClasses() > 0 ? new int[] {1 % model.numClasses()} : null;
    }

    Path calibrationDir() { return work.resolve("calibration-data"); }

    /** The presets by name, "all" = every registered preset; unknown names list the valid ones. */
    static List<String> presets(List<String> names) {
        Set<String> out = new LinkedHashSet<>();
        for (String n : names) {
            String s = n.trim();
            if (s.equals("all")) out.addAll(Presets.names());
            else out.add(Presets.byName(s).name());
        }
        if (out.isEmpty()) throw new IllegalArgumentException("--methods: name at least one preset (" + String.join(", ", Presets.names()) + ") or all");
        return List.copyOf(out);
    }

    /** Records the FP calibration data once (every preset that needs data reuses it); returns the recorded timesteps. */
    int[] recordCalibrationData() throws IOException {
        CalibrationRecorder r = CalibrationRecorder.start(model, identity, calibration, calibrationDir());
        while (r.hasNext()) r.next();
        CalibrationSet set = r.result();
        calibTimesteps = set.timesteps();
        return calibTimesteps.clone();
    }

    /** Calibrates, exports (config + checkpoint) and reloads one preset; the check compares one denoiser call. */
    PresetResult calibrate(String presetName, Budget budget) throws Exception { return calibrate(presetName, budget, Map.of()); }

    /**
     * {@link #calibrate(String, Budget)} with further preset options (e.g. {@code tiar = false}).
     * @throws io.diffquant.engine.model.MemoryBudget.InsufficientMemoryException when a stage checks its memory and it does not fit
     */
    PresetResult calibrate(String presetName, Budget budget, Map<String, Object> extra) throws Exception {
        if (calibTimesteps == null) recordCalibrationData();
        Preset preset = Presets.byName(presetName);
        Map<String, Object> opts = budget.options(preset);
        opts.putAll(extra);
        Stage[] s = new Stage[1];
        // held in an array so that the config (learned codes, cached features: ~1 GB at DiT-XL/2 size) can go before the reload
        String[] tiar = new String[1];   // TIAR's closing line ("TIAR <schedule> done: ..."), when it ran
        QuantConfig[] c = {measure(() -> {
            CalibrationJob job = CalibrationJob.start(new CalibrationJob.Request(model, identity, preset.name(), opts, List.of(), calibration,
                    calibrationDir(), null));
            while (job.hasNext()) {
                String m = job.next().message();
                int at = m == null ? -1 : m.indexOf("TIAR ");
                if (at >= 0 && m.contains(" done: temporal feature loss ")) tiar[0] = m.substring(at);
            }
            return job.result();
        }, s)};
        Stage cal = s[0];
        double avgBits = QuantPlan.resolve(model, c[0].defaults(), c[0].overrides()).averageWeightBits();
        String bits = "W" + c[0].method().options().getInt("w_bits") + "A" + c[0].method().options().getInt("a_bits");
        // one denoiser call at the first recorded calibration timestep (cached temporal features exist for those)
        float t = calibTimesteps[0];
        Path dir = work.resolve(preset.name());
        Files.createDirectories(dir);
        Path cfgFile = dir.resolve(preset.name() + ".json"), ckpt = dir.resolve(preset.name() + ".safetensors");
        Tensor[] fq = new Tensor[1];
        QuantizedCheckpoint.Summary sum = measure(() -> {
            QuantConfigCodec.write(c[0], cfgFile);
            QuantizedModel q = QuantConfigs.attach(c[0], model, false);
            try {
                fq[0] = model.forward(probeX, new float[] {t}, probeY);
                return QuantizedCheckpoint.write(q, c[0], ckpt);
            } finally {
                q.detach();
            }
        }, s);
        c[0] = null;
        Stage export = s[0];
        Tensor back = measure(() -> {
            QuantizedCheckpoint.Loaded l = QuantizedCheckpoint.load(ckpt);
            try {
                return l.model().forward(probeX, new float[] {t}, probeY);
            } finally {
                l.quantized().detach();
            }
        }, s);
        Stage reload = s[0];
        double maxDiff = 0, maxAbs = 0;
        boolean bitwise = Arrays.equals(fq[0].shape(), back.shape()), finite = fq[0].allFinite();
        if (bitwise) for (int i = 0; i < fq[0].size(); i++) {
            float a = fq[0].data()[i], b = back.data()[i];
            maxDiff = Math.max(maxDiff, Math.abs((double) a - b));
            maxAbs = Math.max(maxAbs, Math.abs(a));
            bitwise &= Float.floatToRawIntBits(a) == Float.floatToRawIntBits(b);
        } else maxDiff = Double.NaN;
        PresetResult r = new PresetResult(preset.name(), opts, bits, cal, export, reload, avgBits, sum.quantizedTensors(),
                sum.fileBytes(), sum.temporalBytes(), cfgFile, ckpt, t, maxDiff, bitwise, maxAbs, finite,
                tiar[0]);
        calibrated.put(preset.name(), r);
        return r;
    }

    /** The table note of a preset row. */
    static String notes(PresetResult r, TemporalInfoBlock tib) throws IOException {
        List<String> n = new ArrayList<>();
        n.add(String.format(Locale.ROOT, "calibrate %.1f s, export %.1f s, reload %.1f s", r.calibrate().seconds(), r.export().seconds(), r.reload().seconds()));
        n.add(String.format(Locale.ROOT, "%.2f avg weight bits, %d quantized weights, checkpoint %.1f MB", r.avgWeightBits(), r.quantizedTensors(),
                r.checkpointBytes() / 1e6));
        if (r.temporalBytes() > 0) {
            TemporalSection ts = QuantConfigCodec.read(r.configFile()).temporal();
            n.add(String.format(Locale.ROOT, "cache %d features x %d timesteps x %d labels = %.1f MB%s", ts.features().size(), ts.timesteps().length,
                    ts.labels() == null ? 1 : ts.labels().length, r.temporalBytes() / 1e6,
                    ts.selectionMap() == null ? "" : String.format(Locale.ROOT, ", selection: %d of %d entries cached", ts.cachedEntries(),
                            ts.features().size() * ts.timesteps().length)));
        }
        n.add(String.format(Locale.ROOT, "reload vs fake-quant at t=%d: max |Δ| %s%s (max |out| %.3g)", (int) r.probeT(),
                r.bitwise() ? "0" : String.format(Locale.ROOT, "%.3g", r.maxAbsDiff()), r.bitwise() ? ", bitwise identical" : " **NOT bitwise**",
                r.outputMaxAbs()));
        if (r.tiar() != null) n.add(r.tiar());
        n.add("budget: " + (r.options().isEmpty() ? "preset defaults" : describe(r.options())));
        return String.join("; ", n);
    }

    static String describe(Map<String, Object> opts) {
        List<String> s = new ArrayList<>();
        opts.forEach((k, v) -> s.add(k + " " + v));
        return String.join(", ", s);
    }

    // ------------------------------------------------------------------ analyses

    /** The variants the config-comparing analyses use: the named calibrated presets (empty = all), read from their exported files. */
    List<Variant> variants(List<String> names) {
        List<String> use = names == null || names.isEmpty() ? new ArrayList<>(calibrated.keySet()) : names;
        if (use.isEmpty()) throw new IllegalArgumentException("temporal-error, mismatch and trajectory compare calibrated configs with FP: "
                + "calibrate at least one preset (--methods)");
        List<Variant> v = new ArrayList<>();
        for (String n : use) {
            PresetResult r = calibrated.get(n);
            if (r == null) throw new IllegalArgumentException("--analysis-configs " + n + ": not calibrated in this run (calibrated: "
                    + String.join(", ", calibrated.keySet()) + ")");
            v.add(AnalysisRuns.fromFile(n, r.configFile(), false));
        }
        return v;
    }

    /** Runs one analysis (the session's FP quantities are shared by the analyses of this suite). */
    AnalysisResult analyze(String analysis, AnalysisOptions o) throws Exception {
        if (session == null || !session.settings().equals(o.settings())) session = new AnalysisSession(model, o.settings());
        AnalysisSession ses = session;
        Stage[] s = new Stage[1];
        AnalysisRuns.Run<?> run = measure(() -> switch (analysis) {
            case "temporal-error" -> AnalysisRuns.temporalError(ses, variants(o.configs()));
            case "mismatch" -> AnalysisRuns.mismatch(ses, variants(o.configs()));
            case "trajectory" -> AnalysisRuns.trajectory(ses, variants(o.configs()));
            case "perturbation" -> AnalysisRuns.perturbation(ses, o.lambdas(), o.images(), null);
            case "layer-sensitivity" -> AnalysisRuns.layerSensitivity(ses, o.spec(), o.sensitivityLayers(), o.sensitivityEvery());
            case "histogram" -> AnalysisRuns.histograms(ses, o.histogramLayers(), o.bins(), o.spec());
            default -> throw new IllegalArgumentException("unknown analysis '" + analysis + "'; valid: " + String.join(", ", AnalysisRuns.ANALYSES));
        }, s);
        return new AnalysisResult(analysis, s[0], run.result(), run.summary(), key(analysis, run.result(), o));
    }

    /** Drops the session's cached FP quantities (the temporal feature tables of a 1000-class model take GBs). */
    void releaseSession() { session = null; }

    private static String ordinal(int k) {
        return k % 100 >= 11 && k % 100 <= 13 ? "th" : switch (k % 10) { case 1 -> "st"; case 2 -> "nd"; case 3 -> "rd"; default -> "th"; };
    }

    @SuppressWarnings("unchecked")
    private String key(String analysis, Object result, AnalysisOptions o) {
        List<String> parts = new ArrayList<>();
        switch (analysis) {
            case "temporal-error" -> {
                TemporalFeatureError.Result r = (TemporalFeatureError.Result) result;
                for (TemporalFeatureError.ConfigError c : r.configs()) parts.add(String.format(Locale.ROOT, "%s %.3g", c.config(), c.meanRelativeL2()));
                return String.format(Locale.ROOT, "%d features x %d timesteps x %d labels; mean relative L2 error: %s", r.features().size(),
                        r.timesteps().length, r.labels() == null ? 1 : r.labels().length, String.join(", ", parts));
            }
            case "mismatch" -> {
                for (TemporalMismatch.Result c : (List<TemporalMismatch.Result>) result)
                    parts.add(String.format(Locale.ROOT, "%s %.3f", c.config(), c.all().rate()));
                return "mismatch rate (all features): " + String.join(", ", parts);
            }
            case "trajectory" -> {
                TrajectoryDeviation.Result r = (TrajectoryDeviation.Result) result;
                for (TrajectoryDeviation.Series c : r.configs()) parts.add(String.format(Locale.ROOT, "%s %.3g", c.config(), c.finalL2()));
                return String.format(Locale.ROOT, "%d sample(s), %d steps; final ||x^q - x^FP||: %s", r.samples(), r.timesteps().length, String.join(", ", parts));
            }
            case "perturbation" -> {
                PerturbationSensitivity.Result r = (PerturbationSensitivity.Result) result;
                for (int i = 0; i < r.lambdas().length; i++) parts.add(String.format(Locale.ROOT, "λ=%s: temporal %.3g, non-temporal %.3g",
                        r.lambdas()[i], r.temporal().mse()[i], r.nonTemporal().mse()[i]));
                return String.format(Locale.ROOT, "MSE vs FP (no FID: not Fashion-MNIST), %d image(s), %d temporal / %d non-temporal sites: %s", r.images(),
                        r.temporal().sites().size(), r.nonTemporal().sites().size(), String.join("; ", parts));
            }
            case "layer-sensitivity" -> {
                LayerSensitivity.Result r = (LayerSensitivity.Result) result;
                int top = r.ranking()[0];
                return String.format(Locale.ROOT, "%d layers%s x %d timesteps (%s); most sensitive %s (mean rel. error %.3g)", r.layers().size(),
                        o.sensitivityEvery() > 1 ? String.format(Locale.ROOT, " (every %d%s of %d)", o.sensitivityEvery(), ordinal(o.sensitivityEvery()),
                                AnalysisRuns.candidates(model, o.spec(), o.sensitivityLayers()).size()) : "",
                        r.timesteps().length, r.probes().getFirst().describe(), r.layers().get(top), r.meanError()[top]);
            }
            case "histogram" -> {
                List<Histograms.Histogram> hs = (List<Histograms.Histogram>) result;
                long w = hs.stream().filter(h -> h.tensor().equals("weight")).count();
                long nonFinite = hs.stream().mapToLong(Histograms.Histogram::nonFinite).sum();
                return String.format(Locale.ROOT, "%d histograms (%d weight, %d input-activation) of %d bins; non-finite values: %d", hs.size(), w,
                        hs.size() - w, o.bins(), nonFinite);
            }
            default -> throw new IllegalArgumentException(analysis);
        }
    }

    static void deleteTree(Path root) throws IOException {
        if (!Files.exists(root)) return;
        try (Stream<Path> w = Files.walk(root)) {
            for (Path p : w.sorted(java.util.Comparator.reverseOrder()).toList()) Files.deleteIfExists(p);
        }
    }
}
