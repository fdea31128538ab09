package io.diffquant.engine.temporal;

import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.quant.CalibratedParams;
import io.diffquant.engine.quant.QuantizedModel;
import io.diffquant.engine.quant.calib.CalibBatch;
import io.diffquant.engine.quant.calib.TimestepSubset;
import io.diffquant.engine.quant.config.TemporalSection;
import io.diffquant.engine.quant.format.NumberFormat;
import io.diffquant.engine.quant.format.RangeEstimator;
import io.diffquant.engine.quant.preset.PostCalibration;
import io.diffquant.engine.quant.spec.CalibrationMode;
import io.diffquant.engine.quant.spec.QuantPlan;
import io.diffquant.engine.quant.spec.QuantPoint;
import io.diffquant.engine.quant.spec.TensorSpec;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.NoSuchElementException;
import java.util.Set;

/**
 * The post-activation stage of the {@code tfmq} presets (TFMQ-DM, Huang et al., CVPR 2024 / TPAMI; ALGORITHMS.md §6),
 * pulled step by step by {@code CalibrationJob}:
 * <ol>
 *   <li>FSC ({@link FscCalibrator}): per-timestep input parameters of every quant point the plan marks
 *       {@code per_timestep}. TIB layers are calibrated on their exact finite activation set: the TIB alone is run at
 *       every sampling timestep value with every label; other layers (scope "all") on {@code fscSamples} recorded
 *       rows per timestep in batches of {@code fscBatch} (MSE init on the first batch, then EMA).</li>
 *   <li>Cache ({@link FeatureCache}): the full-precision features of every (t, y), quantized with parameters searched
 *       on each feature at the activation format.</li>
 *   <li>Selection ({@link DisturbanceSelection}): the TIB-based features of the quantized model against the cached ones,
 *       per feature and timestep.</li>
 * </ol>
 * The weights are fake-quantized (the parameters after TIAR and reconstruction) throughout; activations are observed in
 * full precision, as the job's activation calibrator does. The result carries the config's {@link TemporalSection}.
 */
public final class TfmqStage implements PostCalibration {
    /**
     * @param tiar             whether TIAR ran (recorded in the section)
     * @param fsc              FSC on (the plan's per-timestep inputs are calibrated here)
     * @param fscScope         "tib" or "all" (recorded; the plan's modes decide what is calibrated)
     * @param fscSamples       recorded rows per timestep for the non-TIB layers (0 = all)
     * @param fscBatch         rows per forward pass of that calibration
     * @param cache            build the cache
     * @param cacheFormat      number format of the cached features (the activation format)
     * @param cacheGranularity one parameter set per feature vector or per chunk
     * @param cacheRange       the range search on each feature
     * @param selection        disturbance-aware selection (needs the cache)
     * @param metric           the error selection compares
     */
    public record Settings(boolean tiar, boolean fsc, String fscScope, int fscSamples, int fscBatch, boolean cache, NumberFormat cacheFormat,
                           FeatureCache.CacheGranularity cacheGranularity, RangeEstimator cacheRange, boolean selection,
                           TemporalErrors.Metric metric, FscCalibrator.Settings fscSettings) {
        public Settings {
            if (!"tib".equals(fscScope) && !"all".equals(fscScope)) throw new IllegalArgumentException("option 'fsc_scope': expected tib or all, got " + fscScope);
            if (fscSamples < 0) throw new IllegalArgumentException("option 'fsc_samples': expected >= 0, got " + fscSamples);
            if (fscBatch < 1) throw new IllegalArgumentException("option 'fsc_batch': expected >= 1, got " + fscBatch);
            if (selection && !cache) throw new IllegalArgumentException("option 'selection': disturbance-aware selection chooses between the "
                    + "TIB and the cache, so it needs 'cache' = true");
            if (cache && (cacheFormat == null || cacheGranularity == null || cacheRange == null))
                throw new IllegalArgumentException("cache: format, granularity and range are required");
            if (metric == null) metric = TemporalErrors.Metric.REL_L2;
            if (fscSettings == null) fscSettings = FscCalibrator.Settings.defaults();
        }
    }

    private final Settings s;

    public TfmqStage(Settings s) { this.s = s; }

    public Settings settings() { return s; }

    @Override public String name() { return "tfmq"; }

    /** Every per-timestep input of the plan (FSC's points); none when FSC is off. */
    @Override public Set<String> calibratesInputs(QuantPlan plan) {
        Set<String> out = new LinkedHashSet<>();
        for (QuantPoint p : plan.points()) {
            TensorSpec in = plan.spec(p.name()).input();
            if (in.enabled() && in.mode() == CalibrationMode.PER_TIMESTEP) out.add(p.name());
        }
        return out;
    }

    @Override public Run start(Context c) { return new StageRun(c); }

    /** What the stage measured (for reports and tests). */
    public record Report(List<String> fscTib, List<String> fscData, FeatureCache cache, DisturbanceSelection.Result selection) {}

    /** The running stage. */
    public final class StageRun implements Run {
        private final Context c;
        private final DiffusionModel model;
        private final TemporalInfoBlock tib;
        private final float[] timesteps;
        private final List<String> tibPoints = new ArrayList<>(), dataPoints = new ArrayList<>();
        private final List<Runnable> steps = new ArrayList<>();
        private final List<String> messages = new ArrayList<>();
        private int next;
        private CalibratedParams params;
        private FeatureCache cache;
        private TemporalFeatures fp;
        private DisturbanceSelection.Result selection;
        private QuantizedModel weightsQ;
        private FscCalibrator dataCal;
        private Iterator<CalibBatch> batches;
        private int batchDone, batchTotal;
        private volatile boolean cancelled;
        private Result result;

        StageRun(Context c) {
            this.c = c;
            this.model = c.model();
            this.tib = TemporalInfoBlock.of(model);
            if (c.data() == null) throw new IllegalArgumentException("tfmq: the temporal stage needs the calibration data's sampling timesteps");
            this.timesteps = TemporalReconstruction.timesteps(c.data().timesteps());
            this.params = c.params();
            if (s.fsc()) for (String p : calibratesInputs(c.plan())) (tib.contains(p) ? tibPoints : dataPoints).add(p);
            if (!tibPoints.isEmpty()) {
                steps.add(this::fscTib);
                messages.add("FSC: per-timestep ranges of " + tibPoints.size() + " TIB inputs at " + timesteps.length + " timesteps x "
                        + (tib.labels() == null ? 1 : tib.labels().length) + " labels");
            }
            if (!dataPoints.isEmpty()) {
                TimestepSubset all = new TimestepSubset(TimestepSubset.Kind.ALL, 0, s.fscSamples(), c.settings().seed());
                batches = c.data().batches(all, s.fscBatch()).iterator();
                batchTotal = c.data().batchCount(all, s.fscBatch());
                for (int i = 0; i < batchTotal; i++) {
                    steps.add(this::fscData);
                    messages.add(null);
                }
            }
            if (s.cache()) {
                steps.add(this::buildCache);
                messages.add(null);
            }
            if (s.selection()) {
                steps.add(this::select);
                messages.add(null);
            }
        }

        @Override public boolean hasNext() { return !cancelled && result == null; }

        @Override public String next() {
            if (cancelled) throw new java.util.concurrent.CancellationException("tfmq stage cancelled");
            if (result != null) throw new NoSuchElementException("tfmq stage finished");
            try {
                if (next < steps.size()) {
                    int k = next++;
                    steps.get(k).run();
                    return last;
                }
                finish();
                return "temporal section ready";
            } catch (RuntimeException e) {
                cleanup();
                throw e;
            }
        }

        private String last;

        private void fscTib() {
            int[] labels = tib.labels();
            int ny = labels == null ? 1 : labels.length;
            QuantizedModel q = QuantizedModel.attach(model, tibOnly(c.plan()).weightsOnly(), params);
            FscCalibrator cal = null;
            try {
                cal = new FscCalibrator(model, c.plan(), tibPoints, s.fscSettings());
                for (float t : timesteps) {
                    float[] tv = new float[ny];
                    Arrays.fill(tv, t);
                    TemporalFeatures.run(model, tib, tv, labels);
                }
                params = params.merge(cal.result());
            } finally {
                if (cal != null) cal.close();
                q.detach();
            }
            last = messages.get(0);
        }

        private void fscData() {
            if (dataCal == null) {
                weightsQ = QuantizedModel.attach(model, c.plan().weightsOnly(), params);
                dataCal = new FscCalibrator(model, c.plan(), dataPoints, s.fscSettings());
            }
            CalibBatch b = batches.next();
            model.forward(b.x(), b.timesteps(), b.y());
            batchDone++;
            last = "FSC: per-timestep ranges of " + dataPoints.size() + " inputs, batch " + batchDone + " of " + batchTotal + " (t=" + (int) b.t() + ")";
            if (batchDone == batchTotal) {
                params = params.merge(dataCal.result());
                cleanup();
            }
        }

        private TemporalFeatures fp() {
            if (fp == null) fp = TemporalFeatures.compute(model, tib, timesteps, null);
            return fp;
        }

        private void buildCache() {
            TemporalFeatures fp = fp();
            cache = FeatureCache.build(fp, s.cacheFormat(), s.cacheGranularity(), s.cacheRange());
            last = "cache: " + cache.describe();
        }

        private void select() {
            TemporalFeatures fp = fp();
            QuantizedModel q = QuantizedModel.attach(model, tibOnly(c.plan()), params);
            TemporalFeatures tq;
            try {
                tq = TemporalFeatures.computeQuantized(q, timesteps, null);
            } finally {
                q.detach();
            }
            selection = DisturbanceSelection.select(fp, tq, cache.dequantized(), s.metric());
            int total = selection.useCache().length * timesteps.length;
            last = String.format(Locale.ROOT, "selection: %d of %d (feature, timestep) entries from the cache; mean %s %.4g (TIB %.4g, cache %.4g)",
                    selection.cachedEntries(), total, s.metric().id(), selection.meanSelected(), selection.tib().mean(s.metric()),
                    selection.cache().mean(s.metric()));
        }

        /**
         * The plan with every quant point outside the TIB in full precision: the stages here run only the TIB, whose
         * outputs do not depend on the other layers, and attaching those would fake-quantize all their weights at once
         * (2.5 GB for DiT-XL/2).
         */
        private QuantPlan tibOnly(QuantPlan p) {
            List<io.diffquant.engine.quant.spec.LayerOverride> ov = new ArrayList<>(p.overrides());
            for (QuantPoint q : p.points())
                if (!tib.contains(q.name())) ov.add(io.diffquant.engine.quant.spec.LayerOverride.fullPrecision(q.name()).withOrigin("tfmq: outside the TIB"));
            return QuantPlan.resolve(model, p.defaults(), ov);
        }

        private void finish() {
            TemporalSection section = TemporalRuntime.section(tib, s.tiar(), s.fsc(), s.fscScope(), s.cache(), s.selection(), timesteps,
                    tib.labels(), cache, selection == null ? null : selection.useCache());
            result = new Result(params, section);
        }

        /** What was done (valid after the last step). */
        public Report report() { return new Report(List.copyOf(tibPoints), List.copyOf(dataPoints), cache, selection); }

        @Override public Result result() {
            if (result == null) throw new IllegalStateException("tfmq stage has not finished");
            return result;
        }

        @Override public void cancel() {
            cancelled = true;
            cleanup();
        }

        private void cleanup() {
            if (dataCal != null) {
                dataCal.close();
                dataCal = null;
            }
            if (weightsQ != null) {
                weightsQ.detach();
                weightsQ = null;
            }
        }
    }
}
