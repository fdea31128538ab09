package io.diffquant.app.cli;

import io.diffquant.engine.diffusion.SampleBatches;
import io.diffquant.engine.io.SafetensorsReader;
import io.diffquant.engine.metrics.FmnistClassifier;
import io.diffquant.engine.metrics.FmnistMetrics;
import io.diffquant.engine.metrics.MetricsTable;
import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.model.ModelFolder;
import io.diffquant.engine.tensor.Tensor;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;

/**
 * Samples a Fashion-MNIST model folder and reports FID-FMNIST, sFID-FMNIST, IS-FMNIST, class accuracy and (with a
 * reference sampled with the same seeds) MSE/PSNR/SSIM ({@link FmnistMetrics}, ALGORITHMS.md §9).
 */
@Command(name = "eval", mixinStandardHelpOptions = true,
        description = {"Sample a 28x28x1 Fashion-MNIST model and measure FID-FMNIST, sFID-FMNIST (with the real-data floor), IS-FMNIST,",
                "class accuracy (class-conditional models; labels cycle 0..9) and, with --reference, MSE/PSNR/SSIM against images",
                "sampled with the same seeds (e.g. 'diffquant sample --tensors' of the full-precision model).",
                "Samples (and reference images) are clamped to [-1, 1] before measuring, as when written to PNG.",
                "These metrics use the product's own Fashion-MNIST classifier: they are not Inception FID/IS."})
final class EvalCommand implements Callable<Integer> {
    @Mixin ModelOption model;
    @Mixin QuantConfigOption quant;
    @Mixin SamplingOptions sampling;
    @Option(names = "--count", defaultValue = "1000", description = "images to sample (default: ${DEFAULT-VALUE})") int count;
    @Option(names = "--batch", defaultValue = "50", description = "images per denoiser batch (default: ${DEFAULT-VALUE})") int batch;
    @Option(names = "--reference", paramLabel = "FILE", description = "safetensors with 'images' [N, 1, 28, 28] (and 'y') sampled with the same seeds, N >= --count: adds MSE, PSNR, SSIM") Path reference;
    @Option(names = "--classifier", paramLabel = "DIR", description = "feature network folder (default: <project>/" + FmnistMetrics.ASSET_DIR + ")") Path classifier;
    @Option(names = "--out-json", paramLabel = "FILE", description = "write the table as JSON") Path outJson;
    @Option(names = "--out-csv", paramLabel = "FILE", description = "write the table as CSV") Path outCsv;
    @Option(names = "--tensors", paramLabel = "FILE", description = "also write the sampled images and labels (as 'diffquant sample --tensors')") Path tensors;

    /** Refuses models that do not make [N, 1, 28, 28] images. */
    static void requireFmnistShape(ModelFolder.Loaded loaded) {
        DiffusionModel m = loaded.model();
        if (m.inChannels() != 1 || m.sampleSize() != FmnistClassifier.IMAGE_SIZE) throw new IllegalArgumentException(
                loaded.folder() + ": eval measures Fashion-MNIST images [N, 1, 28, 28], but this " + m.architecture()
                        + " makes [N, " + m.inChannels() + ", " + m.sampleSize() + ", " + m.sampleSize() + "]");
    }

    @Override public Integer call() throws Exception {
        if (count < 2) throw new IllegalArgumentException("--count must be >= 2 (FID-FMNIST needs a covariance), got " + count);
        SampleBatches.Settings s = sampling.settings(batch);
        ModelFolder.Loaded loaded = model.load();
        requireFmnistShape(loaded);
        DiffusionModel m = loaded.model();
        if (s.cfg() != 1.0 && m.numClasses() == 0) throw new IllegalArgumentException("--cfg " + s.cfg() + " given but " + loaded.folder()
                + " is an unconditional model");
        FmnistMetrics metrics = classifier != null ? FmnistMetrics.load(classifier) : FmnistMetrics.loadDefault();
        int[] y = SampleBatches.labels(m, count, null, metrics.classifier().config().numClasses());
        Tensor ref = reference == null ? null : readReference(reference, y, s.seed());
        QuantConfigOption.Applied q = quant.apply(m);

        long t0 = System.nanoTime();
        Tensor images;
        try {
            images = SampleBatches.sample(m, s, count, y, SamplingOptions.progress("sampling images"));
        } finally {
            if (q != null) q.detach();
        }
        double sampleSecs = (System.nanoTime() - t0) / 1e9;
        System.err.printf("%nsampled %d images in %.1f s; computing metrics ...%n", count, sampleSecs);
        if (tensors != null) SampleCommand.writeTensors(tensors, loaded, s, quant, images, y);

        Map<String, String> info = new LinkedHashMap<>();
        info.put("model", loaded.folder().toString() + " (" + m.architecture() + ")");
        if (q != null) info.put("quantization", quant.config + ": " + q.summary());
        info.put("sampling", s.describe(m.numClasses() > 0));
        if (y != null) info.put("labels", "cycle 0.." + (Math.min(m.numClasses(), 10) - 1));
        if (reference != null) info.put("reference", reference.toString());
        info.put("clamping", "samples clamped to [-1, 1] before measuring, as when written to PNG");
        long t1 = System.nanoTime();
        MetricsTable table = metrics.evaluate("eval " + loaded.folder().getFileName(), info, clampUnit(images), y,
                ref == null ? null : clampUnit(ref));
        double metricSecs = (System.nanoTime() - t1) / 1e9;
        table = table.withInfo("time", String.format(Locale.ROOT, "sampling %.1f s, metrics %.1f s", sampleSecs, metricSecs));
        if (outJson != null) table.writeJson(outJson);
        if (outCsv != null) table.writeCsv(outCsv);
        System.out.print(table.toText());
        return 0;
    }

    /** A copy with every value clamped to [-1, 1] (NaN stays NaN and is refused by the metrics). */
    static Tensor clampUnit(Tensor x) {
        float[] d = x.data().clone();
        for (int i = 0; i < d.length; i++) d[i] = d[i] > 1f ? 1f : d[i] < -1f ? -1f : d[i];
        return Tensor.of(d, x.shape());
    }

    /** The first {@code count} images of a reference file, checked against the eval's shape, labels and seed. */
    private Tensor readReference(Path file, int[] y, long seed) throws IOException {
        if (!Files.isRegularFile(file)) throw new NoSuchFileException(file.toString(), null, "--reference file not found");
        try (SafetensorsReader r = SafetensorsReader.open(file)) {
            if (!r.contains("images")) throw new IllegalArgumentException(file + ": tensor 'images' is missing (write it with 'diffquant sample --tensors')");
            Tensor imgs = r.readFloat("images");
            int[] sh = imgs.shape();
            if (sh.length != 4 || sh[1] != 1 || sh[2] != FmnistClassifier.IMAGE_SIZE || sh[3] != FmnistClassifier.IMAGE_SIZE || sh[0] < count)
                throw new IllegalArgumentException(file + ": tensor 'images' is " + Arrays.toString(sh) + ", expected [N, 1, 28, 28] with N >= --count "
                        + count);
            String refSeed = r.metadata().get("seed");
            if (refSeed != null && !refSeed.equals(Long.toString(seed))) throw new IllegalArgumentException(file + ": reference was sampled with seed "
                    + refSeed + " but --seed is " + seed + "; MSE/PSNR/SSIM compare images sampled with the same seeds");
            if (y != null && r.contains("y")) {
                long[] ry = r.readLongs("y");
                for (int i = 0; i < count; i++) if (i >= ry.length || ry[i] != y[i]) throw new IllegalArgumentException(file
                        + ": reference label y[" + i + "] = " + (i < ry.length ? ry[i] : "missing") + " but eval conditions image " + i
                        + " on class " + y[i] + " (labels cycle 0..9)");
            }
            return imgs.sliceRows(0, count);
        }
    }
}
