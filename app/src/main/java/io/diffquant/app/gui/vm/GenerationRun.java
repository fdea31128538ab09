package io.diffquant.app.gui.vm;

import io.diffquant.engine.diffusion.SampleRequest;
import io.diffquant.engine.diffusion.Sampling;
import io.diffquant.engine.metrics.FmnistMetrics;
import io.diffquant.engine.metrics.SampleComparison;
import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.quant.QuantizedModel;
import io.diffquant.engine.quant.config.QuantConfig;
import io.diffquant.engine.quant.config.QuantConfigs;
import io.diffquant.engine.quant.preset.CalibrationJob;
import io.diffquant.engine.tensor.Tensor;

import java.awt.image.BufferedImage;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.CancellationException;
import java.util.function.BooleanSupplier;
import java.util.function.Consumer;

/**
 * The side-by-side generation (the toolkit-free core of {@link GenerationTask}): calibrates the baseline and the current
 * configuration when they are not calibrated yet ({@link Calibrations}, the engine's CalibrationJob), samples the
 * full-precision model, then the same request with each configuration attached ({@link QuantConfigs#attach}, detached
 * afterwards whatever happens), keeping every step's frames; then the difference heatmaps per frame and the metrics
 * ({@link SampleComparison}: MSE/PSNR/SSIM vs FP32; FID-FMNIST with {@link FmnistMetrics} for 28x28x1 models).
 */
public final class GenerationRun {
    /** A quantized column to sample: its target, the request to calibrate it, and its config when already calibrated. */
    public record Column(QuantViewModel.Target target, CalibrationJob.Request calibration, QuantConfig calibrated) {}

    /** Progress of the whole run: fraction in [0, 1] and a message. */
    public interface ProgressSink { void progress(double fraction, String message); }

    private final DiffusionModel model;
    private final SampleRequest request;
    private final Column baseline, current;
    private final Callable<FmnistMetrics> metrics;
    private final String backend;
    private volatile CalibrationJob job;
    private volatile io.diffquant.engine.diffusion.SamplingRun sampling;
    private GenerationOutcome outcome;

    /**
     * @param request  the FP32 sampling request (its denoiser is the model; the quantized columns reuse it with their
     *                 configuration attached to the model)
     * @param baseline the baseline column, or null
     * @param current  the current-config column, or null
     * @param metrics  loads the FID-FMNIST feature network (null: no FID)
     * @param backend  the execution backend id every column runs on ({@code ExecutionBackends}; an unavailable one falls
     *                 back to jvm, which the column's execution note says)
     */
    public GenerationRun(DiffusionModel model, SampleRequest request, Column baseline, Column current, Callable<FmnistMetrics> metrics,
                         String backend) {
        this.model = model;
        this.request = request;
        this.baseline = baseline;
        this.current = current;
        this.metrics = metrics;
        this.backend = backend;
        this.outcome = GenerationOutcome.empty(backend);
    }

    /** Stops the calibration or sampling in flight (the caller's cancelled flag stops the rest). */
    public void cancel() {
        CalibrationJob j = job;
        if (j != null) j.cancel();
        var s = sampling;
        if (s != null) s.cancel();
    }

    public GenerationOutcome run(BooleanSupplier cancelled, Consumer<GenerationOutcome> publish, ProgressSink progress) throws Exception {
        List<String> stages = new ArrayList<>();
        boolean calB = baseline != null && baseline.target().quantizes() && baseline.calibrated() == null;
        boolean calC = current != null && current.target().quantizes() && current.calibrated() == null;
        if (calB) stages.add("calibrate baseline");
        if (calC) stages.add("calibrate current");
        stages.add("fp");
        if (baseline != null) stages.add("baseline");
        if (current != null) stages.add("current");
        stages.add("metrics");
        int total = stages.size();
        int[] stage = {0};
        ProgressSink p = (f, m) -> progress.progress((stage[0] + Math.max(0, Math.min(1, f))) / total, m);

        QuantConfig bConf = baseline == null ? null : baseline.calibrated();
        QuantConfig cConf = current == null ? null : current.calibrated();
        if (calB) {
            bConf = calibrate(baseline, cancelled, p);
            stage[0]++;
        }
        if (calC) {
            cConf = calibrate(current, cancelled, p);
            stage[0]++;
        }
        outcome = outcome.withConfigs(bConf, cConf);
        publish.accept(outcome);

        GenerationResult fp = sample("FP32", null, cancelled, p, r -> outcome = outcome.withFp(r), publish);
        stage[0]++;
        GenerationResult b = null, c = null;
        if (baseline != null) {
            if (!baseline.target().quantizes()) {
                b = fp.withLabel(baseline.target().label());
                outcome = outcome.withBaseline(b).withNote(baseline.target().label() + " quantizes nothing: it is the FP32 run");
                publish.accept(outcome);
            } else {
                b = sample(baseline.target().label(), bConf, cancelled, p, r -> outcome = outcome.withBaseline(r), publish);
            }
            stage[0]++;
        }
        if (current != null) {
            if (!current.target().quantizes()) {
                c = fp.withLabel(current.target().label());
                outcome = outcome.withCurrent(c).withNote("the current configuration quantizes nothing: it is the FP32 run");
                publish.accept(outcome);
            } else {
                c = sample(current.target().label(), cConf, cancelled, p, r -> outcome = outcome.withCurrent(r), publish);
            }
            stage[0]++;
        }
        p.progress(0, "Comparing with FP32 ...");
        GenerationOutcome.Heatmap hb = b == null ? null : heatmap(b, fp);
        GenerationOutcome.Heatmap hc = c == null ? null : heatmap(c, fp);
        outcome = outcome.withHeatmaps(hb, hc);
        outcome = measure(outcome, fp, b, c, bConf, cConf);
        p.progress(1, "Done");
        publish.accept(outcome);
        return outcome;
    }

    private QuantConfig calibrate(Column col, BooleanSupplier cancelled, ProgressSink p) throws Exception {
        String what = col.target().label();
        return Calibrations.run(col.calibration(), cancelled, j -> job = j, pr -> p.progress(Calibrations.fraction(pr),
                "Calibrating " + what + ": [" + pr.phase().name().toLowerCase() + "] " + pr.message()));
    }

    private GenerationResult sample(String label, QuantConfig config, BooleanSupplier cancelled, ProgressSink p,
                                    Consumer<GenerationResult> store, Consumer<GenerationOutcome> publish) throws io.diffquant.engine.io.JsonException {
        if (cancelled.getAsBoolean()) throw new CancellationException("generation cancelled before sampling " + label);
        QuantizedModel q = config == null ? null : QuantConfigs.attach(config, model, true);
        io.diffquant.engine.backend.PreparedDenoiser d = null;
        try {
            d = io.diffquant.engine.backend.ExecutionBackends.prepare(backend, model, q);
            outcome = outcome.withNote(label + " ran on " + d.execution().label());
            var run = Sampling.start(request.toBuilder().denoiser(d).build());
            sampling = run;
            int totalSteps = run.totalSteps();
            GenerationResult r = SamplingFrames.collect(run, label, cancelled, snap -> {
                store.accept(snap);
                publish.accept(outcome);
                int[] ts = snap.timesteps();
                p.progress((double) snap.stepsDone() / totalSteps, "Sampling " + label + ": step " + snap.stepsDone() + " of " + totalSteps
                        + " (t = " + ts[ts.length - 1] + ")");
            });
            if (!r.complete()) throw new CancellationException("generation cancelled while sampling " + label + " (" + r.stepsDone()
                    + " of " + r.totalSteps() + " steps)");
            return r;
        } finally {
            sampling = null;
            if (d != null) d.close();
            if (q != null) q.detach();
        }
    }

    /** |column − FP32| grids per frame (both runs keep the same frames: same steps and frame budget). */
    static GenerationOutcome.Heatmap heatmap(GenerationResult col, GenerationResult fp) {
        int frames = Math.min(col.frames(), fp.frames());
        List<BufferedImage> px = new ArrayList<>(), xt = new ArrayList<>();
        double[] pm = new double[frames], xm = new double[frames];
        for (int k = 0; k < frames; k++) {
            Tensor dp = SampleComparison.differenceMap(col.frameTensor(k, true), fp.frameTensor(k, true));
            Tensor dx = SampleComparison.differenceMap(col.frameTensor(k, false), fp.frameTensor(k, false));
            pm[k] = Heatmaps.max(dp);
            xm[k] = Heatmaps.max(dx);
            px.add(Heatmaps.grid(dp, pm[k]));
            xt.add(Heatmaps.grid(dx, xm[k]));
        }
        return new GenerationOutcome.Heatmap(px, xt, pm, xm);
    }

    private GenerationOutcome measure(GenerationOutcome o, GenerationResult fp, GenerationResult b, GenerationResult c,
                                      QuantConfig bConf, QuantConfig cConf) {
        FmnistMetrics fm = null;
        int n = fp.samples().dim(0);
        if (metrics != null && n >= 2) {
            try {
                fm = metrics.call();
            } catch (Exception e) {
                o = o.withNote("FID-FMNIST unavailable: " + ErrorReport.describe(e));
            }
        } else if (metrics != null) {
            o = o.withNote("FID-FMNIST needs at least 2 images");
        } else {
            o = o.withNote("FID-FMNIST applies to 28x28x1 Fashion-MNIST models only");
        }
        List<GenerationOutcome.MetricsRow> rows = new ArrayList<>();
        Tensor ref = fp.samples();
        rows.add(new GenerationOutcome.MetricsRow(fp.label(), fid(fm, ref), Double.NaN, Double.NaN, Double.NaN, Double.NaN, 32, fp.elapsedNanos() / 1e9));
        if (b != null) rows.add(row(b, ref, fm, bConf));
        if (c != null) rows.add(row(c, ref, fm, cConf));
        return o.withMetrics(rows);
    }

    private GenerationOutcome.MetricsRow row(GenerationResult r, Tensor ref, FmnistMetrics fm, QuantConfig conf) {
        SampleComparison.Result cmp = SampleComparison.compare(r.samples(), ref);
        double bits = 32;
        if (conf != null) {
            try {
                bits = QuantConfigs.bind(conf, model, true).plan().averageWeightBits();
            } catch (io.diffquant.engine.io.JsonException e) {
                bits = Double.NaN;
            }
        }
        return new GenerationOutcome.MetricsRow(r.label(), fid(fm, r.samples()), cmp.psnr().mean(), cmp.ssim() == null ? Double.NaN : cmp.ssim().mean(),
                cmp.mse().mean(), cmp.maxAbs(), bits, r.elapsedNanos() / 1e9);
    }

    private static double fid(FmnistMetrics fm, Tensor images) {
        if (fm == null) return Double.NaN;
        return fm.fid(fm.classifier().features(SampleComparison.clampUnit(images)));
    }
}
