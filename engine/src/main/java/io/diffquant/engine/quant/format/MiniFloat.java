package io.diffquant.engine.quant.format;

/**
 * Magnitude codec of a small binary floating-point format (IEEE 754 layout with subnormals, as in the OCP
 * 8-bit FP and MX v1.0 specifications) in "w-space", i.e. with exponent bias 0: a magnitude code
 * {@code c = (expField << M) | mant} has the value {@code w(c) = mant * 2^(1-M)} when {@code expField == 0}
 * and {@code (2^M + mant) * 2^(expField - M)} otherwise. A format with bias B has value {@code w * 2^-B};
 * FP4DiT's real-valued bias becomes the real factor {@code maxval / w(maxMag)} applied by {@link FpFormat}.
 *
 * <p>Rounding is to nearest, ties to even: inside the binade of w (exponent {@code e = max(floor(log2 w), 1)})
 * the grid is {@code q * 2^(e-M)} and {@code q = rint(w * 2^(M-e))} is exact because the scaling is by a power
 * of two. The code is then {@code ((e-1) << M) + q}, which also handles the carry into the next binade.
 */
final class MiniFloat {
    final int expBits;
    final int manBits;
    /** Largest finite magnitude code. */
    final int maxMag;
    /** w(maxMag). */
    final double maxW;

    MiniFloat(int expBits, int manBits, int maxMag) {
        if (expBits < 0 || manBits < 0 || expBits + manBits > 8 || expBits + manBits == 0) {
            throw new IllegalArgumentException("minifloat needs 0 <= E, 0 <= M, 1 <= E + M <= 8, got E=" + expBits + " M=" + manBits);
        }
        if (maxMag < 1 || maxMag >= (1 << (expBits + manBits))) {
            throw new IllegalArgumentException("largest magnitude code " + maxMag + " out of range for E" + expBits + "M" + manBits);
        }
        this.expBits = expBits;
        this.manBits = manBits;
        this.maxMag = maxMag;
        this.maxW = decodeMag(maxMag);
    }

    /** 2^k as a double, for -1022 <= k <= 1023, built from its bits (exact, no Math.pow). */
    static double pow2(int k) {
        return Double.longBitsToDouble((long) (k + 1023) << 52);
    }

    /** Binade exponent of w >= 0: max(floor(log2 w), 1); exact since it reads the double's exponent field. */
    static int binade(double w) {
        int e = Math.getExponent(w);
        return e < 1 ? 1 : e;
    }

    /**
     * Nearest magnitude code of w (finite, >= 0), ties to even; may exceed {@link #maxMag} (the caller saturates
     * or signals overflow). For w >= 2^1000 returns Integer.MAX_VALUE (overflow of every format here).
     */
    int encodeMag(double w) {
        int e = binade(w);
        if (e > 1000) return Integer.MAX_VALUE;
        int q = (int) Math.rint(w * pow2(manBits - e));
        return ((e - 1) << manBits) + q;
    }

    /** w(c) for a magnitude code (no range check). */
    double decodeMag(int c) {
        int expField = c >>> manBits;
        int mant = c & ((1 << manBits) - 1);
        if (expField == 0) return mant * pow2(1 - manBits);
        return ((1 << manBits) + mant) * pow2(expField - manBits);
    }

    /** The w-space value nearest to w, ties to even, without saturation: q * 2^(e-M). */
    static double roundW(double w, int manBits) {
        int e = binade(w);
        if (e > 1000) return Double.POSITIVE_INFINITY;
        return Math.rint(w * pow2(manBits - e)) * pow2(e - manBits);
    }

    /** Number of magnitude codes that are subnormal and non-zero (expField 0, mant > 0). */
    int subnormalCount() { return (1 << manBits) - 1; }
}
