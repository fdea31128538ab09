package io.diffquant.engine.quant.results;

import io.diffquant.engine.analysis.AnalysisSession;
import io.diffquant.engine.analysis.AnalysisSettings;
import io.diffquant.engine.analysis.TemporalFeatureError;
import io.diffquant.engine.analysis.Variant;
import io.diffquant.engine.diffusion.SampleBatches;
import io.diffquant.engine.diffusion.Sampling;
import io.diffquant.engine.diffusion.SamplingRun;
import io.diffquant.engine.diffusion.SamplingStep;
import io.diffquant.engine.metrics.FmnistClassifier;
import io.diffquant.engine.metrics.FmnistMetrics;
import io.diffquant.engine.metrics.MetricsTable;
import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.quant.QuantizedModel;
import io.diffquant.engine.quant.calib.CalibrationSettings;
import io.diffquant.engine.quant.config.ModelIdentity;
import io.diffquant.engine.quant.config.QuantConfig;
import io.diffquant.engine.quant.config.QuantConfigCodec;
import io.diffquant.engine.quant.config.QuantConfigs;
import io.diffquant.engine.quant.preset.CalibrationJob;
import io.diffquant.engine.quant.preset.Presets;
import io.diffquant.engine.tensor.Tensor;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.NoSuchElementException;
import java.util.concurrent.CancellationException;

/**
 * Measures a model at every configuration of a results table (issue 4's bar): samples N images of the full-precision
 * model, then for each {@link ResultConfig} calibrates the preset ({@link CalibrationJob}, calibration data cached and
 * shared between presets with the same data settings), samples the same N images (same seeds and labels) with the
 * config attached and computes FID-FMNIST (with the real-data floor), class accuracy (class-conditional models), and
 * PSNR/SSIM/MSE against the FP images ({@link FmnistMetrics}), plus any extra metrics the caller plugs in (e.g. the
 * mean temporal feature error of TFMQ-DM's analysis, {@link #temporalFeatureError}). Images are clamped to [-1, 1] before measuring, as when written
 * to PNG (as {@code diffquant eval}). A configuration that fails (a preset that refuses the bits, a calibration
 * error) becomes a row with its error; the run goes on.
 *
 * <p>Pulled step by step: each {@link #next()} does one bounded piece of work (one calibration step, one sampler step
 * of one batch, or the metrics of one row). The calibrated configs are written to {@code workDir/configs} and reused
 * by a later run when {@link Request#reuseConfigs} is set and they belong to the same model and method options.
 */
public final class ResultsRun implements Iterator<ResultsRun.Progress> {

    /**
     * A metric of a configuration (NaN when it does not apply), measured after its images with the model back in full
     * precision (the metric applies the config itself if it needs to).
     */
    @FunctionalInterface
    public interface RowMetric {
        double measure(DiffusionModel model, QuantConfig config);
    }

    /** Column name of {@link #temporalFeatureError}. */
    public static final String TEMPORAL_ERROR = "temporal feature error";

    /**
     * The mean temporal feature error of a configuration (TFMQ-DM, ALGORITHMS.md §6; the analysis API's
     * {@link TemporalFeatureError}): the relative L2 error ||ê_i(t, y) - e_i(t, y)||² / ||e_i(t, y)||² of every feature of
     * the Temporal Information Block, averaged over the sampling timesteps of these settings, the labels (every class,
     * plus the null class with guidance) and the features. The FP features are computed once.
     */
    public static RowMetric temporalFeatureError(DiffusionModel model, SampleBatches.Settings s) {
        AnalysisSession session = new AnalysisSession(model, new AnalysisSettings(s.sampler(), s.steps(), s.eta(), s.schedule(),
                model.numClasses() > 0 ? s.cfg() : 1.0, s.seed(), 8, 8));
        return (m, c) -> TemporalFeatureError.evaluate(session, Variant.of("results", c, false)).meanRelativeL2();
    }

    /**
     * What to measure.
     * @param identity     the model's name and hashes (configs and calibration data are keyed by them)
     * @param configs      the rows (presets x bits x formats)
     * @param count        images per row (>= 2)
     * @param sampling     how the images are sampled (same seeds for every row)
     * @param extraOptions preset options given to every preset that declares them (e.g. recon_iters = 100)
     * @param workDir      calibration data cache ({@code calib/}) and calibrated configs ({@code configs/})
     * @param metrics      the feature network and reference statistics
     * @param extras       extra metrics by column name, in order
     * @param reuseConfigs reuse a config in {@code workDir/configs} made for the same model and options
     */
    public record Request(DiffusionModel model, ModelIdentity identity, List<ResultConfig> configs, int count, SampleBatches.Settings sampling,
                          Map<String, String> extraOptions, Path workDir, FmnistMetrics metrics, Map<String, RowMetric> extras,
                          boolean reuseConfigs) {
        public Request {
            if (model == null || identity == null || sampling == null || workDir == null || metrics == null)
                throw new IllegalArgumentException("results request: model, identity, sampling, workDir and metrics are required");
            if (count < 2) throw new IllegalArgumentException("results: at least 2 images per row (FID-FMNIST needs a covariance), got " + count);
            if (model.inChannels() != 1 || model.sampleSize() != FmnistClassifier.IMAGE_SIZE) throw new IllegalArgumentException(
                    "results: FID-FMNIST measures Fashion-MNIST images [N, 1, 28, 28], but this " + model.architecture() + " makes [N, "
                            + model.inChannels() + ", " + model.sampleSize() + ", " + model.sampleSize() + "]");
            configs = List.copyOf(configs);
            extraOptions = extraOptions == null ? Map.of() : new LinkedHashMap<>(extraOptions);
            extras = extras == null ? Map.of() : new LinkedHashMap<>(extras);
            for (String k : extraOptions.keySet()) {
                boolean any = false;
                for (ResultConfig c : configs) any |= ResultConfig.declares(c.preset(), k);
                if (!any) throw new IllegalArgumentException("results: option '" + k + "' is not an option of any preset of this run ("
                        + String.join(", ", configs.stream().map(ResultConfig::preset).distinct().toList()) + ")");
            }
        }
    }

    public enum Phase { REFERENCE, CALIBRATE, SAMPLE, MEASURE, DONE }

    /** After a step: the row (0 = FP reference, k = configs[k-1]) of rows, the phase and a line. */
    public record Progress(Phase phase, int row, int rows, String message) {}

    private final Request req;
    private final DiffusionModel model;
    private final int[] labels;
    private final List<ResultRow> rows = new ArrayList<>();
    private Phase phase = Phase.REFERENCE;
    private int index = -1;              // current config (-1 = FP reference)
    private Batches batches;
    private Tensor reference;            // clamped FP images
    private CalibrationJob job;
    private QuantConfig config;
    private QuantizedModel attached;
    private double calibSeconds, sampleSeconds;
    /** Whether the row's config was reused, and the calibration time stored in it ({@link #RESULTS_EXTENSION}; NaN if none). */
    private boolean reused;
    private double reusedCalibSeconds = Double.NaN;
    /** Config extension where a results run records how long the config took to calibrate (shown when it is reused). */
    public static final String RESULTS_EXTENSION = "results";
    private boolean rowFinished;
    private volatile boolean cancelled;
    private final long startNanos = System.nanoTime();

    private ResultsRun(Request r) {
        this.req = r;
        this.model = r.model();
        this.labels = SampleBatches.labels(model, r.count(), null, r.metrics().classifier().config().numClasses());
        for (var l : model.layers().all()) if (!l.hooks().isEmpty()) throw new IllegalStateException("results: layer '" + l.name()
                + "' has hooks attached; the FP reference needs the plain model");
        batches = new Batches();
    }

    public static ResultsRun start(Request r) { return new ResultsRun(r); }

    public Request request() { return req; }
    public Phase phase() { return phase; }
    /** The labels every row is sampled with (null for unconditional models). */
    public int[] labels() { return labels == null ? null : labels.clone(); }
    /** Rows finished so far (the FP row first). */
    public List<ResultRow> rows() { return List.copyOf(rows); }
    /** Whether the last {@link #next()} finished a row (a good moment to write partial output). */
    public boolean rowFinished() { return rowFinished; }
    public double elapsedSeconds() { return (System.nanoTime() - startNanos) / 1e9; }

    /** Stops before the next step; the model is detached. */
    public void cancel() {
        cancelled = true;
        if (job != null) job.cancel();
    }

    @Override public boolean hasNext() { return !cancelled && phase != Phase.DONE; }

    @Override public Progress next() {
        if (cancelled) {
            detach();
            throw new CancellationException("results run cancelled");
        }
        if (!hasNext()) throw new NoSuchElementException("results run finished");
        rowFinished = false;
        try {
            return switch (phase) {
                case REFERENCE -> reference();
                case CALIBRATE -> calibrate();
                case SAMPLE -> sample();
                case MEASURE -> measure();
                case DONE -> throw new NoSuchElementException();
            };
        } catch (RuntimeException | IOException e) {
            if (phase == Phase.REFERENCE) {
                detach();
                throw e instanceof IOException io ? new UncheckedIOException(io) : (RuntimeException) e;
            }
            // one configuration failed: record it and go on
            ResultConfig c = req.configs().get(index);
            detach();
            if (job != null) job.cancel();
            job = null;
            String msg = e.getMessage() == null ? e.toString() : e.getMessage();
            rows.add(ResultRow.failed(c, msg, calibSeconds));
            rowFinished = true;
            Progress p = new Progress(phase, index + 1, req.configs().size() + 1, c.label() + " failed: " + msg);
            nextConfig();
            return p;
        }
    }

    private int rowCount() { return req.configs().size() + 1; }

    private Progress reference() {
        long t0 = System.nanoTime();
        SamplingStep st = batches.step();
        sampleSeconds += (System.nanoTime() - t0) / 1e9;
        String msg = "FP32: images " + batches.describe(st);
        if (batches.done()) {
            Tensor images = clampUnit(batches.images());
            MetricsTable t = req.metrics().evaluate("FP32", Map.of(), images, labels, null);
            reference = images;
            rows.add(new ResultRow(null, null, value(t, MetricsTable.FID_FMNIST), value(t, MetricsTable.SFID_FMNIST),
                    value(t, MetricsTable.CLASS_ACCURACY), Double.NaN, Double.NaN, Double.NaN, 32, 0, sampleSeconds, null));
            rowFinished = true;
            msg = String.format(Locale.ROOT, "FP32: FID-FMNIST %.2f in %.0f s", rows.getLast().fid(), sampleSeconds);
            nextConfig();
        }
        return new Progress(Phase.REFERENCE, 0, rowCount(), msg);
    }

    private void nextConfig() {
        index++;
        calibSeconds = 0;
        reused = false;
        reusedCalibSeconds = Double.NaN;
        sampleSeconds = 0;
        config = null;
        job = null;
        batches = null;
        phase = index < req.configs().size() ? Phase.CALIBRATE : Phase.DONE;
    }

    private Path configFile(ResultConfig c) { return req.workDir().resolve("configs").resolve(c.id() + ".json"); }

    private Progress calibrate() throws IOException {
        ResultConfig c = req.configs().get(index);
        long t0 = System.nanoTime();
        try {
            if (job == null) {
                Map<String, Object> opts = c.options(req.extraOptions());
                Path file = configFile(c);
                if (req.reuseConfigs() && Files.isRegularFile(file)) {
                    QuantConfig old = QuantConfigCodec.read(file);
                    io.diffquant.engine.quant.config.MethodSettings want = io.diffquant.engine.quant.config.MethodSettings.of(c.preset(), opts);
                    if (old.method() != null && old.method().equals(want) && old.model().mismatch(req.identity()) == null) {
                        config = old;
                        reused = true;
                        com.fasterxml.jackson.databind.JsonNode ext = old.extensions().get(RESULTS_EXTENSION);
                        reusedCalibSeconds = ext != null && ext.path("calibration_seconds").isNumber()
                                ? ext.path("calibration_seconds").asDouble() : Double.NaN;
                        phase = Phase.SAMPLE;
                        return new Progress(Phase.CALIBRATE, index + 1, rowCount(), c.label() + ": reusing " + file);
                    }
                }
                CalibrationSettings cs = Presets.byName(c.preset()).defaultCalibration();
                job = CalibrationJob.start(new CalibrationJob.Request(model, req.identity(), c.preset(), opts, null, cs,
                        req.workDir().resolve("calib").resolve(cacheKey(cs)), null));
            }
            if (job.hasNext()) {
                CalibrationJob.Progress p = job.next();
                return new Progress(Phase.CALIBRATE, index + 1, rowCount(), c.label() + ": [" + p.phase().name().toLowerCase(Locale.ROOT) + "] "
                        + p.message());
            }
            config = job.result().withExtension(RESULTS_EXTENSION, io.diffquant.engine.quant.config.ConfigJson.object()
                    .put("calibration_seconds", Math.round(calibSeconds + (System.nanoTime() - t0) / 1e9)));
            job = null;
            Files.createDirectories(configFile(c).getParent());
            QuantConfigCodec.write(config, configFile(c));
            phase = Phase.SAMPLE;
            return new Progress(Phase.CALIBRATE, index + 1, rowCount(), c.label() + ": calibrated -> " + configFile(c));
        } finally {
            calibSeconds += (System.nanoTime() - t0) / 1e9;
        }
    }

    /** The cache directory name of a calibration setting: its JSON's SHA-256 (presets with equal settings share data). */
    static String cacheKey(CalibrationSettings cs) {
        try {
            byte[] h = MessageDigest.getInstance("SHA-256").digest(cs.toJson().toString().getBytes(StandardCharsets.UTF_8));
            return cs.sampler() + cs.steps() + "-" + cs.samples() + "img-" + HexFormat.of().formatHex(h, 0, 6);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    private Progress sample() throws IOException {
        ResultConfig c = req.configs().get(index);
        long t0 = System.nanoTime();
        if (attached == null) {
            attached = QuantConfigs.attach(config, model, false);
            batches = new Batches();
        }
        SamplingStep st = batches.step();
        sampleSeconds += (System.nanoTime() - t0) / 1e9;
        if (batches.done()) phase = Phase.MEASURE;
        return new Progress(Phase.SAMPLE, index + 1, rowCount(), c.label() + ": images " + batches.describe(st));
    }

    private Progress measure() {
        ResultConfig c = req.configs().get(index);
        Map<String, Double> extra = new LinkedHashMap<>();
        double bits = attached.plan().averageWeightBits();
        detach();
        for (Map.Entry<String, RowMetric> e : req.extras().entrySet()) extra.put(e.getKey(), e.getValue().measure(model, config));
        Tensor images = clampUnit(batches.images());
        MetricsTable t = req.metrics().evaluate(c.label(), Map.of(), images, labels, reference);
        rows.add(new ResultRow(c, null, value(t, MetricsTable.FID_FMNIST), value(t, MetricsTable.SFID_FMNIST),
                value(t, MetricsTable.CLASS_ACCURACY), value(t, MetricsTable.PSNR), value(t, MetricsTable.SSIM), value(t, MetricsTable.MSE),
                bits, reused ? reusedCalibSeconds : calibSeconds, sampleSeconds, extra));
        rowFinished = true;
        ResultRow r = rows.getLast();
        String msg = String.format(Locale.ROOT, "%s: FID-FMNIST %.2f, PSNR %.2f dB (calibration %s, sampling %.0f s)", c.label(), r.fid(), r.psnr(),
                reused ? "reused" + (Double.isNaN(reusedCalibSeconds) ? "" : String.format(Locale.ROOT, ", %.0f s when made", reusedCalibSeconds))
                        : String.format(Locale.ROOT, "%.0f s", calibSeconds), sampleSeconds);
        nextConfig();
        return new Progress(Phase.MEASURE, index, rowCount(), msg);
    }

    private void detach() {
        if (attached != null) {
            attached.detach();
            attached = null;
        }
    }

    private static double value(MetricsTable t, String metric) {
        return t.row(metric).map(MetricsTable.Row::value).orElse(Double.NaN);
    }

    /** A copy with every value clamped to [-1, 1] (as {@code diffquant eval}; NaN stays NaN and is refused by the metrics). */
    static Tensor clampUnit(Tensor x) {
        float[] d = x.data().clone();
        for (int i = 0; i < d.length; i++) d[i] = d[i] > 1f ? 1f : d[i] < -1f ? -1f : d[i];
        return Tensor.of(d, x.shape());
    }

    /** The table of the rows so far. */
    public ResultsTable table(String modelName, Map<String, String> info) {
        return new ResultsTable(modelName, info, req.metrics().reference().fidFloor(), rows);
    }

    /** N images in batches, one sampler step per call (the same requests as {@link SampleBatches#sample}). */
    private final class Batches {
        private final List<Tensor> parts = new ArrayList<>();
        private int from;
        private SamplingRun run;
        private int n;

        SamplingStep step() {
            if (run == null) {
                n = Math.min(req.sampling().batch(), req.count() - from);
                run = Sampling.start(SampleBatches.request(model, req.sampling(), from, n, labels));
            }
            SamplingStep st = run.next();
            if (!run.hasNext()) {
                parts.add(run.result());
                from += n;
                run = null;
            }
            return st;
        }

        boolean done() { return from >= req.count(); }

        String describe(SamplingStep st) {
            int a = run == null ? from - n : from;
            return (a + 1) + "-" + (a + n) + " of " + req.count() + ", step " + (st.index() + 1) + "/" + st.totalSteps();
        }

        Tensor images() { return parts.size() == 1 ? parts.getFirst() : Tensor.concatRows(parts.toArray(new Tensor[0])); }
    }
}
