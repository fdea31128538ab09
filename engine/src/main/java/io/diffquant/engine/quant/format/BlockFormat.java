package io.diffquant.engine.quant.format;

import java.util.List;

/**
 * Block-scaled formats. OCP Microscaling (MX) v1.0: blocks of 32 consecutive elements along the last dimension
 * share an E8M0 scale X = 2^(floor(log2(amax)) - emax_elem) (spec §6.3; exponent clamped to [-127, 127], all-zero
 * blocks get 2^-127); each element is V/X converted to the element format with round-to-nearest-even and
 * saturation to ±max normal. Elements: FP4 E2M1 (emax 2), FP6 E2M3 (emax 2) / E3M2 (emax 4), FP8 E4M3 (emax 8)
 * / E5M2 (emax 15), INT8 (two's complement with an implicit 2^-6, emax 0; the symmetric range ±127 is used).
 *
 * <p>NVFP4 (NVIDIA Blackwell): blocks of 16 E2M1 elements, an FP8 E4M3 block scale and a per-tensor FP32 scale:
 * tensorScale = amax(tensor) / (448 · 6), blockScale = E4M3(amax(block) / 6 / tensorScale) (round to nearest even,
 * saturating), element = E2M1(V / (blockScale · tensorScale)) with saturation; x̂ = element · blockScale · tensorScale.
 *
 * <p>Parameters: {@link QuantParams#scale(int)} is the decoded block scale (a power of two for MX, an E4M3 value for
 * NVFP4), {@link QuantParams#tensorScale()} NVFP4's FP32 scale. All arithmetic is exact in double before the final
 * rounding to float (power-of-two scalings; NVFP4's divisor has at most 28 significant bits).
 */
public final class BlockFormat implements NumberFormat {
    private enum Scale { E8M0, E4M3 }

    public static final BlockFormat MXFP4 = new BlockFormat("mxfp4", 2, 1, 1, 0b111, 32, Scale.E8M0);
    public static final BlockFormat MXFP6_E2M3 = new BlockFormat("mxfp6-e2m3", 2, 3, 1, 0b11111, 32, Scale.E8M0);
    public static final BlockFormat MXFP6_E3M2 = new BlockFormat("mxfp6-e3m2", 3, 2, 3, 0b11111, 32, Scale.E8M0);
    public static final BlockFormat MXFP8_E4M3 = new BlockFormat("mxfp8-e4m3", 4, 3, 7, 0x7E, 32, Scale.E8M0);
    public static final BlockFormat MXFP8_E5M2 = new BlockFormat("mxfp8-e5m2", 5, 2, 15, 0x7B, 32, Scale.E8M0);
    /** MXINT8: element codes are int8 two's complement meaning code · 2^-6. */
    public static final BlockFormat MXINT8 = new BlockFormat("mxint8", -1, 0, 0, 0, 32, Scale.E8M0);
    public static final BlockFormat NVFP4 = new BlockFormat("nvfp4", 2, 1, 1, 0b111, 16, Scale.E4M3);

    public static final List<BlockFormat> ALL = List.of(MXFP4, MXFP6_E2M3, MXFP6_E3M2, MXFP8_E4M3, MXFP8_E5M2, MXINT8, NVFP4);

    /** E8M0 exponent range. */
    public static final int MIN_SCALE_EXP = -127, MAX_SCALE_EXP = 127;
    /** NVFP4: 448 (E4M3 max) · 6 (E2M1 max). */
    private static final double NV_RANGE = 448.0 * 6.0;
    private static final int INT8_MAX = 127, INT8_FRAC_BITS = 6;

    private final String id;
    private final boolean intElements;
    private final int exp, man, bias;
    private final MiniFloat mf;
    private final int blockSize;
    private final Scale scale;
    private final int emax;
    private final double elemMax;
    /** The OCP FP8 element format of MXFP8 (for NaN/infinity codes when decoding), else null. */
    private final OcpFp8 fp8;

    private BlockFormat(String id, int exp, int man, int bias, int maxMag, int blockSize, Scale scale) {
        this.id = id;
        this.intElements = exp < 0;
        this.exp = exp;
        this.man = man;
        this.bias = bias;
        this.blockSize = blockSize;
        this.scale = scale;
        if (intElements) {
            this.mf = null;
            this.elemMax = INT8_MAX * MiniFloat.pow2(-INT8_FRAC_BITS);
        } else {
            this.mf = new MiniFloat(exp, man, maxMag);
            this.elemMax = mf.maxW * MiniFloat.pow2(-bias);
        }
        this.emax = Math.getExponent(elemMax);
        this.fp8 = exp == 4 && man == 3 ? OcpFp8.E4M3 : exp == 5 && man == 2 ? OcpFp8.E5M2 : null;
    }

    @Override public String id() { return id; }
    @Override public int codeBits() { return intElements ? 8 : 1 + exp + man; }
    @Override public boolean signed() { return true; }
    /** 8-bit block scale (E8M0 or E4M3). */
    @Override public int overheadBitsPerGroup() { return 8; }
    @Override public int overheadBitsPerTensor() { return scale == Scale.E4M3 ? 32 : 0; }

    public int blockSize() { return blockSize; }
    /** The granularity this format needs. */
    public Granularity granularity() { return new Granularity.PerBlock(blockSize); }
    /** Whether the block scale is E8M0 (MX) rather than E4M3 (NVFP4). */
    public boolean isMx() { return scale == Scale.E8M0; }
    /** emax of the element format: floor(log2(largest element)). */
    public int elementEmax() { return emax; }
    /** Largest element magnitude (6, 7.5, 28, 448, 57344, 127/64). */
    public double elementMax() { return elemMax; }

    @Override public void checkGranularity(Granularity g) {
        if (!(g instanceof Granularity.PerBlock b) || b.size() != blockSize) throw new IllegalArgumentException(id
                + " shares one scale per block of " + blockSize + " elements: use granularity block" + blockSize
                + ", got " + (g == null ? "none" : g.id()));
    }

    @Override public void checkParams(QuantParams p) {
        for (int b = 0; b < p.groups(); b++) {
            float s = p.scales[b];
            if (s == 0) continue;
            boolean ok = isMx() ? isE8m0(s) : OcpFp8.E4M3.decodeValue(OcpFp8.E4M3.encodeValue(s)) == s;
            if (!ok) throw new IllegalArgumentException(id + ": scale of block " + b + " is " + s + ", not an "
                    + (isMx() ? "E8M0 power of two 2^-127..2^127" : "FP8 E4M3 value"));
        }
    }

    private static boolean isE8m0(float s) {
        double d = s;
        int e = Math.getExponent(d);
        return e >= MIN_SCALE_EXP && e <= MAX_SCALE_EXP && d == MiniFloat.pow2(e);
    }

    /** Stored 8-bit code of a block scale: E8M0 (exponent + 127) for MX, E4M3 for NVFP4. */
    public int scaleCode(QuantParams p, int block) {
        float s = p.scales[block];
        if (isMx()) {
            if (s == 0) return 0;
            return Math.getExponent((double) s) + 127;
        }
        return OcpFp8.E4M3.encodeValue(s);
    }

    /** Block scale value of a stored scale code (E8M0 0xFF is NaN). */
    public float scaleFromCode(int code) {
        int c = code & 0xFF;
        if (isMx()) return c == 0xFF ? Float.NaN : (float) MiniFloat.pow2(c - 127);
        return (float) OcpFp8.E4M3.decodeValue(c);
    }

    /** MX shared exponent for a block absmax: floor(log2(amax)) - emax, clamped to [-127, 127]. */
    public int sharedExponent(double amax) {
        if (!(amax > 0)) return MIN_SCALE_EXP;
        int k = Math.getExponent(amax) - emax;
        return Math.max(MIN_SCALE_EXP, Math.min(MAX_SCALE_EXP, k));
    }

    @Override public QuantParams paramsForRange(float[] lo, float[] hi) {
        RangeEstimator.checkRanges(id, lo, hi);
        int n = lo.length;
        float[] s = new float[n];
        if (isMx()) {
            for (int b = 0; b < n; b++) {
                double amax = Math.max(Math.abs((double) lo[b]), Math.abs((double) hi[b]));
                s[b] = (float) MiniFloat.pow2(sharedExponent(amax));
            }
            return QuantParams.wrap(s, null, 1f);
        }
        double global = 0;
        for (int b = 0; b < n; b++) global = Math.max(global, Math.max(Math.abs((double) lo[b]), Math.abs((double) hi[b])));
        float ts = (float) (global / NV_RANGE);
        if (ts != 0) {
            double sixTs = 6.0 * ts;
            for (int b = 0; b < n; b++) {
                double amax = Math.max(Math.abs((double) lo[b]), Math.abs((double) hi[b]));
                s[b] = (float) OcpFp8.E4M3.decodeValue(OcpFp8.E4M3.encodeValue(amax / sixTs));
            }
        }
        return QuantParams.wrap(s, null, ts);
    }

    /** Divisor of the block: X for MX, blockScale · tensorScale for NVFP4 (exact in double). */
    private double divisor(QuantParams p, int block) {
        double s = p.scales[block];
        return isMx() ? s : s * p.tensorScale;
    }

    /** Element magnitude code of |v| / divisor with saturation; v finite or infinite, not NaN. */
    private int elementMag(double a, double div) {
        int mag = mf.encodeMag(a / div * MiniFloat.pow2(bias));
        return Math.min(mag, mf.maxMag);
    }

    private int int8Code(double v, double div) {
        double t = Math.rint(v / div * MiniFloat.pow2(INT8_FRAC_BITS));
        return (int) Math.max(-INT8_MAX, Math.min(INT8_MAX, t));
    }

    @Override public int encode(float x, QuantParams p, int group) {
        if (Float.isNaN(x)) throw new IllegalArgumentException("NaN cannot be encoded in " + id);
        double div = divisor(p, group);
        if (div == 0) return 0;
        if (intElements) return int8Code(x, div) & 0xFF;
        boolean neg = Float.floatToRawIntBits(x) < 0;
        int mag = elementMag(Math.abs((double) x), div);
        return neg ? (1 << (exp + man)) | mag : mag;
    }

    /** Element value (before the block scale) of an element code. */
    public double elementValue(int code) {
        if (intElements) return (byte) code * MiniFloat.pow2(-INT8_FRAC_BITS);
        if (fp8 != null) return fp8.decodeValue(code);
        int magBits = exp + man;
        double v = mf.decodeMag(code & ((1 << magBits) - 1)) * MiniFloat.pow2(-bias);
        return ((code >>> magBits) & 1) != 0 ? -v : v;
    }

    @Override public float decode(int code, QuantParams p, int group) {
        double div = divisor(p, group);
        if (div == 0) return 0f;
        double v = elementValue(code);
        return Double.isNaN(v) ? Float.NaN : (float) (v * div);
    }

    @Override public float fakeQuant(float x, QuantParams p, int group) {
        if (Float.isNaN(x)) return Float.NaN;
        return decode(encode(x, p, group), p, group);
    }

    @Override public void fakeQuant(float[] src, int srcOff, float[] dst, int dstOff, int len, QuantParams p, int group) {
        double div = divisor(p, group);
        if (div == 0) {
            for (int i = 0; i < len; i++) dst[dstOff + i] = Float.isNaN(src[srcOff + i]) ? Float.NaN : 0f;
            return;
        }
        if (intElements) {
            double lsb = MiniFloat.pow2(-INT8_FRAC_BITS) * div;
            for (int i = 0; i < len; i++) {
                float x = src[srcOff + i];
                dst[dstOff + i] = Float.isNaN(x) ? Float.NaN : (float) (int8Code(x, div) * lsb);
            }
            return;
        }
        // value of min(code(w), maxMag) = min(roundW(w), maxW): rounding is monotone and maxW is a grid point
        double up = MiniFloat.pow2(bias), scaleOut = MiniFloat.pow2(-bias) * div, maxW = mf.maxW;
        int m = man;
        for (int i = 0; i < len; i++) {
            float x = src[srcOff + i];
            double w = Math.abs((double) x) / div * up;            // NaN stays NaN
            int e = Math.max(Math.min(Math.getExponent(w), 1000), 1);
            double wq = Math.min(Math.rint(w * MiniFloat.pow2(m - e)) * MiniFloat.pow2(e - m), maxW);
            dst[dstOff + i] = Math.copySign((float) (wq * scaleOut), x);
        }
    }

    @Override public float[] grid(QuantParams p, int group) {
        double div = divisor(p, group);
        float[] g = new float[1 << codeBits()];
        int n = 0;
        for (int c = 0; c < g.length; c++) {
            if (intElements && (byte) c < -INT8_MAX) continue;
            double v = elementValue(c);
            if (!Double.isFinite(v)) continue;
            g[n++] = div == 0 ? 0f : (float) (v * div);
        }
        return FpFormat.sortedDistinct(g, n);
    }

    @Override public boolean equals(Object o) { return o instanceof BlockFormat f && f.id.equals(id); }
    @Override public int hashCode() { return id.hashCode(); }
    @Override public String toString() { return id; }
}
