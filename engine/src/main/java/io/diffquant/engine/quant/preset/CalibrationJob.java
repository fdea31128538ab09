package io.diffquant.engine.quant.preset;

import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.quant.CalibratedParams;
import io.diffquant.engine.quant.LayerParams;
import io.diffquant.engine.quant.QuantizedModel;
import io.diffquant.engine.quant.WeightParams;
import io.diffquant.engine.quant.calib.ActivationCalibrator;
import io.diffquant.engine.quant.calib.CalibBatch;
import io.diffquant.engine.quant.calib.CalibrationRecorder;
import io.diffquant.engine.quant.calib.CalibrationSet;
import io.diffquant.engine.quant.calib.CalibrationSettings;
import io.diffquant.engine.quant.calib.WeightCalibrator;
import io.diffquant.engine.quant.config.MethodSettings;
import io.diffquant.engine.quant.config.ModelIdentity;
import io.diffquant.engine.quant.config.QuantConfig;
import io.diffquant.engine.quant.search.GroupSizeSearch;
import io.diffquant.engine.quant.spec.LayerOverride;
import io.diffquant.engine.quant.spec.QuantPlan;
import io.diffquant.engine.quant.spec.QuantPoint;
import io.diffquant.engine.quant.spec.SpecPatch;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.NoSuchElementException;
import java.util.concurrent.CancellationException;

/**
 * Calibrates a model with a method preset and produces a {@link QuantConfig} (the engine side of the CLI's
 * {@code calibrate}). Phases, each pulled step by step ({@link #next()} returns the progress): record the
 * full-precision calibration data (only when the method needs data; resumable in the cache directory), Q-DiT's
 * group-size search (one genome per step), round-to-nearest weight parameters (one layer per step), reconstruction
 * (the preset's {@link Reconstruction}), activation ranges (one calibration batch per step), and the preset's
 * {@link PostCalibration} stage if any (TFMQ's FSC, cached temporal features and selection; its inputs are left out of
 * the activation phase). Cancel with {@link #cancel()}.
 */
public final class CalibrationJob implements Iterator<CalibrationJob.Progress> {

    public enum Phase { RECORD, SEARCH, WEIGHTS, RECONSTRUCT, ACTIVATIONS, TEMPORAL, DONE }

    public record Progress(Phase phase, int done, int total, String message) {}

    /**
     * What to calibrate.
     * @param identity    the model's identity (name + hashes), written into the config
     * @param options     preset options (unknown names are errors); null = defaults
     * @param overrides   user overrides, applied after the preset's own
     * @param calibration calibration data settings; null = the preset's defaults
     * @param cacheDir    where calibration data is recorded / reused; needed only when the method uses data
     * @param objective   search objective; null = the preset's named objective (output-mse or fid-fmnist)
     */
    public record Request(DiffusionModel model, ModelIdentity identity, String preset, Map<String, ?> options,
                          List<LayerOverride> overrides, CalibrationSettings calibration, Path cacheDir, ModelObjective objective) {
        public Request {
            if (model == null) throw new IllegalArgumentException("calibration request: model is null");
            if (identity == null) throw new IllegalArgumentException("calibration request: model identity is null");
            overrides = overrides == null ? List.of() : List.copyOf(overrides);
        }
    }

    private final Request req;
    private final DiffusionModel model;
    private final Preset preset;
    private final MethodSettings method;
    private final Preset.Plan presetPlan;
    private final CalibrationSettings settings;
    private final GranularitySearchSpec searchSpec;
    private final Reconstruction reconstruction;
    private final PostCalibration post;
    private final boolean needData;
    private List<LayerOverride> overrides;
    private QuantPlan plan;
    private Phase phase;
    private CalibrationRecorder recorder;
    private CalibrationSet data;
    private GroupSizeSearch.Run searchRun;
    private List<QuantPoint> weightQueue;
    private int weightIndex;
    private final Map<String, LayerParams> weightParams = new LinkedHashMap<>();
    private Reconstruction.Run reconRun;
    private CalibratedParams afterRecon;
    private ActivationCalibrator actCal;
    private Iterator<CalibBatch> actBatches;
    private int actDone, actTotal;
    private CalibratedParams finalParams;
    private PostCalibration.Run postRun;
    private io.diffquant.engine.quant.config.TemporalSection temporal;
    private volatile boolean cancelled;

    private CalibrationJob(Request r) throws IOException {
        this.req = r;
        this.model = r.model();
        this.preset = Presets.byName(r.preset());
        this.method = MethodSettings.of(preset.name(), r.options());
        this.presetPlan = preset.plan(model, method.options());
        this.settings = r.calibration() != null ? r.calibration() : preset.defaultCalibration();
        this.searchSpec = preset.search(model, method.options());
        this.reconstruction = preset.reconstruction(method.options());
        this.overrides = join(presetPlan.overrides(), r.overrides());
        this.plan = QuantPlan.resolve(model, presetPlan.defaults(), overrides);
        this.post = preset.postCalibration(model, method.options());
        // the built-in fid-fmnist search objective samples images itself; output-mse and callers' objectives get the data
        boolean searchData = searchSpec != null && (r.objective() != null
                || !io.diffquant.engine.quant.search.FidFmnistObjective.NAME.equals(searchSpec.objective()));
        this.needData = searchData || reconstruction.needsData() || ActivationCalibrator.needed(plan) || post != null;
        if (needData) {
            if (r.cacheDir() == null) throw new IllegalArgumentException("method " + preset.name() + " needs calibration data: give a cache directory");
            recorder = CalibrationRecorder.start(model, r.identity(), settings, r.cacheDir());
            phase = Phase.RECORD;
        } else {
            phase = searchSpec != null ? Phase.SEARCH : Phase.WEIGHTS;
        }
    }

    private static List<LayerOverride> join(List<LayerOverride> a, List<LayerOverride> b) {
        List<LayerOverride> out = new ArrayList<>(a);
        out.addAll(b);
        return out;
    }

    /** Validates the request (preset, options, overrides) and prepares the job; nothing heavy runs yet. */
    public static CalibrationJob start(Request r) throws IOException { return new CalibrationJob(r); }

    /** Runs every step. */
    public static QuantConfig run(Request r) throws IOException {
        CalibrationJob j = start(r);
        while (j.hasNext()) j.next();
        return j.result();
    }

    public Phase phase() { return phase; }
    public QuantPlan plan() { return plan; }
    public MethodSettings method() { return method; }
    public CalibrationSettings settings() { return settings; }
    /** The calibration data (null before it is recorded or when the method needs none). */
    public CalibrationSet data() { return data; }

    public void cancel() {
        cancelled = true;
        if (recorder != null) recorder.cancel();
        if (searchRun != null) searchRun.cancel();
        if (reconRun != null) reconRun.cancel();
        if (postRun != null) postRun.cancel();
    }

    @Override public boolean hasNext() { return !cancelled && phase != Phase.DONE; }

    @Override public Progress next() {
        if (cancelled) {
            if (actCal != null) actCal.close();
            throw new CancellationException("calibration cancelled in phase " + phase);
        }
        if (!hasNext()) throw new NoSuchElementException("calibration finished");
        try {
            return switch (phase) {
                case RECORD -> record();
                case SEARCH -> search();
                case WEIGHTS -> weights();
                case RECONSTRUCT -> reconstruct();
                case ACTIVATIONS -> activations();
                case TEMPORAL -> temporal();
                case DONE -> throw new NoSuchElementException();
            };
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private Progress record() throws IOException {
        if (recorder.hasNext()) {
            CalibrationRecorder.Progress p = recorder.next();
            return new Progress(Phase.RECORD, p.run() * 1000 + p.step(), recorder.runs() * 1000,
                    "recording calibration data: run " + (p.run() + (p.step() > 0 ? 1 : 0)) + " of " + p.runs() + ", step " + p.step() + " of " + p.steps());
        }
        data = recorder.result();
        phase = searchSpec != null ? Phase.SEARCH : Phase.WEIGHTS;
        return new Progress(Phase.RECORD, 1, 1, "calibration data ready: " + data.timesteps().length + " timesteps x " + data.rows() + " rows in " + data.dir());
    }

    private Progress search() {
        if (searchRun == null) {
            ModelObjective obj = req.objective();
            if (obj == null) {
                obj = switch (searchSpec.objective()) {
                    case "output-mse" -> ModelObjective.outputMse(model, data, settings.subset(), settings.forwardBatch());
                    case io.diffquant.engine.quant.search.FidFmnistObjective.NAME ->
                            io.diffquant.engine.quant.search.FidFmnistObjective.fromOptions(model, method.options());
                    default -> throw new IllegalArgumentException("search objective \"" + searchSpec.objective()
                            + "\" must be supplied by the caller (built in: output-mse, fid-fmnist)");
                };
            }
            ModelObjective objective = obj;
            GroupSizeSearch s = new GroupSizeSearch(searchSpec.genes(), searchSpec.settings());
            searchRun = s.start(genome -> {
                QuantPlan p = QuantPlan.resolve(model, presetPlan.defaults(), join(join(presetPlan.overrides(), searchSpec.overrides(genome)), req.overrides()));
                QuantizedModel q = QuantizedModel.attach(model, p, WeightCalibrator.calibrate(model, p));
                try {
                    return objective.evaluate(q);
                } finally {
                    q.detach();
                }
            });
        }
        if (searchRun.hasNext()) {
            double s = searchRun.next();
            return new Progress(Phase.SEARCH, searchRun.generation(), searchSpec.settings().generations() + 1,
                    "group-size search: generation " + searchRun.generation() + ", " + searchRun.evaluations() + " genomes evaluated, last score " + s);
        }
        GroupSizeSearch.Result r = searchRun.result();
        overrides = join(join(presetPlan.overrides(), searchSpec.overrides(r.best())), req.overrides());
        plan = QuantPlan.resolve(model, presetPlan.defaults(), overrides);
        phase = Phase.WEIGHTS;
        return new Progress(Phase.SEARCH, 1, 1, "group-size search done: best score " + r.score() + " after " + r.evaluations() + " evaluations");
    }

    private Progress weights() {
        if (weightQueue == null) {
            weightQueue = new ArrayList<>();
            for (QuantPoint p : plan.points()) if (p.hasWeight() && plan.spec(p.name()).weight().enabled()) weightQueue.add(p);
        }
        if (weightIndex < weightQueue.size()) {
            QuantPoint p = weightQueue.get(weightIndex++);
            weightParams.put(p.name(), new LayerParams(WeightParams.rtn(WeightCalibrator.params(model.layers().get(p.name()),
                    plan.spec(p.name()).weight())), null));
            return new Progress(Phase.WEIGHTS, weightIndex, weightQueue.size(), "weight ranges: " + p.name());
        }
        phase = Phase.RECONSTRUCT;
        return new Progress(Phase.WEIGHTS, weightQueue.size(), weightQueue.size(), "weight ranges done");
    }

    private Progress reconstruct() {
        CalibratedParams init = new CalibratedParams(weightParams);
        if (reconRun == null) reconRun = reconstruction.start(new Reconstruction.Context(model, plan, init, data, settings.subset(),
                settings.forwardBatch(), method.options()));
        if (reconRun.hasNext()) return new Progress(Phase.RECONSTRUCT, 0, 1, reconstruction.name() + ": " + reconRun.next());
        afterRecon = reconRun.result();
        phase = ActivationCalibrator.needed(activationPlan()) ? Phase.ACTIVATIONS : afterActivations();
        if (phase != Phase.ACTIVATIONS) finalParams = afterRecon;
        return new Progress(Phase.RECONSTRUCT, 1, 1, "reconstruction (" + reconstruction.name() + ") done");
    }

    private Phase afterActivations() { return post != null ? Phase.TEMPORAL : Phase.DONE; }

    private QuantPlan actPlan;

    /** The plan the activation calibrator works on: without the inputs the post-calibration stage calibrates. */
    private QuantPlan activationPlan() {
        if (actPlan != null) return actPlan;
        if (post == null) return actPlan = plan;
        List<LayerOverride> ov = new ArrayList<>(plan.overrides());
        for (String layer : post.calibratesInputs(plan))
            ov.add(new LayerOverride(layer, SpecPatch.KEEP, SpecPatch.OFF, post.name() + " calibrates " + layer));
        return actPlan = QuantPlan.resolve(model, plan.defaults(), ov);
    }

    private Progress temporal() {
        if (postRun == null) postRun = post.start(new PostCalibration.Context(model, plan, finalParams, data, settings, method.options()));
        if (postRun.hasNext()) return new Progress(Phase.TEMPORAL, 0, 1, post.name() + ": " + postRun.next());
        PostCalibration.Result r = postRun.result();
        finalParams = r.params();
        temporal = r.temporal();
        phase = Phase.DONE;
        return new Progress(Phase.TEMPORAL, 1, 1, post.name() + " done");
    }

    private Progress activations() {
        if (actCal == null) {
            actCal = new ActivationCalibrator(model, activationPlan(), afterRecon, settings.reservoir(), settings.seed());
            actBatches = data.batches(settings.subset(), settings.forwardBatch()).iterator();
            actTotal = data.batchCount(settings.subset(), settings.forwardBatch());
        }
        if (actBatches.hasNext()) {
            CalibBatch b = actBatches.next();
            actCal.observe(b);
            actDone++;
            return new Progress(Phase.ACTIVATIONS, actDone, actTotal, "activation ranges: batch " + actDone + " of " + actTotal + " (t=" + (int) b.t() + ")");
        }
        finalParams = actCal.result().merge(afterRecon);
        phase = afterActivations();
        return new Progress(Phase.ACTIVATIONS, actTotal, actTotal, "activation ranges done");
    }

    /** The config (after the last step). */
    public QuantConfig result() {
        if (phase != Phase.DONE) throw new IllegalStateException("calibration has not finished (phase " + phase + ")");
        return new QuantConfig(req.identity(), method, needData ? settings : null, presetPlan.defaults(), overrides, finalParams, null, null, temporal);
    }
}
