package io.diffquant.engine.quant.format;

import io.diffquant.engine.tensor.Parallel;
import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.*;

/** Property tests of the quantizer on random tensors (fixed seeds), every format family and granularity. */
class QuantizerTest {

    private record Case(NumberFormat format, Granularity granularity, Layout layout, int[] shape) {
        @Override public String toString() { return format.id() + "/" + granularity.id() + "/" + layout + Arrays.toString(shape); }
    }

    private static List<Case> cases() {
        List<Case> out = new ArrayList<>();
        String[] elementwise = {"int4-asym", "int8-sym", "int3-sym-full", "uint4", "fp4-e2m1", "fp4-e3m0", "fp6-e3m2", "fp8-e4m3",
                "ufp4-e3m1", "fp4-e0m3", "ocp-fp8-e4m3", "ocp-fp8-e5m2"};
        Granularity[] grans = {Granularity.TENSOR, Granularity.CHANNEL, Granularity.group(16), Granularity.TOKEN, Granularity.head(4)};
        int[][] shapes = {{24, 64}, {8, 4, 3, 3}, {3, 8, 64}};
        for (String n : elementwise) {
            for (Granularity g : grans) {
                out.add(new Case(NumberFormat.parse(n), g, Layout.WEIGHT, shapes[0]));
                out.add(new Case(NumberFormat.parse(n), g, Layout.WEIGHT, shapes[1]));
                out.add(new Case(NumberFormat.parse(n), g, Layout.ACTIVATION, shapes[2]));
            }
        }
        for (BlockFormat b : BlockFormat.ALL) {
            out.add(new Case(b, b.granularity(), Layout.ACTIVATION, new int[] {6, 64}));
            out.add(new Case(b, b.granularity(), Layout.WEIGHT, new int[] {5, 40}));   // ragged last block
        }
        return out;
    }

    private static Tensor randomTensor(int[] shape, long seed) {
        SplittableRandom rnd = new SplittableRandom(seed);
        Tensor t = Tensor.zeros(shape);
        float[] d = t.data();
        for (int i = 0; i < d.length; i++) {
            double v = rnd.nextGaussian() * Math.exp(rnd.nextDouble(-1, 1));
            if (rnd.nextInt(50) == 0) v *= 20;          // outliers
            if (rnd.nextInt(40) == 0) v = 0;
            d[i] = (float) v;
        }
        return t;
    }

    private static boolean bitEqual(float a, float b) { return Float.floatToIntBits(a) == Float.floatToIntBits(b); }

    @Test void fakeQuantGivesTheNearestGridPointOfItsGroup() {
        long seed = 100;
        int nearTies = 0;
        for (Case c : cases()) {
            Tensor x = randomTensor(c.shape(), seed++);
            Quantizer q = Quantizer.dynamic(c.format(), c.granularity(), c.layout());
            Tensor y = q.fakeQuant(x);
            QuantParams p = q.paramsFor(x);
            GroupView v = q.view(x.shape());
            assertEquals(v.groups(), p.groups(), c.toString());
            float[][] grids = new float[v.groups()][];
            float[] xd = x.data(), yd = y.data();
            for (int i = 0; i < xd.length; i++) {
                int g = v.groupOf(i);
                if (grids[g] == null) grids[g] = c.format().grid(p, g);
                float[] grid = grids[g];
                float out = yd[i] == 0f ? 0f : yd[i];
                assertTrue(Arrays.binarySearch(grid, out) >= 0, c + ": output " + yd[i] + " of x " + xd[i] + " is not in the grid of group " + g);
                double dOut = Math.abs((double) xd[i] - out);    // exact: difference of two floats
                double dMin = Double.POSITIVE_INFINITY;
                for (float gv : grid) dMin = Math.min(dMin, Math.abs((double) xd[i] - gv));
                if (dOut > dMin) {
                    // only allowed when x is within rounding of a midpoint: the float grid points are rounded real values
                    assertTrue(dOut - dMin <= 2 * Math.ulp(out), c + ": x " + xd[i] + " -> " + out + " but a grid point is " + dMin + " away");
                    nearTies++;
                }
                // scalar path agrees with the bulk path
                assertTrue(bitEqual(yd[i], c.format().fakeQuant(xd[i], p, g)), c + ": scalar vs bulk at " + i);
            }
        }
        assertTrue(nearTies <= 3, "near-tie rounding cases: " + nearTies);
    }

    @Test void fixedParamsAreIdempotentAndMatchQuantizeDequantize() {
        long seed = 300;
        for (Case c : cases()) {
            Tensor x = randomTensor(c.shape(), seed++);
            QuantParams p = Quantizer.dynamic(c.format(), c.granularity(), c.layout()).paramsFor(x);
            Quantizer q = Quantizer.withParams(c.format(), c.granularity(), c.layout(), p);
            Tensor y = q.fakeQuant(x);
            Tensor yy = q.fakeQuant(y);
            QuantizedTensor qt = q.quantize(x);
            Tensor dq = qt.dequantize();
            PackedCodes packed = qt.packed();
            assertArrayEquals(qt.codes(), packed.unpack(), c.toString());
            for (int i = 0; i < y.size(); i++) {
                assertTrue(bitEqual(y.data()[i], yy.data()[i]), c + ": fakeQuant not idempotent at " + i);
                assertTrue(bitEqual(y.data()[i], dq.data()[i]), c + ": dequantize(quantize) differs from fakeQuant at " + i);
                assertTrue((qt.codes()[i] & 0xFF) < (1 << c.format().codeBits()), c + ": code width");
            }
            // in place
            Tensor inPlace = x.copy();
            q.fakeQuant(inPlace, inPlace);
            assertArrayEquals(y.data(), inPlace.data());
        }
    }

    @Test void groupsAreIndependent() {
        long seed = 500;
        for (Case c : cases()) {
            if (c.format() == BlockFormat.NVFP4) continue;          // its tensor scale couples the blocks by design
            Quantizer q = Quantizer.dynamic(c.format(), c.granularity(), c.layout());
            Tensor x = randomTensor(c.shape(), seed++);
            GroupView v = q.view(x.shape());
            if (v.groups() == 1) continue;
            int target = v.groups() / 2;
            Tensor x2 = x.copy();
            for (int i = 0; i < x2.size(); i++) if (v.groupOf(i) == target) x2.data()[i] = x2.data()[i] * 3 + 1;
            Tensor y = q.fakeQuant(x), y2 = q.fakeQuant(x2);
            QuantParams p = q.paramsFor(x), p2 = q.paramsFor(x2);
            for (int g = 0; g < v.groups(); g++) {
                if (g == target) continue;
                assertEquals(p.scale(g), p2.scale(g), c + ": scale of group " + g);
                assertEquals(p.zeroPoint(g), p2.zeroPoint(g), c + ": zero point of group " + g);
            }
            for (int i = 0; i < x.size(); i++) {
                if (v.groupOf(i) != target) assertTrue(bitEqual(y.data()[i], y2.data()[i]), c + ": element " + i + " changed");
            }
        }
    }

    @Test void convWeightGroupsRunAlongInTimesKernel() {
        Tensor w = randomTensor(new int[] {8, 4, 3, 3}, 7);
        IntFormat f = IntFormat.asymmetric(4);
        Quantizer q = Quantizer.dynamic(f, Granularity.group(12), Layout.WEIGHT);
        QuantParams p = q.paramsFor(w);
        assertEquals(24, p.groups());
        for (int o = 0; o < 8; o++) {
            for (int k = 0; k < 3; k++) {
                float lo = Float.POSITIVE_INFINITY, hi = Float.NEGATIVE_INFINITY;
                for (int j = 0; j < 12; j++) {
                    float v = w.data()[o * 36 + k * 12 + j];
                    lo = Math.min(lo, v);
                    hi = Math.max(hi, v);
                }
                QuantParams ref = f.paramsForRange(new float[] {lo}, new float[] {hi});
                assertEquals(ref.scale(0), p.scale(o * 3 + k));
                assertEquals(ref.zeroPoint(0), p.zeroPoint(o * 3 + k));
            }
        }
        GroupView v = q.view(w.shape());
        assertEquals(3 * 5 + 1, v.groupOf(5 * 36 + 2 * 9 + 1 * 3 + 2), "[5, 2, 1, 2] is column 23 of row 5: group 5*3 + 1");
        // per head on activations: head h = channels [h*16, (h+1)*16) of every token
        GroupView heads = new GroupView(Granularity.head(4), Layout.ACTIVATION, new int[] {2, 5, 64});
        assertEquals(4, heads.groups());
        assertEquals(2, heads.groupOf(3 * 64 + 40));
        assertEquals(10 * 16, heads.groupSize(1));
        // per channel of an activation = per column
        assertEquals(64, new GroupView(Granularity.CHANNEL, Layout.ACTIVATION, new int[] {2, 5, 64}).groups());
        assertEquals(10, new GroupView(Granularity.TOKEN, Layout.ACTIVATION, new int[] {2, 5, 64}).groups());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new GroupView(Granularity.head(5), Layout.ACTIVATION, new int[] {3, 64}));
        assertTrue(e.getMessage().contains("64") && e.getMessage().contains("5 heads"), e.getMessage());
    }

    @Test void resultsDoNotDependOnTheThreadCount() {
        Tensor x = randomTensor(new int[] {300, 200}, 9);
        Quantizer q = Quantizer.dynamic(FpFormat.of(2, 1), Granularity.group(50), Layout.WEIGHT);
        Quantizer t = Quantizer.dynamic(IntFormat.asymmetric(4), Granularity.TENSOR, Layout.WEIGHT);
        float[] a = q.fakeQuant(x).data(), at = t.fakeQuant(x).data();
        int threads = Parallel.threads();
        try {
            Parallel.setThreads(1);
            assertArrayEquals(a, q.fakeQuant(x).data());
            assertArrayEquals(at, t.fakeQuant(x).data());
        } finally {
            Parallel.setThreads(threads);
        }
    }

    @Test void nanHandling() {
        Tensor x = randomTensor(new int[] {4, 8}, 3);
        Quantizer dyn = Quantizer.dynamic(IntFormat.asymmetric(4), Granularity.CHANNEL, Layout.WEIGHT).named("blocks.0.mlp.fc1.weight");
        Quantizer fixed = Quantizer.withParams(IntFormat.asymmetric(4), Granularity.CHANNEL, Layout.WEIGHT, dyn.paramsFor(x)).named("blocks.0.mlp.fc1.weight");
        Tensor clean = fixed.fakeQuant(x);
        Tensor bad = x.copy();
        bad.set(Float.NaN, 1, 5);
        // fixed parameters: NaN propagates element-wise
        Tensor y = fixed.fakeQuant(bad);
        for (int i = 0; i < y.size(); i++) {
            if (i == 13) assertTrue(Float.isNaN(y.data()[i]));
            else assertEquals(clean.data()[i], y.data()[i]);
        }
        // dynamic estimation and encoding reject it, naming tensor and index
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> dyn.fakeQuant(bad));
        assertTrue(e.getMessage().contains("blocks.0.mlp.fc1.weight") && e.getMessage().contains("[1, 5]"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> fixed.quantize(bad));
        assertTrue(e.getMessage().contains("blocks.0.mlp.fc1.weight") && e.getMessage().contains("[1, 5]"), e.getMessage());
        // OCP FP8 has a NaN code
        QuantizedTensor q8 = Quantizer.withParams(OcpFp8.E4M3, Granularity.TENSOR, Layout.WEIGHT, QuantParams.of(1f)).quantize(bad);
        assertEquals(OcpFp8.NAN_CODE, q8.codes()[13]);
        assertTrue(Float.isNaN(q8.dequantize().data()[13]));
        // the check helper for callers
        Tensor inf = x.copy();
        inf.set(Float.NEGATIVE_INFINITY, 3, 7);
        e = assertThrows(IllegalArgumentException.class, () -> QuantChecks.requireFinite("final_layer.linear.weight", bad));
        assertTrue(e.getMessage().contains("'final_layer.linear.weight'") && e.getMessage().contains("NaN at [1, 5]"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> QuantChecks.requireFinite("w", inf));
        assertTrue(e.getMessage().contains("-Infinity at [3, 7]"), e.getMessage());
        QuantChecks.requireFinite("w", x);
    }

    @Test void nanAndInfinityWithFixedParamsInEveryFormat() {
        long seed = 700;
        for (Case c : cases()) {
            Tensor x = randomTensor(c.shape(), seed++);
            Quantizer q = Quantizer.withParams(c.format(), c.granularity(), c.layout(),
                    Quantizer.dynamic(c.format(), c.granularity(), c.layout()).paramsFor(x));
            Tensor clean = q.fakeQuant(x);
            Tensor bad = x.copy();
            bad.data()[3] = Float.NaN;
            bad.data()[7] = Float.POSITIVE_INFINITY;
            bad.data()[11] = Float.NEGATIVE_INFINITY;
            Tensor y = q.fakeQuant(bad);
            GroupView v = q.view(x.shape());
            QuantParams p = q.params();
            float[] g7 = c.format().grid(p, v.groupOf(7)), g11 = c.format().grid(p, v.groupOf(11));
            for (int i = 0; i < y.size(); i++) {
                float got = y.data()[i];
                if (i == 3) assertTrue(Float.isNaN(got), c + ": NaN must propagate");
                else if (i == 7) {
                    boolean nosat = c.format() instanceof OcpFp8 f && !f.saturating();
                    if (!nosat) assertEquals(g7[g7.length - 1], got, c + ": +inf saturates");
                } else if (i == 11) {
                    if (!(c.format() instanceof OcpFp8 f && !f.saturating())) assertEquals(g11[0], got, c + ": -inf saturates");
                } else {
                    assertTrue(bitEqual(clean.data()[i], got), c + ": element " + i + " changed");
                }
            }
        }
    }

    @Test void parameterCountMustMatch() {
        Quantizer q = Quantizer.withParams(FpFormat.of(2, 1), Granularity.CHANNEL, Layout.WEIGHT, QuantParams.of(1f, 2f, 3f)).named("blocks.1.attn.proj.weight");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> q.fakeQuant(Tensor.zeros(4, 8)));
        assertTrue(e.getMessage().contains("blocks.1.attn.proj.weight") && e.getMessage().contains("needs 4 parameter groups")
                && e.getMessage().contains("has 3"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> QuantParams.of(Float.NaN));
        assertThrows(IllegalArgumentException.class, () -> QuantParams.of(-1f));
        assertThrows(IllegalArgumentException.class,
                () -> Quantizer.withParams(IntFormat.asymmetric(4), Granularity.TENSOR, Layout.WEIGHT, QuantParams.of(1f)));
    }

    @Test void calibratedQuantizerFreezesParameters() {
        Tensor calib = randomTensor(new int[] {16, 32}, 21);
        Quantizer q = Quantizer.calibrated(IntFormat.asymmetric(8), Granularity.TENSOR, Layout.ACTIVATION, RangeEstimator.minMax(), calib);
        assertFalse(q.isDynamic());
        Tensor other = randomTensor(new int[] {4, 32}, 22);
        assertEquals(q.params(), q.paramsFor(other));
        assertTrue(q.toString().contains("int8-asym"));
    }
}
