package io.diffquant.engine.metrics;

import io.diffquant.engine.tensor.Tensor;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The product's sample-quality metrics for Fashion-MNIST generators (ALGORITHMS.md §9), computed with its own
 * {@link FmnistClassifier} in place of Inception-v3 and therefore named so nobody mistakes them for the Inception
 * metrics: FID-FMNIST (Fréchet distance of the penultimate features against the stored test-set Gaussian, Heusel et
 * al. 2017), sFID-FMNIST (the same on spatial features, Nash et al. 2021), IS-FMNIST (Salimans et al. 2016), the
 * class accuracy of class-conditional samples, and against a reference set sampled with the same seeds (e.g. the
 * full-precision model): MSE, PSNR and SSIM. Every FID is reported with its real-data floor
 * ({@link FmnistReferenceStats}).
 *
 * <p>Conventions: images are [N, 1, 28, 28] in [-1, 1]. MSE is in [-1, 1] units (4x the MSE of [0, 1] images); PSNR
 * uses the data range 2 of [-1, 1] images (equal to the PSNR of the same images in [0, 1] with range 1); both are the
 * mean over images of the per-image values. SSIM is {@link ImageMetrics#ssimSigned} (images mapped to [0, 1]).
 * IS-FMNIST uses {@link #inceptionScoreSplits}(N) splits. The floor of FID-FMNIST is the FID between two disjoint
 * halves of the test set (5,000 vs 5,000 images); a generated set scores near it only when it is as close to the test
 * distribution as real images are, and small sets score above it from estimation noise alone.
 */
public final class FmnistMetrics {
    /** Where the shipped classifier lives, relative to the project root. */
    public static final String ASSET_DIR = "assets/fmnist-classifier";
    /** System property holding the project root (set by bin/diffquant). */
    public static final String ROOT_PROPERTY = "diffquant.root";
    /** Most splits IS-FMNIST uses (as openai/improved-gan's inception_score.py). */
    public static final int MAX_IS_SPLITS = 10;
    /** Fewest images per IS split when there are fewer than {@value #MAX_IS_SPLITS} x this many. */
    public static final int MIN_IMAGES_PER_IS_SPLIT = 100;

    private final FmnistClassifier classifier;
    private final FmnistReferenceStats reference;
    private final String description;

    /**
     * @param description how the classifier is named in the table's info (e.g. its folder and weights hash)
     */
    public FmnistMetrics(FmnistClassifier classifier, FmnistReferenceStats reference, String description) {
        if (classifier == null || reference == null) throw new IllegalArgumentException("FMNIST metrics: classifier or reference stats missing");
        if (reference.fid().dimension() != classifier.config().featureDim()) throw new IllegalArgumentException(
                "FMNIST metrics: reference FID statistics have dimension " + reference.fid().dimension()
                        + " but the classifier's penultimate features have " + classifier.config().featureDim());
        if (reference.sfid().dimension() != classifier.config().spatialDim()) throw new IllegalArgumentException(
                "FMNIST metrics: reference sFID statistics have dimension " + reference.sfid().dimension()
                        + " but the classifier's spatial features have " + classifier.config().spatialDim());
        this.classifier = classifier;
        this.reference = reference;
        this.description = description == null ? FmnistClassifier.CLASS_NAME : description;
    }

    /** Loads the classifier and {@value FmnistReferenceStats#FILE} from a classifier folder. */
    public static FmnistMetrics load(Path folder) throws IOException {
        FmnistClassifier c = FmnistClassifier.load(folder);
        FmnistReferenceStats s = FmnistReferenceStats.load(folder.resolve(FmnistReferenceStats.FILE));
        String sha = s.metadata().get(FmnistReferenceStats.META_CLASSIFIER_SHA256);
        try {
            return new FmnistMetrics(c, s, FmnistClassifier.CLASS_NAME + " (" + folder + (sha == null ? "" : ", weights sha256 " + sha.substring(0, Math.min(12, sha.length()))) + ")");
        } catch (IllegalArgumentException e) {
            throw new IOException(folder + ": " + e.getMessage(), e);
        }
    }

    /** The shipped classifier folder: {@code $diffquant.root/assets/fmnist-classifier}, else the first
     *  {@code assets/fmnist-classifier} found from the working directory upwards. */
    public static Path defaultFolder() throws IOException {
        String root = System.getProperty(ROOT_PROPERTY);
        if (root != null && !root.isBlank()) {
            Path p = Path.of(root).resolve(ASSET_DIR);
            if (Files.isDirectory(p)) return p;
        }
        for (Path d = Path.of("").toAbsolutePath(); d != null; d = d.getParent()) {
            Path p = d.resolve(ASSET_DIR);
            if (Files.isRegularFile(p.resolve(FmnistClassifier.CONFIG))) return p;
        }
        throw new NoSuchFileException(ASSET_DIR, null, "the shipped Fashion-MNIST classifier was not found (looked in -D"
                + ROOT_PROPERTY + " and from " + Path.of("").toAbsolutePath() + " upwards)");
    }

    /** {@link #load}({@link #defaultFolder()}). */
    public static FmnistMetrics loadDefault() throws IOException { return load(defaultFolder()); }

    public FmnistClassifier classifier() { return classifier; }

    public FmnistReferenceStats reference() { return reference; }

    /** IS splits for N images: min(10, max(1, N / 100)), so every split has at least 100 images when N >= 100. */
    public static int inceptionScoreSplits(int n) {
        return Math.max(1, Math.min(MAX_IS_SPLITS, n / MIN_IMAGES_PER_IS_SPLIT));
    }

    /** FID-FMNIST of images against the stored test-set statistics. */
    public double fid(FmnistClassifier.Features f) {
        return FrechetDistance.compute(GaussianStats.fit(f.penultimate()), reference.fid());
    }

    /** sFID-FMNIST of images against the stored test-set statistics. */
    public double sfid(FmnistClassifier.Features f) {
        return FrechetDistance.compute(GaussianStats.fit(f.spatial()), reference.sfid());
    }

    /** {@link #evaluate(String, Map, Tensor, int[], Tensor)} with a default title and no extra info. */
    public MetricsTable evaluate(Tensor images, int[] labels, Tensor referenceImages) {
        return evaluate("Fashion-MNIST metrics", Map.of(), images, labels, referenceImages);
    }

    /**
     * All metrics of a set of generated images.
     *
     * @param title           the table's title
     * @param info            provenance put first in the table's info (model, sampler, seed ...); may be empty
     * @param images          generated images [N, 1, 28, 28] in [-1, 1], N >= 2, finite
     * @param labels          the class each image was conditioned on (length N, in [0, classes)), or null for
     *                        unconditional samples (no class accuracy row)
     * @param referenceImages images of the same shape sampled with the same seeds (and labels), or null (no
     *                        MSE/PSNR/SSIM rows)
     * @return rows FID-FMNIST (floor), sFID-FMNIST (floor), IS-FMNIST (± std over splits), then class accuracy [%],
     *         then MSE, PSNR [dB], SSIM when a reference is given
     */
    public MetricsTable evaluate(String title, Map<String, String> info, Tensor images, int[] labels, Tensor referenceImages) {
        FmnistClassifier.requireImages("FMNIST metrics", images);
        int n = images.dim(0);
        if (n < 2) throw new IllegalArgumentException("FMNIST metrics: FID-FMNIST needs at least 2 images, got " + n);
        requireFinite("generated images", images);
        int classes = classifier.config().numClasses();
        if (labels != null) {
            if (labels.length != n) throw new IllegalArgumentException(
                    "FMNIST metrics: " + labels.length + " labels for " + n + " images");
            for (int i = 0; i < n; i++) if (labels[i] < 0 || labels[i] >= classes) throw new IllegalArgumentException(
                    "FMNIST metrics: label[" + i + "] = " + labels[i] + " outside [0, " + classes + ")");
        }
        if (referenceImages != null) {
            if (!referenceImages.sameShape(images)) throw new IllegalArgumentException("FMNIST metrics: reference images are "
                    + Arrays.toString(referenceImages.shape()) + " but the generated images are " + Arrays.toString(images.shape()));
            requireFinite("reference images", referenceImages);
        }
        FmnistClassifier.Features f = classifier.features(images);
        int splits = inceptionScoreSplits(n);
        Map<String, String> inf = new LinkedHashMap<>(info == null ? Map.of() : info);
        inf.put("images", Integer.toString(n));
        inf.put("feature network", description);
        inf.put("FID reference", "Fashion-MNIST test set, " + reference.count() + " images; "
                + "FID-FMNIST/sFID-FMNIST use this classifier, not Inception-v3");
        inf.put("floor", "FID between two disjoint halves of the test set ("
                + reference.metadata().getOrDefault(FmnistReferenceStats.META_FLOOR_SPLIT, "5000 vs 5000") + ")");
        inf.put("IS-FMNIST splits", Integer.toString(splits));
        if (referenceImages != null) inf.put("MSE/PSNR/SSIM", "vs reference images; MSE in [-1, 1] units, PSNR with range 2, SSIM of images mapped to [0, 1]");
        MetricsTable t = new MetricsTable(title, inf, java.util.List.of())
                .withFid(MetricsTable.FID_FMNIST, fid(f), reference.fidFloor())
                .withFid(MetricsTable.SFID_FMNIST, sfid(f), reference.sfidFloor())
                .withInceptionScore(MetricsTable.IS_FMNIST, InceptionScore.fromLogits(f.logits(), splits));
        if (labels != null) t = t.with(MetricsTable.CLASS_ACCURACY, 100.0 * f.accuracy(labels), "%");
        if (referenceImages != null) {
            t = t.with(MetricsTable.MSE, ImageMetrics.mse(images, referenceImages).mean(), "")
                    .with(MetricsTable.PSNR, ImageMetrics.psnr(images, referenceImages, ImageMetrics.RANGE_SIGNED_UNIT).mean(), "dB")
                    .with(MetricsTable.SSIM, ImageMetrics.ssimSigned(images, referenceImages).mean(), "");
        }
        return t;
    }

    private static void requireFinite(String what, Tensor t) {
        float[] d = t.data();
        for (int i = 0; i < d.length; i++) if (!Float.isFinite(d[i])) throw new IllegalArgumentException("FMNIST metrics: "
                + what + " contain a non-finite value (" + d[i] + ") in image " + i / (d.length / t.dim(0)));
    }
}
