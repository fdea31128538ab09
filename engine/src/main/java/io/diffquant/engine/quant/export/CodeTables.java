package io.diffquant.engine.quant.export;

import io.diffquant.engine.quant.format.BlockFormat;
import io.diffquant.engine.quant.format.FpFormat;
import io.diffquant.engine.quant.format.IntFormat;
import io.diffquant.engine.quant.format.NumberFormat;
import io.diffquant.engine.quant.format.OcpFp8;

/**
 * The decode rule of every format in one shape (docs/export-format.md): value = float32(((lut[code] - zero) · scale) / div)
 * evaluated in double precision, with scale = group scale · tensor scale. This reproduces each format's own decode bit for
 * bit: INT (lut = the signed integer level, zero = the zero point, div = 1), FP4DiT ExMy (lut = the signed value of the
 * code at bias 0, w(c), div = w(max code), scale = maxval), OCP FP8 (lut = the FP8 value), MX / NVFP4 (lut = the
 * element value, scale = the decoded block scale, NVFP4 times the tensor scale).
 */
public final class CodeTables {
    private CodeTables() {}

    /** The value of every code 0 .. 2^bits - 1 at unit scale. */
    public static double[] lut(NumberFormat f) {
        int n = 1 << f.codeBits();
        double[] out = new double[n];
        switch (f) {
            case IntFormat i -> { for (int c = 0; c < n; c++) out[c] = i.levelOfCode(c); }
            case FpFormat fp -> {
                int e = fp.exponentBits(), m = fp.mantissaBits(), mag = e + m;
                for (int c = 0; c < n; c++) {
                    double w = magnitude(c & ((1 << mag) - 1), m);
                    out[c] = fp.signed() && ((c >>> mag) & 1) != 0 ? -w : w;
                }
            }
            case OcpFp8 o -> { for (int c = 0; c < n; c++) out[c] = o.decodeValue(c); }
            case BlockFormat b -> { for (int c = 0; c < n; c++) out[c] = b.elementValue(c); }
        }
        return out;
    }

    /** w(c) of an ExMy magnitude code at bias 0 (IEEE layout with subnormals). */
    static double magnitude(int c, int m) {
        int expField = c >>> m, mant = c & ((1 << m) - 1);
        if (expField == 0) return mant * Math.scalb(1.0, 1 - m);
        return ((1 << m) + mant) * Math.scalb(1.0, expField - m);
    }

    /** The divisor of the decode rule: w of the largest code for FP4DiT ExMy formats, 1 otherwise. */
    public static double div(NumberFormat f) {
        return f instanceof FpFormat fp ? fp.wMax() : 1.0;
    }
}
