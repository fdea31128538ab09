package io.diffquant.engine.train;

/**
 * The trainer's random numbers: SplitMix64 (Steele, Lea, Flood 2014, as in java.util.SplittableRandom) with
 * an explicit, serialisable state. Streams are derived from (seed, purpose, index) by mixing, so that the
 * numbers a training step draws depend only on the run seed and the step number: resuming from a checkpoint
 * at step s reproduces exactly the draws of an uninterrupted run.
 */
public final class TrainRng {
    private static final long GOLDEN = 0x9E3779B97F4A7C15L;
    private long state;

    public TrainRng(long state) { this.state = state; }

    /** An independent stream for (seed, purpose, index), e.g. (runSeed, STEP, step) or (runSeed, DATA, epoch). */
    public static TrainRng derive(long seed, long purpose, long index) {
        long s = mix(seed ^ mix(purpose * GOLDEN + 0x632BE59BD9B4E019L));
        s = mix(s + mix(index + GOLDEN));
        return new TrainRng(s);
    }

    /** The current state (restoring it with {@code new TrainRng(state)} continues the same sequence). */
    public long state() { return state; }

    private static long mix(long z) {
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }

    public long nextLong() {
        state += GOLDEN;
        return mix(state);
    }

    /** Uniform in [0, 1) with 53 random bits. */
    public double nextDouble() { return (nextLong() >>> 11) * 0x1.0p-53; }

    /** Uniform integer in [0, bound), unbiased (rejection of the incomplete top range). */
    public int nextInt(int bound) {
        if (bound <= 0) throw new IllegalArgumentException("bound must be positive, got " + bound);
        long b = bound;
        long limit = Long.MAX_VALUE - Long.MAX_VALUE % b;
        long r;
        do { r = nextLong() >>> 1; } while (r >= limit);
        return (int) (r % b);
    }

    /** Fills dst with standard normal samples (Box–Muller, both outputs of every pair used). */
    public void gaussian(float[] dst) {
        for (int i = 0; i < dst.length; i += 2) {
            double u1 = 1.0 - nextDouble(); // (0, 1]
            double u2 = nextDouble();
            double rad = Math.sqrt(-2.0 * Math.log(u1)), ang = 2.0 * Math.PI * u2;
            dst[i] = (float) (rad * Math.cos(ang));
            if (i + 1 < dst.length) dst[i + 1] = (float) (rad * Math.sin(ang));
        }
    }

    /** A uniformly random permutation of 0..n-1 (Fisher–Yates). */
    public int[] permutation(int n) {
        int[] p = new int[n];
        for (int i = 0; i < n; i++) p[i] = i;
        for (int i = n - 1; i > 0; i--) {
            int j = nextInt(i + 1);
            int t = p[i];
            p[i] = p[j];
            p[j] = t;
        }
        return p;
    }
}
