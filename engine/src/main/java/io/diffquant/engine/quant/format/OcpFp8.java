package io.diffquant.engine.quant.format;

/**
 * OCP 8-bit floating point (OFP8 specification rev. 1.0, 2023): E4M3 (bias 7, subnormals, max 448, S.1111.111
 * is NaN, no infinities) and E5M2 (IEEE 754-like: bias 15, subnormals, max 57344, S.11111.00 infinities,
 * S.11111.xx NaN). Encoding rounds to nearest, ties to even; out-of-range values saturate to ±max by default
 * ({@code -nosat} variants: overflow to NaN for E4M3, to ±infinity for E5M2, as in the spec's non-saturating mode).
 *
 * <p>As a quantization format it is used with a per-group scale s (ALGORITHMS.md §3): x̂ = s · fp8(x / s); the
 * division is done in double, whose single rounding cannot cross a rounding tie of the FP8 grid, and
 * s · fp8 value is exact in double before the final rounding to float.
 */
public final class OcpFp8 implements NumberFormat {
    public static final OcpFp8 E4M3 = new OcpFp8(4, 3, 7, 0x7E, true);
    public static final OcpFp8 E5M2 = new OcpFp8(5, 2, 15, 0x7B, true);
    public static final OcpFp8 E4M3_NOSAT = new OcpFp8(4, 3, 7, 0x7E, false);
    public static final OcpFp8 E5M2_NOSAT = new OcpFp8(5, 2, 15, 0x7B, false);

    /** Canonical NaN code (positive sign); E4M3 also has 0xFF, E5M2 0x7D..0x7F and 0xFD..0xFF. */
    public static final int NAN_CODE = 0x7F;

    private final int exp, man, bias;
    private final boolean saturating;
    private final MiniFloat mf;
    private final double maxFinite;
    private final double scaleUp;   // 2^bias
    private final double scaleDown; // 2^-bias
    private final double[] values = new double[256];

    private OcpFp8(int exp, int man, int bias, int maxMag, boolean saturating) {
        this.exp = exp;
        this.man = man;
        this.bias = bias;
        this.saturating = saturating;
        this.mf = new MiniFloat(exp, man, maxMag);
        this.scaleUp = MiniFloat.pow2(bias);
        this.scaleDown = MiniFloat.pow2(-bias);
        this.maxFinite = mf.maxW * scaleDown;
        for (int c = 0; c < 256; c++) values[c] = computeValue(c);
    }

    public boolean isE4M3() { return exp == 4; }
    public boolean saturating() { return saturating; }
    public int exponentBits() { return exp; }
    public int mantissaBits() { return man; }
    public int bias() { return bias; }
    /** Largest finite value: 448 (E4M3) or 57344 (E5M2). */
    public double maxFinite() { return maxFinite; }

    /** The same format with the other overflow behaviour. */
    public OcpFp8 withSaturation(boolean sat) {
        if (sat == saturating) return this;
        return isE4M3() ? (sat ? E4M3 : E4M3_NOSAT) : (sat ? E5M2 : E5M2_NOSAT);
    }

    @Override public String id() { return "ocp-fp8-e" + exp + "m" + man + (saturating ? "" : "-nosat"); }
    @Override public int codeBits() { return 8; }
    @Override public boolean signed() { return true; }
    @Override public int overheadBitsPerGroup() { return 32; }
    @Override public boolean encodesNaN() { return true; }

    private double computeValue(int code) {
        int c = code & 0xFF;
        int mag = c & 0x7F;
        boolean neg = (c & 0x80) != 0;
        double v;
        if (isE4M3() && mag == 0x7F) return Double.NaN;
        if (!isE4M3() && mag >= 0x7C) {
            if (mag != 0x7C) return Double.NaN;
            v = Double.POSITIVE_INFINITY;
        } else {
            v = mf.decodeMag(mag) * scaleDown;
        }
        return neg ? -v : v;
    }

    /** The value of an 8-bit code (NaN, ±infinity for E5M2, signed zeros). */
    public double decodeValue(int code) { return values[code & 0xFF]; }

    /** Whether a code is NaN. */
    public boolean isNaNCode(int code) { return Double.isNaN(values[code & 0xFF]); }

    /** The code nearest to v, ties to even, with this format's overflow rule; NaN gives {@link #NAN_CODE}. */
    public int encodeValue(double v) {
        if (Double.isNaN(v)) return NAN_CODE;
        int sign = Double.doubleToRawLongBits(v) < 0 ? 0x80 : 0;
        double a = Math.abs(v);
        int mag = a == Double.POSITIVE_INFINITY ? Integer.MAX_VALUE : mf.encodeMag(a * scaleUp);
        if (mag > mf.maxMag) {
            if (saturating) mag = mf.maxMag;
            else return isE4M3() ? sign | NAN_CODE : sign | 0x7C;
        }
        return sign | mag;
    }

    @Override public QuantParams paramsForRange(float[] lo, float[] hi) {
        RangeEstimator.checkRanges(id(), lo, hi);
        float[] s = new float[lo.length];
        for (int g = 0; g < s.length; g++) s[g] = (float) (Math.max(Math.abs(lo[g]), Math.abs(hi[g])) / maxFinite);
        return QuantParams.wrap(s, null, 1f);
    }

    @Override public int encode(float x, QuantParams p, int group) {
        float s = p.scales[group];
        if (s == 0) return Float.isNaN(x) ? NAN_CODE : 0;
        return encodeValue(x / (double) s);
    }

    @Override public float decode(int code, QuantParams p, int group) {
        double v = values[code & 0xFF];
        float s = p.scales[group];
        if (s == 0) return Double.isNaN(v) ? Float.NaN : 0f;
        return (float) (v * s);
    }

    @Override public float fakeQuant(float x, QuantParams p, int group) { return decode(encode(x, p, group), p, group); }

    @Override public void fakeQuant(float[] src, int srcOff, float[] dst, int dstOff, int len, QuantParams p, int group) {
        float sf = p.scales[group];
        if (sf == 0) {
            for (int i = 0; i < len; i++) dst[dstOff + i] = Float.isNaN(src[srcOff + i]) ? Float.NaN : 0f;
            return;
        }
        double s = sf;
        for (int i = 0; i < len; i++) dst[dstOff + i] = (float) (values[encodeValue(src[srcOff + i] / s)] * s);
    }

    @Override public float[] grid(QuantParams p, int group) {
        float s = p.scales[group];
        float[] g = new float[256];
        int n = 0;
        for (int c = 0; c < 256; c++) {
            double v = values[c];
            if (Double.isFinite(v)) g[n++] = s == 0 ? 0f : (float) (v * s);
        }
        return FpFormat.sortedDistinct(g, n);
    }

    @Override public boolean equals(Object o) {
        return o instanceof OcpFp8 f && f.exp == exp && f.saturating == saturating;
    }
    @Override public int hashCode() { return exp * 2 + (saturating ? 1 : 0); }
    @Override public String toString() { return id(); }
}
