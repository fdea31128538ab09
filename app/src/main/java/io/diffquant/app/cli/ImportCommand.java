package io.diffquant.app.cli;

import io.diffquant.engine.io.DType;
import io.diffquant.engine.io.TorchCheckpoint;
import io.diffquant.engine.model.CheckpointImport;
import io.diffquant.engine.model.MemoryBudget;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.Locale;
import java.util.concurrent.Callable;

/** Converts a PyTorch checkpoint (.pt/.pth/.bin/.ckpt, read without Python) or a .safetensors file into a model folder. */
@Command(name = "import", mixinStandardHelpOptions = true,
        description = {"Convert a public checkpoint into a model folder (config.json + safetensors). See docs/import.md.",
                "  official DiT:   import --kind dit --name DiT-XL/2 --image-size 256 DiT-XL-2-256x256.pt models/dit-xl-2-256",
                "  CompVis DDPM:   import --kind compvis --image-size 32 model-790000.ckpt models/ddpm-cifar10",
                "  diffusers:      import --kind unet|vae --config config.json diffusion_pytorch_model.bin OUT",
                "  look inside:    import --list FILE.pt"})
final class ImportCommand implements Callable<Integer> {
    @Parameters(index = "0", paramLabel = "CHECKPOINT", description = "input .pt/.pth/.bin/.ckpt (torch.save zip format) or .safetensors") Path input;
    @Parameters(index = "1", arity = "0..1", paramLabel = "OUT_DIR", description = "model folder to write") Path output;
    @Option(names = "--kind", description = "dit, compvis, unet or vae") String kind;
    @Option(names = "--name", description = "DiT model name, e.g. DiT-XL/2") String name;
    @Option(names = "--image-size", defaultValue = "0", description = "image size in pixels (DiT: 256 or 512; CompVis: the resolution, default 32)") int imageSize;
    @Option(names = "--num-classes", defaultValue = "1000", description = "DiT classes (default: ${DEFAULT-VALUE})") int numClasses;
    @Option(names = "--no-learn-sigma", description = "the DiT predicts eps only (the official models learn sigma)") boolean noLearnSigma;
    @Option(names = "--key", description = "dict key path of the state_dict inside the checkpoint (default: automatic: itself, else ema, state_dict, model)") String key;
    @Option(names = "--config", description = "diffusers config.json (unet, vae) or a DiT config.json (dit, instead of --name/--image-size)") Path config;
    @Option(names = "--dtype", defaultValue = "f32", description = "stored dtype: f32, f16 or bf16 (default: ${DEFAULT-VALUE})") String dtype;
    @Option(names = "--groups", defaultValue = "32", description = "GroupNorm groups of a CompVis model (default: ${DEFAULT-VALUE}, as the CompVis code)") int groups;
    @Option(names = "--list", description = "list the checkpoint's tensors (name, dtype, shape) instead of converting") boolean list;

    @Override public Integer call() throws Exception {
        if (list) {
            try (TorchCheckpoint ck = TorchCheckpoint.open(input, key)) {
                System.out.printf("%s: top-level keys %s; state_dict '%s': %d tensors, %,d elements%n", input, ck.topLevelKeys(),
                        ck.selected(), ck.names().size(), ck.parameterCount());
                for (String n : ck.names()) {
                    TorchCheckpoint.Info i = ck.info(n);
                    System.out.printf("  %-60s %-5s %s%s%n", n, i.dtype(), Arrays.toString(i.shape()), i.contiguous() ? "" : " (strided)");
                }
                if (!ck.ignored().isEmpty()) System.out.println("non-tensor entries skipped: " + ck.ignored());
            }
            return 0;
        }
        if (output == null) throw new IllegalArgumentException("OUT_DIR is required (or use --list)");
        if (kind == null) throw new IllegalArgumentException("--kind is required: dit, compvis, unet or vae");
        CheckpointImport.Kind k = switch (kind.toLowerCase(Locale.ROOT)) {
            case "dit" -> CheckpointImport.Kind.DIT;
            case "compvis", "ddim" -> CheckpointImport.Kind.COMPVIS;
            case "unet" -> CheckpointImport.Kind.UNET;
            case "vae" -> CheckpointImport.Kind.VAE;
            default -> throw new IllegalArgumentException("--kind must be dit, compvis, unet or vae, got '" + kind + "'");
        };
        DType dt = switch (dtype.toLowerCase(Locale.ROOT)) {
            case "f32", "fp32", "float32" -> DType.F32;
            case "f16", "fp16", "float16" -> DType.F16;
            case "bf16", "bfloat16" -> DType.BF16;
            default -> throw new IllegalArgumentException("--dtype must be f32, f16 or bf16, got '" + dtype + "'");
        };
        MemoryBudget.resetPeak();
        long t0 = System.nanoTime();
        CheckpointImport.Result r = CheckpointImport.run(new CheckpointImport.Request(input, output, k, name, imageSize, numClasses,
                !noLearnSigma, key, config, dt, groups));
        double secs = (System.nanoTime() - t0) / 1e9;
        for (String n : r.notes()) System.out.println("note: " + n);
        if (!r.ignored().isEmpty()) System.out.println("non-tensor entries skipped: " + r.ignored());
        System.out.printf("%s -> %s: %d tensors, %,d parameters (%.2f M)%s, %s, %.1f s, peak heap %.0f MiB%n", input, r.weights(),
                r.tensors(), r.parameters(), r.parameters() / 1e6, r.selected().isEmpty() ? "" : " from '" + r.selected() + "'",
                dt, secs, MemoryBudget.peakHeap() / 1048576.0);
        return 0;
    }
}
