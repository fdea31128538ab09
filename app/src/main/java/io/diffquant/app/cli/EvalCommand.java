package io.diffquant.app.cli;

import io.diffquant.engine.diffusion.GuidanceMode;
import io.diffquant.engine.diffusion.NoiseSchedule;
import io.diffquant.engine.diffusion.SampleRequest;
import io.diffquant.engine.diffusion.Sampler;
import io.diffquant.engine.diffusion.Sampling;
import io.diffquant.engine.diffusion.SamplingRun;
import io.diffquant.engine.io.SafetensorsReader;
import io.diffquant.engine.io.SafetensorsWriter;
import io.diffquant.engine.metrics.FmnistClassifier;
import io.diffquant.engine.metrics.FmnistMetrics;
import io.diffquant.engine.metrics.MetricsTable;
import io.diffquant.engine.model.Denoiser;
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
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
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
    @Option(names = "--config", paramLabel = "FILE", description = "quantization config to apply before sampling (not supported yet)") Path quantConfig;
    @Option(names = "--count", defaultValue = "1000", description = "images to sample (default: ${DEFAULT-VALUE})") int count;
    @Option(names = "--steps", defaultValue = "50", description = "sampling steps (default: ${DEFAULT-VALUE})") int steps;
    @Option(names = "--sampler", defaultValue = "ddim", description = "ddim or ddpm (default: ${DEFAULT-VALUE})") String sampler;
    @Option(names = "--eta", defaultValue = "0", description = "DDIM eta (default: ${DEFAULT-VALUE})") double eta;
    @Option(names = "--schedule", defaultValue = "linear", description = "noise schedule: linear, scaled_linear, cosine (default: ${DEFAULT-VALUE})") String schedule;
    @Option(names = "--cfg", defaultValue = "1", description = "classifier-free guidance scale; 1 = none (default: ${DEFAULT-VALUE})") double cfg;
    @Option(names = "--cfg-mode", defaultValue = "all", description = "all or dit (default: ${DEFAULT-VALUE})") String cfgMode;
    @Option(names = "--seed", defaultValue = "0", description = "sampling seed (default: ${DEFAULT-VALUE})") long seed;
    @Option(names = "--batch", defaultValue = "50", description = "images per denoiser batch (default: ${DEFAULT-VALUE})") int batch;
    @Option(names = "--reference", paramLabel = "FILE", description = "safetensors with 'images' [N, 1, 28, 28] (and 'y') sampled with the same seeds, N >= --count: adds MSE, PSNR, SSIM") Path reference;
    @Option(names = "--classifier", paramLabel = "DIR", description = "feature network folder (default: <project>/" + FmnistMetrics.ASSET_DIR + ")") Path classifier;
    @Option(names = "--out-json", paramLabel = "FILE", description = "write the table as JSON") Path outJson;
    @Option(names = "--out-csv", paramLabel = "FILE", description = "write the table as CSV") Path outCsv;
    @Option(names = "--tensors", paramLabel = "FILE", description = "also write the sampled images and labels (as 'diffquant sample --tensors')") Path tensors;

    /** The denoiser to sample: the model itself; the hook where a quantization config (--config) will be applied. */
    Denoiser denoiserFor(DiffusionModel m) {
        if (quantConfig != null) throw new IllegalArgumentException("--config " + quantConfig
                + ": evaluating quantized configurations is not supported yet; eval runs the full-precision model");
        return m;
    }

    /** Refuses models that do not make [N, 1, 28, 28] images. */
    static void requireFmnistShape(ModelFolder.Loaded loaded) {
        DiffusionModel m = loaded.model();
        if (m.inChannels() != 1 || m.sampleSize() != FmnistClassifier.IMAGE_SIZE) throw new IllegalArgumentException(
                loaded.folder() + ": eval measures Fashion-MNIST images [N, 1, 28, 28], but this " + m.architecture()
                        + " makes [N, " + m.inChannels() + ", " + m.sampleSize() + ", " + m.sampleSize() + "]");
    }

    @Override public Integer call() throws Exception {
        if (count < 2) throw new IllegalArgumentException("--count must be >= 2 (FID-FMNIST needs a covariance), got " + count);
        if (batch < 1 || steps < 1) throw new IllegalArgumentException("--batch and --steps must be >= 1");
        GuidanceMode mode = switch (cfgMode) {
            case "all" -> GuidanceMode.ALL_CHANNELS;
            case "dit" -> GuidanceMode.DIT_COMPATIBLE;
            default -> throw new IllegalArgumentException("--cfg-mode must be 'all' or 'dit', got '" + cfgMode + "'");
        };
        Sampler s = Sampler.named(sampler, eta);
        NoiseSchedule sched = NoiseSchedule.named(schedule, 1000);
        String respacing = SampleCommand.respacingFor(sampler, steps);
        ModelFolder.Loaded loaded = model.load();
        requireFmnistShape(loaded);
        DiffusionModel m = loaded.model();
        Denoiser denoiser = denoiserFor(m);
        if (cfg != 1.0 && m.numClasses() == 0) throw new IllegalArgumentException("--cfg " + cfg + " given but " + loaded.folder()
                + " is an unconditional model");
        FmnistMetrics metrics = classifier != null ? FmnistMetrics.load(classifier) : FmnistMetrics.loadDefault();
        int[] y = null;
        if (m.numClasses() > 0) {
            y = new int[count];
            for (int i = 0; i < count; i++) y[i] = i % Math.min(m.numClasses(), metrics.classifier().config().numClasses());
        }
        Tensor ref = reference == null ? null : readReference(reference, y);

        long t0 = System.nanoTime();
        List<Tensor> parts = new ArrayList<>();
        for (int from = 0; from < count; from += batch) {
            int n = Math.min(batch, count - from);
            SampleRequest.Builder b = SampleRequest.forModel(m, n).denoiser(denoiser).sampler(s).respacing(respacing)
                    .schedule(sched).seed(seed).firstSampleIndex(from);
            if (y != null) {
                b.labels(Arrays.copyOfRange(y, from, from + n));
                if (cfg != 1.0) b.cfg(cfg, mode);
            }
            SamplingRun run = Sampling.start(b.build());
            while (run.hasNext()) {
                var st = run.next();
                System.err.printf("\rsampling images %d-%d of %d: step %d/%d   ", from + 1, from + n, count, st.index() + 1, st.totalSteps());
            }
            parts.add(run.result());
        }
        Tensor images = Tensor.concatRows(parts.toArray(new Tensor[0]));
        double sampleSecs = (System.nanoTime() - t0) / 1e9;
        System.err.printf("%nsampled %d images in %.1f s; computing metrics ...%n", count, sampleSecs);
        if (tensors != null) writeTensors(tensors, loaded, images, y, respacing);

        Map<String, String> info = new LinkedHashMap<>();
        info.put("model", loaded.folder().toString() + " (" + m.architecture() + ")");
        info.put("sampling", String.format(Locale.ROOT, "%s, %s (%d steps), eta %s, schedule %s, cfg %s%s, seed %d", sampler, respacing, steps,
                eta, schedule, cfg, cfg != 1.0 ? " (" + cfgMode + ")" : "", seed));
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
    private Tensor readReference(Path file, int[] y) throws IOException {
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

    private void writeTensors(Path file, ModelFolder.Loaded loaded, Tensor images, int[] y, String respacing) throws IOException {
        SafetensorsWriter w = new SafetensorsWriter().metadata("model", loaded.folder().toString())
                .metadata("sampler", sampler).metadata("respacing", respacing).metadata("eta", Double.toString(eta))
                .metadata("cfg", Double.toString(cfg)).metadata("seed", Long.toString(seed)).add("images", images);
        if (y != null) {
            long[] yl = new long[y.length];
            for (int i = 0; i < y.length; i++) yl[i] = y[i];
            w.addLongs("y", yl, yl.length);
        }
        w.write(file);
    }
}
