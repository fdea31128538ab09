package io.diffquant.engine.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.diffquant.engine.diffusion.NoiseSchedule;
import io.diffquant.engine.io.Json;
import io.diffquant.engine.io.JsonException;
import io.diffquant.engine.io.JsonView;
import io.diffquant.engine.io.SafetensorsReader;
import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.model.ModelFolder;
import io.diffquant.engine.model.dit.DiT;
import io.diffquant.engine.model.dit.DiTConfig;
import io.diffquant.engine.model.unet.UNet2DConfig;
import io.diffquant.engine.model.unet.UNet2DModel;
import io.diffquant.engine.tensor.Parallel;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.function.BooleanSupplier;
import java.util.function.Consumer;

/**
 * One training job of a diffusion model from a config.json (facebookresearch/DiT train.py's recipe: initialise,
 * ε-MSE + learned-variance VLB under AdamW, EMA, label dropout for CFG), tying together model creation and
 * initialisation ({@link ModelInit}), the {@link DiffusionObjective}, the {@link TrainingRun} loop with timed
 * checkpoints, exact resume, and the export of the EMA weights as a model folder ({@link ModelFolder}) with a
 * {@code training.json} record. The checkpoint carries the model config, the recipe, a fingerprint of the data and
 * the loss history, so {@link #resume} needs only the checkpoint and the same data.
 */
public final class TrainingJob {
    /** Name of the training record written next to the weights. */
    public static final String TRAINING_JSON = "training.json";
    /** Loss history granularity: one point per this many steps (aligned to global step numbers). */
    public static final int HISTORY_WINDOW = 100;
    static final String MD_MODEL_CONFIG = "model_config", MD_RECIPE = "recipe", MD_DATA = "data",
            MD_FINGERPRINT = "data_fingerprint", MD_HISTORY = "loss_history", MD_THREADS = "threads";

    /** The noise schedule all jobs train with (DiT/ADM: linear betas 1e-4..0.02 over T = 1000). */
    public static final String SCHEDULE = "linear";
    public static final int TIMESTEPS = 1000;

    /**
     * What is trained how; fixed for the life of a run (saved in the checkpoint).
     *
     * @param seed         seeds the initial weights, the data order and every per-step draw
     * @param batchSize    images per optimizer step
     * @param lr           AdamW learning rate (after warm-up)
     * @param weightDecay  AdamW decoupled weight decay
     * @param emaDecay     EMA decay (with the (1+n)/(10+n) warm-up); the exported weights are the EMA
     * @param warmupSteps  linear learning-rate warm-up steps (0 = none)
     * @param maxGradNorm  global gradient-norm clipping (0 = none)
     */
    public record Recipe(long seed, int batchSize, double lr, double weightDecay, double emaDecay, long warmupSteps,
                         double maxGradNorm) {
        public Recipe {
            if (batchSize < 1) throw new IllegalArgumentException("batch size must be >= 1, got " + batchSize);
            if (!(lr > 0) || !Double.isFinite(lr)) throw new IllegalArgumentException("learning rate must be a finite value > 0, got " + lr);
            if (!(weightDecay >= 0) || !Double.isFinite(weightDecay)) throw new IllegalArgumentException("weight decay must be >= 0, got " + weightDecay);
            if (!(emaDecay >= 0 && emaDecay < 1)) throw new IllegalArgumentException("EMA decay must be in [0, 1), got " + emaDecay);
            if (warmupSteps < 0) throw new IllegalArgumentException("warm-up steps must be >= 0, got " + warmupSteps);
            if (!(maxGradNorm >= 0) || !Double.isFinite(maxGradNorm)) throw new IllegalArgumentException("gradient clipping norm must be >= 0, got " + maxGradNorm);
        }

        /** DiT's recipe: batch 64 here (DiT: 256), AdamW 1e-4 without weight decay, EMA 0.9999, no warm-up or clipping. */
        public static Recipe dit(long seed) { return new Recipe(seed, 64, 1e-4, 0, 0.9999, 0, 0); }

        TrainConfig trainConfig() {
            return TrainConfig.defaults(seed, batchSize).withAdam(new AdamW.Config(lr, 0.9, 0.999, 1e-8, weightDecay))
                    .withEma(new Ema.Config(emaDecay, true)).withLrWarmupSteps(warmupSteps).withMaxGradNorm(maxGradNorm);
        }

        ObjectNode toJson() {
            ObjectNode o = Json.object();
            o.put("seed", seed).put("batch_size", batchSize).put("lr", lr).put("weight_decay", weightDecay)
                    .put("adam_betas", "0.9,0.999").put("adam_eps", 1e-8).put("ema_decay", emaDecay).put("ema_warmup", true)
                    .put("warmup_steps", warmupSteps).put("max_grad_norm", maxGradNorm);
            return o;
        }

        static Recipe fromJson(JsonView v) throws JsonException {
            return new Recipe(v.requireLong("seed"), v.requireInt("batch_size"), v.requireDouble("lr"), v.requireDouble("weight_decay"),
                    v.requireDouble("ema_decay"), v.requireLong("warmup_steps"), v.requireDouble("max_grad_norm"));
        }
    }

    /**
     * When a {@link #train} call stops and where checkpoints go (may differ between a run and its resumptions).
     *
     * @param maxSteps         stop at this many optimizer steps in total (0 = no limit)
     * @param budget           total training wall time, counting the runs a resumed job continues (null = none)
     * @param checkpointEvery  checkpoint interval (null = only at the end)
     * @param checkpointFile   the checkpoint (null = none)
     */
    public record Limits(long maxSteps, Duration budget, Duration checkpointEvery, Path checkpointFile) {
        public Limits {
            if (maxSteps < 0) throw new IllegalArgumentException("step limit must be >= 0, got " + maxSteps);
            if (budget != null && budget.isNegative()) throw new IllegalArgumentException("wall-clock budget must not be negative");
            if (checkpointEvery != null && (checkpointEvery.isNegative() || checkpointEvery.isZero()))
                throw new IllegalArgumentException("checkpoint interval must be positive");
        }
    }

    /**
     * One step as seen from outside: the step's loss and terms (mse, vlb), throughput of this step, total elapsed
     * training time, the estimated time to the step limit or budget (null without either), and whether a checkpoint
     * was written after it.
     */
    public record Progress(long step, long maxSteps, double loss, Map<String, Double> terms, double gradNorm, double lr,
                           double imagesPerSecond, Duration elapsed, Duration eta, boolean checkpointed) {}

    /** How a {@link #train} call ended. */
    public record Summary(TrainingRun.StopReason reason, long steps, long stepsThisCall, long imagesSeen, double epochs,
                         double lastWindowLoss, Map<String, Double> lastWindowTerms, Duration totalElapsed,
                         Duration thisCall, Path checkpoint) {}

    private final DiffusionModel model;
    private final String configText;
    private final Dataset data;
    private final String dataDescription;
    private final String fingerprint;
    private final Recipe recipe;
    private final Limits limits;
    private final TrainingRun run;
    private final LossHistory history;
    private final double previousSeconds;
    private final int previousThreads;
    private TrainingRun.StopReason lastReason;

    private TrainingJob(DiffusionModel model, String configText, Dataset data, String dataDescription, String fingerprint,
                        Recipe recipe, Limits limits, TrainingRun run, LossHistory history, double previousSeconds, int previousThreads) {
        this.model = model;
        this.configText = configText;
        this.data = data;
        this.dataDescription = dataDescription;
        this.fingerprint = fingerprint;
        this.recipe = recipe;
        this.limits = limits;
        this.run = run;
        this.history = history;
        this.previousSeconds = previousSeconds;
        this.previousThreads = previousThreads;
    }

    /**
     * A fresh job: builds the model of {@code modelConfig} (a config.json file, or a folder holding one: a DiT with
     * facebookresearch names or a diffusers UNet2DModel) and initialises it from the recipe seed.
     *
     * @param dataDescription how the data is named in the records (e.g. "Fashion-MNIST train, 60000 images")
     */
    public static TrainingJob create(Path modelConfig, Dataset data, String dataDescription, Recipe recipe, Limits limits) throws IOException {
        Path file = Files.isDirectory(modelConfig) ? modelConfig.resolve(ModelFolder.CONFIG) : modelConfig;
        if (!Files.isRegularFile(file)) throw new NoSuchFileException(file.toString(), null,
                "model config not found (a config.json of a DiT or of a diffusers UNet2DModel is expected)");
        String text = Files.readString(file);
        DiffusionModel model = modelFromConfig(text, file.toString());
        checkTrainable(model, file.toString());
        ModelInit.initialize(model, recipe.seed());
        String fp = fingerprint(data);
        TrainingRun run = DiffusionTrainer.start(model, data, recipe.trainConfig(), objective(model));
        TrainingJob job = new TrainingJob(model, text, data, dataDescription, fp, recipe, limits, run, new LossHistory(), 0, Parallel.threads());
        run.putMetadata(MD_MODEL_CONFIG, text).putMetadata(MD_RECIPE, recipe.toJson().toString())
                .putMetadata(MD_DATA, dataDescription).putMetadata(MD_FINGERPRINT, fp)
                .putMetadata(MD_THREADS, Integer.toString(Parallel.threads()));
        return job;
    }

    /** The recipe saved in a checkpoint (to compare with what a user asks for before resuming). */
    public static Recipe savedRecipe(Path checkpoint) throws IOException {
        Map<String, String> md = checkpointMetadata(checkpoint);
        return Recipe.fromJson(Json.parse(need(md, MD_RECIPE, checkpoint), checkpoint + " (recipe)"));
    }

    /**
     * Continues the job saved in {@code checkpoint} bit for bit: same model config and recipe (from the checkpoint);
     * the data must be the same images and labels (checked by fingerprint).
     */
    public static TrainingJob resume(Path checkpoint, Dataset data, String dataDescription, Limits limits) throws IOException {
        if (!Files.isRegularFile(checkpoint)) throw new NoSuchFileException(checkpoint.toString(), null, "training checkpoint not found");
        Map<String, String> md = checkpointMetadata(checkpoint);
        String text = need(md, MD_MODEL_CONFIG, checkpoint);
        Recipe recipe = Recipe.fromJson(Json.parse(need(md, MD_RECIPE, checkpoint), checkpoint + " (recipe)"));
        String fp = fingerprint(data);
        String saved = need(md, MD_FINGERPRINT, checkpoint);
        if (!saved.equals(fp)) throw new IllegalArgumentException(checkpoint + ": the data differs from the data the checkpoint was "
                + "trained on (" + md.get("extra." + MD_DATA) + ", fingerprint " + saved + "; given: " + dataDescription + ", fingerprint "
                + fp + "); an exact resume needs the same images and labels");
        DiffusionModel model = modelFromConfig(text, checkpoint + " (model config)");
        TrainingRun run = DiffusionTrainer.resume(checkpoint, model, data, recipe.trainConfig(), objective(model));
        LossHistory history = LossHistory.fromJson(md.get("extra." + MD_HISTORY), checkpoint);
        double prev = Double.parseDouble(md.get("elapsed_seconds")); // present: TrainingRun.resume read the same header
        int threads;
        try {
            threads = Integer.parseInt(md.getOrDefault("extra." + MD_THREADS, "0"));
        } catch (NumberFormatException e) {
            threads = 0;
        }
        run.putMetadata(MD_THREADS, Integer.toString(Parallel.threads()));
        return new TrainingJob(model, text, data, dataDescription, fp, recipe, limits, run, history, prev, threads);
    }

    private static Map<String, String> checkpointMetadata(Path checkpoint) throws IOException {
        Map<String, String> md;
        try (SafetensorsReader r = SafetensorsReader.open(checkpoint)) {
            md = new LinkedHashMap<>(r.metadata());
        }
        if (!TrainCheckpoint.FORMAT.equals(md.get("format"))) throw new IOException(checkpoint + ": not a DiffQuant training checkpoint "
                + "(metadata 'format' is " + md.get("format") + ", expected " + TrainCheckpoint.FORMAT + ")");
        return md;
    }

    private static String need(Map<String, String> md, String key, Path checkpoint) throws IOException {
        String v = md.get("extra." + key);
        if (v == null) throw new IOException(checkpoint + ": the checkpoint lacks '" + key + "' (it was not written by a training job)");
        return v;
    }

    /** Builds a zero-weight model from config.json text ({@code _class_name} "DiT" or "UNet2DModel"). */
    static DiffusionModel modelFromConfig(String text, String source) throws IOException {
        JsonView v = Json.parse(text, source);
        if (!v.isObject()) throw v.error("expected a JSON object (a model config.json)");
        String cls = v.optString("_class_name", null);
        if (cls == null) throw v.error("_class_name", "missing: expected \"DiT\" or \"UNet2DModel\"");
        switch (cls) {
            case "UNet2DModel":
                return new UNet2DModel(UNet2DConfig.fromJson(text, source));
            case "DiT": {
                // DiTConfig reads files only: parse through a temporary copy, reporting errors under the real source
                Path tmp = Files.createTempFile("dit-config", ".json");
                try {
                    Files.writeString(tmp, text);
                    return new DiT(DiTConfig.fromJson(tmp));
                } catch (IllegalArgumentException e) {
                    throw new IllegalArgumentException(String.valueOf(e.getMessage()).replace(tmp.toString(), source), e);
                } finally {
                    Files.deleteIfExists(tmp);
                }
            }
            default:
                throw v.error("_class_name", "unsupported model class \"" + cls + "\": expected \"DiT\" or \"UNet2DModel\"");
        }
    }

    private static void checkTrainable(DiffusionModel m, String source) {
        if (m instanceof UNet2DModel u) {
            if (u.config().sampleSize() == null) throw new IllegalArgumentException(source
                    + ": sample_size must be set for training (the image size, e.g. 28)");
            if (u.classConditional() && u.numClasses() == 0) throw new IllegalArgumentException(source
                    + ": a UNet2DModel with class_embed_type \"" + u.config().classEmbedType() + "\" cannot be trained here "
                    + "(only unconditional models or an nn.Embedding class embedding)");
        }
    }

    private static DiffusionObjective.Config objective(DiffusionModel m) {
        double drop = m instanceof DiT d ? d.config().classDropoutProb() : 0.0; // diffusers UNets have no null class
        return new DiffusionObjective.Config(NoiseSchedule.named(SCHEDULE, TIMESTEPS), drop, 1.0);
    }

    /** A 64-bit FNV-1a hash over every image's float bits and every label, with the shape, as 16 hex digits. */
    static String fingerprint(Dataset d) {
        long h = 0xcbf29ce484222325L;
        final long p = 0x100000001b3L;
        for (long v : new long[] {d.size(), d.channels(), d.height(), d.width()}) h = (h ^ v) * p;
        float[] buf = new float[d.imageSize()];
        for (int i = 0; i < d.size(); i++) {
            d.image(i, buf, 0);
            for (float f : buf) h = (h ^ Float.floatToRawIntBits(f)) * p;
            h = (h ^ d.label(i)) * p;
        }
        return String.format("%016x", h);
    }

    // ------------------------------------------------------------------ accessors

    /** The model being trained (its tensors are the live training parameters). */
    public DiffusionModel model() { return model; }
    public TrainingRun run() { return run; }
    public Recipe recipe() { return recipe; }
    public Limits limits() { return limits; }
    public long step() { return run.step(); }
    public String dataDescription() { return dataDescription; }
    /** Thread count recorded when the job was started or last checkpointed (0 if unknown); differs => not bitwise resumable. */
    public int previousThreads() { return previousThreads; }
    /** Training time of the runs this job continues (0 for a fresh job). */
    public Duration previousElapsed() { return Duration.ofNanos((long) (previousSeconds * 1e9)); }

    // ------------------------------------------------------------------ training

    /**
     * Trains until the step limit, the total wall-clock budget or {@code cancelled} (checked between steps), writing the
     * checkpoint on the timer and once more at the end (also when cancelled).
     */
    public Summary train(Consumer<Progress> listener, BooleanSupplier cancelled) throws IOException {
        long start = System.nanoTime(), lastCk = start;
        long stepsBefore = run.step();
        long budget = limits.budget() == null ? Long.MAX_VALUE
                : Math.max(0, limits.budget().toNanos() - (long) (previousSeconds * 1e9));
        long every = limits.checkpointEvery() == null ? Long.MAX_VALUE : limits.checkpointEvery().toNanos();
        double avgStep = Double.NaN;
        TrainingRun.StopReason reason;
        while (true) {
            if (limits.maxSteps() > 0 && run.step() >= limits.maxSteps()) { reason = TrainingRun.StopReason.MAX_STEPS; break; }
            if (cancelled != null && cancelled.getAsBoolean()) { reason = TrainingRun.StopReason.CANCELLED; break; }
            if (System.nanoTime() - start >= budget) { reason = TrainingRun.StopReason.WALL_CLOCK; break; }
            TrainingRun.StepReport r = run.next();
            history.add(r.step(), r.loss(), r.terms());
            long now = System.nanoTime();
            boolean ck = false;
            if (limits.checkpointFile() != null && now - lastCk >= every) {
                saveCheckpoint(limits.checkpointFile());
                lastCk = System.nanoTime();
                ck = true;
            }
            avgStep = Double.isNaN(avgStep) ? r.stepSeconds() : 0.9 * avgStep + 0.1 * r.stepSeconds();
            Duration eta = null;
            if (limits.maxSteps() > 0) eta = Duration.ofMillis((long) (Math.max(0, limits.maxSteps() - run.step()) * avgStep * 1000));
            if (budget != Long.MAX_VALUE) {
                Duration left = Duration.ofNanos(Math.max(0, budget - (System.nanoTime() - start)));
                if (eta == null || left.compareTo(eta) < 0) eta = left;
            }
            if (listener != null) listener.accept(new Progress(r.step(), limits.maxSteps(), r.loss(), r.terms(), r.gradNorm(), r.lr(),
                    r.imagesPerSecond(), r.elapsed(), eta, ck));
        }
        if (limits.checkpointFile() != null) saveCheckpoint(limits.checkpointFile());
        lastReason = reason;
        LossHistory.Point last = history.lastWindow();
        return new Summary(reason, run.step(), run.step() - stepsBefore, run.imagesSeen(), run.imagesSeen() / (double) data.size(),
                last == null ? Double.NaN : last.loss(), last == null ? Map.of() : last.terms(), run.totalElapsed(),
                Duration.ofNanos(System.nanoTime() - start), limits.checkpointFile());
    }

    /** Writes the complete state (with model config, recipe, data fingerprint and loss history) atomically. */
    public void saveCheckpoint(Path file) throws IOException {
        run.putMetadata(MD_HISTORY, history.toJson().toString());
        run.saveCheckpoint(file);
    }

    /**
     * Writes the EMA weights as a model folder: config.json (the training config), the weights file of the
     * architecture (F32, deterministic bytes) and {@code training.json} (recipe, objective, data, steps, time, losses,
     * weights sha256); each file atomically, training.json last.
     */
    public void exportModel(Path folder) throws IOException {
        DiffusionModel target = modelFromConfig(configText, "training config");
        DiffusionTrainer.copyEmaInto(run, target);
        JsonNode cfg = Json.parse(configText, "training config").node();
        Map<String, String> md = new LinkedHashMap<>();
        md.put("format", "pt");
        md.put("producer", "diffquant train");
        md.put("step", Long.toString(run.step()));
        md.put("seed", Long.toString(recipe.seed()));
        ModelFolder.save(target, cfg, folder, md);
        Path weights = ModelFolder.weightsFile(folder, target);
        Json.write(folder.resolve(TRAINING_JSON), record(target, ModelFolder.sha256(weights), weights.getFileName().toString()));
    }

    private ObjectNode record(DiffusionModel target, String sha, String weightsName) {
        ObjectNode o = Json.object();
        o.put("format", "diffquant-training-record").put("version", 1);
        o.put("architecture", target.architecture()).put("parameters", target.parameterCount());
        o.put("weights", weightsName).put("weights_sha256", sha).put("weights_are", run.ema() != null ? "EMA" : "raw");
        o.set("recipe", recipe.toJson());
        ObjectNode obj = o.putObject("objective");
        DiffusionObjective.Config oc = objective(target);
        obj.put("prediction", "epsilon").put("loss", target.learnSigma() ? "mse + vlb (learned variance, stop-gradient mean)" : "mse")
                .put("schedule", SCHEDULE).put("timesteps", TIMESTEPS).put("class_dropout_prob", oc.classDropoutProb())
                .put("vlb_weight", oc.vlbWeight());
        ObjectNode d = o.putObject("data");
        d.put("description", dataDescription).put("images", data.size()).put("fingerprint", fingerprint);
        o.put("steps", run.step()).put("images_seen", run.imagesSeen()).put("epochs", run.imagesSeen() / (double) data.size());
        if (run.ema() != null) o.put("ema_updates", run.ema().updates());
        o.put("stop_reason", lastReason == null ? "not trained in this process" : lastReason.name().toLowerCase());
        o.put("wall_seconds", Math.round(run.totalElapsed().toMillis() / 100.0) / 10.0);
        o.put("threads", Parallel.threads()).put("cores_visible", Runtime.getRuntime().availableProcessors());
        LossHistory.Point last = history.lastWindow();
        if (last != null) {
            ObjectNode fl = o.putObject("final_loss");
            fl.put("steps", last.from() + "-" + last.to()).put("loss", last.loss());
            last.terms().forEach(fl::put);
        }
        o.set("loss_history", history.toJson().get("points"));
        return o;
    }

    // ------------------------------------------------------------------ loss history

    /** Mean loss (and terms) per window of {@link #HISTORY_WINDOW} global steps; the open window's sums are kept too. */
    static final class LossHistory {
        record Point(long from, long to, double loss, Map<String, Double> terms) {}

        private final List<Point> points = new ArrayList<>();
        private long openFrom = -1, openCount;
        private double openLoss;
        private final Map<String, Double> openTerms = new LinkedHashMap<>();

        void add(long step, double loss, Map<String, Double> terms) {
            if (openCount == 0) openFrom = step;
            openCount++;
            openLoss += loss;
            for (var e : new TreeMap<>(terms).entrySet()) openTerms.merge(e.getKey(), e.getValue(), Double::sum);
            if (step % HISTORY_WINDOW == 0) {
                Map<String, Double> t = new LinkedHashMap<>();
                for (var e : openTerms.entrySet()) t.put(e.getKey(), e.getValue() / openCount);
                points.add(new Point(openFrom, step, openLoss / openCount, t));
                openCount = 0;
                openLoss = 0;
                openTerms.clear();
            }
        }

        /** The last complete window, or the open one when none is complete. */
        Point lastWindow() {
            if (!points.isEmpty()) return points.get(points.size() - 1);
            if (openCount == 0) return null;
            Map<String, Double> t = new LinkedHashMap<>();
            for (var e : openTerms.entrySet()) t.put(e.getKey(), e.getValue() / openCount);
            return new Point(openFrom, openFrom + openCount - 1, openLoss / openCount, t);
        }

        ObjectNode toJson() {
            ObjectNode o = Json.object();
            o.put("window", HISTORY_WINDOW);
            ArrayNode ps = o.putArray("points");
            for (Point p : points) {
                ObjectNode n = ps.addObject();
                n.put("from", p.from).put("to", p.to).put("loss", p.loss);
                p.terms.forEach(n::put);
            }
            ObjectNode open = o.putObject("open");
            open.put("from", openFrom).put("count", openCount).put("loss_sum", openLoss);
            ObjectNode ot = open.putObject("term_sums");
            openTerms.forEach(ot::put);
            return o;
        }

        static LossHistory fromJson(String text, Path source) throws IOException {
            LossHistory h = new LossHistory();
            if (text == null) return h;
            JsonView v = Json.parse(text, source + " (loss history)");
            for (JsonView p : v.get("points").elements()) {
                Map<String, Double> t = new LinkedHashMap<>();
                for (String k : p.fieldNames()) if (!k.equals("from") && !k.equals("to") && !k.equals("loss")) t.put(k, p.requireDouble(k));
                h.points.add(new Point(p.requireLong("from"), p.requireLong("to"), p.requireDouble("loss"), t));
            }
            JsonView open = v.get("open");
            h.openFrom = open.requireLong("from");
            h.openCount = open.requireLong("count");
            h.openLoss = open.requireDouble("loss_sum");
            JsonView ts = open.get("term_sums");
            for (String k : ts.fieldNames()) h.openTerms.put(k, ts.requireDouble(k));
            return h;
        }
    }
}
