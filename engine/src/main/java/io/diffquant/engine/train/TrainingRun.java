package io.diffquant.engine.train;

import io.diffquant.engine.tensor.Gradients;
import io.diffquant.engine.tensor.Tape;
import io.diffquant.engine.tensor.Tensor;

import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.BooleanSupplier;
import java.util.function.Consumer;

/**
 * A model-agnostic training loop (the shape of facebookresearch/DiT train.py: sample a batch, loss, backward,
 * AdamW step, EMA update), pull-based: {@link #step()} runs one optimizer step and reports it; {@link #run}
 * loops until the step limit, the wall-clock budget or cancellation, writing checkpoints on a timer.
 * Everything a step draws comes from the run seed and the step number, so a run resumed from a
 * {@link TrainCheckpoint} continues bit for bit (same thread count, same data, same code).
 * Runs on the calling thread (the {@link Tape} is thread-confined); the ops parallelise internally.
 */
public final class TrainingRun {
    static final long PURPOSE_STEP = 0x53544550L; // "STEP"

    /** Why {@link #run} returned. */
    public enum StopReason { MAX_STEPS, WALL_CLOCK, CANCELLED }

    /**
     * One optimizer step: the loss before the update and its terms, the global gradient norm (before clipping), the
     * learning rate used, the step's duration and throughput, and whether a checkpoint was written after it.
     */
    public record StepReport(long step, double loss, Map<String, Double> terms, double gradNorm, double lr,
                             double stepSeconds, double imagesPerSecond, Duration elapsed, boolean checkpointed) {}

    public record Result(StopReason reason, long steps, double lastLoss, Duration elapsed) {}

    private final Map<String, Tensor> params;
    private final Objective objective;
    private final Dataset data;
    private final TrainConfig config;
    private final AdamW adam;
    private final Ema ema;
    private final BatchSampler sampler;
    private final Map<String, String> extra = new LinkedHashMap<>();
    private long step;
    private long imagesSeen;
    private double previousSeconds;
    private final long createdNanos = System.nanoTime();
    private boolean gradientsChecked;

    private TrainingRun(Map<String, Tensor> params, Objective objective, Dataset data, TrainConfig config) {
        if (params.isEmpty()) throw new IllegalArgumentException("nothing to train: no parameters given");
        Map<Object, String> seen = new java.util.IdentityHashMap<>();
        for (var e : params.entrySet()) {
            String other = seen.put(e.getValue().data(), e.getKey());
            if (other != null) throw new IllegalArgumentException("parameters '" + other + "' and '" + e.getKey() + "' share one buffer");
        }
        this.params = Collections.unmodifiableMap(new LinkedHashMap<>(params));
        this.objective = objective;
        this.data = data;
        this.config = config;
        this.adam = new AdamW(this.params, config.adam());
        this.ema = config.ema() == null ? null : new Ema(this.params, config.ema());
        this.sampler = new BatchSampler(config.seed(), data.size());
    }

    /** A fresh run from the parameters' current values (they are updated in place). */
    public static TrainingRun start(Map<String, Tensor> params, Objective objective, Dataset data, TrainConfig config) {
        return new TrainingRun(params, objective, data, config);
    }

    /**
     * Continues the run saved in {@code checkpoint}: loads parameters (into the given tensors), optimizer and EMA
     * state, step and data position. The seed and batch size must be those of the checkpoint.
     */
    public static TrainingRun resume(Path checkpoint, Map<String, Tensor> params, Objective objective, Dataset data,
                                     TrainConfig config) throws IOException {
        TrainCheckpoint ck = TrainCheckpoint.read(checkpoint);
        String src = checkpoint.toString();
        if (ck.seed() != config.seed()) throw new IllegalArgumentException(src + ": checkpoint was trained with seed "
                + ck.seed() + " but the run config has seed " + config.seed() + "; an exact resume needs the same seed");
        if (ck.batchSize() != config.batchSize()) throw new IllegalArgumentException(src + ": checkpoint was trained with batch size "
                + ck.batchSize() + " but the run config has " + config.batchSize());
        if ((ck.ema() != null) != (config.ema() != null)) throw new IllegalArgumentException(src + ": checkpoint "
                + (ck.ema() != null ? "has" : "has no") + " EMA state but the run config " + (config.ema() != null ? "asks for" : "disables") + " EMA");
        List<String> missing = new ArrayList<>(), unexpected = new ArrayList<>();
        for (String k : params.keySet()) if (!ck.params().containsKey(k)) missing.add(k);
        for (String k : ck.params().keySet()) if (!params.containsKey(k)) unexpected.add(k);
        if (!missing.isEmpty() || !unexpected.isEmpty()) throw new IllegalArgumentException(src + ": checkpoint parameters do not match "
                + "the model" + (missing.isEmpty() ? "" : "; missing " + head(missing)) + (unexpected.isEmpty() ? "" : "; unexpected " + head(unexpected)));
        TrainingRun run = new TrainingRun(params, objective, data, config);
        for (var e : run.params.entrySet()) AdamW.copyInto(src, "value", e.getKey(), ck.params().get(e.getKey()), e.getValue());
        run.adam.load(ck.adamM(), ck.adamV(), ck.adamSteps(), src);
        if (run.ema != null) run.ema.load(ck.ema(), ck.emaUpdates(), src);
        run.sampler.seek(ck.dataEpoch(), ck.dataCursor());
        run.step = ck.step();
        run.imagesSeen = ck.imagesSeen();
        run.previousSeconds = ck.elapsedSeconds();
        run.extra.putAll(ck.extra());
        return run;
    }

    private static String head(List<String> names) { return names.size() <= 6 ? names.toString() : names.subList(0, 6) + " ..."; }

    /** Optimizer steps done so far (including those of the runs this one was resumed from). */
    public long step() { return step; }
    public Map<String, Tensor> params() { return params; }
    public AdamW optimizer() { return adam; }
    /** The EMA of the parameters, or null when disabled. */
    public Ema ema() { return ema; }
    public TrainConfig config() { return config; }
    public long imagesSeen() { return imagesSeen; }

    /** Adds a string entry saved with every checkpoint (e.g. the model's config.json). */
    public TrainingRun putMetadata(String key, String value) {
        extra.put(key, value);
        return this;
    }

    public Map<String, String> metadata() { return Collections.unmodifiableMap(extra); }

    /** Whether {@link TrainConfig#maxSteps()} has been reached. */
    public boolean done() { return config.maxSteps() > 0 && step >= config.maxSteps(); }

    /** Total training time including the runs this one was resumed from. */
    public Duration totalElapsed() {
        return Duration.ofNanos((long) (previousSeconds * 1e9) + (System.nanoTime() - createdNanos));
    }

    /** The learning rate of the next step (linear warm-up, then constant). */
    public double currentLr() {
        double lr = config.adam().lr();
        long w = config.lrWarmupSteps();
        return w > 0 && step < w ? lr * (step + 1) / (double) w : lr;
    }

    /** Runs one optimizer step. */
    public StepReport next() { return stepInternal(); }

    private static final java.util.logging.Logger LOG = java.util.logging.Logger.getLogger(TrainingRun.class.getName());
    private static final int MAX_CONSECUTIVE_SKIPS = 10;
    private long skippedSteps;
    private int consecutiveSkips;

    /** Optimizer steps skipped in this run because their gradient norm was not finite (the update was not applied). */
    public long skippedSteps() { return skippedSteps; }

    private StepReport stepInternal() {
        long t0 = System.nanoTime();
        int bsz = config.batchSize();
        int[] idx = sampler.next(bsz);
        int c = data.channels(), h = data.height(), w = data.width(), per = c * h * w;
        Tensor images = Tensor.zeros(bsz, c, h, w);
        int[] labels = new int[bsz];
        boolean labelled = true;
        for (int i = 0; i < bsz; i++) {
            data.image(idx[i], images.data(), i * per);
            labels[i] = data.label(idx[i]);
            if (labels[i] < 0) labelled = false;
        }
        Objective.Batch batch = new Objective.Batch(images, labelled ? labels : null, idx);
        TrainRng rng = TrainRng.derive(config.seed(), PURPOSE_STEP, step);
        Objective.StepLoss sl;
        Gradients grads;
        try (Tape tape = Tape.start(params.values())) {
            sl = objective.loss(batch, rng);
            grads = tape.backward(sl.loss());
        }
        double loss = sl.loss().data()[0];
        double norm = gradNorm(grads);
        if (!Double.isFinite(loss) || !Double.isFinite(norm)) {
            // A non-finite loss or gradient (an overflow on one batch): skip this update, as mixed-precision trainers
            // do, so that one bad batch cannot poison the weights. Deterministic: the same step is skipped on a rerun.
            // Many in a row means real divergence.
            skippedSteps++;
            if (++consecutiveSkips > MAX_CONSECUTIVE_SKIPS) throw new IllegalStateException("training diverged: the loss is "
                    + loss + " and the gradient norm " + norm + " at step " + step + " (terms " + sl.terms() + "), "
                    + consecutiveSkips + " steps in a row; lower the learning rate or enable gradient clipping");
            LOG.warning("step " + step + ": non-finite loss or gradient norm (loss " + loss + ", terms " + sl.terms()
                    + "); update skipped (" + skippedSteps + " skipped so far)");
            step++;
            imagesSeen += bsz;
            double secs = (System.nanoTime() - t0) * 1e-9;
            return new StepReport(step, loss, sl.terms(), norm, 0, secs, bsz / Math.max(secs, 1e-9), totalElapsed(), false);
        }
        consecutiveSkips = 0;
        if (config.requireAllGradients() && !gradientsChecked) {
            List<String> none = new ArrayList<>();
            for (var e : params.entrySet()) if (!grads.has(e.getValue())) none.add(e.getKey());
            if (!none.isEmpty()) throw new IllegalStateException("parameters " + head(none) + " received no gradient: an op "
                    + "on their path is not recorded by the Tape, or they are unused (set requireAllGradients=false to allow)");
            gradientsChecked = true;
        }
        if (config.maxGradNorm() > 0 && norm > config.maxGradNorm()) {
            float f = (float) (config.maxGradNorm() / (norm + 1e-6));
            for (Tensor p : params.values()) {
                float[] g = grads.raw(p);
                if (g != null) for (int i = 0; i < g.length; i++) g[i] *= f;
            }
        }
        double lr = currentLr();
        adam.step(grads, lr);
        if (ema != null) ema.update();
        step++;
        imagesSeen += bsz;
        double secs = (System.nanoTime() - t0) * 1e-9;
        return new StepReport(step, loss, sl.terms(), norm, lr, secs, bsz / Math.max(secs, 1e-9), totalElapsed(), false);
    }

    private double gradNorm(Gradients grads) {
        double s = 0;
        for (Tensor p : params.values()) {
            float[] g = grads.raw(p);
            if (g == null) continue;
            for (float v : g) s += (double) v * v;
        }
        return Math.sqrt(s);
    }

    /**
     * Steps until {@link TrainConfig#maxSteps()}, the wall-clock budget (measured from this call) or
     * {@code cancelled}; writes the checkpoint file every {@link TrainConfig#checkpointEvery()} and at the end
     * (when a file is configured).
     */
    public Result run(Consumer<StepReport> listener, BooleanSupplier cancelled) throws IOException {
        long start = System.nanoTime(), lastCkpt = start;
        long budget = config.wallClockBudget() == null ? Long.MAX_VALUE : config.wallClockBudget().toNanos();
        long every = config.checkpointEvery() == null ? Long.MAX_VALUE : config.checkpointEvery().toNanos();
        double lastLoss = Double.NaN;
        StopReason reason;
        while (true) {
            if (done()) { reason = StopReason.MAX_STEPS; break; }
            if (cancelled != null && cancelled.getAsBoolean()) { reason = StopReason.CANCELLED; break; }
            if (System.nanoTime() - start >= budget) { reason = StopReason.WALL_CLOCK; break; }
            StepReport r = stepInternal();
            lastLoss = r.loss();
            long now = System.nanoTime();
            if (config.checkpointFile() != null && now - lastCkpt >= every) {
                saveCheckpoint(config.checkpointFile());
                lastCkpt = System.nanoTime();
                r = new StepReport(r.step(), r.loss(), r.terms(), r.gradNorm(), r.lr(), r.stepSeconds(), r.imagesPerSecond(), r.elapsed(), true);
            }
            if (listener != null) listener.accept(r);
        }
        if (config.checkpointFile() != null) saveCheckpoint(config.checkpointFile());
        return new Result(reason, step, lastLoss, Duration.ofNanos(System.nanoTime() - start));
    }

    /** The complete state as a checkpoint (tensors copied). */
    public TrainCheckpoint checkpoint() {
        Map<String, Long> steps = new LinkedHashMap<>();
        for (String k : params.keySet()) steps.put(k, adam.steps(k));
        return new TrainCheckpoint(step, config.seed(), config.batchSize(), sampler.epoch(), sampler.cursor(),
                copies(params), copies(adam.firstMoments()), copies(adam.secondMoments()), steps,
                ema == null ? null : copies(ema.averages()), ema == null ? 0 : ema.updates(),
                totalElapsed().toNanos() * 1e-9, imagesSeen, extra);
    }

    /** Writes {@link #checkpoint()} atomically. */
    public void saveCheckpoint(Path file) throws IOException { checkpoint().write(file); }

    private static Map<String, Tensor> copies(Map<String, Tensor> m) {
        Map<String, Tensor> out = new LinkedHashMap<>();
        for (var e : m.entrySet()) out.put(e.getKey(), Tensor.of(e.getValue().data().clone(), e.getValue().shape()));
        return out;
    }

    @Override public String toString() {
        return "TrainingRun[step " + step + ", " + params.size() + " tensors, batch " + config.batchSize() + ", seed " + config.seed()
                + "; data " + data.size() + " x " + Arrays.toString(new int[] {data.channels(), data.height(), data.width()}) + "]";
    }
}
