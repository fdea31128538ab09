package io.diffquant.engine.quant.format;

import io.diffquant.engine.tensor.Tensor;

import java.util.Arrays;

/** Input checks for quantization: non-finite values are rejected with the tensor's name and index. */
public final class QuantChecks {
    private QuantChecks() {}

    /** Thrown for NaN or infinite values where a finite range is needed; carries the flat index. */
    public static final class NonFiniteException extends IllegalArgumentException {
        private final int flatIndex;
        private final float value;

        public NonFiniteException(String message, int flatIndex, float value) {
            super(message);
            this.flatIndex = flatIndex;
            this.value = value;
        }

        public int flatIndex() { return flatIndex; }
        public float value() { return value; }
    }

    /** Index of the first NaN or infinite value in data[from, to), or -1. */
    public static int firstNonFinite(float[] data, int from, int to) {
        for (int i = from; i < to; i++) {
            float v = data[i];
            if (!(Math.abs(v) <= Float.MAX_VALUE)) return i;
        }
        return -1;
    }

    /** Index of the first NaN in data[from, to), or -1. */
    public static int firstNaN(float[] data, int from, int to) {
        for (int i = from; i < to; i++) if (data[i] != data[i]) return i;
        return -1;
    }

    /**
     * Throws {@link NonFiniteException} if the tensor holds NaN or ±infinity, e.g.
     * "tensor 'blocks.0.attn.qkv.weight' [1152, 384] has 3 non-finite values, the first NaN at [12, 7]; quantization needs finite values".
     */
    public static void requireFinite(String tensorName, Tensor t) {
        float[] d = t.data();
        int first = firstNonFinite(d, 0, d.length);
        if (first < 0) return;
        int count = 0;
        for (float v : d) if (!(Math.abs(v) <= Float.MAX_VALUE)) count++;
        throw new NonFiniteException(describe(tensorName, t.shape()) + " has " + count + " non-finite value" + (count == 1 ? "" : "s")
                + ", the first " + d[first] + " at " + index(t.shape(), first) + "; quantization needs finite values",
                first, d[first]);
    }

    static String describe(String name, int[] shape) {
        return (name == null || name.isEmpty() ? "tensor" : "tensor '" + name + "'") + " " + Arrays.toString(shape);
    }

    /** Multi-dimensional index of a row-major flat index, as "[i, j, ...]". */
    public static String index(int[] shape, int flat) {
        int[] idx = new int[shape.length];
        int r = flat;
        for (int i = shape.length - 1; i >= 0; i--) {
            if (shape[i] == 0) return "[]";
            idx[i] = r % shape[i];
            r /= shape[i];
        }
        return Arrays.toString(idx);
    }
}
