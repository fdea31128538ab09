package io.diffquant.engine.quant.export;

import com.fasterxml.jackson.databind.JsonNode;
import io.diffquant.engine.io.Json;
import io.diffquant.engine.io.JsonException;
import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.model.dit.DiT;
import io.diffquant.engine.model.dit.DiTConfig;
import io.diffquant.engine.model.unet.UNet2DConfig;
import io.diffquant.engine.model.unet.UNet2DModel;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/** Model config.json text to and from models, for checkpoints that carry their model's config. */
public final class ModelFactory {
    private ModelFactory() {}

    /** The config.json text of a model. */
    public static String configJson(DiffusionModel m) {
        if (m instanceof DiT d) return d.config().toJson();
        if (m instanceof UNet2DModel u) return u.config().toJson();
        throw new IllegalArgumentException("no config.json writer for " + m.architecture());
    }

    /** A zero-weight model from config.json text. */
    public static DiffusionModel create(String configJson, String source) throws IOException {
        JsonNode root = Json.parse(configJson, source).node();
        String cls = root.path("_class_name").asText("");
        if ("DiT".equals(cls)) {
            Path tmp = Files.createTempFile("diffquant-model-config", ".json");
            try {
                Files.writeString(tmp, configJson);
                return new DiT(DiTConfig.fromJson(tmp));
            } finally {
                Files.deleteIfExists(tmp);
            }
        }
        if ("UNet2DModel".equals(cls)) return new UNet2DModel(UNet2DConfig.fromJson(configJson, source));
        throw new JsonException(source, "$._class_name", "unsupported model class \"" + cls + "\" (expected DiT or UNet2DModel)");
    }
}
