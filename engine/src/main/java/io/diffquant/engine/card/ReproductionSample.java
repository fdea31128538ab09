package io.diffquant.engine.card;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.diffquant.engine.diffusion.NoiseSchedule;
import io.diffquant.engine.io.Json;
import io.diffquant.engine.io.JsonException;
import io.diffquant.engine.io.JsonView;
import io.diffquant.engine.io.SafetensorsReader;
import io.diffquant.engine.io.SafetensorsWriter;
import io.diffquant.engine.metrics.FmnistClassifier;
import io.diffquant.engine.metrics.FmnistMetrics;
import io.diffquant.engine.metrics.ImageMetrics;
import io.diffquant.engine.metrics.MetricsTable;
import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.tensor.Tensor;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.Map;

/**
 * The small, fixed-seed sample a shipped model's card records so that a test can regenerate it: {@code count} images
 * with {@code steps} DDIM steps ({@link FmnistSampling}), labels cycling 0..9 for class-conditional models, the
 * card's CFG scale. The card stores the raw images ({@value #FILE}, F32), their sha256 and their FID-FMNIST,
 * sFID-FMNIST, IS-FMNIST and class accuracy ({@link FmnistMetrics}, images clamped to [-1, 1]); {@link #check}
 * compares a regenerated sample with them within the stated {@link Tolerances}.
 *
 * @param count images (>= 2: FID needs a covariance)
 * @param steps DDIM steps
 * @param seed  noise seed (image i is keyed by (seed, i))
 * @param cfg   classifier-free guidance scale (1 for unconditional models)
 */
public record ReproductionSample(int count, int steps, long seed, double cfg) {
    public static final String FILE = "reproduction.safetensors";
    public static final int DEFAULT_COUNT = 32;
    public static final int DEFAULT_STEPS = 20;
    public static final long DEFAULT_SEED = 1234;

    public ReproductionSample {
        if (count < 2) throw new IllegalArgumentException("reproduction sample: count must be >= 2, got " + count);
        if (steps < 1) throw new IllegalArgumentException("reproduction sample: steps must be >= 1, got " + steps);
        if (!(cfg >= 1.0) || !Double.isFinite(cfg)) throw new IllegalArgumentException("reproduction sample: CFG scale must be >= 1, got " + cfg);
    }

    /**
     * How close a regenerated sample must be to the recorded one. Images: the lowest per-image PSNR (range 2 of [-1, 1]
     * images) against the stored images; metrics: |new - recorded| <= metricRelative * max(1, |recorded|) for
     * FID-FMNIST, sFID-FMNIST and IS-FMNIST; class accuracy within {@code accuracyImages} images.
     */
    public record Tolerances(double minPsnrDb, double metricRelative, int accuracyImages) {
        public static final Tolerances DEFAULT = new Tolerances(60.0, 0.01, 1);

        ObjectNode toJson() {
            ObjectNode o = Json.object();
            o.put("min_psnr_db", minPsnrDb);
            o.put("metric_relative", metricRelative);
            o.put("accuracy_images", accuracyImages);
            return o;
        }

        static Tolerances fromJson(JsonView v) throws JsonException {
            return new Tolerances(v.requireDouble("min_psnr_db"), v.requireDouble("metric_relative"), v.requireInt("accuracy_images"));
        }
    }

    /** The four recorded metrics; {@code accuracy} (percent) is NaN for unconditional models. */
    public record Measured(double fid, double sfid, double inceptionScore, double accuracy) {
        ObjectNode toJson() {
            ObjectNode o = Json.object();
            o.put(MetricsTable.FID_FMNIST, fid);
            o.put(MetricsTable.SFID_FMNIST, sfid);
            o.put(MetricsTable.IS_FMNIST, inceptionScore);
            if (!Double.isNaN(accuracy)) o.put(MetricsTable.CLASS_ACCURACY, accuracy);
            return o;
        }

        static Measured fromJson(JsonView v) throws JsonException {
            return new Measured(v.requireDouble(MetricsTable.FID_FMNIST), v.requireDouble(MetricsTable.SFID_FMNIST),
                    v.requireDouble(MetricsTable.IS_FMNIST), v.optDouble(MetricsTable.CLASS_ACCURACY, Double.NaN));
        }
    }

    /**
     * What a card records about its reproduction sample.
     *
     * @param spec         what to sample
     * @param schedule     noise schedule name, with {@code timesteps} training steps
     * @param imagesSha256 sha256 of the raw images as little-endian F32 (equal only with the same float arithmetic)
     * @param metrics      the recorded metrics
     * @param tolerances   how close a regenerated sample must be
     */
    public record Recorded(ReproductionSample spec, String schedule, int timesteps, String imagesSha256, Measured metrics,
                           Tolerances tolerances) {
        public NoiseSchedule noiseSchedule() { return NoiseSchedule.named(schedule, timesteps); }

        public ObjectNode toJson(int numClasses) {
            ObjectNode o = Json.object();
            o.put("images", spec.count());
            o.put("steps", spec.steps());
            o.put("sampler", "ddim");
            o.put("eta", 0.0);
            o.put("respacing", FmnistSampling.respacing(timesteps, spec.steps()));
            o.put("schedule", schedule);
            o.put("timesteps", timesteps);
            o.put("seed", spec.seed());
            o.put("cfg", spec.cfg());
            o.put("labels", numClasses > 0 ? "cycle 0.." + (numClasses - 1) : "none (unconditional)");
            o.put("batch", spec.count());
            o.put("file", FILE);
            o.put("images_sha256", imagesSha256);
            o.set("metrics", metrics.toJson());
            o.set("tolerances", tolerances.toJson());
            return o;
        }

        public static Recorded fromJson(JsonView v) throws JsonException {
            ReproductionSample spec;
            try {
                spec = new ReproductionSample(v.requireInt("images"), v.requireInt("steps"), v.requireLong("seed"), v.requireDouble("cfg"));
            } catch (IllegalArgumentException e) {
                throw v.error(e.getMessage());
            }
            return new Recorded(spec, v.requireString("schedule"), v.requireInt("timesteps"), v.requireString("images_sha256"),
                    Measured.fromJson(v.get("metrics")), Tolerances.fromJson(v.get("tolerances")));
        }
    }

    /** Result of {@link #check}: every comparison, and whether all are within tolerance. */
    public record Check(double minPsnrDb, boolean sameHash, Measured regenerated, Measured recorded, String failures) {
        public boolean passed() { return failures.isEmpty(); }
    }

    /** The default sample (32 images, 20 DDIM steps, seed 1234) at the card's CFG scale. */
    public static ReproductionSample defaults(double cfg) { return new ReproductionSample(DEFAULT_COUNT, DEFAULT_STEPS, DEFAULT_SEED, cfg); }

    /** The labels: cycling 0..9 for class-conditional models, null for unconditional ones. */
    public int[] labels(DiffusionModel m) { return FmnistSampling.cycleLabels(count, m.numClasses()); }

    /** Samples the images (raw, one batch). */
    public Tensor generate(DiffusionModel m, NoiseSchedule schedule, FmnistSampling.Progress progress) {
        return FmnistSampling.sample(m, count, 0, labels(m), new FmnistSampling.Settings(steps, cfg, seed, count, schedule), progress);
    }

    /** FID-FMNIST, sFID-FMNIST, IS-FMNIST and class accuracy of the images clamped to [-1, 1]. */
    public static Measured measure(FmnistMetrics metrics, Tensor rawImages, int[] labels) {
        MetricsTable t = metrics.evaluate(FmnistSampling.clampUnit(rawImages), labels, null);
        return new Measured(t.row(MetricsTable.FID_FMNIST).orElseThrow().value(), t.row(MetricsTable.SFID_FMNIST).orElseThrow().value(),
                t.row(MetricsTable.IS_FMNIST).orElseThrow().value(),
                labels == null ? Double.NaN : t.row(MetricsTable.CLASS_ACCURACY).orElseThrow().value());
    }

    /** sha256 of the images as little-endian F32 bytes (row-major). */
    public static String imagesSha256(Tensor images) {
        float[] d = images.data();
        ByteBuffer b = ByteBuffer.allocate(d.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        for (float v : d) b.putFloat(v);
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(b.array()));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    /** Writes the raw images (F32 'images' [N, 1, 28, 28], int64 'y' for class-conditional models) and the spec as metadata, atomically. */
    public void writeImages(Path file, Tensor rawImages, int[] labels, Map<String, String> extraMetadata) throws IOException {
        SafetensorsWriter w = new SafetensorsWriter();
        if (extraMetadata != null) extraMetadata.forEach(w::metadata);
        w.metadata("count", Integer.toString(count)).metadata("steps", Integer.toString(steps)).metadata("seed", Long.toString(seed))
                .metadata("cfg", Double.toString(cfg)).metadata("sampler", "ddim").metadata("eta", "0")
                .metadata("images_sha256", imagesSha256(rawImages));
        w.add("images", rawImages);
        if (labels != null) {
            long[] y = new long[labels.length];
            for (int i = 0; i < y.length; i++) y[i] = labels[i];
            w.addLongs("y", y, y.length);
        }
        w.write(file);
    }

    /** Reads the stored images, checking their shape against the spec; errors name the file. */
    public Tensor readImages(Path file) throws IOException {
        if (!Files.isRegularFile(file)) throw new NoSuchFileException(file.toString(), null, "reproduction images missing (written by 'diffquant card')");
        try (SafetensorsReader r = SafetensorsReader.open(file)) {
            if (!r.contains("images")) throw new IOException(file + ": tensor 'images' is missing");
            Tensor t = r.readFloat("images");
            int s = FmnistClassifier.IMAGE_SIZE;
            if (!Arrays.equals(t.shape(), new int[] {count, 1, s, s})) throw new IOException(file + ": tensor 'images' is "
                    + Arrays.toString(t.shape()) + ", expected [" + count + ", 1, " + s + ", " + s + "] (the card's reproduction spec)");
            return t;
        }
    }

    /**
     * Compares a regenerated sample with the recorded one.
     *
     * @param regenerated raw images sampled now
     * @param stored      the raw images stored with the card
     */
    public static Check check(Recorded rec, Tensor regenerated, Tensor stored, Measured now) {
        StringBuilder f = new StringBuilder();
        double minPsnr = Double.POSITIVE_INFINITY;
        if (!regenerated.sameShape(stored)) {
            f.append("images: shape ").append(Arrays.toString(regenerated.shape())).append(" vs stored ").append(Arrays.toString(stored.shape())).append("; ");
        } else {
            for (double p : ImageMetrics.psnr(regenerated, stored, ImageMetrics.RANGE_SIGNED_UNIT).perImage()) minPsnr = Math.min(minPsnr, p);
            if (!(minPsnr > rec.tolerances().minPsnrDb())) f.append(String.format(java.util.Locale.ROOT,
                    "images: lowest per-image PSNR %.2f dB against the stored images, need > %.1f dB; ", minPsnr, rec.tolerances().minPsnrDb()));
        }
        Measured r = rec.metrics();
        double rel = rec.tolerances().metricRelative();
        near(f, MetricsTable.FID_FMNIST, now.fid(), r.fid(), rel * Math.max(1, Math.abs(r.fid())));
        near(f, MetricsTable.SFID_FMNIST, now.sfid(), r.sfid(), rel * Math.max(1, Math.abs(r.sfid())));
        near(f, MetricsTable.IS_FMNIST, now.inceptionScore(), r.inceptionScore(), rel * Math.max(1, Math.abs(r.inceptionScore())));
        if (!Double.isNaN(r.accuracy()) || !Double.isNaN(now.accuracy()))
            near(f, MetricsTable.CLASS_ACCURACY, now.accuracy(), r.accuracy(), 100.0 * rec.tolerances().accuracyImages() / rec.spec().count() + 1e-9);
        return new Check(minPsnr, imagesSha256(regenerated).equals(rec.imagesSha256()), now, r, f.toString().trim());
    }

    private static void near(StringBuilder f, String what, double now, double recorded, double tol) {
        if (!(Math.abs(now - recorded) <= tol)) f.append(String.format(java.util.Locale.ROOT, "%s: %.6g now vs %.6g recorded (tolerance %.3g); ",
                what, now, recorded, tol));
    }
}
