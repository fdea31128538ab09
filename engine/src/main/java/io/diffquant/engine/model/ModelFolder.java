package io.diffquant.engine.model;

import io.diffquant.engine.io.Json;
import io.diffquant.engine.io.JsonView;
import io.diffquant.engine.io.SafetensorsReader;
import io.diffquant.engine.io.SafetensorsWriter;
import io.diffquant.engine.model.dit.DiT;
import io.diffquant.engine.model.dit.DiTConfig;
import io.diffquant.engine.model.unet.UNet2DConfig;
import io.diffquant.engine.model.unet.UNet2DModel;
import io.diffquant.engine.tensor.Tensor;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.Map;

/**
 * Model folders: a DiT folder (config.json with "_class_name": "DiT" + model.safetensors, official names) or a
 * diffusers UNet2DModel folder (config.json + diffusion_pytorch_model.safetensors). The one place that maps a
 * folder to a model (facebookresearch/DiT and diffusers naming).
 */
public final class ModelFolder {
    public static final String CONFIG = "config.json";
    public static final String DIT_WEIGHTS = "model.safetensors";
    public static final String UNET_WEIGHTS = "diffusion_pytorch_model.safetensors";

    private ModelFolder() {}

    /** A loaded model and where it came from. */
    public record Loaded(Path folder, DiffusionModel model, Path weightsFile, Map<String, String> dtypes) {
        /** sha256 of the weights file (computed on demand: it reads the whole file). */
        public String weightsSha256() throws IOException { return sha256(weightsFile); }
    }

    /** Builds the model described by {@code folder/config.json} with zero weights. */
    public static DiffusionModel create(Path folder) throws IOException {
        Path cfg = folder.resolve(CONFIG);
        if (!Files.isRegularFile(cfg)) throw new NoSuchFileException(cfg.toString(), null,
                "not a model folder: no config.json (a DiT folder or a diffusers UNet2DModel folder is expected)");
        JsonView v = Json.read(cfg);
        String cls = v.optString("_class_name", null);
        if (cls == null) throw v.error("_class_name", "missing: expected \"DiT\" or \"UNet2DModel\"");
        return switch (cls) {
            case "DiT" -> new DiT(DiTConfig.fromJson(cfg));
            case "UNet2DModel" -> new UNet2DModel(UNet2DConfig.fromJson(cfg));
            default -> throw v.error("_class_name", "unsupported model class \"" + cls + "\": expected \"DiT\" or \"UNet2DModel\"");
        };
    }

    public static Path weightsFile(Path folder, DiffusionModel model) {
        return folder.resolve(model instanceof DiT ? DIT_WEIGHTS : UNET_WEIGHTS);
    }

    /**
     * Loads config and weights; every error names the file (and tensor). Memory: the FP32 size of the weights is checked
     * against the heap before the model is allocated ({@link MemoryBudget#require}), then the mapped file is copied
     * tensor by tensor into the model's own parameters ({@link MappedWeights#loadInPlace}), so the heap holds the
     * weights once. A UNet2DModel file with the deprecated attention names (query/key/value/proj_attn) goes through
     * {@link UNet2DModel#loadWeights}, which renames them.
     */
    public static Loaded load(Path folder) throws IOException {
        Path cfg = folder.resolve(CONFIG);
        if (!Files.isRegularFile(cfg)) throw new NoSuchFileException(cfg.toString(), null,
                "not a model folder: no config.json (a DiT folder or a diffusers UNet2DModel folder is expected)");
        String cls = Json.read(cfg).optString("_class_name", null);
        if (!"DiT".equals(cls) && !"UNet2DModel".equals(cls)) create(folder);   // throws the config error
        Path wf = folder.resolve("DiT".equals(cls) ? DIT_WEIGHTS : UNET_WEIGHTS);
        if (!Files.isRegularFile(wf)) throw new NoSuchFileException(wf.toString(), null,
                "weights file missing (" + cls + " folders hold " + wf.getFileName() + ")");
        Map<String, String> dtypes = new java.util.LinkedHashMap<>();
        DiffusionModel model;
        try (SafetensorsReader r = SafetensorsReader.open(wf)) {
            MemoryBudget.require(MappedWeights.float32Bytes(r), cls + " " + folder);
            model = create(folder);
            for (String n : r.names()) dtypes.put(n, r.info(n).dtype().name());
            boolean legacy = model instanceof UNet2DModel && r.names().stream().anyMatch(n -> n.contains(".attentions.")
                    && (n.contains(".query.") || n.contains(".key.") || n.contains(".value.") || n.contains(".proj_attn.")));
            if (legacy) ((UNet2DModel) model).loadWeights(r.readAllFloat(), wf.toString());
            else MappedWeights.loadInPlace(model.stateDict(), r, model.architecture());
        }
        return new Loaded(folder, model, wf, dtypes);
    }

    /** Writes config.json and the weights (F32) atomically into {@code folder}. */
    public static void save(DiffusionModel model, Object configJson, Path folder, Map<String, String> metadata) throws IOException {
        Files.createDirectories(folder);
        SafetensorsWriter w = new SafetensorsWriter();
        if (metadata != null) metadata.forEach(w::metadata);
        for (Map.Entry<String, Tensor> e : model.stateDict().entrySet()) w.add(e.getKey(), e.getValue());
        w.write(weightsFile(folder, model));
        Json.write(folder.resolve(CONFIG), configJson);
    }

    public static String sha256(Path file) throws IOException {
        try (InputStream in = Files.newInputStream(file)) {
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            byte[] buf = new byte[1 << 20];
            for (int n; (n = in.read(buf)) > 0; ) md.update(buf, 0, n);
            return HexFormat.of().formatHex(md.digest());
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
