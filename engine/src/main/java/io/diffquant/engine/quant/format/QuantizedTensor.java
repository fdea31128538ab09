package io.diffquant.engine.quant.format;

import io.diffquant.engine.tensor.Tensor;

import java.util.Arrays;

/**
 * A tensor stored as codes plus parameters: one code per element (row-major, unsigned bytes below
 * 2^{@link NumberFormat#codeBits()}), and one parameter set per group of the {@link GroupView} given by the
 * granularity and layout. {@link #dequantize()} gives exactly what {@link Quantizer#fakeQuant} gives.
 */
public final class QuantizedTensor {
    private final NumberFormat format;
    private final Granularity granularity;
    private final Layout layout;
    private final int[] shape;
    private final byte[] codes;
    private final QuantParams params;

    /** Validates sizes; the code array is taken as is (not copied). */
    public QuantizedTensor(NumberFormat format, Granularity granularity, Layout layout, int[] shape, byte[] codes, QuantParams params) {
        long n = Tensor.numel(shape);
        if (codes.length != n) throw new IllegalArgumentException("quantized tensor " + Arrays.toString(shape) + " needs " + n
                + " codes, got " + codes.length);
        format.checkGranularity(granularity);
        GroupView v = new GroupView(granularity, layout, shape);
        if (params.groups() != v.groups()) throw new IllegalArgumentException("quantized tensor " + Arrays.toString(shape)
                + " with granularity " + granularity.id() + " has " + v.groups() + " groups, parameters have " + params.groups());
        format.checkParams(params);
        this.format = format;
        this.granularity = granularity;
        this.layout = layout;
        this.shape = shape.clone();
        this.codes = codes;
        this.params = params;
    }

    public NumberFormat format() { return format; }
    public Granularity granularity() { return granularity; }
    public Layout layout() { return layout; }
    public int[] shape() { return shape.clone(); }
    public int size() { return codes.length; }
    /** The codes (shared array, do not modify). */
    public byte[] codes() { return codes; }
    public QuantParams params() { return params; }
    public GroupView view() { return new GroupView(granularity, layout, shape); }

    /** Codes packed at {@link NumberFormat#codeBits()} bits each. */
    public PackedCodes packed() { return PackedCodes.pack(codes, format.codeBits()); }

    /** Storage of codes and parameters in bits (as {@link NumberFormat#averageBits(long, long)} counts it). */
    public double storageBits() { return format.averageBits(codes.length, params.groups()) * codes.length; }

    /** Values of the codes. */
    public Tensor dequantize() { return Quantizer.dequantize(this); }

    @Override public String toString() {
        return "QuantizedTensor[" + format.id() + ", " + granularity.id() + ", " + Arrays.toString(shape) + "]";
    }
}
