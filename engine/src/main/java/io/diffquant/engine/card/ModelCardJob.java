package io.diffquant.engine.card;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.diffquant.engine.diffusion.NoiseSchedule;
import io.diffquant.engine.io.AtomicFiles;
import io.diffquant.engine.io.FashionMnist;
import io.diffquant.engine.io.ImageGrid;
import io.diffquant.engine.io.Json;
import io.diffquant.engine.io.JsonView;
import io.diffquant.engine.metrics.FmnistClassifier;
import io.diffquant.engine.metrics.FmnistMetrics;
import io.diffquant.engine.metrics.FmnistReferenceStats;
import io.diffquant.engine.metrics.MetricsTable;
import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.model.ModelFolder;
import io.diffquant.engine.model.dit.DiT;
import io.diffquant.engine.tensor.Parallel;
import io.diffquant.engine.tensor.Tensor;
import io.diffquant.engine.train.TrainingJob;

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ThreadLocalRandom;
import java.util.stream.Stream;

/**
 * Writes the model card of a trained Fashion-MNIST model folder (issue 3's shipped models; the card layout follows
 * the Hugging Face model-card practice of Mitchell et al. 2019, "Model Cards for Model Reporting"): samples it with
 * 50 DDIM steps, measures FID-FMNIST, sFID-FMNIST and IS-FMNIST with the real-data floors and, for class-conditional
 * models, class accuracy after a CFG sweep ({@link FmnistMetrics}); draws the 10x10 grid; records a small
 * reproduction sample ({@link ReproductionSample}); times the 64-image sampling benchmark; and publishes the folder
 * (the model's config.json, weights and training.json, plus {@value #CARD}, {@value #METRICS}, {@value #GRID},
 * {@value ReproductionSample#FILE}) atomically: everything is written into a temporary sibling folder that replaces
 * the output folder by rename. {@value #METRICS} holds every measured number; {@value #CARD} is rendered from it
 * ({@link ModelCardText}).
 */
public final class ModelCardJob {
    public static final String CARD = "MODEL_CARD.md";
    public static final String METRICS = "metrics.json";
    public static final String GRID = "samples.png";
    public static final String FORMAT = "diffquant-model-card";
    /** The class-accuracy bar of issue 3 (percent). */
    public static final double ACCURACY_BAR = 85.0;
    /** The sampling-benchmark bar of issue 3 (seconds for 64 images with 50 steps). */
    public static final double BENCHMARK_BAR_SECONDS = 60.0;

    private ModelCardJob() {}

    /**
     * What to measure.
     *
     * @param name          the model's name in the card (e.g. "dit-fmnist")
     * @param evalCount     images for the metrics (>= 10; the grid takes its 100 images from them)
     * @param steps         DDIM steps of the evaluation, sweep, grid and benchmark
     * @param seed          noise seed of the evaluation and sweep
     * @param batch         images per denoiser batch
     * @param cfgScales     CFG scales: one = use it; several = sweep them and pick ({@link #chooseCfg}); ignored (1) for
     *                      unconditional models
     * @param sweepCount    images per sweep scale
     * @param reproduction  the reproduction sample (its CFG is replaced by the chosen scale)
     * @param benchCount    images of the benchmark (one batch), 0 = no benchmark
     * @param benchSteps    steps of the benchmark
     * @param realData      Fashion-MNIST folder for the same-N real-data reference, or null
     * @param trainingNote  free text added to the card's training section (e.g. how the machine was shared), or null
     * @param copyModel     copy config.json, the weights and training.json into the output folder
     */
    public record Settings(String name, int evalCount, int steps, long seed, int batch, List<Double> cfgScales, int sweepCount,
                           ReproductionSample reproduction, int benchCount, int benchSteps, Path realData, String trainingNote,
                           boolean copyModel) {
        public Settings {
            if (name == null || name.isBlank() || !name.matches("[A-Za-z0-9._-]+")) throw new IllegalArgumentException(
                    "card: name must be non-empty letters, digits, '.', '_' or '-', got '" + name + "'");
            if (evalCount < 10) throw new IllegalArgumentException("card: the evaluation needs at least 10 images, got " + evalCount);
            if (steps < 1 || batch < 1) throw new IllegalArgumentException("card: steps and batch must be >= 1");
            cfgScales = List.copyOf(cfgScales == null || cfgScales.isEmpty() ? List.of(1.0) : cfgScales);
            for (double c : cfgScales) if (!(c >= 1) || !Double.isFinite(c)) throw new IllegalArgumentException("card: CFG scales must be >= 1, got " + c);
            if (cfgScales.size() > 1 && sweepCount < 2) throw new IllegalArgumentException("card: a CFG sweep needs at least 2 images per scale, got " + sweepCount);
            if (reproduction == null) reproduction = ReproductionSample.defaults(1.0);
            if (benchCount < 0 || benchSteps < 1) throw new IllegalArgumentException("card: benchmark images must be >= 0 and steps >= 1");
        }
    }

    /** Progress reports (the engine prints nothing; the CLI does). */
    public interface Listener {
        /** A finished line (phase start or result). */
        void message(String line);

        /** A transient status line (replaced by the next one). */
        default void progress(String line) {}
    }

    /** Wall and process CPU time of one phase, and the 1-minute load average when it started. */
    public record Timing(String phase, double wallSeconds, double cpuSeconds, double loadAverage) {}

    /** The published folder, the full record written to {@value #METRICS}, and the phase timings. */
    public record Result(Path out, ObjectNode record, List<Timing> timings) {
        public double chosenCfg() { return record.get("sampling").get("cfg").asDouble(); }
    }

    /** Pixel size of the grid PNG: each image pixel is drawn as a GRID_SCALE x GRID_SCALE block. */
    public static final int GRID_SCALE = 2;

    /** Nearest-neighbour upscaling by an integer factor (keeps the pixels exact, only bigger). */
    static java.awt.image.BufferedImage upscale(java.awt.image.BufferedImage img, int k) {
        if (k == 1) return img;
        java.awt.image.BufferedImage out = new java.awt.image.BufferedImage(img.getWidth() * k, img.getHeight() * k, img.getType());
        for (int y = 0; y < out.getHeight(); y++) for (int x = 0; x < out.getWidth(); x++) out.setRGB(x, y, img.getRGB(x / k, y / k));
        return out;
    }

    /** One CFG sweep point. */
    public record SweepPoint(double cfg, double fid, double sfid, double inceptionScore, double accuracy) {}

    /**
     * The sweep rule: among the scales whose class accuracy reaches {@link #ACCURACY_BAR}, the one with the lowest
     * FID-FMNIST; if none reaches it, the one with the highest accuracy (ties: the lower FID).
     */
    public static SweepPoint chooseCfg(List<SweepPoint> points) {
        if (points.isEmpty()) throw new IllegalArgumentException("card: empty CFG sweep");
        List<SweepPoint> ok = points.stream().filter(p -> p.accuracy() >= ACCURACY_BAR).toList();
        if (!ok.isEmpty()) return ok.stream().min(Comparator.comparingDouble(SweepPoint::fid)).orElseThrow();
        return points.stream().max(Comparator.comparingDouble(SweepPoint::accuracy).thenComparing(Comparator.comparingDouble(SweepPoint::fid).reversed()))
                .orElseThrow();
    }

    /** The model's name from its folder: the folder's own name, or its parent's when the folder is called "model". */
    public static String defaultName(Path modelFolder) {
        Path abs = modelFolder.toAbsolutePath().normalize();
        Path n = abs.getFileName();
        if (n != null && n.toString().equals("model") && abs.getParent() != null && abs.getParent().getFileName() != null)
            return abs.getParent().getFileName().toString();
        return n == null ? "model" : n.toString();
    }

    // ------------------------------------------------------------------ the job

    /**
     * Runs everything and publishes {@code out}.
     *
     * @param metrics          the feature network and reference statistics
     * @param classifierFolder where they came from (recorded in the card)
     */
    public static Result run(Path modelFolder, Path out, FmnistMetrics metrics, Path classifierFolder, Settings s, Listener l) throws IOException {
        Listener log = l != null ? l : line -> {};
        Path absModel = modelFolder.toAbsolutePath().normalize(), absOut = out.toAbsolutePath().normalize();
        if (absOut.equals(absModel) || absModel.startsWith(absOut)) throw new IllegalArgumentException("card: the output folder "
                + out + " must not be (or contain) the model folder " + modelFolder + ": write the card to a new folder");
        checkReplaceable(absOut);
        Clock clock = new Clock();
        List<Timing> timings = new ArrayList<>();

        // ---- load and check
        clock.start();
        log.message("loading " + modelFolder);
        ModelFolder.Loaded loaded = ModelFolder.load(modelFolder);
        DiffusionModel m = loaded.model();
        FmnistSampling.requireFmnistModel(m, null, modelFolder.toString());
        String sha = loaded.weightsSha256();
        Path trainingFile = modelFolder.resolve(TrainingJob.TRAINING_JSON);
        JsonView training = Files.isRegularFile(trainingFile) ? Json.read(trainingFile) : null;
        NoiseSchedule schedule = NoiseSchedule.linear(1000);
        if (training != null) {
            String recorded = training.optString("weights_sha256", null);
            if (recorded != null && !recorded.equals(sha)) throw new IOException(trainingFile + ": weights_sha256 " + recorded
                    + " but " + loaded.weightsFile().getFileName() + " has sha256 " + sha + " (the weights are not the ones this record describes)");
            if (training.has("objective")) {
                JsonView obj = training.get("objective");
                schedule = NoiseSchedule.named(obj.optString("schedule", "linear"), (int) obj.optLong("timesteps", 1000));
            }
        }
        boolean conditional = m.numClasses() > 0;
        int classes = conditional ? Math.min(m.numClasses(), metrics.classifier().config().numClasses()) : 0;
        if (conditional && m.numClasses() != metrics.classifier().config().numClasses()) throw new IllegalArgumentException(modelFolder
                + ": the model has " + m.numClasses() + " classes but the Fashion-MNIST classifier " + metrics.classifier().config().numClasses());
        log.message(String.format(Locale.ROOT, "%s %s: %,d parameters, weights sha256 %s, %d engine threads", s.name(), m.architecture(),
                m.parameterCount(), sha, Parallel.threads()));
        timings.add(clock.stop("load"));

        ObjectNode rec = Json.object();
        rec.put("format", FORMAT);
        rec.put("version", 1);
        rec.put("name", s.name());
        rec.put("architecture", m.architecture());
        rec.put("model_class", m.getClass().getName());
        rec.set("config", Json.read(modelFolder.resolve(ModelFolder.CONFIG)).node());
        rec.put("parameters", m.parameterCount());
        rec.set("parameter_groups", parameterGroups(m));
        rec.put("weights", loaded.weightsFile().getFileName().toString());
        rec.put("weights_bytes", Files.size(loaded.weightsFile()));
        rec.put("weights_sha256", sha);
        rec.put("weights_dtypes", String.join(",", new java.util.TreeSet<>(loaded.dtypes().values())));
        if (training != null) rec.set("training", training.node());
        else rec.putNull("training");
        if (s.trainingNote() != null && !s.trainingNote().isBlank()) rec.put("training_note", s.trainingNote().strip());
        ObjectNode fn = rec.putObject("feature_network");
        fn.put("folder", classifierFolder == null ? "" : displayPath(classifierFolder));
        fn.put("classifier_sha256", metrics.reference().metadata().getOrDefault(FmnistReferenceStats.META_CLASSIFIER_SHA256, ""));
        fn.put("reference_images", metrics.reference().count());
        fn.put("fid_floor", metrics.reference().fidFloor());
        fn.put("sfid_floor", metrics.reference().sfidFloor());
        fn.put("floor_split", metrics.reference().metadata().getOrDefault(FmnistReferenceStats.META_FLOOR_SPLIT, "two halves of the test set"));

        // ---- the same-N real-data reference
        if (s.realData() != null) {
            clock.start();
            FashionMnist fm = new FashionMnist(s.realData());
            if (fm.isAvailable()) {
                log.message("real-data reference: the first " + s.evalCount() + " Fashion-MNIST training images");
                FashionMnist.Data d = fm.load(FashionMnist.Split.TRAIN, s.evalCount());
                Tensor real = d.imagesMinusOneOne(0, d.size());
                MetricsTable t = metrics.evaluate("real", Map.of(), real, d.labels(), null);
                ObjectNode r = rec.putObject("real_data");
                r.put("images", d.size());
                r.put("source", "the first " + d.size() + " Fashion-MNIST training images (independent of the test-set statistics)");
                putRows(r, t, d.size());
                log.message("  " + summary(t));
            } else {
                log.message("real-data reference skipped: no Fashion-MNIST files in " + s.realData());
            }
            timings.add(clock.stop("real-data reference"));
        }

        FmnistSampling.Settings base = new FmnistSampling.Settings(s.steps(), 1.0, s.seed(), s.batch(), schedule);
        // ---- CFG sweep
        double cfg = 1.0;
        Map<Double, Tensor> sweepImages = null;
        if (conditional) {
            if (s.cfgScales().size() == 1) {
                cfg = s.cfgScales().get(0);
            } else {
                clock.start();
                List<SweepPoint> pts = new ArrayList<>();
                sweepImages = new LinkedHashMap<>();
                int[] y = FmnistSampling.cycleLabels(s.sweepCount(), classes);
                for (double c : s.cfgScales()) {
                    String what = String.format(Locale.ROOT, "CFG sweep %s (%d images)", fmt(c), s.sweepCount());
                    log.message(what);
                    Tensor x = FmnistSampling.sample(m, s.sweepCount(), 0, y, base.withCfg(c), progress(log, what, System.nanoTime()));
                    sweepImages.put(c, x);
                    MetricsTable t = metrics.evaluate(FmnistSampling.clampUnit(x), y, null);
                    SweepPoint p = new SweepPoint(c, value(t, MetricsTable.FID_FMNIST), value(t, MetricsTable.SFID_FMNIST),
                            value(t, MetricsTable.IS_FMNIST), value(t, MetricsTable.CLASS_ACCURACY));
                    pts.add(p);
                    log.message("  " + summary(t));
                }
                SweepPoint best = chooseCfg(pts);
                cfg = best.cfg();
                ObjectNode sw = rec.putObject("cfg_sweep");
                sw.put("images", s.sweepCount());
                sw.put("steps", s.steps());
                sw.put("seed", s.seed());
                sw.put("rule", "lowest FID-FMNIST among the scales with class accuracy >= " + fmt(ACCURACY_BAR)
                        + " %; if none reaches it, the highest accuracy");
                ArrayNode arr = sw.putArray("points");
                for (SweepPoint p : pts) {
                    ObjectNode o = arr.addObject();
                    o.put("cfg", p.cfg());
                    o.put(MetricsTable.FID_FMNIST, p.fid());
                    o.put(MetricsTable.SFID_FMNIST, p.sfid());
                    o.put(MetricsTable.IS_FMNIST, p.inceptionScore());
                    o.put(MetricsTable.CLASS_ACCURACY, p.accuracy());
                }
                sw.put("chosen", cfg);
                log.message("CFG scale chosen: " + fmt(cfg));
                timings.add(clock.stop("CFG sweep"));
            }
        } else if (s.cfgScales().size() != 1 || s.cfgScales().get(0) != 1.0) {
            log.message("unconditional model: no classifier-free guidance (CFG scales ignored)");
        }
        FmnistSampling.Settings evalSettings = base.withCfg(cfg);
        ObjectNode smp = rec.putObject("sampling");
        smp.put("sampler", "ddim");
        smp.put("eta", 0.0);
        smp.put("steps", s.steps());
        smp.put("respacing", FmnistSampling.respacing(schedule.numTimesteps(), s.steps()));
        smp.put("schedule", schedule.name());
        smp.put("timesteps", schedule.numTimesteps());
        smp.put("cfg", cfg);
        smp.put("cfg_mode", conditional ? "all channels (the null class is " + m.numClasses() + ")" : "none (unconditional)");
        smp.put("seed", s.seed());
        smp.put("labels", conditional ? "cycle 0.." + (classes - 1) : "none (unconditional)");
        smp.put("batch", s.batch());
        smp.put("clamp", "samples clamped to [-1, 1] before measuring, as when written to PNG");

        // ---- evaluation
        clock.start();
        String what = String.format(Locale.ROOT, "evaluation: %d images, %d DDIM steps%s", s.evalCount(), s.steps(),
                conditional ? ", CFG " + fmt(cfg) : "");
        log.message(what);
        int[] y = FmnistSampling.cycleLabels(s.evalCount(), classes);
        long t0 = System.nanoTime();
        // the sweep's images at the chosen scale are the first evaluation images (same seed, labels and noise keys)
        Tensor reuse = sweepImages == null || s.sweepCount() > s.evalCount() ? null : sweepImages.get(cfg);
        Tensor raw;
        if (reuse == null) {
            raw = FmnistSampling.sample(m, s.evalCount(), 0, y, evalSettings, progress(log, what, t0));
        } else if (s.sweepCount() == s.evalCount()) {
            raw = reuse;
        } else {
            int k = s.sweepCount();
            log.message("  images 1-" + k + " are the sweep's images at CFG " + fmt(cfg));
            Tensor rest = FmnistSampling.sample(m, s.evalCount() - k, k, java.util.Arrays.copyOfRange(y, k, y.length), evalSettings,
                    progress(log, what, t0));
            raw = Tensor.concatRows(reuse, rest);
        }
        double sampleSeconds = (System.nanoTime() - t0) * 1e-9;
        Tensor images = FmnistSampling.clampUnit(raw);
        Map<String, String> info = new LinkedHashMap<>();
        info.put("model", s.name() + " (" + m.architecture() + ", weights sha256 " + sha.substring(0, 12) + ")");
        info.put("sampling", String.format(Locale.ROOT, "ddim eta 0, %s, %s schedule (T = %d), cfg %s, seed %d",
                smp.get("respacing").asText(), schedule.name(), schedule.numTimesteps(), fmt(cfg), s.seed()));
        if (conditional) info.put("labels", "cycle 0.." + (classes - 1));
        info.put("clamping", "samples clamped to [-1, 1] before measuring");
        MetricsTable table = metrics.evaluate("card " + s.name(), info, images, y, null);
        ObjectNode ev = rec.putObject("evaluation");
        ev.put("images", s.evalCount());
        putRows(ev, table, s.evalCount());
        ev.set("table", Json.parse(table.toJson(), "metrics table").node());
        if (conditional) {
            int[] pred = metrics.classifier().features(images).predictions();
            ArrayNode pc = ev.putArray("per_class_accuracy");
            for (int c = 0; c < classes; c++) {
                int ok = 0, all = 0;
                for (int i = 0; i < y.length; i++) if (y[i] == c) {
                    all++;
                    if (pred[i] == c) ok++;
                }
                pc.add(all == 0 ? Double.NaN : 100.0 * ok / all);
            }
            ev.put("accuracy_bar", ACCURACY_BAR);
            ev.put("meets_accuracy_bar", value(table, MetricsTable.CLASS_ACCURACY) >= ACCURACY_BAR);
        }
        ev.put("sampling_seconds", sampleSeconds);
        if (reuse != null) ev.put("reused_sweep_images", s.sweepCount());
        log.message(String.format(Locale.ROOT, "  %s  (sampling %.1f s)", summary(table), sampleSeconds));
        timings.add(clock.stop("evaluation"));

        // ---- the grid, from the evaluation images
        clock.start();
        Tensor grid;
        int rows, cols;
        if (conditional) {
            cols = Math.min(10, s.evalCount() / classes);
            rows = classes;
            grid = Tensor.zeros(rows * cols, 1, FmnistClassifier.IMAGE_SIZE, FmnistClassifier.IMAGE_SIZE);
            int px = FmnistClassifier.IMAGE_SIZE * FmnistClassifier.IMAGE_SIZE;
            for (int r = 0; r < rows; r++) for (int c = 0; c < cols; c++)
                System.arraycopy(images.data(), (r + classes * c) * px, grid.data(), (r * cols + c) * px, px);
        } else {
            int n = Math.min(100, s.evalCount());
            cols = Math.min(10, n);
            rows = n / cols;
            grid = images.sliceRows(0, rows * cols);
        }
        ObjectNode gr = rec.putObject("grid");
        gr.put("file", GRID);
        gr.put("rows", rows);
        gr.put("cols", cols);
        gr.put("pixel_scale", GRID_SCALE);
        gr.put("layout", conditional ? "one row per class (0 at the top), the first " + cols + " evaluation images of each class"
                : "the first " + rows * cols + " evaluation images, row by row");
        timings.add(clock.stop("grid"));

        // ---- reproduction sample
        clock.start();
        ReproductionSample rs = new ReproductionSample(s.reproduction().count(), s.reproduction().steps(), s.reproduction().seed(), cfg);
        String rwhat = String.format(Locale.ROOT, "reproduction sample: %d images, %d DDIM steps, seed %d", rs.count(), rs.steps(), rs.seed());
        log.message(rwhat);
        Tensor repro = rs.generate(m, schedule, progress(log, rwhat, System.nanoTime()));
        ReproductionSample.Measured rm = ReproductionSample.measure(metrics, repro, rs.labels(m));
        ReproductionSample.Recorded recorded = new ReproductionSample.Recorded(rs, schedule.name(), schedule.numTimesteps(),
                ReproductionSample.imagesSha256(repro), rm, ReproductionSample.Tolerances.DEFAULT);
        rec.set("reproduction", recorded.toJson(classes));
        log.message(String.format(Locale.ROOT, "  FID-FMNIST %.4f, sFID-FMNIST %.4f, IS-FMNIST %.4f%s", rm.fid(), rm.sfid(), rm.inceptionScore(),
                Double.isNaN(rm.accuracy()) ? "" : String.format(Locale.ROOT, ", class accuracy %.2f %%", rm.accuracy())));
        timings.add(clock.stop("reproduction sample"));

        // ---- benchmark
        if (s.benchCount() > 0) {
            clock.start();
            rec.set("benchmark", benchmark(m, evalSettings, classes, s.benchCount(), s.benchSteps(), log,
                    "measured by 'diffquant card' right after the evaluation (warm JIT)"));
            timings.add(clock.stop("benchmark"));
        }

        // ---- write everything into a temporary sibling folder, then publish it
        clock.start();
        Path parent = absOut.getParent();
        Files.createDirectories(parent);
        Path tmp = parent.resolve("." + absOut.getFileName() + ".tmp-" + HexFormat.of().formatHex(randomBytes()));
        Files.createDirectory(tmp);
        try {
            ImageGrid.writePng(upscale(ImageGrid.grid(grid, cols, 2), GRID_SCALE), tmp.resolve(GRID));
            Map<String, String> meta = new LinkedHashMap<>();
            meta.put("model", s.name());
            meta.put("weights_sha256", sha);
            meta.put("schedule", schedule.name());
            rs.writeImages(tmp.resolve(ReproductionSample.FILE), repro, rs.labels(m), meta);
            if (s.copyModel()) {
                Files.copy(modelFolder.resolve(ModelFolder.CONFIG), tmp.resolve(ModelFolder.CONFIG));
                Files.copy(loaded.weightsFile(), tmp.resolve(loaded.weightsFile().getFileName()));
                if (training != null) Files.copy(trainingFile, tmp.resolve(TrainingJob.TRAINING_JSON));
                String copied = ModelFolder.sha256(tmp.resolve(loaded.weightsFile().getFileName()));
                if (!copied.equals(sha)) throw new IOException(loaded.weightsFile() + " changed while the card was made (sha256 "
                        + sha + ", the copy has " + copied + ")");
            }
            ObjectNode files = rec.putObject("files");
            if (s.copyModel()) {
                files.put(ModelFolder.CONFIG, ModelFolder.sha256(tmp.resolve(ModelFolder.CONFIG)));
                files.put(loaded.weightsFile().getFileName().toString(), sha);
                if (training != null) files.put(TrainingJob.TRAINING_JSON, ModelFolder.sha256(tmp.resolve(TrainingJob.TRAINING_JSON)));
            }
            files.put(ReproductionSample.FILE, ModelFolder.sha256(tmp.resolve(ReproductionSample.FILE)));
            files.put(GRID, ModelFolder.sha256(tmp.resolve(GRID)));
            timings.add(clock.stop("write"));
            ObjectNode mach = rec.putObject("machine");
            mach.put("cores", Runtime.getRuntime().availableProcessors());
            mach.put("engine_threads", Parallel.threads());
            mach.put("java", System.getProperty("java.vm.name", "") + " " + System.getProperty("java.version", ""));
            mach.put("os", System.getProperty("os.name", "") + " " + System.getProperty("os.arch", ""));
            mach.put("load_average_end", loadAverage());
            rec.put("created", Instant.now().toString());
            ArrayNode tm = rec.putArray("timings");
            for (Timing t : timings) {
                ObjectNode o = tm.addObject();
                o.put("phase", t.phase());
                o.put("wall_seconds", t.wallSeconds());
                o.put("cpu_seconds", t.cpuSeconds());
                o.put("load_average_before", t.loadAverage());
            }
            Json.write(tmp.resolve(METRICS), rec);
            AtomicFiles.writeString(tmp.resolve(CARD), ModelCardText.render(JsonView.of(rec, METRICS)));
            publish(tmp, absOut);
        } catch (IOException | RuntimeException e) {
            deleteTree(tmp);
            throw e;
        }
        log.message("card written: " + out);
        return new Result(out, rec, timings);
    }

    /** Times {@code count} images with {@code steps} DDIM steps in one batch at the evaluation's CFG; returns the record's "benchmark" object. */
    static ObjectNode benchmark(DiffusionModel m, FmnistSampling.Settings evalSettings, int classes, int count, int steps, Listener log, String how) {
        double cfg = evalSettings.cfg();
        boolean guided = classes > 0 && cfg != 1;
        String what = String.format(Locale.ROOT, "benchmark: %d images, %d DDIM steps%s, one batch", count, steps, guided ? ", CFG " + fmt(cfg) : "");
        log.message(what);
        double load = loadAverage();
        long c0 = cpuNanos(), b0 = System.nanoTime();
        FmnistSampling.sample(m, count, 1_000_000, FmnistSampling.cycleLabels(count, classes), evalSettings.withSteps(steps).withBatch(count),
                progress(log, what, b0));
        double wall = (System.nanoTime() - b0) * 1e-9, cpu = (cpuNanos() - c0) * 1e-9;
        ObjectNode b = Json.object();
        b.put("images", count);
        b.put("steps", steps);
        b.put("cfg", cfg);
        b.put("denoiser_rows_per_step", guided ? 2 * count : count);
        b.put("threads", Parallel.threads());
        b.put("wall_seconds", wall);
        b.put("cpu_seconds", cpu);
        b.put("load_average_before", load);
        b.put("bar_seconds", BENCHMARK_BAR_SECONDS);
        b.put("meets_bar", wall < BENCHMARK_BAR_SECONDS);
        b.put("how", how);
        b.put("date", Instant.now().toString());
        log.message(String.format(Locale.ROOT, "  %d images in %.1f s wall (%.1f s CPU, %d threads, load average %.1f before): bar < %.0f s %s",
                count, wall, cpu, Parallel.threads(), load, BENCHMARK_BAR_SECONDS, wall < BENCHMARK_BAR_SECONDS ? "met" : "NOT met"));
        return b;
    }

    /**
     * Re-times the sampling benchmark of a published card folder (which holds the model) and updates its
     * {@value #METRICS} and {@value #CARD}: for cards written with the benchmark off, e.g. while two cards were made
     * at the same time. An untimed warm-up (8 images, 3 steps) runs first.
     */
    public static ObjectNode benchmarkOnly(Path cardFolder, int count, int steps, Listener l) throws IOException {
        Listener log = l != null ? l : line -> {};
        if (count < 1 || steps < 1) throw new IllegalArgumentException("card: benchmark images and steps must be >= 1");
        JsonView v = readRecord(cardFolder);
        ObjectNode rec = (ObjectNode) v.node();
        ModelFolder.Loaded loaded = ModelFolder.load(cardFolder);
        String sha = loaded.weightsSha256();
        if (!sha.equals(v.requireString("weights_sha256"))) throw new IOException(cardFolder.resolve(METRICS) + ": weights_sha256 "
                + v.requireString("weights_sha256") + " but " + loaded.weightsFile() + " has sha256 " + sha);
        JsonView smp = v.get("sampling");
        DiffusionModel m = loaded.model();
        int classes = m.numClasses();
        FmnistSampling.Settings st = new FmnistSampling.Settings(steps, smp.requireDouble("cfg"), smp.requireLong("seed"), count,
                NoiseSchedule.named(smp.requireString("schedule"), smp.requireInt("timesteps")));
        log.message("warm-up (untimed): 8 images, 3 steps");
        FmnistSampling.sample(m, Math.min(8, count), 2_000_000, FmnistSampling.cycleLabels(Math.min(8, count), classes), st.withSteps(3), null);
        ObjectNode b = benchmark(m, st, classes, count, steps, log, "measured by 'diffquant card --bench-only' in a fresh process after an untimed warm-up");
        rec.set("benchmark", b);
        Json.write(cardFolder.resolve(METRICS), rec);
        AtomicFiles.writeString(cardFolder.resolve(CARD), ModelCardText.render(JsonView.of(rec, cardFolder.resolve(METRICS).toString())));
        return b;
    }

    /** Re-renders {@value #CARD} of a card folder from its {@value #METRICS} (e.g. after a renderer fix), atomically. */
    public static void rerender(Path cardFolder, String trainingNote) throws IOException {
        Path mf = cardFolder.resolve(METRICS);
        JsonView v = Json.read(mf);
        if (!FORMAT.equals(v.optString("format", null))) throw v.error("format", "expected \"" + FORMAT + "\"");
        ObjectNode rec = (ObjectNode) v.node();
        if (trainingNote != null) {
            if (trainingNote.isBlank()) rec.remove("training_note");
            else rec.put("training_note", trainingNote.strip());
            Json.write(mf, rec);
        }
        AtomicFiles.writeString(cardFolder.resolve(CARD), ModelCardText.render(JsonView.of(rec, mf.toString())));
    }

    // ------------------------------------------------------------------ helpers

    /** Parameter counts per top-level module (and per numbered block), in state-dict order. */
    static ArrayNode parameterGroups(DiffusionModel m) {
        Map<String, Long> g = new LinkedHashMap<>();
        for (Map.Entry<String, Tensor> e : m.stateDict().entrySet()) {
            String[] p = e.getKey().split("\\.");
            String key = p.length > 2 && p[1].matches("\\d+") ? p[0] + "." + p[1] : p[0];
            g.merge(key, (long) e.getValue().size(), Long::sum);
        }
        ArrayNode a = Json.array();
        g.forEach((k, v) -> {
            ObjectNode o = a.addObject();
            o.put("module", k);
            o.put("values", v);
            if (m instanceof DiT && k.equals("pos_embed")) o.put("note", "fixed 2-D sin-cos buffer, not trained");
        });
        return a;
    }

    private static void putRows(ObjectNode o, MetricsTable t, int images) {
        for (MetricsTable.Row r : t.rows()) {
            o.put(r.metric(), r.value());
            if (r.std().isPresent()) o.put(r.metric() + " std", r.std().getAsDouble());
        }
        o.put(MetricsTable.IS_FMNIST + " splits", FmnistMetrics.inceptionScoreSplits(images));
    }

    private static double value(MetricsTable t, String metric) {
        return t.row(metric).orElseThrow(() -> new IllegalStateException("metrics table has no row " + metric)).value();
    }

    private static String summary(MetricsTable t) {
        StringBuilder b = new StringBuilder();
        for (MetricsTable.Row r : t.rows()) {
            if (b.length() > 0) b.append(", ");
            b.append(r.metric()).append(' ').append(String.format(Locale.ROOT, "%.4g", r.value())).append(r.unit().equals("%") ? " %" : "");
        }
        return b.toString();
    }

    static String fmt(double v) { return MetricsTable.formatShort(v); }

    private static FmnistSampling.Progress progress(Listener log, String what, long startNanos) {
        return (from, n, total, step, steps) -> {
            double done = (from + n * (double) step / steps) / total;
            double el = (System.nanoTime() - startNanos) * 1e-9;
            log.progress(String.format(Locale.ROOT, "%s: images %d-%d of %d, step %d/%d, %.0f s elapsed, ETA %.0f s", what,
                    from + 1, from + n, total, step, steps, el, done > 0 ? el / done - el : Double.NaN));
        };
    }

    /** Process CPU time in nanoseconds (all threads), or -1 where the JVM does not report it. */
    static long cpuNanos() {
        if (ManagementFactory.getOperatingSystemMXBean() instanceof com.sun.management.OperatingSystemMXBean os) return os.getProcessCpuTime();
        return -1;
    }

    static double loadAverage() { return ManagementFactory.getOperatingSystemMXBean().getSystemLoadAverage(); }

    private static final class Clock {
        private long wall, cpu;
        private double load;

        void start() {
            wall = System.nanoTime();
            cpu = cpuNanos();
            load = loadAverage();
        }

        Timing stop(String phase) {
            long c = cpuNanos();
            return new Timing(phase, (System.nanoTime() - wall) * 1e-9, cpu < 0 || c < 0 ? Double.NaN : (c - cpu) * 1e-9, load);
        }
    }

    private static byte[] randomBytes() {
        byte[] b = new byte[6];
        ThreadLocalRandom.current().nextBytes(b);
        return b;
    }

    /** Files a card folder may hold; an existing output folder with anything else is not replaced. */
    static final Set<String> CARD_FILES = Set.of(CARD, METRICS, GRID, ReproductionSample.FILE, ModelFolder.CONFIG,
            ModelFolder.DIT_WEIGHTS, ModelFolder.UNET_WEIGHTS, TrainingJob.TRAINING_JSON);

    private static void checkReplaceable(Path out) throws IOException {
        if (!Files.exists(out)) return;
        if (!Files.isDirectory(out)) throw new IOException(out + ": the card output exists and is not a folder");
        try (DirectoryStream<Path> ds = Files.newDirectoryStream(out)) {
            for (Path p : ds) {
                String n = p.getFileName().toString();
                if (!CARD_FILES.contains(n)) throw new IOException(out + " holds " + n + ", which a card folder does not: "
                        + "not replacing it (give a new or empty --out folder, or remove that file)");
            }
        }
    }

    /** Replaces {@code out} by the complete folder {@code tmp}: rename out aside, rename tmp to out, delete the old one. */
    static void publish(Path tmp, Path out) throws IOException {
        checkReplaceable(out);
        Path old = null;
        try {
            if (Files.exists(out)) {
                old = out.resolveSibling("." + out.getFileName() + ".old-" + HexFormat.of().formatHex(randomBytes()));
                Files.move(out, old, StandardCopyOption.ATOMIC_MOVE);
            }
            Files.move(tmp, out, StandardCopyOption.ATOMIC_MOVE);
        } catch (AtomicMoveNotSupportedException e) {
            throw new IOException(out + ": the file system cannot rename atomically within " + out.getParent(), e);
        } catch (IOException e) {
            if (old != null && !Files.exists(out)) Files.move(old, out, StandardCopyOption.ATOMIC_MOVE);
            throw e;
        }
        if (old != null) deleteTree(old);
    }

    static void deleteTree(Path dir) {
        if (!Files.exists(dir)) return;
        try (Stream<Path> w = Files.walk(dir)) {
            for (Path p : (Iterable<Path>) w.sorted(Comparator.reverseOrder())::iterator) Files.deleteIfExists(p);
        } catch (IOException ignored) {
            // a leftover temporary folder is harmless; the original error (if any) matters more
        }
    }

    /** A path as the card shows it: relative to the working directory's project root when inside it. */
    static String displayPath(Path p) {
        Path abs = p.toAbsolutePath().normalize();
        String root = System.getProperty(FmnistMetrics.ROOT_PROPERTY);
        if (root != null && !root.isBlank()) {
            Path r = Path.of(root).toAbsolutePath().normalize();
            if (abs.startsWith(r)) return r.relativize(abs).toString();
        }
        return abs.toString();
    }

    /** Throws NoSuchFileException naming the folder when it is not a card folder. */
    public static JsonView readRecord(Path cardFolder) throws IOException {
        Path mf = cardFolder.resolve(METRICS);
        if (!Files.isRegularFile(mf)) throw new NoSuchFileException(mf.toString(), null, "not a model card folder (written by 'diffquant card')");
        JsonView v = Json.read(mf);
        if (!FORMAT.equals(v.optString("format", null))) throw v.error("format", "expected \"" + FORMAT + "\"");
        return v;
    }
}
