package io.diffquant.app.gui.vm;

import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.quant.config.ModelIdentity;

import java.nio.file.Path;

/**
 * The model the studio works on: its folder, the loaded denoiser and its identity (name + weight and structure hashes,
 * written into every config it makes).
 */
public record ModelContext(Path folder, DiffusionModel model, ModelIdentity identity) {
    public ModelContext {
        if (model == null || identity == null) throw new IllegalArgumentException("model context needs a model and its identity");
    }

    /** Whether the model makes 28 x 28 x 1 images (the FID-FMNIST metric applies). */
    public boolean fmnistShaped() { return model.inChannels() == 1 && model.sampleSize() == 28; }
}
