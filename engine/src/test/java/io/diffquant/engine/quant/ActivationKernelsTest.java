package io.diffquant.engine.quant;

import io.diffquant.engine.quant.format.FpFormat;
import io.diffquant.engine.quant.format.Granularity;
import io.diffquant.engine.quant.format.IntFormat;
import io.diffquant.engine.quant.format.Layout;
import io.diffquant.engine.quant.format.NumberFormat;
import io.diffquant.engine.quant.format.QuantChecks;
import io.diffquant.engine.quant.format.QuantParams;
import io.diffquant.engine.quant.format.Quantizer;
import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The fast activation kernels are bit-identical to the reference Quantizer, ties and edge values included. */
class ActivationKernelsTest {
    static List<NumberFormat> formats() {
        List<NumberFormat> f = new ArrayList<>();
        for (int b = 2; b <= 8; b++) for (IntFormat.Kind k : IntFormat.Kind.values()) f.add(new IntFormat(b, k));
        for (String id : new String[] {"fp4-e2m1", "fp4-e3m0", "fp4-e1m2", "fp6-e2m3", "fp6-e3m2", "fp8-e4m3", "fp8-e5m2", "fp8-e3m4",
                "fp3-e0m2", "ufp8-e5m3", "ufp4-e3m1", "fp8-e7m0"}) f.add(NumberFormat.parse(id));
        return f;
    }

    /** Values of every kind: normal, tiny, huge, zeros of both signs, subnormals, exact grid points and midpoints. */
    static Tensor data(SplittableRandom r, int rows, int cols, NumberFormat f) {
        Tensor t = Tensor.zeros(rows, cols);
        float[] d = t.data();
        for (int i = 0; i < d.length; i++) {
            double u = r.nextDouble();
            d[i] = u < 0.6 ? (float) (r.nextGaussian() * Math.exp(r.nextGaussian() * 2))
                    : u < 0.7 ? 0f : u < 0.75 ? -0f : u < 0.8 ? Float.intBitsToFloat(r.nextInt(1 << 23)) * (r.nextBoolean() ? 1 : -1)
                    : (float) (r.nextInt(-300, 300) * 0.5 * Math.pow(2, r.nextInt(-6, 4)));   // many exact halves: ties for power-of-2 steps
        }
        return t;
    }

    static void assertSame(Tensor a, Tensor b, String what) {
        for (int i = 0; i < a.size(); i++) {
            int x = Float.floatToRawIntBits(a.data()[i]), y = Float.floatToRawIntBits(b.data()[i]);
            if (x != y) throw new AssertionError(what + " element " + i + ": reference " + a.data()[i] + ", fast " + b.data()[i]);
        }
    }

    @Test void dynamicRangesMatchTheReference() {
        SplittableRandom r = new SplittableRandom(1);
        for (NumberFormat f : formats()) for (Granularity g : new Granularity[] {Granularity.TENSOR, Granularity.TOKEN, Granularity.group(16), Granularity.group(48)}) {
            Tensor x = data(r, 37, 96, f);
            Tensor ref = Quantizer.dynamic(f, g, Layout.ACTIVATION).fakeQuant(x);
            Tensor fast = Tensor.zeros(37, 96);
            ActivationKernels.fakeQuant(f, g, null, x, fast, "x");
            assertSame(ref, fast, f.id() + " " + g.id() + " dynamic");
        }
    }

    @Test void fixedParametersMatchTheReferenceIncludingTiesNaNAndInfinity() {
        SplittableRandom r = new SplittableRandom(2);
        for (NumberFormat f : formats()) {
            Tensor x = data(r, 16, 64, f);
            float[] d = x.data();
            d[0] = Float.NaN; d[1] = Float.POSITIVE_INFINITY; d[2] = Float.NEGATIVE_INFINITY; d[3] = Float.MAX_VALUE; d[4] = -Float.MIN_VALUE;
            // power-of-two steps make x/Δ land on half-integers exactly (the tie path)
            float[] lo = new float[16], hi = new float[16];
            for (int i = 0; i < 16; i++) { lo[i] = -(float) Math.pow(2, i - 6) * (i % 3); hi[i] = (float) Math.pow(2, i - 5); }
            lo[5] = 0; hi[5] = 0;   // an all-zero group
            QuantParams p = f.paramsForRange(lo, hi);
            Tensor ref = Quantizer.withParams(f, Granularity.TOKEN, Layout.ACTIVATION, p).fakeQuant(x);
            Tensor fast = Tensor.zeros(16, 64);
            ActivationKernels.fakeQuant(f, Granularity.TOKEN, p, x, fast, "x");
            assertSame(ref, fast, f.id() + " token, fixed");
            QuantParams one = f.paramsForRange(new float[] {-3.3f}, new float[] {7.1f});
            ref = Quantizer.withParams(f, Granularity.TENSOR, Layout.ACTIVATION, one).fakeQuant(x);
            ActivationKernels.fakeQuant(f, Granularity.TENSOR, one, x, fast, "x");
            assertSame(ref, fast, f.id() + " tensor, fixed");
            Tensor inPlace = x.copy();
            ActivationKernels.fakeQuant(f, Granularity.TOKEN, p, inPlace, inPlace, "x");
            assertSame(Quantizer.withParams(f, Granularity.TOKEN, Layout.ACTIVATION, p).fakeQuant(x), inPlace, f.id() + " token, fixed, in place");
        }
    }

    @Test void fpGridPointsMidpointsAndTheirNeighbours() {
        for (NumberFormat f : formats()) {
            if (!(f instanceof FpFormat)) continue;
            for (float mv : new float[] {1f, 6f, 0.37f, 448f, 3.1e-5f, 2.5e30f, 1.875f, 0.75f, 7f, 255f / 64, 127f / 8, 31f * 1024}) {
                QuantParams p = QuantParams.of(mv);
                float[] grid = f.grid(p, 0);
                List<Float> xs = new ArrayList<>();
                for (int i = 0; i < grid.length; i++) {
                    float g = grid[i];
                    xs.add(g); xs.add(Math.nextUp(g)); xs.add(Math.nextDown(g));
                    if (i + 1 < grid.length) {
                        float mid = (float) (((double) g + grid[i + 1]) / 2);
                        xs.add(mid); xs.add(Math.nextUp(mid)); xs.add(Math.nextDown(mid));
                    }
                }
                xs.add(mv * 1.5f); xs.add(-mv * 3); xs.add(Float.MIN_VALUE); xs.add(-Float.MIN_VALUE);
                float[] a = new float[xs.size()];
                for (int i = 0; i < a.length; i++) a[i] = xs.get(i);
                Tensor x = Tensor.of(a, 1, a.length), out = Tensor.zeros(1, a.length);
                ActivationKernels.fakeQuant(f, Granularity.TENSOR, p, x, out, "x");
                assertSame(Quantizer.withParams(f, Granularity.TENSOR, Layout.ACTIVATION, p).fakeQuant(x), out, f.id() + " maxval " + mv);
            }
        }
    }

    @Test void exactIntegerTiesRoundHalfToEven() {
        IntFormat f = IntFormat.symmetric(8);
        QuantParams p = QuantParams.of(0.5f);
        Tensor x = Tensor.of(new float[] {0.25f, 0.75f, -0.25f, -0.75f, 1.25f, 63.25f}, 1, 6);
        Tensor out = Tensor.zeros(1, 6);
        ActivationKernels.fakeQuant(f, Granularity.TENSOR, p, x, out, "x");
        // quotients 0.5, 1.5, -0.5, -1.5, 2.5, 126.5 round to 0, 2, 0, -2, 2, 126
        float[] expected = {0f, 1f, 0f, -1f, 1f, 63f};
        for (int i = 0; i < 6; i++) assertEquals(expected[i], out.data()[i], 0f, "element " + i);
        assertEquals(Float.floatToRawIntBits(0f), Float.floatToRawIntBits(out.data()[2]), "zero results are +0");
        Tensor inPlace = x.copy();
        ActivationKernels.fakeQuant(f, Granularity.TENSOR, p, inPlace, inPlace, "x");
        for (int i = 0; i < 6; i++) assertEquals(expected[i], inPlace.data()[i], 0f, "in place, element " + i);
    }

    @Test void dynamicRejectsNonFiniteInputWithTheName() {
        Tensor x = Tensor.of(new float[] {1, 2, Float.NaN, 4}, 2, 2);
        QuantChecks.NonFiniteException e = assertThrows(QuantChecks.NonFiniteException.class,
                () -> ActivationKernels.fakeQuant(IntFormat.asymmetric(8), Granularity.TOKEN, null, x, Tensor.zeros(2, 2), "blocks.0.mlp.fc1.input"));
        assertTrue(e.getMessage().contains("blocks.0.mlp.fc1.input") && e.getMessage().contains("[1, 0]"), e.getMessage());
    }
}
