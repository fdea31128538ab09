package io.diffquant.engine.quant.format;

import java.util.Arrays;

/**
 * Quantization parameters (Q-Diffusion's delta / zero_point, FP4DiT's maxval, MX/NVFP4 block scales), one entry per
 * group of a {@link GroupView}. What a scale means depends on the format:
 * <ul>
 *   <li>{@link IntFormat}: the step Δ; asymmetric formats also carry integer zero points z.</li>
 *   <li>{@link FpFormat}: FP4DiT's maxval (the largest representable magnitude of the group).</li>
 *   <li>{@link OcpFp8}: the multiplier s, x̂ = s · fp8(x / s).</li>
 *   <li>{@link BlockFormat}: the decoded block scale (MX: the E8M0 power of two; NVFP4: the E4M3 value), and for
 *       NVFP4 the per-tensor FP32 {@link #tensorScale()}.</li>
 * </ul>
 * A scale of 0 means "the whole group quantizes to 0". Immutable.
 */
public final class QuantParams {
    final float[] scales;
    final int[] zeroPoints;
    final float tensorScale;

    private QuantParams(float[] scales, int[] zeroPoints, float tensorScale) {
        if (scales == null || scales.length == 0) throw new IllegalArgumentException("quantization parameters need at least one group");
        for (int g = 0; g < scales.length; g++) {
            float s = scales[g];
            if (!(s >= 0) || s == Float.POSITIVE_INFINITY) throw new IllegalArgumentException(
                    "scale of group " + g + " must be finite and >= 0, got " + s);
        }
        if (zeroPoints != null && zeroPoints.length != scales.length) throw new IllegalArgumentException(
                zeroPoints.length + " zero points for " + scales.length + " scales");
        if (!(tensorScale >= 0) || tensorScale == Float.POSITIVE_INFINITY) throw new IllegalArgumentException(
                "tensor scale must be finite and >= 0, got " + tensorScale);
        this.scales = scales;
        this.zeroPoints = zeroPoints;
        this.tensorScale = tensorScale;
    }

    /** Per-group scales, no zero points (the array is copied). */
    public static QuantParams of(float... scales) { return new QuantParams(scales.clone(), null, 1f); }

    /** Per-group scales and zero points (arrays copied). */
    public static QuantParams of(float[] scales, int[] zeroPoints) {
        return new QuantParams(scales.clone(), zeroPoints == null ? null : zeroPoints.clone(), 1f);
    }

    /** Per-block scales plus a per-tensor scale (NVFP4). */
    public static QuantParams withTensorScale(float[] scales, float tensorScale) {
        return new QuantParams(scales.clone(), null, tensorScale);
    }

    /** Takes ownership of the arrays (no copy); for this package's factories. */
    static QuantParams wrap(float[] scales, int[] zeroPoints, float tensorScale) {
        return new QuantParams(scales, zeroPoints, tensorScale);
    }

    public int groups() { return scales.length; }
    public float scale(int group) { return scales[group]; }
    public boolean hasZeroPoints() { return zeroPoints != null; }
    /** Zero point of a group (0 when the format has none). */
    public int zeroPoint(int group) { return zeroPoints == null ? 0 : zeroPoints[group]; }
    /** Per-tensor scale (1 unless the format has one, i.e. NVFP4). */
    public float tensorScale() { return tensorScale; }
    public float[] scales() { return scales.clone(); }
    /** Copy of the zero points, or null. */
    public int[] zeroPoints() { return zeroPoints == null ? null : zeroPoints.clone(); }

    /** The parameters of one group as a single-group set. */
    public QuantParams group(int g) {
        return new QuantParams(new float[] {scales[g]}, zeroPoints == null ? null : new int[] {zeroPoints[g]}, tensorScale);
    }

    @Override public boolean equals(Object o) {
        return o instanceof QuantParams p && Arrays.equals(scales, p.scales) && Arrays.equals(zeroPoints, p.zeroPoints)
                && Float.floatToIntBits(tensorScale) == Float.floatToIntBits(p.tensorScale);
    }

    @Override public int hashCode() {
        return 31 * (31 * Arrays.hashCode(scales) + Arrays.hashCode(zeroPoints)) + Float.hashCode(tensorScale);
    }

    @Override public String toString() {
        int n = Math.min(scales.length, 4);
        StringBuilder sb = new StringBuilder("QuantParams[").append(scales.length).append(" groups, scales ");
        sb.append(Arrays.toString(Arrays.copyOf(scales, n)));
        if (scales.length > n) sb.append("...");
        if (zeroPoints != null) sb.append(", zero points ").append(Arrays.toString(Arrays.copyOf(zeroPoints, n))).append(scales.length > n ? "..." : "");
        if (tensorScale != 1f) sb.append(", tensor scale ").append(tensorScale);
        return sb.append(']').toString();
    }
}
