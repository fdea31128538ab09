package io.diffquant.app.cli;

import io.diffquant.engine.diffusion.ImageNetClasses;
import io.diffquant.engine.diffusion.LatentDiffusionPipeline;
import io.diffquant.engine.diffusion.SampleBatches;
import io.diffquant.engine.io.ImageGrid;
import io.diffquant.engine.io.SafetensorsWriter;
import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.model.ModelFolder;
import io.diffquant.engine.model.vae.AutoencoderKL;
import io.diffquant.engine.tensor.Tensor;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;

/** Samples images from a model folder (optionally fake-quantized by a config) into a PNG grid (and optionally a safetensors file). */
@Command(name = "sample", mixinStandardHelpOptions = true, description = {"Sample images from a model folder to a PNG grid.",
        "With --config the model is fake-quantized by a quantization config (from calibrate) first."})
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
        QuantConfigOption.Applied q = quant.apply(m);
        long t0 = System.nanoTime();
        Tensor images;
        try {
            images = SampleBatches.sample(m, s, count, y, SamplingOptions.progress("images"), latent == null ? null : latent::decode, null);
        } finally {
            if (q != null) q.detach();
        }
        double secs = (System.nanoTime() - t0) / 1e9;
        System.err.println();
        int c = cols > 0 ? cols : classes != null && !classes.isEmpty() ? classes.size() : (int) Math.ceil(Math.sqrt(count));
        ImageGrid.writePng(ImageGrid.grid(images, c, 2), out);
        if (tensors != null) writeTensors(tensors, loaded, s, quant, images, y);
        if (latent != null && y != null && m.numClasses() == ImageNetClasses.count()) {
            java.util.LinkedHashSet<String> named = new java.util.LinkedHashSet<>();
            for (int v : y) named.add(v + " " + ImageNetClasses.name(v));
            System.out.println("ImageNet classes: " + String.join(", ", named));
        }
        System.out.printf("%d images (%s, %s, cfg %.2f, seed %d%s) in %.2f s -> %s%s%n", count, s.sampler(), s.respacing(), s.cfg(), s.seed(),
                q == null ? "" : ", quantized by " + quant.config + ": " + q.summary(), secs, out, tensors == null ? "" : " and " + tensors);
        return 0;
    }

    /** images [N, C, H, W] and y [N] int64 with the sampling settings (and the config, if any) in the metadata. */
    static void writeTensors(Path file, ModelFolder.Loaded loaded, SampleBatches.Settings s, QuantConfigOption quant, Tensor images, int[] y)
            throws IOException {
        SafetensorsWriter w = new SafetensorsWriter().metadata("model", loaded.folder().toString())
                .metadata("sampler", s.sampler()).metadata("respacing", s.respacing()).metadata("eta", Double.toString(s.eta()))
                .metadata("cfg", Double.toString(s.cfg())).metadata("seed", Long.toString(s.seed())).add("images", images);
        if (quant != null && quant.config != null) w.metadata("quant_config", quant.config.toString());
        if (y != null) {
            long[] yl = new long[y.length];
            for (int i = 0; i < y.length; i++) yl[i] = y[i];
            w.addLongs("y", yl, yl.length);
        }
        w.write(file);
    }
}
