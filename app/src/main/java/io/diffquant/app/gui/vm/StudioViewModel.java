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
    }

    public LayerTableViewModel layers() { return layers; }
    public QuantViewModel quant() { return quant; }
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

    /** Writes the settings file atomically; a failure is logged, not shown (the session goes on). */
    public void saveSettings() {
        if (settingsFile == null) return;
        try {
            settings.save(settingsFile);
        } catch (IOException | RuntimeException e) {
            LOG.log(Level.WARNING, "cannot write studio settings " + settingsFile + ": " + e.getMessage());
        }
    }

    /**
     * The model folder to open at start-up: the one asked for ({@code --model}), else the shipped
     * {@code <root>/assets/dit-fmnist} when it exists, else the last one opened when it still exists, else null
     * (the window shows the "Open model" prompt).
     */
    public static Path startupModel(Path explicit, Path root, StudioSettings s) {
        if (explicit != null) return explicit;
        if (root != null) {
            Path shipped = root.resolve("assets").resolve("dit-fmnist");
            if (Files.isRegularFile(shipped.resolve(ModelFolder.CONFIG))) return shipped;
        }
        if (s != null && s.lastModel() != null) {
            Path last = Path.of(s.lastModel());
            if (Files.isDirectory(last)) return last;
        }
        return null;
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

    private void modelLoaded(Path folder, ModelLoadTask.LoadedModel lm) {
        ModelFolder.Loaded l = lm.loaded();
        DiffusionModel m = l.model();
        quant.setContext(new ModelContext(l.folder(), m, lm.identity()));
        model.set(l);
        layers.setRows(lm.rows(), m.parameterCount());
        generation.setModel(m);
        settings = settings.withOpenedModel(folder);
        recentModels.setAll(settings.recentModels().stream().map(Path::of).toList());
        saveSettings();
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
