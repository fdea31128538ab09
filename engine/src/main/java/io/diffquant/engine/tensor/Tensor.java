package io.diffquant.engine.tensor;

import java.util.Arrays;

/** A dense, contiguous, row-major float32 tensor. The engine's only activation/weight container. */
public final class Tensor {
    private final float[] data;
    private final int[] shape;

    private Tensor(float[] data, int[] shape) {
        long n = numel(shape);
        if (n != data.length) {
            throw new IllegalArgumentException("shape " + Arrays.toString(shape) + " needs " + n
                    + " elements but the buffer has " + data.length);
        }
        this.data = data;
        this.shape = shape.clone();
    }

    public static Tensor of(float[] data, int... shape) { return new Tensor(data, shape); }

    public static Tensor zeros(int... shape) {
        long n = numel(shape);
        if (n > Integer.MAX_VALUE - 16) throw new IllegalArgumentException("tensor too large: " + Arrays.toString(shape));
        return new Tensor(new float[(int) n], shape);
    }

    public static Tensor full(float v, int... shape) {
        Tensor t = zeros(shape);
        Arrays.fill(t.data, v);
        return t;
    }

    public static Tensor scalar(float v) { return new Tensor(new float[] {v}, new int[0]); }

    public static long numel(int[] shape) {
        long n = 1;
        for (int s : shape) {
            if (s < 0) throw new IllegalArgumentException("negative dimension in " + Arrays.toString(shape));
            n *= s;
        }
        return n;
    }

    /** Backing array (shared, row-major). */
    public float[] data() { return data; }
    public int[] shape() { return shape.clone(); }
    public int rank() { return shape.length; }
    public int size() { return data.length; }

    /** Size of dimension i; negative i counts from the end. */
    public int dim(int i) { return shape[i < 0 ? shape.length + i : i]; }

    /** Same data, new shape; one dimension may be -1. (A view: autodiff keys gradients by buffer, see Tape.) */
    public Tensor reshape(int... newShape) {
        int[] s = newShape.clone();
        int infer = -1;
        long known = 1;
        for (int i = 0; i < s.length; i++) {
            if (s[i] == -1) {
                if (infer >= 0) throw new IllegalArgumentException("only one -1 allowed in reshape");
                infer = i;
            } else known *= s[i];
        }
        if (infer >= 0) {
            if (known == 0 || data.length % known != 0) throw new IllegalArgumentException(
                    "cannot reshape " + Arrays.toString(shape) + " to " + Arrays.toString(newShape));
            s[infer] = (int) (data.length / known);
        }
        if (numel(s) != data.length) throw new IllegalArgumentException(
                "cannot reshape " + Arrays.toString(shape) + " to " + Arrays.toString(newShape));
        return new Tensor(data, s);
    }

    /** A copy with its own buffer (recorded on an active Tape as an identity op). */
    public Tensor copy() {
        Tensor out = new Tensor(data.clone(), shape);
        Ops.recordSliceRows(this, out, 0);
        return out;
    }

    public boolean sameShape(Tensor o) { return Arrays.equals(shape, o.shape); }

    public void requireShape(String what, int... expected) {
        if (!Arrays.equals(shape, expected)) throw new IllegalArgumentException(
                what + ": expected shape " + Arrays.toString(expected) + " but got " + Arrays.toString(shape));
    }

    public float get(int... idx) { return data[offset(idx)]; }
    public void set(float v, int... idx) { data[offset(idx)] = v; }

    private int offset(int[] idx) {
        if (idx.length != shape.length) throw new IllegalArgumentException("index rank " + idx.length + " != " + shape.length);
        int off = 0;
        for (int i = 0; i < idx.length; i++) {
            if (idx[i] < 0 || idx[i] >= shape[i]) throw new IndexOutOfBoundsException(
                    "index " + Arrays.toString(idx) + " out of shape " + Arrays.toString(shape));
            off = off * shape[i] + idx[i];
        }
        return off;
    }

    /** Rows [from, to) of the leading dimension, copied (recorded on an active Tape). */
    public Tensor sliceRows(int from, int to) {
        int rows = shape[0];
        if (from < 0 || to > rows || from > to) throw new IndexOutOfBoundsException("rows " + from + ".." + to + " of " + rows);
        int inner = rows == 0 ? 0 : data.length / rows;
        int[] s = shape.clone();
        s[0] = to - from;
        Tensor out = new Tensor(Arrays.copyOfRange(data, from * inner, to * inner), s);
        Ops.recordSliceRows(this, out, from * inner);
        return out;
    }

    /** Concatenate along dimension 0 (recorded on an active Tape). */
    public static Tensor concatRows(Tensor... parts) {
        int[] s = parts[0].shape();
        int rows = 0;
        for (Tensor p : parts) {
            if (p.rank() != s.length) throw new IllegalArgumentException("rank mismatch in concatRows");
            for (int i = 1; i < s.length; i++) if (p.shape[i] != s[i]) throw new IllegalArgumentException(
                    "shape mismatch in concatRows: " + Arrays.toString(p.shape) + " vs " + Arrays.toString(s));
            rows += p.shape[0];
        }
        s[0] = rows;
        Tensor out = zeros(s);
        int off = 0;
        for (Tensor p : parts) {
            System.arraycopy(p.data, 0, out.data, off, p.data.length);
            off += p.data.length;
        }
        Ops.recordConcatRows(parts, out);
        return out;
    }

    public boolean allFinite() {
        for (float v : data) if (!Float.isFinite(v)) return false;
        return true;
    }

    @Override public String toString() { return "Tensor" + Arrays.toString(shape); }
}
