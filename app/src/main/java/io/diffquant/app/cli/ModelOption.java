package io.diffquant.app.cli;

import io.diffquant.engine.model.ModelFolder;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.nio.file.Path;

/** The shared --model option. */
final class ModelOption {
    @Option(names = {"-m", "--model"}, required = true, paramLabel = "DIR",
            description = "model folder: DiT (config.json + model.safetensors) or diffusers UNet2DModel (config.json + diffusion_pytorch_model.safetensors)")
    Path folder;

    ModelFolder.Loaded load() throws IOException { return ModelFolder.load(folder); }
}
