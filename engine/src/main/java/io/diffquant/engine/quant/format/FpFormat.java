package io.diffquant.engine.quant.format;

import java.util.Arrays;

/**
 * FP4DiT-style ExMy floating point (FP4DiT, arXiv 2503.15465, after Kuzmin et al.'s FP8 quantizer in
 * cccrrrccc/FP4DiT qdiff/quantizers/fp8_quantizer.py): no inf/NaN codes, every code is a number, and a
 * real-valued exponent bias b = 2^E - log2(maxval) + log2(2 - 2^-M) - 1 makes the largest code equal maxval,
 * which plays the role of the scale (one maxval per group, {@link QuantParams#scale(int)}).
 *
 * <p>Quantization: x_c = clip(x, -maxval, maxval); e = max(floor(log2|x_c| + b), 1); s = 2^(e - M - b);
 * x̂ = round(x_c / s) · s with round half to even (torch.round). As in the reference code the floor is taken
 * after adding b (ALGORITHMS.md writes floor(log2|x_c|) + b; both agree when b is an integer, e.g. E2M1 with
 * maxval 6, and only the reference form puts maxval on the grid when b is not). The clamp of e at 1 gives the
 * subnormals (2^M - 1 positive ones).
 *
 * <p>Exactness: with w = |x_c| · 2^b = |x_c| · w_max / maxval (w_max = (2 - 2^-M) 2^(2^E - 1), the value of the
 * largest code at bias 0), e = max(floor(log2 w), 1) is read from the exponent field of the double w, and
 * round(w · 2^(M-e)) is exact; the single rounding of the double division can never move w across a binade
 * boundary or a rounding tie (those are dyadic, w is a quotient of 24- and 32-bit integers), so the code chosen
 * is the one the exact real formula chooses. Values are (float)(w_q · maxval / w_max), the same expression in
 * {@link #grid}, {@link #decode} and {@link #fakeQuant}, so every grid point quantizes to itself.
 *
 * <p>E = 0: the reference bias formula is degenerate (it would allow a code above maxval); here E0Mm is the
 * all-subnormal format: values ±q · maxval / (2^M - 1), q = 0 .. 2^M - 1 (a symmetric integer grid).
 *
 * <p>Unsigned variant (FP4DiT/Qualcomm sign_bits = 0, for post-softmax activations): no sign bit, the freed bit
 * goes to the exponent ({@link #toUnsigned()}: E+1, same M); negative inputs clip to 0.
 */
public final class FpFormat implements NumberFormat {
    private final int exp, man;
    private final boolean signed;
    private final MiniFloat mf;
    private final double wmax;

    public FpFormat(int expBits, int manBits, boolean signed) {
        int bits = (signed ? 1 : 0) + expBits + manBits;
        if (expBits < 0 || manBits < 0 || bits > 8 || expBits + manBits < 1) throw new IllegalArgumentException(
                "FP format needs E >= 0, M >= 0, 1 <= E + M and " + (signed ? "1 + " : "") + "E + M <= 8, got E=" + expBits + " M=" + manBits);
        this.exp = expBits;
        this.man = manBits;
        this.signed = signed;
        this.mf = new MiniFloat(expBits, manBits, (1 << (expBits + manBits)) - 1);
        this.wmax = mf.maxW;
    }

    /** Signed ExMy (1 + E + M bits). */
    public static FpFormat of(int expBits, int manBits) { return new FpFormat(expBits, manBits, true); }

    /** Unsigned ExMy (E + M bits). */
    public static FpFormat unsigned(int expBits, int manBits) { return new FpFormat(expBits, manBits, false); }

    /** The unsigned format of the same width: the sign bit becomes an exponent bit (E+1, M). */
    public FpFormat toUnsigned() {
        if (!signed) return this;
        return new FpFormat(exp + 1, man, false);
    }

    public int exponentBits() { return exp; }
    public int mantissaBits() { return man; }

    @Override public String id() {
        return (signed ? "fp" + (1 + exp + man) : "ufp" + (exp + man)) + "-e" + exp + "m" + man;
    }

    @Override public int codeBits() { return (signed ? 1 : 0) + exp + man; }
    @Override public boolean signed() { return signed; }
    /** One FP32 maxval per group. */
    @Override public int overheadBitsPerGroup() { return 32; }

    /** Value of the largest code at maxval 1 in w-space, (2 - 2^-M) 2^(2^E - 1) for E >= 1. */
    public double wMax() { return wmax; }

    /**
     * The real-valued bias for a maxval: log2(w_max / maxval), which equals FP4DiT's
     * 2^E - log2(maxval) + log2(2 - 2^-M) - 1 for E >= 1 (informational; quantization never uses log2).
     */
    public double bias(float maxval) { return Math.log(wmax / maxval) / Math.log(2); }

    /** Number of positive subnormal values (2^M - 1). */
    public int subnormalCount() { return mf.subnormalCount(); }

    @Override public QuantParams paramsForRange(float[] lo, float[] hi) {
        RangeEstimator.checkRanges(id(), lo, hi);
        float[] mv = new float[lo.length];
        for (int g = 0; g < mv.length; g++) {
            mv[g] = signed ? Math.max(Math.abs(lo[g]), Math.abs(hi[g])) : Math.max(hi[g], 0f);
        }
        return QuantParams.wrap(mv, null, 1f);
    }

    private int magBits() { return exp + man; }

    @Override public int encode(float x, QuantParams p, int group) {
        if (Float.isNaN(x)) throw new IllegalArgumentException("NaN cannot be encoded in " + id());
        float mv = p.scales[group];
        if (mv == 0) return 0;
        boolean neg = Float.floatToRawIntBits(x) < 0;
        if (!signed && neg) return 0;
        double a = Math.min(Math.abs((double) x), mv);
        int mag = mf.encodeMag(a * wmax / mv);
        return neg ? (1 << magBits()) | mag : mag;
    }

    @Override public float decode(int code, QuantParams p, int group) {
        int mag = code & ((1 << magBits()) - 1);
        float v = valueOfMag(mag, p.scales[group]);
        return signed && ((code >>> magBits()) & 1) != 0 ? -v : v;
    }

    private float valueOfMag(int mag, float mv) {
        if (mv == 0) return 0f;
        return (float) (mf.decodeMag(mag) * mv / wmax);
    }

    @Override public float fakeQuant(float x, QuantParams p, int group) {
        float mv = p.scales[group];
        if (Float.isNaN(x)) return Float.NaN;
        if (mv == 0) return 0f;
        if (!signed && !(x > 0)) return 0f;
        double a = Math.min(Math.abs((double) x), mv);
        float r = (float) (MiniFloat.roundW(a * wmax / mv, man) * mv / wmax);
        return signed ? Math.copySign(r, x) : r;
    }

    @Override public void fakeQuant(float[] src, int srcOff, float[] dst, int dstOff, int len, QuantParams p, int group) {
        float mvf = p.scales[group];
        if (mvf == 0) {
            for (int i = 0; i < len; i++) dst[dstOff + i] = Float.isNaN(src[srcOff + i]) ? Float.NaN : 0f;
            return;
        }
        final double mv = mvf, wm = wmax;
        final int m = man;
        if (signed) {
            for (int i = 0; i < len; i++) {
                float x = src[srcOff + i];
                double a = Math.min(Math.abs((double) x), mv);      // x_c; NaN stays NaN
                double w = a * wm / mv;
                // binade max(floor(log2 w), 1), branch-free; NaN (exponent 1024) is capped and stays NaN
                int e = Math.max(Math.min(Math.getExponent(w), 1000), 1);
                double wq = Math.rint(w * MiniFloat.pow2(m - e)) * MiniFloat.pow2(e - m);
                dst[dstOff + i] = Math.copySign((float) (wq * mv / wm), x);
            }
        } else {
            for (int i = 0; i < len; i++) {
                float x = src[srcOff + i];
                double a = x <= 0 ? 0 : Math.min((double) x, mv);    // negatives clip to 0; NaN stays NaN
                double w = a * wm / mv;
                int e = Math.max(Math.min(Math.getExponent(w), 1000), 1);
                double wq = Math.rint(w * MiniFloat.pow2(m - e)) * MiniFloat.pow2(e - m);
                dst[dstOff + i] = (float) (wq * mv / wm);
            }
        }
    }

    /**
     * FP step s = 2^(e - M - b) of x's binade for this group's maxval (FP4DiT's per-element scale, used by
     * scale-aware FP AdaRound); x is clipped to ±maxval first.
     */
    public double step(float x, QuantParams p, int group) {
        float mv = p.scales[group];
        if (mv == 0) return 0;
        double a = Math.min(Math.abs((double) x), mv);
        int e = MiniFloat.binade(a * wmax / mv);
        return MiniFloat.pow2(e - man) * mv / wmax;
    }

    @Override public float[] grid(QuantParams p, int group) {
        float mv = p.scales[group];
        int n = mf.maxMag + 1;
        float[] g = new float[signed ? 2 * n : n];
        for (int c = 0; c < n; c++) {
            float v = valueOfMag(c, mv);
            g[c] = v;
            if (signed) g[n + c] = -v;
        }
        return sortedDistinct(g, g.length);
    }

    /** Sorts the first n values and removes duplicates (-0.0 and +0.0 become one +0.0). */
    static float[] sortedDistinct(float[] a, int n) {
        float[] s = Arrays.copyOf(a, n);
        for (int i = 0; i < n; i++) if (s[i] == 0f) s[i] = 0f;
        Arrays.sort(s);
        int k = 0;
        for (int i = 0; i < n; i++) if (k == 0 || s[i] != s[k - 1]) s[k++] = s[i];
        return Arrays.copyOf(s, k);
    }

    @Override public boolean equals(Object o) {
        return o instanceof FpFormat f && f.exp == exp && f.man == man && f.signed == signed;
    }
    @Override public int hashCode() { return (exp * 31 + man) * 2 + (signed ? 1 : 0); }
    @Override public String toString() { return id(); }
}
