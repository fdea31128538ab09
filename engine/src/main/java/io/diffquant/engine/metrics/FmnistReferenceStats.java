package io.diffquant.engine.metrics;

import io.diffquant.engine.io.DType;
import io.diffquant.engine.io.SafetensorsReader;
import io.diffquant.engine.io.SafetensorsWriter;
import io.diffquant.engine.io.TensorInfo;
import io.diffquant.engine.tensor.Tensor;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The real-data side of FID-FMNIST and sFID-FMNIST: Gaussians fitted (mseitzer/pytorch-fid
 * {@code calculate_activation_statistics}) to the {@link FmnistClassifier} features of the 10,000 Fashion-MNIST test
 * images, and the real-data floors: the Fréchet distances between the first 5,000 and the last 5,000 test images,
 * i.e. what two independent real sets of 5,000 score (ALGORITHMS.md §9). Stored so that metrics need no dataset.
 *
 * <p>File layout ({@value #FILE}), all F32 (the Gaussians are fitted in double and rounded once for storage, which
 * keeps the shipped file small; the rounding moves an FID by less than 1e-4), row-major:
 * <ul>
 *   <li>{@value #FID_MU} [hidden], {@value #FID_SIGMA} [hidden, hidden]: penultimate (fc1, pre-ReLU) features</li>
 *   <li>{@value #SFID_MU} [s·49], {@value #SFID_SIGMA} [s·49, s·49]: spatial features (first s channels of the 7x7 map)</li>
 * </ul>
 * Metadata (strings): {@value #META_COUNT} (images the Gaussians were fitted on), {@value #META_FID_FLOOR},
 * {@value #META_SFID_FLOOR} (decimal, Java's shortest round-trip form), {@value #META_FLOOR_SPLIT} (which halves),
 * plus provenance such as the classifier's weights sha256 ({@value #META_CLASSIFIER_SHA256}).
 *
 * @param fid       Gaussian of the penultimate features of the reference images
 * @param sfid      Gaussian of the spatial features of the reference images
 * @param fidFloor  FID-FMNIST between the two halves of the reference images
 * @param sfidFloor sFID-FMNIST between the two halves
 * @param metadata  everything stored in the file's metadata (including the values above)
 */
public record FmnistReferenceStats(GaussianStats fid, GaussianStats sfid, double fidFloor, double sfidFloor,
                                   Map<String, String> metadata) {
    public static final String FILE = "reference-stats.safetensors";
    public static final String FID_MU = "fid.mu";
    public static final String FID_SIGMA = "fid.sigma";
    public static final String SFID_MU = "sfid.mu";
    public static final String SFID_SIGMA = "sfid.sigma";
    public static final String META_COUNT = "count";
    public static final String META_FID_FLOOR = "fid_floor";
    public static final String META_SFID_FLOOR = "sfid_floor";
    public static final String META_FLOOR_SPLIT = "floor_split";
    public static final String META_CLASSIFIER_SHA256 = "classifier_sha256";

    public FmnistReferenceStats {
        if (fid == null || sfid == null) throw new IllegalArgumentException("reference stats: missing Gaussian");
        metadata = Map.copyOf(metadata == null ? Map.of() : metadata);
    }

    /**
     * Fits the statistics to {@code images} [N, 1, 28, 28] (N >= 4, normally the 10,000 test images): the Gaussians on
     * all N, the floors between rows [0, N/2) and [N/2, N).
     *
     * @param extraMetadata added to the metadata (e.g. the dataset and the classifier's sha256); may be null
     */
    public static FmnistReferenceStats compute(FmnistClassifier classifier, Tensor images, Map<String, String> extraMetadata) {
        FmnistClassifier.requireImages("reference stats", images);
        int n = images.dim(0);
        if (n < 4) throw new IllegalArgumentException("reference stats: need at least 4 images, got " + n);
        FmnistClassifier.Features f = classifier.features(images);
        return fromFeatures(f, extraMetadata);
    }

    /** As {@link #compute}, from already computed features. */
    public static FmnistReferenceStats fromFeatures(FmnistClassifier.Features f, Map<String, String> extraMetadata) {
        int n = f.size(), half = n / 2;
        GaussianStats fidAll = GaussianStats.fit(f.penultimate());
        GaussianStats sfidAll = GaussianStats.fit(f.spatial());
        double fidFloor = FrechetDistance.compute(GaussianStats.fit(f.penultimate().sliceRows(0, half)),
                GaussianStats.fit(f.penultimate().sliceRows(half, n)));
        double sfidFloor = FrechetDistance.compute(GaussianStats.fit(f.spatial().sliceRows(0, half)),
                GaussianStats.fit(f.spatial().sliceRows(half, n)));
        Map<String, String> meta = new LinkedHashMap<>();
        if (extraMetadata != null) meta.putAll(extraMetadata);
        meta.put(META_COUNT, Integer.toString(n));
        meta.put(META_FID_FLOOR, Double.toString(fidFloor));
        meta.put(META_SFID_FLOOR, Double.toString(sfidFloor));
        meta.put(META_FLOOR_SPLIT, "images [0, " + half + ") vs [" + half + ", " + n + ")");
        return new FmnistReferenceStats(fidAll, sfidAll, fidFloor, sfidFloor, meta);
    }

    /** Number of images the Gaussians were fitted on. */
    public long count() { return fid.count(); }

    /** Writes the file (F32 tensors + metadata) atomically. */
    public void write(Path file) throws IOException {
        SafetensorsWriter w = new SafetensorsWriter();
        metadata.entrySet().stream().sorted(Map.Entry.comparingByKey()).forEach(e -> w.metadata(e.getKey(), e.getValue()));
        addF32(w, FID_MU, fid.mean(), fid.dimension());
        addF32(w, FID_SIGMA, fid.covarianceFlat(), fid.dimension(), fid.dimension());
        addF32(w, SFID_MU, sfid.mean(), sfid.dimension());
        addF32(w, SFID_SIGMA, sfid.covarianceFlat(), sfid.dimension(), sfid.dimension());
        w.write(file);
    }

    private static void addF32(SafetensorsWriter w, String name, double[] v, long... shape) {
        ByteBuffer b = ByteBuffer.allocate(v.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        for (double d : v) b.putFloat((float) d);
        w.addRaw(name, DType.F32, shape, b.array());
    }

    /** Reads a file written by {@link #write} (F32 or F64 tensors); every error names the file and the tensor or metadata key. */
    public static FmnistReferenceStats load(Path file) throws IOException {
        if (!Files.isRegularFile(file)) throw new NoSuchFileException(file.toString(), null,
                "FID-FMNIST reference statistics missing (written by 'diffquant train-classifier')");
        try (SafetensorsReader r = SafetensorsReader.open(file)) {
            Map<String, String> meta = r.metadata();
            long count = parseLong(file, meta, META_COUNT);
            double fidFloor = parseDouble(file, meta, META_FID_FLOOR);
            double sfidFloor = parseDouble(file, meta, META_SFID_FLOOR);
            try {
                GaussianStats fid = GaussianStats.fromArrays(readArray(r, file, FID_MU, 1), readArray(r, file, FID_SIGMA, 2), count);
                GaussianStats sfid = GaussianStats.fromArrays(readArray(r, file, SFID_MU, 1), readArray(r, file, SFID_SIGMA, 2), count);
                return new FmnistReferenceStats(fid, sfid, fidFloor, sfidFloor, meta);
            } catch (IllegalArgumentException e) {
                throw new IOException(file + ": " + e.getMessage(), e);
            }
        }
    }

    private static double[] readArray(SafetensorsReader r, Path file, String name, int rank) throws IOException {
        if (!r.contains(name)) throw new IOException(file + ": tensor '" + name + "' is missing (expected "
                + FID_MU + ", " + FID_SIGMA + ", " + SFID_MU + ", " + SFID_SIGMA + ")");
        TensorInfo info = r.info(name);
        long[] shape = info.shape();
        if (shape.length != rank) throw new IOException(file + ": tensor '" + name + "' has shape " + Arrays.toString(shape)
                + ", expected rank " + rank);
        if (info.dtype() == DType.F64) {
            MemorySegment s = r.segment(name);
            int n = (int) info.numel();
            double[] out = new double[n];
            MemorySegment.copy(s, ValueLayout.JAVA_DOUBLE_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 0, out, 0, n);
            return out;
        }
        if (info.dtype() == DType.F32) {
            float[] f = r.readFloat(name).data();
            double[] out = new double[f.length];
            for (int i = 0; i < f.length; i++) out[i] = f[i];
            return out;
        }
        throw new IOException(file + ": tensor '" + name + "' is " + info.dtype() + ", expected F64 or F32");
    }

    private static String require(Path file, Map<String, String> meta, String key) throws IOException {
        String v = meta.get(key);
        if (v == null) throw new IOException(file + ": metadata key '" + key + "' is missing");
        return v;
    }

    private static long parseLong(Path file, Map<String, String> meta, String key) throws IOException {
        String v = require(file, meta, key);
        try {
            long n = Long.parseLong(v.trim());
            if (n < 2) throw new NumberFormatException();
            return n;
        } catch (NumberFormatException e) {
            throw new IOException(file + ": metadata '" + key + "' must be an integer >= 2, got '" + v + "'");
        }
    }

    private static double parseDouble(Path file, Map<String, String> meta, String key) throws IOException {
        String v = require(file, meta, key);
        try {
            double d = Double.parseDouble(v.trim());
            if (!Double.isFinite(d) || d < 0) throw new NumberFormatException();
            return d;
        } catch (NumberFormatException e) {
            throw new IOException(file + ": metadata '" + key + "' must be a finite number >= 0, got '" + v + "'");
        }
    }
}
