package io.diffquant.app.gui.vm;

import io.diffquant.engine.model.DiffusionModel;
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

    /** Samples the FP32 model with the generation panel's settings on the worker; null if it could not start. */
    public Task<GenerationResult> generate() {
        if (jobs.isBusy()) {
            reportError(new ErrorReport("Cannot generate", "", "another job is running (" + jobs.current().getTitle()
                    + "); cancel it first", null));
            return null;
        }
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

    /** Cancels the running job, if any. */
    public boolean cancelJob() { return jobs.cancelCurrent(); }
}
