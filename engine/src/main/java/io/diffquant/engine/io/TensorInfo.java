package io.diffquant.engine.io;

import java.util.Arrays;

/**
 * One tensor entry of a safetensors header (huggingface/safetensors {@code TensorInfo}): name, dtype, shape and the
 * byte range [begin, end) relative to the start of the data section (the byte after the header).
 */
public record TensorInfo(String name, DType dtype, long[] shape, long begin, long end) {

    public TensorInfo {
        shape = shape.clone();
    }

    /** A copy of the shape. */
    @Override public long[] shape() { return shape.clone(); }

    public int rank() { return shape.length; }

    /** Number of elements (1 for a 0-dim tensor). The reader checked that it does not overflow. */
    public long numel() {
        long n = 1;
        for (long s : shape) n *= s;
        return n;
    }

    /** Bytes of data, {@code end - begin}. */
    public long byteLength() { return end - begin; }

    /** The shape as ints, for {@link io.diffquant.engine.tensor.Tensor}; throws if a dimension exceeds int range. */
    public int[] intShape() {
        int[] s = new int[shape.length];
        for (int i = 0; i < shape.length; i++) {
            if (shape[i] > Integer.MAX_VALUE) throw new IllegalArgumentException("tensor '" + name + "': dimension "
                    + i + " of shape " + Arrays.toString(shape) + " exceeds the int range");
            s[i] = (int) shape[i];
        }
        return s;
    }

    @Override public boolean equals(Object o) {
        return o instanceof TensorInfo t && name.equals(t.name) && dtype == t.dtype && Arrays.equals(shape, t.shape)
                && begin == t.begin && end == t.end;
    }

    @Override public int hashCode() {
        return ((name.hashCode() * 31 + dtype.hashCode()) * 31 + Arrays.hashCode(shape)) * 31 + Long.hashCode(begin);
    }

    @Override public String toString() {
        return name + " " + dtype + Arrays.toString(shape) + " @[" + begin + ", " + end + ")";
    }
}
