package io.diffquant.app.cli;

import io.diffquant.engine.backend.ExecutionBackends;
import io.diffquant.engine.backend.ExecutionInfo;
import io.diffquant.engine.backend.PreparedDenoiser;
import io.diffquant.engine.backend.cpu.Int8Specs;
import io.diffquant.engine.diffusion.ImageNetClasses;
import io.diffquant.engine.diffusion.LatentDiffusionPipeline;
import io.diffquant.engine.diffusion.SampleBatches;
import io.diffquant.engine.io.ImageGrid;
import io.diffquant.engine.io.SafetensorsWriter;
import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.model.ModelFolder;
import io.diffquant.engine.model.vae.AutoencoderKL;
import io.diffquant.engine.quant.QuantizedModel;
import io.diffquant.engine.quant.export.QuantizedCheckpoint;
import io.diffquant.engine.tensor.Tensor;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;

/**
 * Samples images from a model folder into a PNG grid (and optionally a safetensors file), in full precision or
 * quantized (a config, a quantized checkpoint, or W8A8 on the fly), on an execution backend; the output says what ran
 * (FP32, fake quantization or real low-bit kernels).
 */
@Command(name = "sample", mixinStandardHelpOptions = true, description = {"Sample images from a model folder to a PNG grid.",
        "With --config (or --quant) the model is quantized first; --backend chooses where the layers run."})
final class SampleCommand implements Callable<Integer> {
    @Mixin ModelOption model;
    @Mixin QuantConfigOption quant;
    @Mixin SamplingOptions sampling;
    @Option(names = "--classes", split = ",", description = "class labels, cycled over --count (class-conditional models; default 0,1,2,...)") List<Integer> classes;
    @Option(names = "--count", defaultValue = "16", description = "number of images (default: ${DEFAULT-VALUE})") int count;
    @Option(names = "--batch", defaultValue = "16", description = "images per denoiser batch (default: ${DEFAULT-VALUE})") int batch;
    @Option(names = "--cols", defaultValue = "0", description = "grid columns (default: number of classes given, or sqrt(count))") int cols;
    @Option(names = "--out", defaultValue = "samples.png", description = "PNG grid (default: ${DEFAULT-VALUE})") Path out;
    @Option(names = "--vae", paramLabel = "DIR", description = "AutoencoderKL folder (e.g. sd-vae-ft-ema): decode the sampled latents to RGB, as DiT's sample.py") Path vae;
    @Option(names = "--tensors", paramLabel = "FILE", description = "also write images (N,C,H,W float32 in [-1,1]) and y (N int64) to this safetensors file") Path tensors;
    @Option(names = "--quant", paramLabel = "FILE", description = {"quantize the model: a quantization config (.json, as --config) or a quantized",
            "checkpoint (.safetensors, from quantize; its weights replace the folder's)"}) Path quantFile;
    @Option(names = "--w8a8", description = {"quantize on the fly, no calibration: W8 per-channel symmetric weights (round to nearest), A8",
            "per-token dynamic symmetric inputs of the Linear layers, what the cpu-int8 backend runs natively"}) boolean w8a8;
    @Option(names = "--backend", defaultValue = "jvm", paramLabel = "ID", description = {"where the layers run: jvm (FP32 kernels, fake quantization),",
            "cpu-int8 (oneDNN int8 GEMMs for W8A8 Linear layers) or tornado (TornadoVM kernels module); a backend that is not",
            "available falls back to jvm with a warning (default: ${DEFAULT-VALUE})"}) String backend;

    /** Attaches the quantization asked for (null when none): --config, --quant or --w8a8, at most one. */
    QuantizedModel quantize(DiffusionModel m) throws IOException {
        int given = (quant.config != null ? 1 : 0) + (quantFile != null ? 1 : 0) + (w8a8 ? 1 : 0);
        if (given > 1) throw new IllegalArgumentException("--config, --quant and --w8a8: choose one quantization");
        if (w8a8) return Int8Specs.attach(m, 8);
        if (quantFile == null) {
            QuantConfigOption.Applied a = quant.apply(m);
            if (a != null) summary = a.summary();
            return a == null ? null : a.model();
        }
        if (!java.nio.file.Files.isRegularFile(quantFile)) throw new java.nio.file.NoSuchFileException(quantFile.toString(), null, "--quant file not found");
        String f = quantFile.getFileName().toString().toLowerCase(java.util.Locale.ROOT);
        if (f.endsWith(".safetensors")) return QuantizedCheckpoint.load(quantFile, m).quantized();
        if (f.endsWith(".json")) return QuantConfigOption.apply(quantFile, m, quant.force).model();
        throw new IllegalArgumentException("--quant " + quantFile + ": expected a quantization config (.json) or a quantized checkpoint (.safetensors)");
    }

    private String summary;

    @Override public Integer call() throws Exception {
        if (count < 1) throw new IllegalArgumentException("--count must be >= 1, got " + count);
        SampleBatches.Settings s = sampling.settings(batch);
        ModelFolder.Loaded loaded = model.load();
        DiffusionModel m = loaded.model();
        LatentDiffusionPipeline latent = vae == null ? null : new LatentDiffusionPipeline(m, AutoencoderKL.load(vae));
        int[] y;
        try {
            y = SampleBatches.labels(m, count, classes, Integer.MAX_VALUE);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("--classes: " + e.getMessage() + " (" + loaded.folder() + ")", e);
        }
        ExecutionBackends.requireKnown(backend);   // an unknown id fails before the model is quantized
        QuantizedModel q = quantize(m);
        ExecutionInfo execution;
        long t0;
        Tensor images;
        try (PreparedDenoiser d = ExecutionBackends.prepare(backend, m, q)) {
            execution = d.execution();
            System.err.println("execution: " + execution.label());
            t0 = System.nanoTime();
            images = SampleBatches.sample(m, s, count, y, SamplingOptions.progress("images"), latent == null ? null : latent::decode, null, d);
        } finally {
            if (q != null) q.detach();
        }
        double secs = (System.nanoTime() - t0) / 1e9;
        System.err.println();
        int c = cols > 0 ? cols : classes != null && !classes.isEmpty() ? classes.size() : (int) Math.ceil(Math.sqrt(count));
        ImageGrid.writePng(ImageGrid.grid(images, c, 2), out);
        if (tensors != null) writeTensors(tensors, loaded, s, quant.config != null ? quant.config : quantFile, execution, images, y);
        if (latent != null && y != null && m.numClasses() == ImageNetClasses.count()) {
            java.util.LinkedHashSet<String> named = new java.util.LinkedHashSet<>();
            for (int v : y) named.add(v + " " + ImageNetClasses.name(v));
            System.out.println("ImageNet classes: " + String.join(", ", named));
        }
        System.out.printf("%d images (%s, %s, cfg %.2f, seed %d%s) in %.2f s -> %s%s%n", count, s.sampler(), s.respacing(), s.cfg(), s.seed(),
                q == null ? "" : ", quantized by " + (w8a8 ? "--w8a8" : quant.config != null ? quant.config : quantFile)
                        + (summary == null ? "" : ": " + summary), secs, out, tensors == null ? "" : " and " + tensors);
        System.out.println("execution: " + execution.label());
        return 0;
    }

    /** images [N, C, H, W] and y [N] int64 with the sampling settings (the config and the execution backend, if any) in the metadata. */
    static void writeTensors(Path file, ModelFolder.Loaded loaded, SampleBatches.Settings s, Path quantFile, ExecutionInfo execution,
                             Tensor images, int[] y) throws IOException {
        SafetensorsWriter w = new SafetensorsWriter().metadata("model", loaded.folder().toString())
                .metadata("sampler", s.sampler()).metadata("respacing", s.respacing()).metadata("eta", Double.toString(s.eta()))
                .metadata("cfg", Double.toString(s.cfg())).metadata("seed", Long.toString(s.seed())).add("images", images);
        if (execution != null) w.metadata("backend", execution.backend()).metadata("execution", execution.label());
        if (quantFile != null) w.metadata("quant_config", quantFile.toString());
        if (y != null) {
            long[] yl = new long[y.length];
            for (int i = 0; i < y.length; i++) yl[i] = y[i];
            w.addLongs("y", yl, yl.length);
        }
        w.write(file);
    }
}
