package io.diffquant.engine.diffusion;

import io.diffquant.engine.tensor.Parallel;
import io.diffquant.engine.tensor.Tensor;

/**
 * Counter-based standard normal noise: every value is a pure function of (seed, stream, sample index, step key,
 * element index), so a sample's noise does not depend on the batch it is in, the thread count or the generation
 * order. A SplitMix64-style finalizer (Steele, Lea &amp; Flood, "Fast splittable pseudorandom number generators",
 * OOPSLA 2014; Stafford's mix13) hashes the counter into 53-bit uniforms, and the Box–Muller transform (computed with
 * {@link StrictMath}, so results are identical on every JVM) turns each pair of uniforms into elements 2p and 2p+1.
 */
public final class SeededNoise {
    /** Stream of the initial x_T. */
    public static final int STREAM_INITIAL = 0;
    /** Stream of the per-step noise (DDPM ancestral step, DDIM with eta &gt; 0). */
    public static final int STREAM_STEP = 1;
    /** Step key used for the initial noise (per-step noise uses the ORIGINAL timestep value, which is &gt;= 0). */
    public static final long INITIAL_STEP_KEY = -1;

    private static final long GAMMA = 0x9E3779B97F4A7C15L;
    private static final double TWO_PI = 2 * Math.PI;
    private static final double INV_2_53 = 0x1.0p-53;

    private final long seed;

    public SeededNoise(long seed) { this.seed = seed; }

    public long seed() { return seed; }

    /** Stafford's mix13 finalizer (the SplitMix64 output function). */
    static long mix64(long z) {
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }

    /** The key of one (stream, sample, step) sequence. */
    long key(int stream, long sampleIndex, long stepKey) {
        long k = mix64(seed ^ 0x6A09E667F3BCC909L);
        k = mix64(k + GAMMA * (stream + 1L));
        k = mix64(k + GAMMA * (sampleIndex + 0x3C6EF372FE94F82BL));
        return mix64(k + GAMMA * (stepKey + 0x510E527FADE682D1L));
    }

    /** Element {@code index} of the (stream, sample, step) sequence. */
    public float value(int stream, long sampleIndex, long stepKey, long index) {
        long key = key(stream, sampleIndex, stepKey);
        long pair = index >>> 1;
        double[] two = new double[2];
        boxMuller(key, pair, two);
        return (float) two[(int) (index & 1)];
    }

    /** Fills dst[offset, offset+n) with elements 0..n-1 of the (stream, sample, step) sequence. */
    public void fill(int stream, long sampleIndex, long stepKey, float[] dst, int offset, int n) {
        fillRange(key(stream, sampleIndex, stepKey), dst, offset, 0, n);
    }

    /**
     * A tensor of shape {@code shape} (leading dimension = samples) whose sample i holds the sequence of sample
     * {@code firstSample + i}. Generated in parallel; results never depend on the thread count.
     */
    public Tensor normal(int stream, long firstSample, long stepKey, int... shape) {
        Tensor out = Tensor.zeros(shape);
        if (shape.length == 0) throw new IllegalArgumentException("noise shape needs a leading sample dimension");
        int samples = shape[0];
        if (samples == 0) return out;
        int per = out.size() / samples;
        float[] d = out.data();
        long[] keys = new long[samples];
        for (int s = 0; s < samples; s++) keys[s] = key(stream, firstSample + s, stepKey);
        int pairsPer = (per + 1) / 2;
        long totalPairs = (long) samples * pairsPer;
        if (totalPairs > Integer.MAX_VALUE) throw new IllegalArgumentException("noise tensor too large");
        final int chunk = 4096;
        int chunks = (int) ((totalPairs + chunk - 1) / chunk);
        Parallel.forRange(chunks, 1, (from, to) -> {
            for (int c = from; c < to; c++) {
                long p0 = (long) c * chunk, p1 = Math.min(totalPairs, p0 + chunk);
                long p = p0;
                while (p < p1) {
                    int s = (int) (p / pairsPer);
                    int inSample = (int) (p - (long) s * pairsPer);
                    int end = (int) Math.min(pairsPer, inSample + (p1 - p));
                    int e0 = 2 * inSample, e1 = Math.min(per, 2 * end);
                    fillRange(keys[s], d, s * per + e0, e0, e1 - e0);
                    p += end - inSample;
                }
            }
        });
        return out;
    }

    /** Writes elements [firstElement, firstElement + n) of the sequence with {@code key} to dst[offset..]. */
    private static void fillRange(long key, float[] dst, int offset, int firstElement, int n) {
        double[] two = new double[2];
        int e = firstElement, end = firstElement + n, o = offset;
        if ((e & 1) == 1 && e < end) {
            boxMuller(key, e >>> 1, two);
            dst[o++] = (float) two[1];
            e++;
        }
        while (e < end) {
            boxMuller(key, e >>> 1, two);
            dst[o++] = (float) two[0];
            if (e + 1 < end) dst[o++] = (float) two[1];
            e += 2;
        }
    }

    private static void boxMuller(long key, long pair, double[] out) {
        long h1 = mix64(key + GAMMA * (2 * pair + 1));
        long h2 = mix64(key + GAMMA * (2 * pair + 2));
        double u1 = ((h1 >>> 11) + 1) * INV_2_53; // (0, 1]
        double u2 = (h2 >>> 11) * INV_2_53;       // [0, 1)
        double r = StrictMath.sqrt(-2.0 * StrictMath.log(u1));
        double a = TWO_PI * u2;
        out[0] = r * StrictMath.cos(a);
        out[1] = r * StrictMath.sin(a);
    }
}
