package io.diffquant.engine.quant.format;

import io.diffquant.engine.tensor.Parallel;
import io.diffquant.engine.tensor.Tensor;

import java.util.Arrays;

/**
 * Quantizes tensors with a {@link NumberFormat}, a {@link Granularity} and either fixed parameters (calibrated
 * weights/activations, Q-Diffusion style) or parameters estimated from every input (dynamic per-token / per-group
 * activations of FP4DiT and Q-DiT, block formats). Weights [out, in] and conv weights [out, in, kh, kw] use
 * {@link Layout#WEIGHT} (groups along the flattened in·kh·kw), activations [..., C] {@link Layout#ACTIVATION}.
 *
 * <p>{@link #fakeQuant(Tensor)} is quantize-dequantize and equals {@code dequantize(quantize(x))} bit for bit.
 * NaN: fakeQuant with fixed parameters maps NaN to NaN element-wise; dynamic estimation and {@link #quantize}
 * (for formats without a NaN code) reject it with the tensor name and index. Work is split over rows with
 * {@link Parallel}; results do not depend on the thread count.
 */
public final class Quantizer {
    private static final int CHUNK = 1 << 14;

    private final NumberFormat format;
    private final Granularity granularity;
    private final Layout layout;
    private final QuantParams params;        // null when dynamic
    private final RangeEstimator estimator;  // null when fixed
    private final String name;

    private Quantizer(NumberFormat format, Granularity granularity, Layout layout, QuantParams params,
                      RangeEstimator estimator, String name) {
        if (format == null || granularity == null || layout == null) throw new IllegalArgumentException("format, granularity and layout are required");
        format.checkGranularity(granularity);
        if (params != null) format.checkParams(params);
        this.format = format;
        this.granularity = granularity;
        this.layout = layout;
        this.params = params;
        this.estimator = estimator;
        this.name = name;
    }

    /** Fixed parameters (one set per group of the tensors this quantizer will see). */
    public static Quantizer withParams(NumberFormat format, Granularity granularity, Layout layout, QuantParams params) {
        if (params == null) throw new IllegalArgumentException("parameters are required");
        return new Quantizer(format, granularity, layout, params, null, null);
    }

    /** Parameters estimated from every input tensor with the estimator. */
    public static Quantizer dynamic(NumberFormat format, Granularity granularity, Layout layout, RangeEstimator estimator) {
        if (estimator == null) throw new IllegalArgumentException("range estimator is required");
        return new Quantizer(format, granularity, layout, null, estimator, null);
    }

    /** Parameters from every input's per-group min/max (per-token FP4DiT, per-group Q-DiT activations, MX/NVFP4). */
    public static Quantizer dynamic(NumberFormat format, Granularity granularity, Layout layout) {
        return dynamic(format, granularity, layout, RangeEstimator.minMax());
    }

    /** Fixed parameters estimated once from a calibration tensor. */
    public static Quantizer calibrated(NumberFormat format, Granularity granularity, Layout layout, RangeEstimator estimator, Tensor calibration) {
        Quantizer d = dynamic(format, granularity, layout, estimator);
        return withParams(format, granularity, layout, d.paramsFor(calibration));
    }

    /** The same quantizer, naming its tensor in error messages (e.g. "blocks.0.attn.qkv.weight"). */
    public Quantizer named(String tensorName) {
        return new Quantizer(format, granularity, layout, params, estimator, tensorName);
    }

    public NumberFormat format() { return format; }
    public Granularity granularity() { return granularity; }
    public Layout layout() { return layout; }
    public boolean isDynamic() { return params == null; }
    /** Fixed parameters, or null when dynamic. */
    public QuantParams params() { return params; }
    public RangeEstimator estimator() { return estimator; }
    public String name() { return name; }

    public GroupView view(int[] shape) { return new GroupView(granularity, layout, shape); }

    private String what(Tensor x) { return QuantChecks.describe(name, x.shape()); }

    /** The parameters used for x: the fixed ones (checked against x's group count) or estimated from x. */
    public QuantParams paramsFor(Tensor x) {
        GroupView v = view(x.shape());
        return paramsFor(x, v);
    }

    private QuantParams paramsFor(Tensor x, GroupView v) {
        if (params != null) {
            if (params.groups() != v.groups()) throw new IllegalArgumentException(what(x) + ": " + format.id() + " with granularity "
                    + granularity.id() + " (" + layout + ") needs " + v.groups() + " parameter groups, the quantizer has " + params.groups());
            return params;
        }
        try {
            return estimator.estimate(format, v, x.data());
        } catch (QuantChecks.NonFiniteException e) {
            throw new QuantChecks.NonFiniteException(what(x) + ": non-finite value " + e.value() + " at "
                    + QuantChecks.index(x.shape(), e.flatIndex()) + "; range estimation needs finite values", e.flatIndex(), e.value());
        }
    }

    @FunctionalInterface
    private interface SegmentBody { void run(int off, int len, int group); }

    /** Runs body over every segment of the view, rows split over threads (per tensor: flat chunks). */
    private static void forEachSegment(GroupView v, SegmentBody body) {
        int rows = v.rows(), cols = v.cols(), spr = v.segmentsPerRow();
        if (v.groups() == 1 && spr == 1) {
            Parallel.forRange(v.size(), CHUNK, (a, b) -> body.run(a, b - a, 0));
            return;
        }
        Parallel.forRange(rows, Math.max(1, CHUNK / Math.max(1, cols)), (r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                int base = r * cols;
                for (int s = 0; s < spr; s++) body.run(base + v.segmentStart(s), v.segmentLength(s), v.group(r, s));
            }
        });
    }

    /** Quantize-dequantize into a new tensor. */
    public Tensor fakeQuant(Tensor x) {
        Tensor out = Tensor.zeros(x.shape());
        fakeQuant(x, out);
        return out;
    }

    /** Quantize-dequantize x into out (same shape; out may be x). Returns the parameters used. */
    public QuantParams fakeQuant(Tensor x, Tensor out) {
        if (!x.sameShape(out)) throw new IllegalArgumentException(what(x) + ": output shape " + Arrays.toString(out.shape()) + " differs");
        GroupView v = view(x.shape());
        QuantParams p = paramsFor(x, v);
        float[] src = x.data(), dst = out.data();
        NumberFormat f = format;
        forEachSegment(v, (off, len, g) -> f.fakeQuant(src, off, dst, off, len, p, g));
        return p;
    }

    /** Codes and parameters of x. */
    public QuantizedTensor quantize(Tensor x) {
        GroupView v = view(x.shape());
        QuantParams p = paramsFor(x, v);
        float[] src = x.data();
        if (!format.encodesNaN()) {
            int i = QuantChecks.firstNaN(src, 0, src.length);
            if (i >= 0) throw new QuantChecks.NonFiniteException(what(x) + ": NaN at " + QuantChecks.index(x.shape(), i)
                    + " cannot be encoded in " + format.id(), i, src[i]);
        }
        byte[] codes = new byte[src.length];
        NumberFormat f = format;
        forEachSegment(v, (off, len, g) -> f.encode(src, off, codes, off, len, p, g));
        return new QuantizedTensor(format, granularity, layout, x.shape(), codes, p);
    }

    /** Values of a quantized tensor. */
    public static Tensor dequantize(QuantizedTensor q) {
        Tensor out = Tensor.zeros(q.shape());
        float[] dst = out.data();
        byte[] codes = q.codes();
        NumberFormat f = q.format();
        QuantParams p = q.params();
        forEachSegment(q.view(), (off, len, g) -> f.decode(codes, off, dst, off, len, p, g));
        return out;
    }

    @Override public String toString() {
        return "Quantizer[" + format.id() + ", " + granularity.id() + ", " + layout
                + (params == null ? ", dynamic " + estimator.id() : ", " + params.groups() + " groups") + (name == null ? "" : ", " + name) + "]";
    }
}
