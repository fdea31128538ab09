package io.diffquant.engine.quant.calib;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.diffquant.engine.io.AtomicFiles;
import io.diffquant.engine.io.JsonException;
import io.diffquant.engine.io.JsonView;
import io.diffquant.engine.io.SafetensorsReader;
import io.diffquant.engine.io.TensorInfo;
import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.quant.config.ConfigJson;
import io.diffquant.engine.quant.config.ModelIdentity;
import io.diffquant.engine.tensor.Tensor;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import java.util.NoSuchElementException;

/**
 * Recorded calibration data on disk (Q-Diffusion / TFMQ-DM: x_t of the full-precision sampler at every step, keyed by
 * the timestep VALUE). A directory holds {@code calibration.json} (model identity, {@link CalibrationSettings}, image
 * shape, timesteps in sampling order, the run files) and one safetensors file per sampling run with the denoiser
 * inputs of every step: {@code x.t<t>} F32 [rows, C, H, W] and, for conditional models, {@code y} I32 [rows] (rows = the
 * run's images, twice that with classifier-free guidance: conditional then null-class half, exactly what the model saw).
 * Files are written atomically, so a recording can be resumed ({@link CalibrationRecorder}) and reused. Iteration
 * ({@link #batches}) streams rows from the memory-mapped files: memory stays bounded by one forward batch.
 */
public final class CalibrationSet {
    public static final String MANIFEST = "calibration.json";
    public static final String FORMAT = "diffquant-calibration";
    public static final int VERSION = 1;

    /** One run file: its name, first global row and row count. */
    public record RunFile(String file, int firstRow, int rows) {}

    private final Path dir;
    private final ModelIdentity model;
    private final CalibrationSettings settings;
    private final int[] imageShape;
    private final int[] timesteps;
    private final List<RunFile> files;
    private final int rows;

    CalibrationSet(Path dir, ModelIdentity model, CalibrationSettings settings, int[] imageShape, int[] timesteps, List<RunFile> files) {
        this.dir = dir;
        this.model = model;
        this.settings = settings;
        this.imageShape = imageShape.clone();
        this.timesteps = timesteps.clone();
        this.files = List.copyOf(files);
        int r = 0;
        for (RunFile f : files) r += f.rows();
        this.rows = r;
    }

    public Path dir() { return dir; }
    public ModelIdentity model() { return model; }
    public CalibrationSettings settings() { return settings; }
    /** (C, H, W) of x. */
    public int[] imageShape() { return imageShape.clone(); }
    /** Timestep values in sampling order (descending). */
    public int[] timesteps() { return timesteps.clone(); }
    /** Recorded rows per timestep. */
    public int rows() { return rows; }
    public List<RunFile> files() { return files; }
    /** Whether every run of the settings has been recorded. */
    public boolean complete() { return files.size() == settings.runs(); }

    /** Records (or resumes) a full calibration set: runs every sampling step of every run. */
    public static CalibrationSet record(DiffusionModel model, ModelIdentity identity, CalibrationSettings settings, Path dir) throws IOException {
        CalibrationRecorder r = CalibrationRecorder.start(model, identity, settings, dir);
        while (r.hasNext()) r.next();
        return r.result();
    }

    /** Opens a recording; errors name the directory and file. */
    public static CalibrationSet open(Path dir) throws IOException {
        Path m = dir.resolve(MANIFEST);
        if (!Files.isRegularFile(m)) throw new NoSuchFileException(m.toString(), null, "not a calibration cache (no " + MANIFEST + ")");
        JsonView v = ConfigJson.parse(Files.readString(m), m.toString());
        ConfigJson.requireOnly(v, new java.util.LinkedHashSet<>(List.of("format", "version", "model", "settings", "image_shape", "timesteps", "files")));
        if (!FORMAT.equals(v.requireString("format"))) throw v.error("format", "expected \"" + FORMAT + "\"");
        int version = v.requireInt("version");
        if (version != VERSION) throw v.error("version", "unsupported calibration cache version " + version + " (this build reads " + VERSION + ")");
        ModelIdentity id = ModelIdentity.fromJson(v.get("model"));
        CalibrationSettings s = CalibrationSettings.fromJson(v.get("settings"));
        int[] shape = v.requireIntArray("image_shape");
        if (shape.length != 3) throw v.error("image_shape", "expected [C, H, W]");
        int[] ts = v.requireIntArray("timesteps");
        List<RunFile> files = new ArrayList<>();
        int row = 0;
        for (JsonView f : v.get("files").elements()) {
            String name = f.requireString("file");
            int r = f.requireInt("rows");
            if (name.contains("/") || name.contains("\\") || !Files.isRegularFile(dir.resolve(name)))
                throw f.error("file", "run file '" + name + "' is missing in " + dir);
            files.add(new RunFile(name, row, r));
            row += r;
        }
        return new CalibrationSet(dir, id, s, shape, ts, files);
    }

    void writeManifest() throws IOException {
        ObjectNode o = ConfigJson.object();
        o.put("format", FORMAT);
        o.put("version", VERSION);
        o.set("model", model.toJson());
        o.set("settings", settings.toJson());
        o.set("image_shape", ConfigJson.ints(imageShape));
        o.set("timesteps", ConfigJson.ints(timesteps));
        ArrayNode fa = o.putArray("files");
        for (RunFile f : files) fa.addObject().put("file", f.file()).put("rows", f.rows());
        AtomicFiles.writeString(dir.resolve(MANIFEST), ConfigJson.write(o));
    }

    static String tensorName(int t) { return "x.t" + t; }

    /** The (timestep, rows) pairs a subset selects here. */
    public List<TimestepSubset.Selection> select(TimestepSubset subset) { return subset.select(timesteps, rows); }

    /**
     * Streams the selected rows in batches of at most {@code batchSize} rows; a batch never mixes timesteps.
     * Order: selected timesteps in sampling order, rows ascending.
     */
    public Iterable<CalibBatch> batches(TimestepSubset subset, int batchSize) {
        if (batchSize < 1) throw new IllegalArgumentException("batch size must be >= 1, got " + batchSize);
        if (!complete()) throw new IllegalStateException("calibration cache " + dir + " is incomplete (" + files.size() + " of "
                + settings.runs() + " runs recorded): resume the recording first");
        List<TimestepSubset.Selection> sel = select(subset);
        return () -> new BatchIterator(sel, batchSize);
    }

    /** Number of forward batches {@link #batches} yields. */
    public int batchCount(TimestepSubset subset, int batchSize) {
        int n = 0;
        for (TimestepSubset.Selection s : select(subset)) n += (s.rows().length + batchSize - 1) / batchSize;
        return n;
    }

    private final class BatchIterator implements Iterator<CalibBatch> {
        private final List<TimestepSubset.Selection> sel;
        private final int batchSize;
        private int si, ri;
        private final int rowLen = imageShape[0] * imageShape[1] * imageShape[2];

        BatchIterator(List<TimestepSubset.Selection> sel, int batchSize) {
            this.sel = sel;
            this.batchSize = batchSize;
        }

        @Override public boolean hasNext() { return si < sel.size(); }

        @Override public CalibBatch next() {
            if (!hasNext()) throw new NoSuchElementException();
            TimestepSubset.Selection s = sel.get(si);
            int[] all = s.rows();
            int n = Math.min(batchSize, all.length - ri);
            int[] rowsHere = Arrays.copyOfRange(all, ri, ri + n);
            ri += n;
            if (ri >= all.length) { si++; ri = 0; }
            try {
                return read(s.t(), rowsHere);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }

        private CalibBatch read(int t, int[] want) throws IOException {
            Tensor x = Tensor.zeros(want.length, imageShape[0], imageShape[1], imageShape[2]);
            int[] y = null;
            int k = 0;
            for (RunFile f : files) {
                int lo = k;
                while (k < want.length && want[k] < f.firstRow() + f.rows()) k++;
                if (k == lo) continue;
                Path p = dir.resolve(f.file());
                try (SafetensorsReader r = SafetensorsReader.open(p)) {
                    String name = tensorName(t);
                    TensorInfo info = r.info(name);
                    long[] sh = info.shape();
                    if (sh.length != 4 || sh[0] != f.rows() || sh[1] * sh[2] * sh[3] != rowLen)
                        throw new IOException(p + ": tensor '" + name + "' has shape " + Arrays.toString(sh) + ", expected ["
                                + f.rows() + ", " + imageShape[0] + ", " + imageShape[1] + ", " + imageShape[2] + "]");
                    MemorySegment seg = r.segment(name);
                    int[] labels = r.contains("y") ? r.readInts("y") : null;
                    if (labels != null && y == null) y = new int[want.length];
                    for (int i = lo; i < k; i++) {
                        int local = want[i] - f.firstRow();
                        MemorySegment.copy(seg, ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), (long) local * rowLen * 4,
                                x.data(), i * rowLen, rowLen);
                        if (labels != null) y[i] = labels[local];
                    }
                }
                if (k == want.length) break;
            }
            if (k != want.length) throw new IOException(dir + ": row " + want[k] + " is beyond the " + rows + " recorded rows");
            return new CalibBatch(t, x, y, want);
        }
    }
}
