package io.diffquant.engine.io;

import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * HalfFloats against independent references: the IEEE 754 binary16 value formula evaluated in double, and a
 * nearest-representable search (ties to even) in double arithmetic. Conversions are also checked against torch's
 * output in SafetensorsReaderTest.
 */
class HalfFloatsTest {

    /** Value of an F16 code from the IEEE 754 definition, in double (exact). */
    static double f16Value(int h) {
        int sign = (h >>> 15) & 1, exp = (h >>> 10) & 0x1F, man = h & 0x3FF;
        double s = sign == 1 ? -1 : 1;
        if (exp == 0x1F) return man == 0 ? s * Double.POSITIVE_INFINITY : Double.NaN;
        if (exp == 0) return s * man * 0x1p-24;
        return s * (1024 + man) * Math.scalb(1.0, exp - 25);
    }

    @Test
    void everyHalfCodeDecodesToItsIeeeValue() {
        for (int h = 0; h < 65536; h++) {
            float f = HalfFloats.halfToFloat((short) h);
            double ref = f16Value(h);
            if (Double.isNaN(ref)) {
                assertTrue(Float.isNaN(f), "code " + Integer.toHexString(h));
            } else {
                assertEquals(ref, f, 0.0, "code " + Integer.toHexString(h));
                // sign of zero too
                assertEquals(h >>> 15, Float.floatToRawIntBits(f) >>> 31, "sign of code " + Integer.toHexString(h));
            }
        }
    }

    @Test
    void everyHalfCodeRoundTrips() {
        for (int h = 0; h < 65536; h++) {
            float f = HalfFloats.halfToFloat((short) h);
            short back = HalfFloats.floatToHalf(f);
            if (Float.isNaN(f)) assertTrue(Float.isNaN(HalfFloats.halfToFloat(back)));
            else assertEquals((short) h, back, "code " + Integer.toHexString(h));
        }
    }

    @Test
    void midpointsBetweenNeighbouringHalvesRoundToEven() {
        // every pair of consecutive finite non-negative halves (subnormals included) and their exact midpoint
        for (int h = 0; h < 0x7BFF; h++) {
            double lo = f16Value(h), hi = f16Value(h + 1);
            float mid = (float) ((lo + hi) / 2);  // exact: needs at most 12 significant bits
            assertEquals((lo + hi) / 2, mid, 0.0);
            int even = (h & 1) == 0 ? h : h + 1;
            assertEquals((short) even, HalfFloats.floatToHalf(mid), "midpoint above code " + Integer.toHexString(h));
            assertEquals((short) (even | 0x8000), HalfFloats.floatToHalf(-mid));
            // just off the midpoint goes to the nearer side
            assertEquals((short) h, HalfFloats.floatToHalf(Math.nextDown(mid)));
            assertEquals((short) (h + 1), HalfFloats.floatToHalf(Math.nextUp(mid)));
        }
        // overflow: the midpoint between the largest half (65504) and 65536 rounds (to even) to infinity
        assertEquals((short) 0x7BFF, HalfFloats.floatToHalf(Math.nextDown(65520f)));
        assertEquals((short) 0x7C00, HalfFloats.floatToHalf(65520f));
        assertEquals((short) 0xFC00, HalfFloats.floatToHalf(-1e30f));
        assertEquals((short) 0x0000, HalfFloats.floatToHalf(0x1p-25f));          // half the smallest subnormal -> 0 (even)
        assertEquals((short) 0x0001, HalfFloats.floatToHalf(Math.nextUp(0x1p-25f)));
        assertTrue(Float.isNaN(HalfFloats.roundToHalf(Float.NaN)));
    }

    /** The nearest F16 code to x by exhaustive search over the finite codes of x's sign, ties to even, in double. */
    static int nearestHalf(float x) {
        double ax = Math.abs((double) x);
        int sign = x < 0 || (x == 0 && 1 / x < 0) ? 0x8000 : 0;
        if (ax >= 65520) return sign | 0x7C00;
        int lo = 0, hi = 0x7BFF;
        while (lo < hi) {           // largest code with value <= ax
            int mid = (lo + hi + 1) >>> 1;
            if (f16Value(mid) <= ax) lo = mid; else hi = mid - 1;
        }
        if (lo == 0x7BFF) return sign | lo;
        double dl = ax - f16Value(lo), du = f16Value(lo + 1) - ax;
        int code = dl < du ? lo : du < dl ? lo + 1 : ((lo & 1) == 0 ? lo : lo + 1);
        return sign | code;
    }

    @Test
    void randomFloatsRoundToTheNearestHalf() {
        SplittableRandom r = new SplittableRandom(7);
        for (int i = 0; i < 200_000; i++) {
            float x = i % 2 == 0 ? Float.intBitsToFloat(r.nextInt())
                    : (float) (r.nextGaussian() * Math.scalb(1.0, r.nextInt(-30, 18)));
            if (Float.isNaN(x) || Float.isInfinite(x)) continue;
            assertEquals((short) nearestHalf(x), HalfFloats.floatToHalf(x), "x = " + x);
        }
    }

    /** The nearest BF16 code to a finite x, by comparing the two candidates around it in double, ties to even. */
    static int nearestBf16(float x) {
        int bits = Float.floatToRawIntBits(x);
        int down = bits >>> 16;                       // truncation: same sign, magnitude <= |x|
        double vd = Float.intBitsToFloat(down << 16);
        int up = down + 1;                           // next magnitude (may be infinity)
        double vu = (up & 0x7FFF) == 0x7F80 ? Math.copySign(Math.scalb(1.0, 128), x) : Float.intBitsToFloat(up << 16);
        double dd = Math.abs(x - vd), du = Math.abs(vu - x);
        return dd < du ? down : du < dd ? up : ((down & 1) == 0 ? down : up);
    }

    @Test
    void bfloat16MatchesNearestEvenReference() {
        SplittableRandom r = new SplittableRandom(11);
        for (int i = 0; i < 300_000; i++) {
            float x = Float.intBitsToFloat(r.nextInt());
            if (Float.isNaN(x) || Float.isInfinite(x)) continue;
            assertEquals((short) nearestBf16(x), HalfFloats.floatToBFloat16(x), "x = " + x);
        }
        // exact midpoints, both parities, and the overflow boundary
        assertEquals((short) 0x3F80, HalfFloats.floatToBFloat16(Float.intBitsToFloat(0x3F80_8000)));  // tie -> even (down)
        assertEquals((short) 0x3F82, HalfFloats.floatToBFloat16(Float.intBitsToFloat(0x3F81_8000)));  // tie -> even (up)
        assertEquals((short) 0x3F81, HalfFloats.floatToBFloat16(Float.intBitsToFloat(0x3F80_8001)));
        assertEquals((short) 0x7F7F, HalfFloats.floatToBFloat16(Float.intBitsToFloat(0x7F7F_7FFF)));
        assertEquals((short) 0x7F80, HalfFloats.floatToBFloat16(Float.MAX_VALUE));                      // rounds to +inf
        assertEquals((short) 0x0001, HalfFloats.floatToBFloat16(Float.intBitsToFloat(0x0000_8001)));  // subnormal
        assertEquals((short) 0x8000, HalfFloats.floatToBFloat16(-0f));
    }

    @Test
    void bfloat16NaNStaysNaNAndInfinitiesStay() {
        for (int payload : new int[] {0x7F80_0001, 0x7FC0_0000, 0xFF80_0001, 0x7FFF_FFFF}) {
            float nan = Float.intBitsToFloat(payload);
            assertTrue(Float.isNaN(HalfFloats.roundToBFloat16(nan)), Integer.toHexString(payload));
            assertEquals(payload >>> 31, (HalfFloats.floatToBFloat16(nan) & 0xFFFF) >>> 15);
        }
        assertEquals(Float.POSITIVE_INFINITY, HalfFloats.roundToBFloat16(Float.POSITIVE_INFINITY));
        assertEquals(Float.NEGATIVE_INFINITY, HalfFloats.roundToBFloat16(Float.NEGATIVE_INFINITY));
        for (int b = 0; b < 65536; b++) {   // every finite bf16 code is a fixed point
            float v = HalfFloats.bfloat16ToFloat((short) b);
            assertEquals(b << 16, Float.floatToRawIntBits(v));
            if (!Float.isNaN(v)) assertEquals((short) b, HalfFloats.floatToBFloat16(v));
        }
    }

    @Test
    void bulkAndTensorHelpersAgreeWithScalar() {
        float[] src = {0.1f, -3.14159f, 70000f, 1e-6f, 0f, -0f};
        short[] h = HalfFloats.toHalfBits(src);
        short[] b = HalfFloats.toBFloat16Bits(src);
        float[] hf = HalfFloats.fromHalfBits(h), bf = HalfFloats.fromBFloat16Bits(b);
        Tensor t = Tensor.of(src.clone(), 2, 3);
        Tensor th = HalfFloats.roundToHalf(t), tb = HalfFloats.roundToBFloat16(t);
        assertArrayEquals(new int[] {2, 3}, th.shape());
        for (int i = 0; i < src.length; i++) {
            assertEquals(HalfFloats.roundToHalf(src[i]), hf[i]);
            assertEquals(HalfFloats.roundToBFloat16(src[i]), bf[i]);
            assertEquals(hf[i], th.data()[i]);
            assertEquals(bf[i], tb.data()[i]);
        }
        assertEquals(0.0999755859375f, hf[0]);   // 0.1 in f16: 1638 / 16384
        assertEquals(0.10009765625f, bf[0]);     // 0.1 in bf16: 0x3DCD
        assertEquals(Float.POSITIVE_INFINITY, hf[2]);
        assertEquals(src[0], t.data()[0]);       // source untouched
    }
}
