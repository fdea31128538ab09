package io.diffquant.engine.quant.format;

import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.*;

/** Min-max, percentile, Lp search and EMA ranges (ALGORITHMS.md §4). */
class RangeEstimatorTest {

    private static Tensor gaussianWithOutliers(int rows, int cols, long seed) {
        SplittableRandom rnd = new SplittableRandom(seed);
        float[] d = new float[rows * cols];
        for (int i = 0; i < d.length; i++) {
            d[i] = (float) rnd.nextGaussian();
            if (rnd.nextInt(100) == 0) d[i] *= 12;
        }
        return Tensor.of(d, rows, cols);
    }

    @Test void minMaxPerChannel() {
        Tensor x = Tensor.of(new float[] {1, -2, 3, 0.5f, 0.25f, 0.75f}, 2, 3);
        RangeEstimator.Ranges r = RangeEstimator.minMax().ranges(IntFormat.asymmetric(8), new GroupView(Granularity.CHANNEL, Layout.WEIGHT, x.shape()), x.data());
        assertArrayEquals(new float[] {-2f, 0.25f}, r.lo());
        assertArrayEquals(new float[] {3f, 0.75f}, r.hi());
        // FP: maxval = max(|lo|, |hi|)
        QuantParams p = RangeEstimator.minMax().estimate(FpFormat.of(2, 1), Granularity.CHANNEL, Layout.WEIGHT, x);
        assertArrayEquals(new float[] {3f, 0.75f}, p.scales());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> RangeEstimator.minMax()
                .estimate(IntFormat.asymmetric(8), Granularity.TENSOR, Layout.WEIGHT, Tensor.of(new float[] {1, Float.NaN}, 2)));
        assertTrue(e.getMessage().contains("flat index 1"), e.getMessage());
    }

    @Test void percentileInterpolatesLinearly() {
        // values 0..999 shuffled: the 99th percentile is at position 0.99 * 999 = 989.01 -> 989.01; the 1st at 9.99
        float[] d = new float[1000];
        for (int i = 0; i < d.length; i++) d[i] = i;
        SplittableRandom rnd = new SplittableRandom(2);
        for (int i = d.length - 1; i > 0; i--) {
            int j = rnd.nextInt(i + 1);
            float t = d[i]; d[i] = d[j]; d[j] = t;
        }
        Tensor x = Tensor.of(d, 1, 1000);
        RangeEstimator.Ranges r = RangeEstimator.percentile(99).ranges(IntFormat.asymmetric(8), new GroupView(Granularity.TENSOR, Layout.ACTIVATION, x.shape()), d);
        assertEquals(989.01f, r.hi()[0], 1e-3f);
        assertEquals(9.99f, r.lo()[0], 1e-4f);
        RangeEstimator.Ranges all = RangeEstimator.percentile(100).ranges(IntFormat.asymmetric(8), new GroupView(Granularity.TENSOR, Layout.ACTIVATION, x.shape()), d);
        assertEquals(999f, all.hi()[0]);
        assertEquals(0f, all.lo()[0]);
        assertEquals("percentile99.99", RangeEstimator.percentile(99.99).id());
        assertThrows(IllegalArgumentException.class, () -> RangeEstimator.percentile(40));
    }

    @Test void lpSearchIsNeverWorseThanMinMax() {
        String[] formats = {"int4-asym", "int3-sym", "uint4", "fp4-e2m1", "fp4-e3m0", "fp6-e3m2", "ocp-fp8-e4m3", "mxfp4"};
        Granularity[] grans = {Granularity.TENSOR, Granularity.CHANNEL, Granularity.group(32)};
        RangeEstimator.LpSearch lp = RangeEstimator.lpSearch();
        long seed = 40;
        int improved = 0;
        for (String n : formats) {
            NumberFormat f = NumberFormat.parse(n);
            for (Granularity g : grans) {
                if (f instanceof BlockFormat b) g = b.granularity();
                Tensor x = gaussianWithOutliers(8, 64, seed++);
                GroupView v = new GroupView(g, Layout.WEIGHT, x.shape());
                QuantParams pm = RangeEstimator.minMax().estimate(f, v, x.data());
                QuantParams pl = lp.estimate(f, v, x.data());
                for (int grp = 0; grp < v.groups(); grp++) {
                    float[] vals = v.gather(x.data(), grp);
                    float[] ym = new float[vals.length], yl = new float[vals.length];
                    f.fakeQuant(vals, 0, ym, 0, vals.length, pm, grp);
                    f.fakeQuant(vals, 0, yl, 0, vals.length, pl, grp);
                    double em = 0, el = 0;
                    for (int i = 0; i < vals.length; i++) {
                        em += Math.pow(Math.abs((double) vals[i] - ym[i]), 2.4);
                        el += Math.pow(Math.abs((double) vals[i] - yl[i]), 2.4);
                    }
                    assertTrue(el <= em * (1 + 1e-12), n + "/" + g.id() + " group " + grp + ": Lp " + el + " > min-max " + em);
                    if (el < em * 0.999) improved++;
                }
            }
        }
        assertTrue(improved > 20, "the search should clip outliers in many groups, improved " + improved);
    }

    @Test void lpSearchPicksTheBestCandidate() {
        // brute force over the same candidates, computed here
        Tensor x = gaussianWithOutliers(1, 256, 77);
        IntFormat f = IntFormat.asymmetric(4);
        RangeEstimator.LpSearch lp = new RangeEstimator.LpSearch(2.4, 80, 0.01);
        float lo = Float.POSITIVE_INFINITY, hi = Float.NEGATIVE_INFINITY;
        for (float v : x.data()) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
        double best = Double.POSITIVE_INFINITY;
        int bestI = -1;
        for (int i = 0; i < 80; i++) {
            float l = (float) (lo * (1 - 0.01 * i)), h = (float) (hi * (1 - 0.01 * i));
            QuantParams p = f.paramsForRange(new float[] {l}, new float[] {h});
            double s = 0;
            for (float v : x.data()) s += Math.pow(Math.abs((double) v - f.fakeQuant(v, p, 0)), 2.4);
            if (s < best) { best = s; bestI = i; }
        }
        assertTrue(bestI > 0, "an outlier-heavy row should be clipped");
        RangeEstimator.Ranges r = lp.ranges(f, new GroupView(Granularity.TENSOR, Layout.WEIGHT, x.shape()), x.data());
        assertEquals((float) (hi * (1 - 0.01 * bestI)), r.hi()[0]);
        assertEquals((float) (lo * (1 - 0.01 * bestI)), r.lo()[0]);
        assertEquals("lp2.4x80s0.01", lp.id());
        assertEquals(new RangeEstimator.LpSearch(2.4, 100, 0.001), RangeEstimator.lpSearchQDiT());
        assertThrows(IllegalArgumentException.class, () -> new RangeEstimator.LpSearch(2.4, 101, 0.01));
        assertThrows(IllegalArgumentException.class, () -> lp.estimate(BlockFormat.NVFP4, Granularity.block(16), Layout.WEIGHT, Tensor.zeros(1, 16)));
    }

    @Test void emaOfMinMaxOverBatches() {
        EmaMinMax ema = new EmaMinMax(Granularity.TENSOR, Layout.ACTIVATION);
        ema.observe(Tensor.of(new float[] {-1, 2}, 1, 2));
        ema.observe(Tensor.of(new float[] {-3, 1}, 1, 2));
        ema.observe(Tensor.of(new float[] {-2, 4}, 1, 2));
        double lo = 0.95 * (0.95 * -1 + 0.05 * -3) + 0.05 * -2;
        double hi = 0.95 * (0.95 * 2 + 0.05 * 1) + 0.05 * 4;
        assertEquals((float) lo, ema.ranges().lo()[0]);
        assertEquals((float) hi, ema.ranges().hi()[0]);
        assertEquals(3, ema.batches());
        QuantParams p = ema.params(IntFormat.asymmetric(8));
        assertEquals((float) ((hi - lo) / 255), p.scale(0));
        // per-token groups change with the batch: rejected
        EmaMinMax perToken = new EmaMinMax(Granularity.TOKEN, Layout.ACTIVATION);
        perToken.observe(Tensor.zeros(4, 8));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> perToken.observe(Tensor.zeros(5, 8)));
        assertTrue(e.getMessage().contains("5 groups") && e.getMessage().contains("had 4"), e.getMessage());
        assertThrows(IllegalStateException.class, () -> new EmaMinMax(Granularity.TENSOR, Layout.WEIGHT).ranges());
    }
}
