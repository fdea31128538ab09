package io.diffquant.engine.quant.format;

/**
 * Uniform integer quantization, ALGORITHMS.md §3 (Q-Diffusion / TFMQ-DM UniformAffineQuantizer semantics).
 * <ul>
 *   <li>{@link Kind#ASYMMETRIC}: Δ = (max - min) / (2^b - 1), z = round(-min / Δ), codes q = clamp(round(x/Δ) + z,
 *       0, 2^b - 1), x̂ = Δ (q - z). The range is first widened to contain 0 (as Q-Diffusion does), so z lies in
 *       [0, 2^b - 1] and 0 is exactly representable.</li>
 *   <li>{@link Kind#SYMMETRIC}: Δ = absmax / (2^(b-1) - 1), z = 0, q in [-(2^(b-1) - 1), 2^(b-1) - 1];
 *       {@link Kind#SYMMETRIC_FULL} also allows -2^(b-1). Codes are b-bit two's complement.</li>
 *   <li>{@link Kind#UNSIGNED}: z = 0, Δ = max / (2^b - 1), q in [0, 2^b - 1]; negative values clamp to 0.</li>
 * </ul>
 * Rounding: round half to even of the exact quotient x / Δ (computed in double). Zero results are +0.0.
 */
public final class IntFormat implements NumberFormat {
    public static final int MIN_BITS = 2, MAX_BITS = 8;

    public enum Kind { ASYMMETRIC, SYMMETRIC, SYMMETRIC_FULL, UNSIGNED }

    private final int bits;
    private final Kind kind;
    private final int qmin, qmax;

    public IntFormat(int bits, Kind kind) {
        if (bits < MIN_BITS || bits > MAX_BITS) throw new IllegalArgumentException(
                "integer formats have " + MIN_BITS + " to " + MAX_BITS + " bits, got " + bits);
        if (kind == null) throw new IllegalArgumentException("integer format kind is null");
        this.bits = bits;
        this.kind = kind;
        switch (kind) {
            case ASYMMETRIC, UNSIGNED -> { qmin = 0; qmax = (1 << bits) - 1; }
            case SYMMETRIC -> { qmin = -((1 << (bits - 1)) - 1); qmax = (1 << (bits - 1)) - 1; }
            default -> { qmin = -(1 << (bits - 1)); qmax = (1 << (bits - 1)) - 1; }
        }
    }

    public static IntFormat asymmetric(int bits) { return new IntFormat(bits, Kind.ASYMMETRIC); }
    public static IntFormat symmetric(int bits) { return new IntFormat(bits, Kind.SYMMETRIC); }
    public static IntFormat symmetricFullRange(int bits) { return new IntFormat(bits, Kind.SYMMETRIC_FULL); }
    public static IntFormat unsigned(int bits) { return new IntFormat(bits, Kind.UNSIGNED); }

    public int bits() { return bits; }
    public Kind kind() { return kind; }
    /** Smallest integer level (before the zero point is subtracted). */
    public int qmin() { return qmin; }
    /** Largest integer level. */
    public int qmax() { return qmax; }

    @Override public String id() {
        return switch (kind) {
            case ASYMMETRIC -> "int" + bits + "-asym";
            case SYMMETRIC -> "int" + bits + "-sym";
            case SYMMETRIC_FULL -> "int" + bits + "-sym-full";
            case UNSIGNED -> "uint" + bits;
        };
    }

    @Override public int codeBits() { return bits; }
    @Override public boolean signed() { return kind != Kind.UNSIGNED; }

    /** FP32 step, plus a b-bit zero point for the asymmetric kind. */
    @Override public int overheadBitsPerGroup() { return 32 + (kind == Kind.ASYMMETRIC ? bits : 0); }

    @Override public QuantParams paramsForRange(float[] lo, float[] hi) {
        RangeEstimator.checkRanges(id(), lo, hi);
        int n = lo.length;
        float[] d = new float[n];
        int[] z = kind == Kind.ASYMMETRIC ? new int[n] : null;
        for (int g = 0; g < n; g++) {
            double l = lo[g], h = hi[g];
            switch (kind) {
                case ASYMMETRIC -> {
                    l = Math.min(l, 0);
                    h = Math.max(h, 0);
                    float delta = (float) ((h - l) / qmax);
                    d[g] = delta;
                    z[g] = delta == 0 ? 0 : (int) Math.min(Math.max(Math.rint(-l / delta), 0), qmax);
                }
                case SYMMETRIC, SYMMETRIC_FULL -> d[g] = (float) (Math.max(Math.abs(l), Math.abs(h)) / qmax);
                case UNSIGNED -> d[g] = (float) (Math.max(h, 0) / qmax);
            }
        }
        return QuantParams.wrap(d, z, 1f);
    }

    /** Checks that asymmetric parameters carry zero points within [0, 2^b - 1]. */
    @Override public void checkParams(QuantParams p) {
        if (kind != Kind.ASYMMETRIC) return;
        if (!p.hasZeroPoints()) throw new IllegalArgumentException(id() + " needs zero points in its parameters");
        for (int g = 0; g < p.groups(); g++) {
            int z = p.zeroPoints[g];
            if (z < 0 || z > qmax) throw new IllegalArgumentException(id() + ": zero point of group " + g + " is " + z
                    + ", expected 0.." + qmax);
        }
    }

    private int zero(QuantParams p, int group) {
        return kind == Kind.ASYMMETRIC && p.zeroPoints != null ? p.zeroPoints[group] : 0;
    }

    /** Integer level q (clamped, zero point included) of x; NaN gives NaN. */
    private double level(float x, double delta, int z) {
        double t = Math.rint(x / delta) + z;
        if (t < qmin) t = qmin;
        else if (t > qmax) t = qmax;
        return t;
    }

    @Override public int encode(float x, QuantParams p, int group) {
        if (Float.isNaN(x)) throw new IllegalArgumentException("NaN cannot be encoded in " + id());
        float d = p.scales[group];
        int z = zero(p, group);
        int q = d == 0 ? z : (int) level(x, d, z);
        return q & ((1 << bits) - 1);
    }

    /** The integer level of a code (sign-extended for the signed kinds). */
    public int levelOfCode(int code) {
        int c = code & ((1 << bits) - 1);
        if (kind == Kind.SYMMETRIC || kind == Kind.SYMMETRIC_FULL) return (c << (32 - bits)) >> (32 - bits);
        return c;
    }

    @Override public float decode(int code, QuantParams p, int group) {
        return (float) ((double) (levelOfCode(code) - zero(p, group)) * p.scales[group]);
    }

    @Override public float fakeQuant(float x, QuantParams p, int group) {
        float d = p.scales[group];
        if (d == 0) return Float.isNaN(x) ? Float.NaN : 0f;
        int z = zero(p, group);
        return (float) ((level(x, d, z) - z) * d);
    }

    @Override public void fakeQuant(float[] src, int srcOff, float[] dst, int dstOff, int len, QuantParams p, int group) {
        float df = p.scales[group];
        if (df == 0) {
            for (int i = 0; i < len; i++) dst[dstOff + i] = Float.isNaN(src[srcOff + i]) ? Float.NaN : 0f;
            return;
        }
        double d = df, lo = qmin, hi = qmax;
        int z = zero(p, group);
        for (int i = 0; i < len; i++) {
            double t = Math.rint(src[srcOff + i] / d) + z;
            t = t < lo ? lo : (t > hi ? hi : t);
            dst[dstOff + i] = (float) ((t - z) * d);
        }
    }

    @Override public float[] grid(QuantParams p, int group) {
        float d = p.scales[group];
        if (d == 0) return new float[] {0f};
        int z = zero(p, group);
        float[] g = new float[qmax - qmin + 1];
        for (int q = qmin; q <= qmax; q++) g[q - qmin] = (float) ((double) (q - z) * d);
        return FpFormat.sortedDistinct(g, g.length);
    }

    @Override public boolean equals(Object o) { return o instanceof IntFormat f && f.bits == bits && f.kind == kind; }
    @Override public int hashCode() { return 31 * bits + kind.hashCode(); }
    @Override public String toString() { return id(); }
}
