package io.diffquant.engine.quant.format;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** OCP FP8 E4M3 / E5M2 (OFP8 spec rev. 1.0): every code, ties, overflow, scale. */
class OcpFp8Test {

    /** Independent decoding with Math.pow from the spec's field definitions. */
    private static double reference(boolean e4m3, int c) {
        int e = e4m3 ? 4 : 5, m = e4m3 ? 3 : 2, bias = e4m3 ? 7 : 15;
        int s = c >> 7, ex = (c >> m) & ((1 << e) - 1), mant = c & ((1 << m) - 1);
        double sign = s == 1 ? -1 : 1;
        if (e4m3 && ex == 15 && mant == 7) return Double.NaN;
        if (!e4m3 && ex == 31) return mant == 0 ? sign * Double.POSITIVE_INFINITY : Double.NaN;
        if (ex == 0) return sign * mant / Math.pow(2, m) * Math.pow(2, 1 - bias);
        return sign * (1 + mant / Math.pow(2, m)) * Math.pow(2, ex - bias);
    }

    @Test void allCodesDecodeLikeTheSpec() {
        for (int c = 0; c < 256; c++) {
            assertEquals(reference(true, c), OcpFp8.E4M3.decodeValue(c), "E4M3 code " + c);
            assertEquals(reference(false, c), OcpFp8.E5M2.decodeValue(c), "E5M2 code " + c);
            // E5M2 is the upper byte of IEEE binary16
            float h = Float.float16ToFloat((short) (c << 8));
            assertEquals(Double.doubleToLongBits(h), Double.doubleToLongBits(Double.isNaN(h) ? Double.NaN : OcpFp8.E5M2.decodeValue(c)), "E5M2 vs binary16, code " + c);
        }
        assertEquals(448.0, OcpFp8.E4M3.maxFinite());
        assertEquals(57344.0, OcpFp8.E5M2.maxFinite());
        assertEquals(0x38, OcpFp8.E4M3.encodeValue(1.0));
        assertEquals(0x3C, OcpFp8.E5M2.encodeValue(1.0));
        assertEquals(0x01, OcpFp8.E4M3.encodeValue(Math.scalb(1.0, -9)));
        assertEquals(0x01, OcpFp8.E5M2.encodeValue(Math.scalb(1.0, -16)));
        assertEquals(0x80, OcpFp8.E4M3.encodeValue(-0.0));
    }

    @Test void allCodesRoundTrip() {
        for (OcpFp8 f : new OcpFp8[] {OcpFp8.E4M3, OcpFp8.E5M2, OcpFp8.E4M3_NOSAT, OcpFp8.E5M2_NOSAT}) {
            int nan = 0;
            for (int c = 0; c < 256; c++) {
                double v = f.decodeValue(c);
                if (Double.isNaN(v)) {
                    nan++;
                    assertTrue(f.isNaNCode(f.encodeValue(v)));
                    continue;
                }
                if (Double.isInfinite(v) && f.saturating()) {
                    assertEquals((c & 0x80) | 0x7B, f.encodeValue(v), "saturating E5M2 maps infinity to max");
                    continue;
                }
                assertEquals(c, f.encodeValue(v), f.id() + " code " + c);
            }
            assertEquals(f.isE4M3() ? 2 : 6, nan, f.id() + " NaN codes");
        }
    }

    @Test void tiesRoundToEvenAndNeighboursToNearest() {
        for (OcpFp8 f : new OcpFp8[] {OcpFp8.E4M3, OcpFp8.E5M2}) {
            int maxMag = f.isE4M3() ? 0x7E : 0x7B;
            for (int c = 0; c < maxMag; c++) {
                double a = f.decodeValue(c), b = f.decodeValue(c + 1);
                double mid = (a + b) / 2;                       // exact in double
                int even = (c & 1) == 0 ? c : c + 1;
                assertEquals(even, f.encodeValue(mid), f.id() + " midpoint of codes " + c + ", " + (c + 1));
                assertEquals(0x80 | even, f.encodeValue(-mid));
                assertEquals(c, f.encodeValue(Math.nextDown(mid)));
                assertEquals(c + 1, f.encodeValue(Math.nextUp(mid)));
            }
        }
    }

    @Test void overflowSaturatesOrGivesNaNAndInfinity() {
        assertEquals(0x7E, OcpFp8.E4M3.encodeValue(500));
        assertEquals(0x7E, OcpFp8.E4M3_NOSAT.encodeValue(464), "464 is the tie 448|480: even mantissa 448");
        assertEquals(OcpFp8.NAN_CODE, OcpFp8.E4M3_NOSAT.encodeValue(465));
        assertEquals(0xFF, OcpFp8.E4M3_NOSAT.encodeValue(Double.NEGATIVE_INFINITY));
        assertEquals(0xFE, OcpFp8.E4M3.encodeValue(Double.NEGATIVE_INFINITY));
        assertEquals(0x7B, OcpFp8.E5M2_NOSAT.encodeValue(61439));
        assertEquals(0x7C, OcpFp8.E5M2_NOSAT.encodeValue(61440), "tie 57344|65536 rounds to even: infinity");
        assertEquals(0x7B, OcpFp8.E5M2.encodeValue(1e9));
        assertEquals(0xFC, OcpFp8.E5M2_NOSAT.encodeValue(-1e9));
        assertEquals(0x7F, OcpFp8.E4M3.encodeValue(Double.NaN));
    }

    @Test void withScale() {
        OcpFp8 f = OcpFp8.E4M3;
        QuantParams p = f.paramsForRange(new float[] {-8.96f}, new float[] {3f});
        assertEquals((float) (8.96 / 448), p.scale(0));
        assertEquals(-8.96f, f.fakeQuant(-8.96f, p, 0), 1e-6f);
        QuantParams two = QuantParams.of(2f);
        assertEquals(3.25f, f.fakeQuant(3.3f, two, 0));             // 1.65 -> 1.625
        assertEquals(896f, f.fakeQuant(1e6f, two, 0));              // saturates at 448 * 2
        assertTrue(Float.isNaN(OcpFp8.E4M3_NOSAT.fakeQuant(1e6f, two, 0)));
        assertEquals(Float.POSITIVE_INFINITY, OcpFp8.E5M2_NOSAT.fakeQuant(1e6f, QuantParams.of(1f), 0));
        assertEquals(253, f.grid(two).length);
        assertEquals(247, OcpFp8.E5M2.grid(two).length);
        float[] g = f.grid(two);
        float[] out = new float[g.length];
        f.fakeQuant(g, 0, out, 0, g.length, two, 0);
        assertArrayEquals(g, out);
    }
}
