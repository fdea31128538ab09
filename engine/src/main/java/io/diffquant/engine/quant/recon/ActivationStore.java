package io.diffquant.engine.quant.recon;

import io.diffquant.engine.tensor.Tensor;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * The cached data of one reconstruction unit (BRECQ's cached_inps / cached_outs in Xiuyu-Li/q-diffusion
 * qdiff/utils.py save_inp_oup_data): for every calibration row, a fixed list of tensors (the unit's inputs and its
 * full-precision target), the row's timestep value and label. Rows are appended in calibration-batch order and read
 * back in arbitrary mini-batches ({@link #gather}).
 *
 * <p>Memory bound: when the first append shows that all rows would take more than the memory budget, the store
 * spills to a raw little-endian float32 temp file (row-major: row r holds its fields one after the other) and reads
 * mini-batches back with positional reads; only the rows of one append or one gather are in memory at a time. The
 * temp file is deleted by {@link #close()}. Both paths return bit-identical batches.
 */
public final class ActivationStore implements AutoCloseable {
    /** A mini-batch: one tensor per field ([n, row shape...]), timesteps and labels (null when unconditional). */
    public record Batch(Tensor[] fields, float[] t, int[] y) {
        public int size() { return t.length; }
    }

    private final int rows;
    private final long budget;
    private final Path spillDir;
    private int filled;
    private int[][] rowShapes;
    private int[] rowFloats;
    private int floatsPerRow;
    private final float[] t;
    private int[] y;
    private boolean hasLabels;
    // memory path
    private float[][][] mem;        // [field][row] -> data
    // disk path
    private Path file;
    private FileChannel channel;
    private boolean closed;

    /**
     * @param rows         rows that will be appended
     * @param memoryBudget bytes the rows may take in memory; beyond that they are spilled to disk (0 = always spill)
     * @param spillDir     directory for the temp file (null = java.io.tmpdir)
     */
    public ActivationStore(int rows, long memoryBudget, Path spillDir) {
        if (rows < 1) throw new IllegalArgumentException("activation store needs at least one row, got " + rows);
        this.rows = rows;
        this.budget = memoryBudget;
        this.spillDir = spillDir;
        this.t = new float[rows];
    }

    public int rows() { return rows; }
    public int filled() { return filled; }
    public boolean complete() { return filled == rows; }
    /** Whether the rows live in a temp file (decided at the first append). */
    public boolean spilled() { return file != null; }
    /** The temp file, or null. */
    public Path file() { return file; }
    /** Bytes all rows take. */
    public long bytes() { return (long) rows * floatsPerRow * 4; }
    public int fields() { return rowShapes == null ? 0 : rowShapes.length; }
    /** The per-row shape of a field. */
    public int[] rowShape(int field) { return rowShapes[field].clone(); }

    /**
     * Appends a batch of rows: every field tensor is [b, row shape...] (the same row shapes at every call), t and y
     * hold b values (y null for unconditional data, at every call).
     */
    public void append(Tensor[] fields, float[] ts, int[] ys) {
        if (closed) throw new IllegalStateException("activation store is closed");
        if (fields == null || fields.length == 0) throw new IllegalArgumentException("append needs at least one field");
        int b = ts.length;
        if (rowShapes == null) init(fields, ys != null);
        if (fields.length != rowShapes.length) throw new IllegalArgumentException("append: " + fields.length + " fields, the store has " + rowShapes.length);
        for (int f = 0; f < fields.length; f++) {
            Tensor x = fields[f];
            if (x.rank() < 1 || x.dim(0) != b || x.size() != (long) b * rowFloats[f])
                throw new IllegalArgumentException("append: field " + f + " has shape " + Arrays.toString(x.shape()) + ", expected [" + b
                        + ", " + Arrays.toString(rowShapes[f]).replaceAll("[\\[\\]]", "") + "]");
        }
        if ((ys != null) != hasLabels || (ys != null && ys.length != b))
            throw new IllegalArgumentException("append: labels must be given for every row of every batch or never");
        if (filled + b > rows) throw new IllegalArgumentException("append: " + (filled + b) + " rows exceed the store's " + rows);
        System.arraycopy(ts, 0, t, filled, b);
        if (hasLabels) System.arraycopy(ys, 0, y, filled, b);
        if (file == null) {
            for (int f = 0; f < fields.length; f++) {
                float[] src = fields[f].data();
                for (int r = 0; r < b; r++) mem[f][filled + r] = Arrays.copyOfRange(src, r * rowFloats[f], (r + 1) * rowFloats[f]);
            }
        } else {
            ByteBuffer buf = ByteBuffer.allocate(b * floatsPerRow * 4).order(ByteOrder.LITTLE_ENDIAN);
            for (int r = 0; r < b; r++) {
                for (int f = 0; f < fields.length; f++) {
                    // a float view starts at the buffer's position and does not move it: advance by hand
                    buf.asFloatBuffer().put(fields[f].data(), r * rowFloats[f], rowFloats[f]);
                    buf.position(buf.position() + rowFloats[f] * 4);
                }
            }
            buf.flip();
            try {
                long pos = (long) filled * floatsPerRow * 4;
                while (buf.hasRemaining()) pos += channel.write(buf, pos);
            } catch (IOException e) {
                throw new UncheckedIOException("writing reconstruction cache " + file + ": " + e.getMessage(), e);
            }
        }
        filled += b;
    }

    private void init(Tensor[] fields, boolean labels) {
        rowShapes = new int[fields.length][];
        rowFloats = new int[fields.length];
        long per = 0;
        for (int f = 0; f < fields.length; f++) {
            int[] s = fields[f].shape();
            if (s.length < 1) throw new IllegalArgumentException("append: field " + f + " is a scalar, expected [rows, ...]");
            rowShapes[f] = Arrays.copyOfRange(s, 1, s.length);
            rowFloats[f] = (int) Tensor.numel(rowShapes[f]);
            per += rowFloats[f];
        }
        if (per > Integer.MAX_VALUE / 4) throw new IllegalArgumentException("a cached row of " + per + " floats is too large");
        floatsPerRow = (int) per;
        hasLabels = labels;
        if (labels) y = new int[rows];
        if (bytes() > budget) {
            try {
                Path dir = spillDir != null ? spillDir : Path.of(System.getProperty("java.io.tmpdir"));
                Files.createDirectories(dir);
                file = Files.createTempFile(dir, "diffquant-recon-", ".f32");
                channel = FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE);
            } catch (IOException e) {
                throw new UncheckedIOException("cannot create a reconstruction spill file in " + spillDir + ": " + e.getMessage(), e);
            }
        } else {
            mem = new float[fields.length][rows][];
        }
    }

    /** The rows idx (any order, repeats allowed), as a batch in that order. */
    public Batch gather(int[] idx) {
        if (closed) throw new IllegalStateException("activation store is closed");
        if (rowShapes == null) throw new IllegalStateException("activation store is empty");
        int n = idx.length, nf = rowShapes.length;
        Tensor[] out = new Tensor[nf];
        for (int f = 0; f < nf; f++) {
            int[] s = new int[rowShapes[f].length + 1];
            s[0] = n;
            System.arraycopy(rowShapes[f], 0, s, 1, rowShapes[f].length);
            out[f] = Tensor.zeros(s);
        }
        float[] ts = new float[n];
        int[] ys = hasLabels ? new int[n] : null;
        ByteBuffer buf = file == null ? null : ByteBuffer.allocate(floatsPerRow * 4).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < n; i++) {
            int r = idx[i];
            if (r < 0 || r >= filled) throw new IndexOutOfBoundsException("row " + r + " of a store with " + filled + " rows");
            ts[i] = t[r];
            if (ys != null) ys[i] = y[r];
            if (file == null) {
                for (int f = 0; f < nf; f++) System.arraycopy(mem[f][r], 0, out[f].data(), i * rowFloats[f], rowFloats[f]);
            } else {
                buf.clear();
                try {
                    long pos = (long) r * floatsPerRow * 4;
                    while (buf.hasRemaining()) {
                        int k = channel.read(buf, pos + buf.position());
                        if (k < 0) throw new IOException("unexpected end of file at row " + r);
                    }
                } catch (IOException e) {
                    throw new UncheckedIOException("reading reconstruction cache " + file + ": " + e.getMessage(), e);
                }
                buf.flip();
                int off = 0;
                for (int f = 0; f < nf; f++) {
                    buf.position(off * 4);
                    buf.asFloatBuffer().get(out[f].data(), i * rowFloats[f], rowFloats[f]);
                    off += rowFloats[f];
                }
            }
        }
        return new Batch(out, ts, ys);
    }

    /** Timestep value of a row. */
    public float t(int row) { return t[row]; }

    /** Row indices grouped by timestep value (ascending t), for per-timestep mini-batches. */
    public List<int[]> rowsByTimestep() {
        java.util.TreeMap<Float, List<Integer>> m = new java.util.TreeMap<>();
        for (int r = 0; r < filled; r++) m.computeIfAbsent(t[r] == 0f ? 0f : t[r], k -> new ArrayList<>()).add(r);
        List<int[]> out = new ArrayList<>();
        for (List<Integer> l : m.values()) out.add(l.stream().mapToInt(Integer::intValue).toArray());
        return out;
    }

    /** Frees the rows and deletes the spill file. Idempotent. */
    @Override public synchronized void close() {
        if (closed) return;
        closed = true;
        mem = null;
        if (channel != null) {
            try {
                channel.close();
            } catch (IOException ignored) {
                // deleting below is what matters
            }
        }
        if (file != null) {
            try {
                Files.deleteIfExists(file);
            } catch (IOException e) {
                java.util.logging.Logger.getLogger(ActivationStore.class.getName()).warning("cannot delete " + file + ": " + e.getMessage());
            }
        }
    }
}
