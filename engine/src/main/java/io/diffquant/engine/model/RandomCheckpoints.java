package io.diffquant.engine.model;

import io.diffquant.engine.io.AtomicFiles;
import io.diffquant.engine.io.DType;
import io.diffquant.engine.io.SafetensorsWriter;
import io.diffquant.engine.model.dit.DiT;
import io.diffquant.engine.model.dit.DiTConfig;
import io.diffquant.engine.model.unet.CompVisUNet;
import io.diffquant.engine.model.unet.UNet2DConfig;
import io.diffquant.engine.model.unet.UNet2DModel;
import io.diffquant.engine.model.vae.AutoencoderKL;
import io.diffquant.engine.model.vae.AutoencoderKLConfig;
import io.diffquant.engine.tensor.Tensor;
import io.diffquant.engine.tensor.TransformerOps;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * Random-weight checkpoints with the real shapes and names of public models (facebookresearch/DiT models.py state_dict,
 * diffusers AutoencoderKL / UNet2DModel, the CompVis/DDIM UNet of ermongroup/ddim), written as model folders for
 * measurements at full size without the real weights. Weights are uniform with the standard deviation of
 * N(0, 1/fan_in) (biases and vectors 0.02), GroupNorm/LayerNorm scales 1, DiT's pos_embed its fixed sin-cos table.
 * Memory: a DiT is streamed tensor by tensor from its layout (no model in the heap); a VAE or UNet is built once, its
 * own parameters are filled in place and written without a copy.
 */
public final class RandomCheckpoints {
    private RandomCheckpoints() {}

    /** The config.json of the Hugging Face repository google/ddpm-cifar10-32 (diffusers UNet2DModel, 35.7M parameters). */
    public static final String DDPM_CIFAR10_CONFIG = """
            {"_class_name": "UNet2DModel", "act_fn": "silu", "attention_head_dim": null,
             "block_out_channels": [128, 256, 256, 256], "center_input_sample": false,
             "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"],
             "downsample_padding": 0, "flip_sin_to_cos": false, "freq_shift": 1, "in_channels": 3, "layers_per_block": 2,
             "mid_block_scale_factor": 1, "norm_eps": 1e-06, "norm_num_groups": 32, "out_channels": 3, "sample_size": 32,
             "time_embedding_type": "positional",
             "up_block_types": ["UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"]}""";

    /** {@link #DDPM_CIFAR10_CONFIG} parsed. */
    public static UNet2DConfig ddpmCifar10() { return UNet2DConfig.fromJson(DDPM_CIFAR10_CONFIG, "google/ddpm-cifar10-32 config.json"); }

    /** Writes {@code folder/config.json} and {@code folder/model.safetensors} for {@code cfg}; returns the weights file. */
    public static Path writeDiT(Path folder, DiTConfig cfg, long seed) throws IOException {
        Files.createDirectories(folder);
        SafetensorsWriter w = new SafetensorsWriter().metadata("format", "pt").metadata("note", "random weights with the DiT shapes");
        long s = seed;
        for (var e : DiT.stateDictLayout(cfg).entrySet()) {
            String name = e.getKey();
            int[] shape = e.getValue();
            long ts = s++;
            w.addDeferred(name, DType.F32, shape, () -> name.equals("pos_embed")
                    ? TransformerOps.sincosPosEmbed2d(cfg.hiddenSize(), cfg.gridSize()).reshape(shape) : random(name, shape, ts));
        }
        Path wf = folder.resolve(ModelFolder.DIT_WEIGHTS);
        w.write(wf);
        AtomicFiles.writeString(folder.resolve(ModelFolder.CONFIG), cfg.toJson());
        return wf;
    }

    /** Writes an AutoencoderKL folder (config.json + diffusion_pytorch_model.safetensors); returns the weights file. */
    public static Path writeVae(Path folder, AutoencoderKLConfig cfg, long seed) throws IOException {
        AutoencoderKL vae = new AutoencoderKL(cfg);
        fill(vae.stateDict(), seed);
        vae.save(folder, Map.of("note", "random weights with the AutoencoderKL shapes"));
        return folder.resolve(AutoencoderKL.WEIGHTS);
    }

    /** Writes a diffusers UNet2DModel folder; returns the weights file. */
    public static Path writeUNet(Path folder, UNet2DConfig cfg, long seed) throws IOException {
        UNet2DModel m = new UNet2DModel(cfg);
        fill(m.stateDict(), seed);
        Files.createDirectories(folder);
        SafetensorsWriter w = new SafetensorsWriter().metadata("format", "pt").metadata("note", "random weights with the UNet2DModel shapes");
        for (var e : m.stateDict().entrySet()) w.add(e.getKey(), e.getValue());
        Path wf = ModelFolder.weightsFile(folder, m);
        w.write(wf);
        AtomicFiles.writeString(folder.resolve(ModelFolder.CONFIG), cfg.toJson());
        return wf;
    }

    /**
     * Writes one safetensors file with the same random weights as {@link #writeUNet} (same seed) under the CompVis/DDIM
     * names ({@link CompVisUNet#toCompVis(Map)}, attention projections as 1x1 convolutions), as
     * {@code bin/diffquant import --kind compvis} reads it.
     */
    public static Path writeCompVis(Path file, UNet2DConfig cfg, long seed) throws IOException {
        UNet2DModel m = new UNet2DModel(cfg);
        fill(m.stateDict(), seed);
        SafetensorsWriter w = new SafetensorsWriter().metadata("format", "pt").metadata("note", "random weights, CompVis/DDIM names");
        for (var e : CompVisUNet.toCompVis(m.stateDict()).entrySet()) w.add(e.getKey(), e.getValue());
        if (file.getParent() != null) Files.createDirectories(file.getParent());
        w.write(file);
        return file;
    }

    /** Fills every tensor of a state_dict in place (seeds in iteration order from {@code seed}). */
    public static void fill(Map<String, Tensor> stateDict, long seed) {
        long s = seed;
        for (var e : stateDict.entrySet()) {
            Tensor t = e.getValue();
            Tensor r = random(e.getKey(), t.shape(), s++);
            System.arraycopy(r.data(), 0, t.data(), 0, t.size());
        }
    }

    /**
     * One random tensor for the parameter {@code name}: norm scales (a rank-1 {@code *norm*.weight}) are 1, other vectors
     * and biases uniform with std 0.02, matrices and kernels uniform with std 1/sqrt(fan_in), fan_in = numel / shape[0].
     */
    public static Tensor random(String name, int[] shape, long seed) {
        Tensor t = Tensor.zeros(shape);
        float[] d = t.data();
        boolean vector = shape.length < 2;
        if (vector && name.contains("norm") && name.endsWith(".weight")) {
            java.util.Arrays.fill(d, 1f);
            return t;
        }
        double std = vector ? 0.02 : 1.0 / Math.sqrt((double) d.length / shape[0]);
        float a = (float) (Math.sqrt(3) * std);
        SplittableRandom r = new SplittableRandom(seed);
        for (int i = 0; i < d.length; i++) d[i] = (float) (2 * r.nextDouble() - 1) * a;
        return t;
    }
}
