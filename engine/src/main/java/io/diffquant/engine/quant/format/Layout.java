package io.diffquant.engine.quant.format;

import java.util.Arrays;

/**
 * How a tensor is viewed as a matrix [rows, cols] before a {@link Granularity} splits it into groups
 * (Q-Diffusion / Q-DiT convention: weight rows are output channels, activation rows are tokens).
 */
public enum Layout {
    /** rows = dim 0 (output channels), cols = the product of the other dims (in, or in*kh*kw for conv weights). */
    WEIGHT,
    /** rows = the product of all leading dims (tokens), cols = the last dim (channels C). */
    ACTIVATION;

    /** Number of rows of the matrix view of a tensor with this shape. */
    public int rows(int[] shape) {
        if (shape.length == 0) return 1;
        long n = 1;
        for (int s : shape) n *= s;
        if (this == WEIGHT) return shape[0];
        int last = shape[shape.length - 1];
        return last == 0 ? 0 : (int) (n / last);
    }

    /** Number of columns of the matrix view of a tensor with this shape. */
    public int cols(int[] shape) {
        if (shape.length == 0) return 1;
        if (this == ACTIVATION) return shape[shape.length - 1];
        long n = 1;
        for (int i = 1; i < shape.length; i++) n *= shape[i];
        if (n > Integer.MAX_VALUE) throw new IllegalArgumentException("tensor too large: " + Arrays.toString(shape));
        return (int) n;
    }
}
