package io.diffquant.engine.io;

import io.diffquant.engine.tensor.Tensor;

/**
 * IEEE 754 binary16 (F16) and bfloat16 (BF16) conversions with round-to-nearest-even, as PyTorch does them
 * ({@code c10/util/Half.h}, {@code c10/util/BFloat16.h} {@code round_to_nearest_even}).
 * F16 uses the JDK's {@link Float#floatToFloat16} / {@link Float#float16ToFloat} (exact, RNE, subnormals,
 * intrinsified on x86); BF16 is the upper half of the float32 bits, rounded to nearest even.
 */
public final class HalfFloats {
    private HalfFloats() {}

    /** The F16 bit pattern nearest to {@code f} (ties to even; overflow to infinity; NaN stays NaN). */
    public static short floatToHalf(float f) { return Float.floatToFloat16(f); }

    /** The exact float value of an F16 bit pattern. */
    public static float halfToFloat(short h) { return Float.float16ToFloat(h); }

    /** The BF16 bit pattern nearest to {@code f} (ties to even; overflow to infinity; NaN stays a quiet NaN, sign kept). */
    public static short floatToBFloat16(float f) {
        int bits = Float.floatToRawIntBits(f);
        if ((bits & 0x7FFF_FFFF) > 0x7F80_0000) {
            // NaN: keep sign and the top payload bits, force the quiet bit so truncation cannot make it infinity
            return (short) ((bits >>> 16) | 0x0040);
        }
        int roundingBias = 0x7FFF + ((bits >>> 16) & 1);
        return (short) ((bits + roundingBias) >>> 16);
    }

    /** The exact float value of a BF16 bit pattern. */
    public static float bfloat16ToFloat(short b) { return Float.intBitsToFloat((b & 0xFFFF) << 16); }

    /** {@code f} rounded to the nearest F16 value, returned as float. */
    public static float roundToHalf(float f) { return halfToFloat(floatToHalf(f)); }

    /** {@code f} rounded to the nearest BF16 value, returned as float. */
    public static float roundToBFloat16(float f) { return bfloat16ToFloat(floatToBFloat16(f)); }

    public static short[] toHalfBits(float[] src) {
        short[] out = new short[src.length];
        for (int i = 0; i < src.length; i++) out[i] = Float.floatToFloat16(src[i]);
        return out;
    }

    public static float[] fromHalfBits(short[] src) {
        float[] out = new float[src.length];
        halfToFloat(src, 0, out, 0, src.length);
        return out;
    }

    public static short[] toBFloat16Bits(float[] src) {
        short[] out = new short[src.length];
        for (int i = 0; i < src.length; i++) out[i] = floatToBFloat16(src[i]);
        return out;
    }

    public static float[] fromBFloat16Bits(short[] src) {
        float[] out = new float[src.length];
        bfloat16ToFloat(src, 0, out, 0, src.length);
        return out;
    }

    /** Converts {@code n} F16 codes from {@code src[srcPos..]} into {@code dst[dstPos..]}. */
    public static void halfToFloat(short[] src, int srcPos, float[] dst, int dstPos, int n) {
        for (int i = 0; i < n; i++) dst[dstPos + i] = Float.float16ToFloat(src[srcPos + i]);
    }

    /** Converts {@code n} BF16 codes from {@code src[srcPos..]} into {@code dst[dstPos..]}. */
    public static void bfloat16ToFloat(short[] src, int srcPos, float[] dst, int dstPos, int n) {
        for (int i = 0; i < n; i++) dst[dstPos + i] = Float.intBitsToFloat((src[srcPos + i] & 0xFFFF) << 16);
    }

    /** A new tensor whose values are those of {@code t} rounded to F16 (simulates storing it as F16). */
    public static Tensor roundToHalf(Tensor t) {
        float[] s = t.data();
        float[] d = new float[s.length];
        for (int i = 0; i < s.length; i++) d[i] = Float.float16ToFloat(Float.floatToFloat16(s[i]));
        return Tensor.of(d, t.shape());
    }

    /** A new tensor whose values are those of {@code t} rounded to BF16 (simulates storing it as BF16). */
    public static Tensor roundToBFloat16(Tensor t) {
        float[] s = t.data();
        float[] d = new float[s.length];
        for (int i = 0; i < s.length; i++) d[i] = roundToBFloat16(s[i]);
        return Tensor.of(d, t.shape());
    }
}
