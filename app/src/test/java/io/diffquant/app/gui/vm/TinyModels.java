package io.diffquant.app.gui.vm;

import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.model.Layer;
import io.diffquant.engine.model.dit.DiT;
import io.diffquant.engine.model.dit.DiTConfig;
import io.diffquant.engine.quant.config.ModelIdentity;
import io.diffquant.engine.tensor.Tensor;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;

/** Tiny random models for fast GUI tests: a class-conditional DiT on 28x28x1 (the Fashion-MNIST shape). */
public final class TinyModels {
    private TinyModels() {}

    /** 28x28x1, patch 4 (49 tokens), hidden 32, depth 2, 2 heads, 10 classes, eps only; weights N(0, 0.05). */
    public static DiTConfig config() { return new DiTConfig(28, 4, 1, 32, 2, 2, 2.0, 0.1, 10, false); }

    public static DiT dit(long seed) {
        DiT m = new DiT(config());
        Random r = new Random(seed);
        Map<String, Tensor> sd = new LinkedHashMap<>();
        for (var e : m.stateDict().entrySet()) {
            Tensor t = e.getValue().copy();
            if (!e.getKey().equals("pos_embed")) for (int i = 0; i < t.size(); i++) t.data()[i] = (float) (r.nextGaussian() * 0.05);
            sd.put(e.getKey(), t);
        }
        m.loadWeights(sd, "random(" + seed + ")");
        return m;
    }

    /** Writes a tiny DiT folder (config.json + model.safetensors) and returns it. */
    public static Path ditFolder(Path dir, long seed) throws IOException {
        DiT m = dit(seed);
        Files.createDirectories(dir);
        io.diffquant.engine.model.ModelFolder.save(m, io.diffquant.engine.io.Json.mapper().readTree(config().toJson()), dir, Map.of());
        return dir;
    }

    public static ModelContext context(DiffusionModel m) { return new ModelContext(Path.of("tiny"), m, ModelIdentity.of(m, "tiny")); }

    /** Whether any layer of the model has a hook attached. */
    public static boolean hooked(DiffusionModel m) {
        for (Layer l : m.layers().all()) if (!l.hooks().isEmpty()) return true;
        return false;
    }
}
