package io.diffquant.app.gui.vm;

import io.diffquant.engine.model.ModelFolder;
import io.diffquant.engine.quant.config.ModelIdentity;
import javafx.concurrent.Task;

import java.nio.file.Path;
import java.util.List;

/**
 * Loads a model folder ({@link ModelFolder#load(Path)}: config.json + safetensors) and builds its layer-table rows,
 * off the FX thread. Loading is one engine call: progress is indeterminate and a cancel discards the result.
 */
public final class ModelLoadTask extends Task<ModelLoadTask.LoadedModel> {
    /** A loaded model, its identity (weight hashes, for configs) and its table rows. */
    public record LoadedModel(ModelFolder.Loaded loaded, ModelIdentity identity, List<LayerRow> rows) {}

    private final Path folder;

    public ModelLoadTask(Path folder) {
        this.folder = folder;
        updateTitle("Loading " + folder.getFileName());
    }

    public Path folder() { return folder; }

    @Override protected LoadedModel call() throws Exception {
        updateProgress(-1, 1);
        updateMessage("Loading model " + folder + " ...");
        ModelFolder.Loaded l = ModelFolder.load(folder);
        updateMessage("Hashing the weights of " + folder.getFileName() + " ...");
        ModelIdentity id = ModelIdentity.of(l.model(), folder.toAbsolutePath().normalize().getFileName().toString());
        updateMessage("Reading the layers of " + folder.getFileName() + " ...");
        return new LoadedModel(l, id, LayerTableViewModel.rowsOf(l.model()));
    }
}
