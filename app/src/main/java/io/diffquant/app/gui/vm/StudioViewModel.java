package io.diffquant.app.gui.vm;

import io.diffquant.engine.metrics.FmnistMetrics;
import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.quant.config.QuantConfig;
import io.diffquant.engine.quant.config.QuantConfigCodec;
import io.diffquant.engine.model.ModelFolder;
import javafx.beans.property.ReadOnlyObjectProperty;
import javafx.beans.property.ReadOnlyObjectWrapper;
import javafx.beans.property.ReadOnlyStringProperty;
import javafx.beans.property.ReadOnlyStringWrapper;
import javafx.beans.property.SimpleStringProperty;
import javafx.beans.property.StringProperty;
import javafx.collections.FXCollections;
import javafx.collections.ObservableList;
import javafx.concurrent.Task;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Map;
import java.util.function.Consumer;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * The studio's top-level view model: the loaded model, the background jobs, the remembered settings (recent
 * folders, window geometry) and the panel view models ({@link LayerTableViewModel}, {@link GenerationViewModel}).
 * Errors go to an error sink (the view shows a dialog naming the file); engine work runs only in {@link JobRunner}
 * tasks.
 */
public final class StudioViewModel {
    private static final Logger LOG = Logger.getLogger(StudioViewModel.class.getName());

    private final Path settingsFile;
    private StudioSettings settings;
    private final JobRunner jobs;
    private final LayerTableViewModel layers = new LayerTableViewModel();
    private final GenerationViewModel generation = new GenerationViewModel();
    private final QuantViewModel quant = new QuantViewModel(layers, null);
    private final AnalysisContext analysis = new AnalysisContext();
    private final TemporalViewModel temporal = new TemporalViewModel(quant, layers, analysis);
    private final SensitivityViewModel sensitivity = new SensitivityViewModel(layers, analysis);
    private final DistributionsViewModel distributions = new DistributionsViewModel(analysis);
    private final BudgetViewModel budget = new BudgetViewModel(layers, quant, sensitivity, analysis);
    private boolean temporalRefreshPending;
    private final java.util.concurrent.atomic.AtomicReference<FmnistMetrics> fmnist = new java.util.concurrent.atomic.AtomicReference<>();
    private Path root;
    private Consumer<QuantViewModel.ImportResult> importHandler = r -> { };
    private final ReadOnlyObjectWrapper<ModelFolder.Loaded> model = new ReadOnlyObjectWrapper<>(this, "model");
    private final ReadOnlyStringWrapper title = new ReadOnlyStringWrapper(this, "title", "DiffQuant Studio");
    private final StringProperty status = new SimpleStringProperty(this, "status", "No model loaded");
    private final ObservableList<Path> recentModels = FXCollections.observableArrayList();
    private Consumer<ErrorReport> errorSink = r -> LOG.log(Level.WARNING, r.title() + ": " + r.subject() + ": " + r.message());

    public StudioViewModel(Path settingsFile, JobRunner jobs) {
        this.settingsFile = settingsFile;
        this.settings = StudioSettings.load(settingsFile);
        this.jobs = jobs;
        for (String s : settings.recentModels()) recentModels.add(Path.of(s));
        temporal.refreshRequestProperty().set(this::refreshTemporal);
        jobs.busyProperty().addListener((o, a, busy) -> {
            if (!busy && temporalRefreshPending) javafx.application.Platform.runLater(this::refreshTemporal);
        });
        addPlotSource(this::analysisPlots);
    }

    public LayerTableViewModel layers() { return layers; }
    public QuantViewModel quant() { return quant; }
    public AnalysisContext analysis() { return analysis; }
    public TemporalViewModel temporal() { return temporal; }
    public SensitivityViewModel sensitivity() { return sensitivity; }
    public DistributionsViewModel distributions() { return distributions; }
    public BudgetViewModel budget() { return budget; }
    /** The installation root (for the shipped classifier and model), or null. */
    public void setRoot(Path r) { root = r; }
    public Path root() { return root; }
    public GenerationViewModel generation() { return generation; }
    public JobRunner jobs() { return jobs; }
    public ReadOnlyObjectProperty<ModelFolder.Loaded> modelProperty() { return model.getReadOnlyProperty(); }
    public ModelFolder.Loaded model() { return model.get(); }
    public ReadOnlyStringProperty titleProperty() { return title.getReadOnlyProperty(); }
    public StringProperty statusProperty() { return status; }
    /** Most recent first. */
    public ObservableList<Path> recentModels() { return recentModels; }

    /** Where errors for the user go (the main window shows a dialog). */
    public void setErrorSink(Consumer<ErrorReport> sink) { this.errorSink = sink; }
    public void reportError(ErrorReport r) { errorSink.accept(r); }
    /** Where a resolved config import goes (the view shows its diff and asks before applying). */
    public void setImportHandler(Consumer<QuantViewModel.ImportResult> h) { importHandler = h; }

    // ------------------------------------------------------------------ settings

    public StudioSettings settings() { return settings; }
    public void updateSettings(java.util.function.UnaryOperator<StudioSettings> change) { settings = change.apply(settings); }

    /**
     * Remembers the window on close: its geometry and selected tab; a maximized window keeps the last normal geometry
     * (restored when it is un-maximized) and is remembered as maximized.
     */
    public void rememberWindow(double x, double y, double width, double height, boolean maximized, int selectedTab) {
        StudioSettings s = settings;
        settings = (maximized ? s.withWindow(s.x(), s.y(), s.width(), s.height(), true) : s.withWindow(x, y, width, height, false))
                .withSelectedTab(selectedTab);
    }

    /** Writes the settings file atomically; a failure is logged, not shown (the session goes on). */
    public void saveSettings() {
        if (settingsFile == null) return;
        try {
            settings.save(settingsFile);
        } catch (IOException | RuntimeException e) {
            LOG.log(Level.WARNING, "cannot write studio settings " + settingsFile + ": " + e.getMessage());
        }
    }

    /** Where the shipped model lives below the installation root. */
    public static final String SHIPPED_MODEL = "assets/dit-fmnist";

    /**
     * The model folder to open at start-up: the one asked for ({@code --model}), else the shipped
     * {@code <root>/assets/dit-fmnist} (root: the installation root, else the first folder from the working directory
     * upwards that has it) when it exists, else the last one opened when it still exists, else null (the window shows
     * the "Open model" prompt and {@link #startupMessage} says why).
     */
    public static Path startupModel(Path explicit, Path root, StudioSettings s) {
        if (explicit != null) return explicit;
        Path shipped = shippedModel(root);
        if (shipped != null) return shipped;
        if (s != null && s.lastModel() != null) {
            Path last = Path.of(s.lastModel());
            if (Files.isDirectory(last)) return last;
        }
        return null;
    }

    /**
     * The shipped dit-fmnist folder if it is installed (config.json present), else null: below the installation root when
     * one is given (bin/diffquant passes it), else in the first folder from the working directory upwards that has it.
     */
    public static Path shippedModel(Path root) {
        if (root != null) {
            Path p = root.resolve(SHIPPED_MODEL);
            return Files.isRegularFile(p.resolve(ModelFolder.CONFIG)) ? p : null;
        }
        for (Path d = Path.of("").toAbsolutePath(); d != null; d = d.getParent()) {
            Path p = d.resolve(SHIPPED_MODEL);
            if (Files.isRegularFile(p.resolve(ModelFolder.CONFIG))) return p;
        }
        return null;
    }

    /** What the empty window says when no model opened at start-up (the shipped model missing, where it was looked for). */
    public static String startupMessage(Path root) {
        if (shippedModel(root) != null) return "";
        String where = root != null ? root.resolve(SHIPPED_MODEL).toString()
                : Path.of("").toAbsolutePath().resolve(SHIPPED_MODEL) + " and the folders above";
        return "The shipped model " + SHIPPED_MODEL + " is not installed here (looked in " + where + "). Open any model folder instead.";
    }

    // ------------------------------------------------------------------ commands

    /**
     * Loads a model folder on the worker (never on the FX thread). On success the model, the layer table and the
     * generation panel switch to it and the folder is remembered; on failure the error (naming the file) goes to
     * the error sink and the current model stays. Returns the task, or null if it could not start.
     */
    public Task<ModelLoadTask.LoadedModel> openModel(Path folder) {
        if (folder == null) return null;
        if (jobs.isBusy()) {
            reportError(new ErrorReport("Cannot open model folder", folder.toString(),
                    "another job is running (" + jobs.current().getTitle() + "); cancel it first", null));
            return null;
        }
        ModelLoadTask task = new ModelLoadTask(folder);
        status.set("Loading " + folder + " ...");
        task.setOnSucceeded(e -> modelLoaded(folder, task.getValue()));
        task.setOnFailed(e -> {
            status.set("Could not open " + folder);
            reportError(ErrorReport.of("Cannot open model folder", folder.toString(), task.getException()));
        });
        task.setOnCancelled(e -> status.set("Loading " + folder + " cancelled"));
        return jobs.submit(task);
    }

    /** Test hook: what a successful load does, without the worker (the model is already in memory). */
    void modelLoadedForTest(Path folder, DiffusionModel m) {
        ModelFolder.Loaded l = new ModelFolder.Loaded(folder, m, folder.resolve(ModelFolder.DIT_WEIGHTS), Map.of());
        modelLoaded(folder, new ModelLoadTask.LoadedModel(l, io.diffquant.engine.quant.config.ModelIdentity.of(m,
                folder.getFileName().toString()), LayerTableViewModel.rowsOf(m)));
    }

    private void modelLoaded(Path folder, ModelLoadTask.LoadedModel lm) {
        ModelFolder.Loaded l = lm.loaded();
        DiffusionModel m = l.model();
        analysis.reset();
        temporal.reset();
        sensitivity.reset();
        distributions.reset();
        quant.setContext(new ModelContext(l.folder(), m, lm.identity()));
        model.set(l);
        layers.setRows(lm.rows(), m.parameterCount());
        generation.setModel(m);
        settings = settings.withOpenedModel(folder);
        recentModels.setAll(settings.recentModels().stream().map(Path::of).toList());
        saveSettings();
        restoreSession(lm.identity());
        title.set("DiffQuant Studio — " + folder.getFileName() + " (" + m.architecture() + ")");
        status.set(String.format(Locale.ROOT, "Loaded %s %s: %d layers, %,d parameters, %d×%d×%d%s", m.architecture(),
                folder.getFileName(), lm.rows().size(), m.parameterCount(), m.inChannels(), m.sampleSize(), m.sampleSize(),
                m.numClasses() > 0 ? ", " + m.numClasses() + " classes" : ", unconditional"));
    }

    /**
     * Generates side by side on the worker: FP32, the baseline and the current configuration (calibrating what is not
     * calibrated yet), with the generation panel's settings; null if it could not start.
     */
    public Task<GenerationOutcome> generate() {
        if (!canStart("Cannot generate")) return null;
        GenerationTask task;
        try {
            ModelContext c = quant.context();
            task = generation.createTask(quant, c != null && c.fmnistShaped() ? this::fmnistMetrics : null);
        } catch (RuntimeException e) {
            reportError(ErrorReport.of("Cannot generate", "generation settings", e));
            return null;
        }
        int n = generation.imageCountProperty().get();
        status.set("Generating " + n + " images ...");
        task.addEventHandler(javafx.concurrent.WorkerStateEvent.WORKER_STATE_SUCCEEDED, e -> {
            GenerationOutcome o = task.getValue();
            status.set(String.format(Locale.ROOT, "Generated %d images side by side in %d steps (%s)", n,
                    o.fp() == null ? 0 : o.fp().totalSteps(), o.backend()));
        });
        task.setOnFailed(e -> {
            status.set("Generation failed");
            reportError(ErrorReport.of("Generation failed", model.get() == null ? "" : model.get().folder().toString(), task.getException()));
        });
        task.setOnCancelled(e -> status.set("Generation cancelled (the frames so far stay)"));
        return jobs.submit(task);
    }

    /** Samples the FP32 model only (the quick look); null if it could not start. */
    public Task<GenerationResult> generateFp() {
        if (!canStart("Cannot generate")) return null;
        SamplingTask task;
        try {
            task = generation.createFpTask();
        } catch (RuntimeException e) {
            reportError(ErrorReport.of("Cannot generate", "generation settings", e));
            return null;
        }
        int n = task.request().batch();
        status.set("Sampling " + n + " images ...");
        task.setOnSucceeded(e -> status.set(String.format(Locale.ROOT, "Generated %d images in %d steps (%.1f s)", n,
                task.getValue().totalSteps(), task.getValue().elapsedNanos() / 1e9)));
        task.setOnFailed(e -> {
            status.set("Sampling failed");
            reportError(ErrorReport.of("Sampling failed", model.get() == null ? "" : model.get().folder().toString(), task.getException()));
        });
        task.setOnCancelled(e -> {
            GenerationResult r = generation.fpResultProperty().get();
            status.set("Sampling cancelled" + (r == null ? "" : " after " + r.stepsDone() + " of " + r.totalSteps() + " steps"));
        });
        return jobs.submit(task);
    }

    /** Calibrates the current configuration (the layer table on its method) on the worker; null if it could not start. */
    public Task<QuantConfig> calibrateCurrent() {
        if (!canStart("Cannot calibrate")) return null;
        CalibrationTask task;
        try {
            QuantViewModel.Target t = quant.currentTarget();
            task = new CalibrationTask(t, quant.request(t));
        } catch (RuntimeException e) {
            reportError(ErrorReport.of("Cannot calibrate", layers.method().label(), e));
            return null;
        }
        status.set("Calibrating " + task.target().method().label() + " ...");
        long t0 = System.nanoTime();
        task.setOnSucceeded(e -> {
            quant.remember(task.target(), task.getValue());
            status.set(String.format(Locale.ROOT, "Calibrated %s in %.1f s", task.target().method().label(), (System.nanoTime() - t0) / 1e9));
        });
        task.setOnFailed(e -> {
            status.set("Calibration failed");
            reportError(ErrorReport.of("Calibration failed", task.target().method().label(), task.getException()));
        });
        task.setOnCancelled(e -> status.set("Calibration cancelled"));
        return jobs.submit(task);
    }

    /** Applies a method preset to the whole table (one undoable edit); errors (bad options) go to the error sink. */
    public boolean applyPreset(MethodChoice m) {
        try {
            int n = quant.applyPreset(m);
            status.set("Preset " + m.label() + " applied: " + n + " layer" + (n == 1 ? "" : "s") + " changed");
            return true;
        } catch (RuntimeException e) {
            reportError(ErrorReport.of("Cannot apply preset", m.label(), e));
            return false;
        }
    }

    /** Reads a config file on the worker and hands the resolved import (with its diff) to the import handler. */
    public Task<QuantConfig> importConfig(Path file) {
        if (!canStart("Cannot import config")) return null;
        Task<QuantConfig> task = new Task<>() {
            { updateTitle("Reading " + file.getFileName()); }
            @Override protected QuantConfig call() throws Exception {
                updateProgress(-1, 1);
                updateMessage("Reading " + file + " ...");
                return QuantConfigCodec.read(file);
            }
        };
        task.setOnSucceeded(e -> {
            try {
                QuantViewModel.ImportResult r = quant.resolveImport(file, task.getValue());
                status.set("Read " + file.getFileName() + ": " + r.diff().summary());
                importHandler.accept(r);
            } catch (IOException | RuntimeException ex) {
                reportError(ErrorReport.of("Cannot import config", file.toString(), ex));
            }
        });
        task.setOnFailed(e -> reportError(ErrorReport.of("Cannot import config", file.toString(), task.getException())));
        return jobs.submit(task);
    }

    /** Applies a resolved import (after the user saw its diff). */
    public void applyImport(QuantViewModel.ImportResult r) {
        try {
            int n = quant.applyImport(r);
            status.set("Imported " + r.file().getFileName() + ": " + n + " layer" + (n == 1 ? "" : "s") + " changed");
        } catch (RuntimeException e) {
            reportError(ErrorReport.of("Cannot import config", r.file().toString(), e));
        }
    }

    /** Extra plot sources of the panels (distributions, temporal, sensitivity): each gives plots built from its data now. */
    private final java.util.List<java.util.function.Supplier<java.util.List<Exporter.Plot>>> plotSources = new java.util.ArrayList<>();

    public void addPlotSource(java.util.function.Supplier<java.util.List<Exporter.Plot>> source) { plotSources.add(source); }

    /** The plots an export writes now: the generation panel's, then those of the other panels. */
    public java.util.List<Exporter.Plot> exportPlots() {
        java.util.List<Exporter.Plot> out = new java.util.ArrayList<>(generation.plots());
        for (var s : plotSources) {
            try {
                out.addAll(s.get());
            } catch (RuntimeException e) {
                LOG.log(Level.WARNING, "plot source failed: " + e.getMessage(), e);
            }
        }
        return out;
    }

    /**
     * Exports the current configuration (calibrating it first when needed), its checkpoint, the images, the plots and
     * the report into a folder, on the worker; null if it could not start.
     */
    public Task<Exporter.Summary> exportAll(Path dir, Exporter.Options options) {
        if (!canStart("Cannot export")) return null;
        Exporter ex;
        try {
            QuantViewModel.Target t = quant.currentTarget();
            ex = new Exporter(quant.context(), t, quant.request(t), quant.cached(t), generation.outcomeProperty().get(), exportPlots(), dir, options);
        } catch (RuntimeException e) {
            reportError(ErrorReport.of("Cannot export", dir.toString(), e));
            return null;
        }
        QuantViewModel.Target target = quant.currentTarget();
        Task<Exporter.Summary> task = new Task<>() {
            { updateTitle("Exporting to " + dir.getFileName()); }
            @Override protected Exporter.Summary call() throws Exception {
                return ex.run(this::isCancelled, (f, m) -> {
                    updateProgress(f, 1);
                    updateMessage(m);
                });
            }
            @Override protected void cancelled() { ex.cancel(); }
        };
        status.set("Exporting to " + dir + " ...");
        task.setOnSucceeded(e -> {
            Exporter.Summary r = task.getValue();
            if (r.config() != null && quant.cached(target) == null) quant.remember(target, r.config());
            status.set("Exported " + r.files().size() + " files to " + r.dir());
        });
        task.setOnFailed(e -> {
            status.set("Export failed");
            reportError(ErrorReport.of("Export failed", dir.toString(), task.getException()));
        });
        task.setOnCancelled(e -> status.set("Export cancelled (files written so far stay)"));
        return jobs.submit(task);
    }

    // ------------------------------------------------------------------ session

    /**
     * The session to remember: the model's weights hash, the method and the table's overrides on it (command-line
     * form), the baseline, the method bar's bits and family, and the generation settings.
     */
    public com.fasterxml.jackson.databind.node.ObjectNode captureSession() {
        var o = io.diffquant.engine.io.Json.object();
        ModelContext c = quant.context();
        if (c != null) {
            o.put("model", c.folder() == null ? "" : c.folder().toAbsolutePath().normalize().toString());
            o.put("weights_sha256", c.identity().weightsSha256());
            try {
                QuantViewModel.Target t = quant.currentTarget();
                o.set("method", methodJson(t.method()));
                var a = o.putArray("overrides");
                for (var ov : t.overrides()) a.add(QuantViewModel.overrideText(ov));
            } catch (RuntimeException e) {
                LOG.log(Level.WARNING, "session: the configuration cannot be remembered: " + e.getMessage());
            }
        }
        o.set("baseline", methodJson(quant.baselineProperty().get()));
        o.put("w_bits", quant.wBitsProperty().get());
        o.put("a_bits", quant.aBitsProperty().get());
        o.put("format_family", quant.formatFamilyProperty().get());
        var g = o.putObject("generation");
        g.put("seed", generation.seedProperty().get());
        g.put("images", generation.imageCountProperty().get());
        g.put("labels", generation.labelsProperty().get());
        g.put("steps", generation.stepsProperty().get());
        g.put("cfg", generation.cfgScaleProperty().get());
        g.put("baseline_on", generation.baselineEnabledProperty().get());
        g.put("current_on", generation.currentEnabledProperty().get());
        g.put("backend", generation.backendProperty().get());
        return o;
    }

    private static com.fasterxml.jackson.databind.node.ObjectNode methodJson(MethodChoice m) {
        var o = io.diffquant.engine.io.Json.object();
        o.put("preset", m.preset());
        var opts = o.putObject("options");
        m.options().forEach((k, v) -> opts.set(k, io.diffquant.engine.io.Json.mapper().valueToTree(v)));
        return o;
    }

    private static MethodChoice methodFrom(com.fasterxml.jackson.databind.JsonNode n) {
        Map<String, Object> opts = new java.util.LinkedHashMap<>();
        var on = n.get("options");
        if (on != null) on.properties().forEach(e -> {
            var v = e.getValue();
            opts.put(e.getKey(), v.isInt() || v.isLong() ? (Object) v.asInt() : v.isNumber() ? (Object) v.asDouble()
                    : v.isBoolean() ? (Object) v.asBoolean() : v.asText());
        });
        return new MethodChoice(n.get("preset").asText(), opts);
    }

    /** Remembers the session in the settings (saved with them). */
    public void rememberSession() { settings = settings.withSession(captureSession()); }

    /**
     * Restores the remembered session after a model is loaded: generation settings, bits and baseline always; the
     * method and the layer overrides only for the same weights. A session that does not apply any more is skipped with
     * a log line (never a failed start).
     */
    void restoreSession(io.diffquant.engine.quant.config.ModelIdentity id) {
        var s = settings.session();
        if (s == null) return;
        try {
            var g = s.get("generation");
            if (g != null) {
                generation.seedProperty().set(g.path("seed").asInt(generation.seedProperty().get()));
                generation.imageCountProperty().set(Math.max(1, Math.min(GenerationViewModel.MAX_IMAGES, g.path("images").asInt(8))));
                generation.labelsProperty().set(g.path("labels").asText(""));
                generation.stepsProperty().set(Math.max(1, Math.min(GenerationViewModel.MAX_STEPS, g.path("steps").asInt(25))));
                if (generation.classConditionalProperty().get()) generation.cfgScaleProperty().set(Math.max(1, g.path("cfg").asDouble(1.5)));
                generation.baselineEnabledProperty().set(g.path("baseline_on").asBoolean(true));
                generation.currentEnabledProperty().set(g.path("current_on").asBoolean(true));
                String be = g.path("backend").asText("jvm");
                if (io.diffquant.engine.backend.ExecutionBackends.ids().contains(be)) generation.backendProperty().set(be);
            }
            if (s.has("w_bits")) quant.wBitsProperty().set(Math.max(2, Math.min(8, s.get("w_bits").asInt(4))));
            if (s.has("a_bits")) quant.aBitsProperty().set(Math.max(2, Math.min(8, s.get("a_bits").asInt(8))));
            if (s.has("format_family")) quant.formatFamilyProperty().set(s.get("format_family").asText("default"));
            if (s.has("baseline")) quant.baselineProperty().set(methodFrom(s.get("baseline")));
            if (s.has("method") && id.weightsSha256() != null && id.weightsSha256().equals(s.path("weights_sha256").asText())) {
                MethodChoice m = methodFrom(s.get("method"));
                java.util.List<io.diffquant.engine.quant.spec.LayerOverride> ov = new java.util.ArrayList<>();
                int i = 0;
                for (var t : s.path("overrides")) ov.add(io.diffquant.engine.quant.spec.LayerOverride.parse(t.asText(), "session override #" + ++i));
                layers.replaceSpecs(quant.specsFor(m, ov), "restore last session", m);
                layers.history().clear();
            }
        } catch (RuntimeException e) {
            LOG.log(Level.WARNING, "the last session could not be restored: " + e.getMessage());
        }
    }

    // ------------------------------------------------------------------ analyses

    /** Runs engine work on the worker with progress and cancel; the result goes to {@code done} on the FX thread. */
    public <T> Task<T> runWork(String title, WorkTask.Work<T> work, java.util.function.Consumer<T> done) {
        if (!canStart(title)) return null;
        WorkTask<T> task = new WorkTask<>(title, work, null);
        status.set(title + " ...");
        long t0 = System.nanoTime();
        task.setOnSucceeded(e -> {
            try {
                done.accept(task.getValue());
                status.set(String.format(Locale.ROOT, "%s: done in %.1f s", title, (System.nanoTime() - t0) / 1e9));
            } catch (RuntimeException ex) {
                reportError(ErrorReport.of(title + " failed", "", ex));
            }
        });
        task.setOnFailed(e -> {
            status.set(title + " failed");
            reportError(ErrorReport.of(title + " failed", model.get() == null ? "" : model.get().folder().toString(), task.getException()));
        });
        task.setOnCancelled(e -> status.set(title + " cancelled"));
        return jobs.submit(task);
    }

    /** Builds the work on the FX thread (input errors reported), then runs it. */
    private <T> Task<T> startWork(String title, java.util.function.Supplier<WorkTask.Work<T>> make, java.util.function.Consumer<T> done) {
        if (!canStart(title)) return null;
        WorkTask.Work<T> w;
        try {
            w = make.get();
        } catch (RuntimeException e) {
            reportError(ErrorReport.of("Cannot start: " + title, "", e));
            return null;
        }
        return runWork(title, w, done);
    }

    /**
     * Calibrates (where needed) and evaluates the temporal panel's shown methods and the current configuration: temporal
     * feature error, mismatch and trajectory deviation.
     */
    public Task<TemporalViewModel.Outcome> calibrateTemporal() {
        return startWork("Temporal analysis", () -> temporalWork(temporal.methodTargets(true), true), temporal::accept);
    }

    private WorkTask.Work<TemporalViewModel.Outcome> temporalWork(java.util.List<QuantViewModel.Target> targets, boolean trajectories) {
        Map<QuantViewModel.Target, QuantConfig> configs = new java.util.LinkedHashMap<>();
        Map<QuantViewModel.Target, io.diffquant.engine.quant.preset.CalibrationJob.Request> requests = new java.util.LinkedHashMap<>();
        for (QuantViewModel.Target t : targets) {
            configs.put(t, quant.cached(t));
            requests.put(t, quant.request(t));
        }
        return temporal.work(targets, configs, requests, trajectories, quant.context().model());
    }

    /**
     * Re-evaluates the current configuration on the temporal panel when it is calibrated (one pass of the Temporal
     * Information Block); waits for the running job if there is one.
     */
    public void refreshTemporal() {
        if (quant.context() == null) return;
        QuantViewModel.Target t;
        try {
            t = temporal.currentTarget();
        } catch (RuntimeException e) {
            return;
        }
        TemporalViewModel.Evaluation noMismatch = temporal.currentWithoutMismatch();
        boolean evaluate = !temporal.snapshot().byKey().containsKey(t.key()) && quant.cached(t) != null && t.quantizes();
        if (!evaluate && noMismatch == null) {
            temporalRefreshPending = false;
            return;
        }
        if (jobs.isBusy()) {
            temporalRefreshPending = true;
            return;
        }
        temporalRefreshPending = false;
        if (evaluate) {
            // the re-plot first (one TIB pass), then the mismatch in a follow-up job
            var w = temporal.work(java.util.List.of(t), Map.of(t, quant.cached(t)), Map.of(), false, false, quant.context().model());
            runWork("Temporal features of the current config", w, o -> {
                temporal.accept(o);
                javafx.application.Platform.runLater(this::refreshTemporal);
            });
        } else {
            runWork("Temporal mismatch of the current config", temporal.mismatchWork(noMismatch, quant.cached(t), quant.context().model()),
                    temporal::accept);
        }
    }

    /** Applies the temporal switches to the configuration (undoable); errors go to the error sink. */
    public void applyTemporalSwitches() {
        if (temporal.syncing() || quant.context() == null) return;
        try {
            temporal.applySwitches();
            status.set("Method " + layers.method().label());
        } catch (RuntimeException e) {
            reportError(ErrorReport.of("Cannot apply the temporal switches", temporal.switchesChoice().label(), e));
        }
    }

    public Task<io.diffquant.engine.analysis.PerturbationSensitivity.Result> runPerturbation() {
        ModelContext c = quant.context();
        return startWork("Perturbation sensitivity", () -> sensitivity.perturbationWork(c.model(), c.fmnistShaped() ? this::fmnistMetrics : null),
                r -> sensitivity.perturbationProperty().set(r));
    }

    public Task<io.diffquant.engine.analysis.LayerSensitivity.Result> runLayerSensitivity() {
        return startWork("Layer sensitivity", () -> sensitivity.layerWork(quant.context().model()), r -> sensitivity.layerResultProperty().set(r));
    }

    public Task<DistributionsViewModel.Result> runDistributions() {
        return startWork("Histograms", () -> distributions.work(quant.context().model()), r -> distributions.resultProperty().set(r));
    }

    /** Computes a bit-budget proposal; {@code show} gets it (with its diff) on the FX thread. */
    public Task<BudgetViewModel.Proposal> runBudget(java.util.function.Consumer<BudgetViewModel.Proposal> show) {
        ModelContext c = quant.context();
        return startWork("Bit budget", () -> budget.strategyProperty().get() == BudgetViewModel.Strategy.QDIT ? budget.qditWork(c.model())
                : budget.greedyWork(c.model()), p -> show.accept(budget.withDiff(p)));
    }

    /** Plots of the analysis panels for an export, built from their results now. */
    private java.util.List<Exporter.Plot> analysisPlots() {
        java.util.List<Exporter.Plot> out = new java.util.ArrayList<>();
        var err = temporal.errorChartSeries();
        if (!err.isEmpty()) {
            String y = "temporal feature error (" + temporal.metricProperty().get() + ", " + temporal.featureProperty().get() + ")";
            out.add(new Exporter.Plot("temporal-error", "Temporal feature error per timestep", () -> {
                var c = io.diffquant.app.gui.charts.StudioCharts.lines("Temporal feature error per timestep", "timestep t", y, true);
                io.diffquant.app.gui.charts.StudioCharts.setSeries(c, err);
                return c;
            }));
        }
        var tr = temporal.trajectorySeries();
        if (!tr.isEmpty()) out.add(new Exporter.Plot("trajectory-deviation", "Trajectory deviation per step", () -> {
            var c = io.diffquant.app.gui.charts.StudioCharts.lines("Trajectory deviation ||x_t^q − x_t^FP||", "timestep t", "L2 distance", false);
            io.diffquant.app.gui.charts.StudioCharts.setSeries(c, tr);
            return c;
        }));
        var mm = temporal.mismatch();
        if (mm != null) {
            double[] ts = temporal.timestepAxis();
            String[] rows = new String[ts.length];
            for (int i = 0; i < ts.length; i++) rows[i] = Long.toString((long) ts[i]);
            double[][] d = mm.distance();
            out.add(new Exporter.Plot("mismatch", "Temporal mismatch", () -> io.diffquant.app.gui.charts.StudioCharts.heatmap(
                    String.format(Locale.ROOT, "Mismatch of %s (%s): rate %.1f %%", temporal.mismatchOfProperty().get(), mm.feature(), 100 * mm.rate()),
                    "FP timestep t'", "quantized at t", d, rows, ts, "||ê(t) − e(t')||")));
        }
        double[][] sel = temporal.selectionMap();
        if (sel != null) {
            var names = temporal.selectionFeatures().toArray(new String[0]);
            double[] ts = temporal.timestepAxis();
            out.add(new Exporter.Plot("selection-map", "Selection map", () -> io.diffquant.app.gui.charts.StudioCharts.heatmap(
                    "Disturbance-aware selection (1 = cache, 0 = TIB)", "timestep t", "feature", sel, names, ts.length == sel[0].length ? ts : null, "cache")));
        }
        var ps = sensitivity.perturbationSeries();
        if (!ps.isEmpty()) {
            String y = sensitivity.perturbationMetric();
            out.add(new Exporter.Plot("perturbation", "Perturbation sensitivity", () -> {
                var c = io.diffquant.app.gui.charts.StudioCharts.lines("Perturbation: temporal vs non-temporal features", "λ (log)", y, false, true);
                io.diffquant.app.gui.charts.StudioCharts.setSeries(c, ps);
                return c;
            }));
        }
        var lr = sensitivity.layerResultProperty().get();
        if (lr != null) {
            var names = sensitivity.rankedLayers(40);
            var vals = sensitivity.rankedErrors(40);
            out.add(new Exporter.Plot("layer-sensitivity", "Per-layer sensitivity", () -> io.diffquant.app.gui.charts.StudioCharts.bars(
                    "Per-layer sensitivity (" + lr.probes().getFirst().describe() + ")", "layer", "relative output error", names, vals, true)));
            int[] ts = lr.timesteps();
            double[] tsd = new double[ts.length];
            for (int i = 0; i < ts.length; i++) tsd[i] = ts[i];
            String[] layerNames = lr.layers().toArray(new String[0]);
            out.add(new Exporter.Plot("layer-timestep", "Layer x timestep sensitivity", () -> io.diffquant.app.gui.charts.StudioCharts.heatmap(
                    "Layer x timestep sensitivity", "timestep t", "layer", lr.relativeError(), layerNames, tsd, "relative error")));
        }
        var dr = distributions.resultProperty().get();
        if (dr != null) {
            boolean log = distributions.logCountsProperty().get();
            if (dr.weightInt() != null) {
                out.add(histogramPlot("weights-int", dr.weightInt(), log));
                out.add(histogramPlot("weights-fp", dr.weightFp(), log));
            }
            var ai = distributions.activation(false);
            var af = distributions.activation(true);
            if (ai != null) {
                out.add(histogramPlot("activations-int", ai, log));
                out.add(histogramPlot("activations-fp", af, log));
            }
        }
        return out;
    }

    private static Exporter.Plot histogramPlot(String stem, io.diffquant.engine.analysis.Histograms.Histogram h, boolean log) {
        String title = h.layer() + " " + h.tensor() + (Float.isNaN(h.timestep()) ? "" : " at t = " + (int) h.timestep()) + " · " + h.format();
        return new Exporter.Plot(stem, title, () -> io.diffquant.app.gui.charts.StudioCharts.histogram(title, h.tensor() + " value",
                edges(h), h.counts(), toDouble(h.grid()), h.format(), log));
    }

    /** The bin edges of a histogram. */
    public static double[] edges(io.diffquant.engine.analysis.Histograms.Histogram h) {
        double[] e = new double[h.bins() + 1];
        for (int b = 0; b <= h.bins(); b++) e[b] = h.edge(b);
        return e;
    }

    public static double[] toDouble(float[] f) {
        double[] d = new double[f.length];
        for (int i = 0; i < f.length; i++) d[i] = f[i];
        return d;
    }

    /** The FID-FMNIST feature network (shipped classifier), loaded once on the worker. */
    public FmnistMetrics fmnistMetrics() throws IOException {
        FmnistMetrics m = fmnist.get();
        if (m != null) return m;
        Path dir = root != null ? root.resolve(FmnistMetrics.ASSET_DIR) : null;
        m = dir != null && Files.isDirectory(dir) ? FmnistMetrics.load(dir) : FmnistMetrics.loadDefault();
        fmnist.set(m);
        return m;
    }

    /** Submits a task built elsewhere (export, analyses) if no job runs; reports why not otherwise. */
    public <T> Task<T> submit(String what, Task<T> task) {
        if (!canStart(what)) return null;
        return jobs.submit(task);
    }

    private boolean canStart(String what) {
        if (jobs.isBusy()) {
            reportError(new ErrorReport(what, "", "another job is running (" + jobs.current().getTitle() + "); cancel it first", null));
            return false;
        }
        if (model.get() == null) {
            reportError(new ErrorReport(what, "", "no model loaded: open a model folder first", null));
            return false;
        }
        return true;
    }

    /** Cancels the running job, if any. */
    public boolean cancelJob() { return jobs.cancelCurrent(); }
}
