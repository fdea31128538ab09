package io.diffquant.engine.tensor;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Every recorded op's backward rule against central finite differences of L = sum(out * R) for a fixed random
 * R: the ops run in float32, so eps is 1e-2 (smooth ops) and the comparison uses the relative error of the
 * whole gradient vector (tolerance 1e-3; the observed worst case is below 1e-4) plus a per-element bound of
 * 1e-3 times the gradient's norm. A 1 % error in any rule fails.
 */
class GradCheckTest {
    @FunctionalInterface
    interface Fn { Tensor apply(Tensor[] in); }

    @AfterEach void restore() { Parallel.setThreads(EngineSettings.threads()); }

    static Tensor rand(Random r, double scale, int... shape) {
        Tensor t = Tensor.zeros(shape);
        for (int i = 0; i < t.size(); i++) t.data()[i] = (float) (scale * r.nextGaussian());
        return t;
    }

    static double dot(Tensor out, Tensor w) {
        double s = 0;
        for (int i = 0; i < out.size(); i++) s += (double) out.data()[i] * w.data()[i];
        return s;
    }

    /** Checks d/d inputs[i] for every i in check (all inputs if none given). */
    static void check(String name, Fn f, Tensor[] inputs, double eps, int... check) {
        Random r = new Random(name.hashCode());
        Tensor out, weights;
        Gradients g;
        try (Tape tape = Tape.start()) {
            out = f.apply(inputs);
            weights = rand(r, 1.0, out.shape());
            g = tape.backward(out, weights, false);
        }
        assertNull(Tape.active(), "tape must be inactive after backward");
        int[] which = check.length > 0 ? check : java.util.stream.IntStream.range(0, inputs.length).toArray();
        for (int i : which) {
            Tensor x = inputs[i];
            float[] a = g.getOrZeros(x).data();
            double[] num = new double[x.size()];
            for (int j = 0; j < x.size(); j++) {
                float v = x.data()[j];
                x.data()[j] = (float) (v + eps);
                double lp = dot(f.apply(inputs), weights);
                x.data()[j] = (float) (v - eps);
                double lm = dot(f.apply(inputs), weights);
                x.data()[j] = v;
                num[j] = (lp - lm) / (2 * eps);
            }
            assertGradClose(name + " d/d input " + i, num, a);
        }
    }

    static void assertGradClose(String what, double[] num, float[] a) {
        double diff = 0, nn = 0, na = 0, maxErr = 0;
        int worst = -1;
        for (int j = 0; j < num.length; j++) {
            double d = a[j] - num[j];
            diff += d * d;
            nn += num[j] * num[j];
            na += (double) a[j] * a[j];
            if (Math.abs(d) > maxErr) { maxErr = Math.abs(d); worst = j; }
        }
        double scale = Math.max(Math.sqrt(nn), Math.sqrt(na));
        assertTrue(scale > 1e-6, what + ": gradient is identically zero, the check would be vacuous");
        double rel = Math.sqrt(diff) / scale;
        assertTrue(rel < 1e-3 && maxErr < 1e-3 * scale, what + ": relative error " + rel + ", worst element " + worst
                + " analytic " + (worst < 0 ? 0 : a[worst]) + " numeric " + (worst < 0 ? 0 : num[worst]));
    }

    private static Tensor[] ts(Tensor... t) { return t; }

    // ------------------------------------------------------------------ GEMM ops

    @Test void linear() {
        Random r = new Random(1);
        check("linear", in -> Ops.linear(in[0], in[1], in[2]), ts(rand(r, 1, 2, 3, 5), rand(r, 0.5, 4, 5), rand(r, 1, 4)), 1e-2);
        check("linear no bias", in -> Ops.linear(in[0], in[1], null), ts(rand(r, 1, 6, 5), rand(r, 0.5, 3, 5)), 1e-2);
    }

    @Test void conv2dAllPaths() {
        Random r = new Random(2);
        // 3x3 stride 1 padding 1, two images, bias
        check("conv3x3", in -> Ops.conv2d(in[0], in[1], in[2], 1, 1),
                ts(rand(r, 1, 2, 2, 5, 5), rand(r, 0.4, 3, 2, 3, 3), rand(r, 1, 3)), 1e-2);
        // stride 2 with padding (UNet downsampler)
        check("conv3x3 s2", in -> Ops.conv2d(in[0], in[1], in[2], 2, 1),
                ts(rand(r, 1, 2, 2, 6, 5), rand(r, 0.4, 3, 2, 3, 3), rand(r, 1, 3)), 1e-2);
        // patch embedding: kernel = stride = 2
        check("conv patch", in -> Ops.conv2d(in[0], in[1], in[2], 2, 0),
                ts(rand(r, 1, 2, 1, 4, 4), rand(r, 0.5, 4, 1, 2, 2), rand(r, 1, 4)), 1e-2);
        // 1x1 pointwise, one image and two images, no bias
        check("conv1x1 n1", in -> Ops.conv2d(in[0], in[1], null, 1, 0),
                ts(rand(r, 1, 1, 3, 3, 4), rand(r, 0.5, 2, 3, 1, 1)), 1e-2);
        check("conv1x1 n2", in -> Ops.conv2d(in[0], in[1], in[2], 1, 0),
                ts(rand(r, 1, 2, 3, 3, 4), rand(r, 0.5, 2, 3, 1, 1), rand(r, 1, 2)), 1e-2);
        // the backward in image groups: one image per group, and groups of two with a remainder
        int keep = OpsBackward.convGroupCols;
        try {
            for (int cols : new int[] {16, 40}) {
                OpsBackward.convGroupCols = cols;
                check("conv3x3 grouped " + cols, in -> Ops.conv2d(in[0], in[1], in[2], 1, 1),
                        ts(rand(r, 1, 3, 2, 4, 4), rand(r, 0.4, 3, 2, 3, 3), rand(r, 1, 3)), 1e-2);
                check("conv1x1 grouped " + cols, in -> Ops.conv2d(in[0], in[1], null, 1, 0),
                        ts(rand(r, 1, 3, 2, 4, 4), rand(r, 0.4, 3, 2, 1, 1)), 1e-2);
            }
        } finally {
            OpsBackward.convGroupCols = keep;
        }
    }

    @Test void attention() {
        Random r = new Random(3);
        check("attention", in -> Ops.attention(in[0], in[1], in[2], 0.6f),
                ts(rand(r, 1, 2, 2, 3, 4), rand(r, 1, 2, 2, 3, 4), rand(r, 1, 2, 2, 3, 4)), 1e-2);
        check("attention tk != t", in -> Ops.attention(in[0], in[1], in[2], 0.5f),
                ts(rand(r, 1, 1, 2, 3, 4), rand(r, 1, 1, 2, 5, 4), rand(r, 1, 1, 2, 5, 4)), 1e-2);
        // the same tensor as q, k and v (self-attention on one buffer): gradients accumulate
        Tensor x = rand(r, 1, 1, 1, 4, 3);
        check("attention shared", in -> Ops.attention(in[0], in[0], in[0], 0.7f), ts(x), 1e-2);
    }

    // ------------------------------------------------------------------ in-place bias adds

    @Test void inPlaceBiasAdds() {
        Random r = new Random(4);
        check("addRowVector", in -> { Tensor y = Ops.scale(in[0], 1.5f); Ops.addRowVector(y, in[1]); return Ops.silu(y); },
                ts(rand(r, 1, 2, 3, 4), rand(r, 1, 4)), 1e-2);
        check("addChannelBias", in -> { Tensor y = Ops.scale(in[0], 1.5f); Ops.addChannelBias(y, in[1]); return Ops.silu(y); },
                ts(rand(r, 1, 2, 3, 2, 2), rand(r, 1, 3)), 1e-2);
        check("addPerSampleChannel", in -> { Tensor y = Ops.scale(in[0], 1.5f); Ops.addPerSampleChannel(y, in[1]); return Ops.silu(y); },
                ts(rand(r, 1, 2, 3, 2, 2), rand(r, 1, 2, 3)), 1e-2);
        check("addInPlace", in -> {
            Tensor y = Ops.scale(in[0], 2f);
            Tensor z = Ops.scale(y, 3f);              // consumer of the old y (no saved values)
            Ops.addInPlace(y, in[1]);
            Ops.addInPlace(y, y);                     // y = 2 (2 x0 + x1)
            return Ops.add(Ops.silu(y), z);
        }, ts(rand(r, 1, 3, 4), rand(r, 1, 3, 4)), 1e-2);
    }

    @Test void inPlaceOnSavedValuesIsRefused() {
        Tensor x = Tensor.full(0.5f, 2, 3), b = Tensor.full(1f, 2, 3);
        try (Tape tape = Tape.start()) {
            Tensor y = Ops.scale(x, 2f);
            Ops.silu(y); // saves y's values for its derivative
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> Ops.addInPlace(y, b));
            assertTrue(e.getMessage().contains("addInPlace") && e.getMessage().contains("out-of-place"), e.getMessage());
            // LayerNorm keeps its own normalised copy, so a residual update of its input is allowed
            Tensor h = Ops.scale(x, 2f);
            Ops.layerNorm(h, null, null, 1e-6f);
            Ops.addInPlace(h, b);
            assertTrue(tape.size() > 0);
        }
    }

    // ------------------------------------------------------------------ norms, softmax, activations

    @Test void norms() {
        Random r = new Random(5);
        check("layerNorm affine", in -> Ops.layerNorm(in[0], in[1], in[2], 1e-5f),
                ts(rand(r, 1, 3, 6), rand(r, 1, 6), rand(r, 1, 6)), 1e-2);
        check("layerNorm plain", in -> Ops.layerNorm(in[0], null, null, 1e-6f), ts(rand(r, 2, 2, 2, 5)), 1e-2);
        check("groupNorm affine", in -> Ops.groupNorm(in[0], 2, in[1], in[2], 1e-5f),
                ts(rand(r, 1, 2, 4, 2, 3), rand(r, 1, 4), rand(r, 1, 4)), 1e-2);
        check("groupNorm plain", in -> Ops.groupNorm(in[0], 3, null, null, 1e-5f), ts(rand(r, 1, 2, 3, 2, 2)), 1e-2);
    }

    @Test void softmaxAndActivations() {
        Random r = new Random(6);
        check("softmax", in -> Ops.softmax(in[0]), ts(rand(r, 1, 3, 5)), 1e-2);
        check("silu", in -> Ops.silu(in[0]), ts(rand(r, 2, 20)), 1e-2);
        check("geluTanh", in -> Ops.geluTanh(in[0]), ts(rand(r, 2, 20)), 1e-2);
        check("gelu", in -> Ops.gelu(in[0]), ts(rand(r, 2, 20)), 1e-2);
        Tensor x = rand(r, 1, 20);
        for (int i = 0; i < x.size(); i++) if (Math.abs(x.data()[i]) < 0.05f) x.data()[i] += 0.1f; // away from the kink
        check("relu", in -> Ops.relu(in[0]), ts(x), 1e-3);
        // analytic derivatives against double finite differences of the scalar functions
        for (double v = -5; v <= 5; v += 0.37) {
            double h = 1e-4;
            double dTanh = (geluTanhD(v + h) - geluTanhD(v - h)) / (2 * h);
            assertEquals(dTanh, Ops.geluTanhGrad((float) v), 1e-5, "geluTanh' at " + v);
            double dSilu = ((v + h) / (1 + Math.exp(-(v + h))) - (v - h) / (1 + Math.exp(-(v - h)))) / (2 * h);
            assertEquals(dSilu, Ops.siluGrad((float) v), 1e-5, "silu' at " + v);
            double dGelu = (geluD(v + h) - geluD(v - h)) / (2 * h);
            assertEquals(dGelu, Ops.geluGrad((float) v), 2e-5, "gelu' at " + v);
        }
    }

    /**
     * The vectorised tanh-GELU derivative (used by the Tape for geluTanh / geluTanhInPlace) over a wide range, including
     * x around 10 where exp(2u) reaches the clamp: it overflowed to infinity there (a NaN gradient in dit-fmnist's
     * training). Reference: central difference of the double-precision function; tolerance 1e-5 absolute.
     */
    @Test void vectorisedGeluTanhGradIsFiniteAndExactOverAWideRange() {
        int n = 0;
        float[] xs = new float[2401];
        for (double v = -40; v <= 40.0001; v += 80.0 / 2400) xs[n++] = (float) v;
        float[] got = new float[n];
        TransformerOps.geluTanhGrad(java.util.Arrays.copyOf(xs, n), got);
        for (int i = 0; i < n; i++) {
            double v = xs[i], h = 1e-4;
            double want = (geluTanhD(v + h) - geluTanhD(v - h)) / (2 * h);
            assertTrue(Float.isFinite(got[i]), "geluTanh' at " + v + " = " + got[i]);
            assertEquals(want, got[i], 1e-5, "geluTanh' at " + v);
        }
    }

    private static double geluTanhD(double v) { return 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v * v * v))); }
    private static double geluD(double v) { return 0.5 * v * (1 + Ops.erf(v / Math.sqrt(2))); }

    @Test void mapRefusesToRecord() {
        try (Tape tape = Tape.start()) {
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> Ops.map(Tensor.zeros(2), v -> v));
            assertTrue(e.getMessage().contains("not differentiable"), e.getMessage());
            try (var off = Tape.pause()) {
                assertNull(Tape.active());
                assertEquals(2f, Ops.map(Tensor.full(1f, 1), v -> 2 * v).data()[0]);
            }
            assertSame(tape, Tape.active());
        }
    }

    // ------------------------------------------------------------------ element-wise, reductions, losses

    @Test void elementwiseAndReductions() {
        Random r = new Random(7);
        check("add", in -> Ops.add(in[0], in[1]), ts(rand(r, 1, 2, 3), rand(r, 1, 2, 3)), 1e-2);
        check("add self", in -> Ops.add(in[0], in[0]), ts(rand(r, 1, 2, 3)), 1e-2);
        check("sub", in -> Ops.sub(in[0], in[1]), ts(rand(r, 1, 2, 3), rand(r, 1, 2, 3)), 1e-2);
        check("mul", in -> Ops.mul(in[0], in[1]), ts(rand(r, 1, 2, 3), rand(r, 1, 2, 3)), 1e-2);
        check("mul self", in -> Ops.mul(in[0], in[0]), ts(rand(r, 1, 7)), 1e-2);
        check("scale", in -> Ops.scale(in[0], -0.7f), ts(rand(r, 1, 2, 3)), 1e-2);
        check("sum", in -> Ops.sum(Ops.mul(in[0], in[0])), ts(rand(r, 1, 2, 3)), 1e-2);
        check("mean", in -> Ops.mean(Ops.mul(in[0], in[0])), ts(rand(r, 1, 2, 3)), 1e-2);
        check("mseLoss", in -> Ops.mseLoss(in[0], in[1]), ts(rand(r, 1, 2, 5), rand(r, 1, 2, 5)), 1e-2);
        check("crossEntropy", in -> Ops.crossEntropy(in[0], new int[] {2, 0, 3}), ts(rand(r, 1.5, 3, 4)), 1e-2);
    }

    @Test void lossValuesAgainstDoubleReferences() {
        Tensor a = Tensor.of(new float[] {1, 2, 3, 4}, 2, 2), b = Tensor.of(new float[] {0, 2, 5, 3}, 2, 2);
        assertEquals((1 + 0 + 4 + 1) / 4.0, Ops.mseLoss(a, b).data()[0], 1e-7);
        Tensor logits = Tensor.of(new float[] {1, 2, 3, 0, 0, 0}, 2, 3);
        double ce0 = Math.log(Math.exp(1) + Math.exp(2) + Math.exp(3)) - 2, ce1 = Math.log(3);
        assertEquals((ce0 + ce1) / 2, Ops.crossEntropy(logits, new int[] {1, 2}).data()[0], 1e-6);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Ops.crossEntropy(logits, new int[] {1, 3}));
        assertTrue(e.getMessage().contains("label 3"), e.getMessage());
    }

    // ------------------------------------------------------------------ layout

    @Test void layoutOps() {
        Random r = new Random(8);
        check("concatChannels", in -> Ops.concatChannels(in[0], in[1]), ts(rand(r, 1, 2, 2, 2, 2), rand(r, 1, 2, 3, 2, 2)), 1e-2);
        check("sliceChannels", in -> Ops.sliceChannels(in[0], 1, 3), ts(rand(r, 1, 2, 4, 2, 2)), 1e-2);
        check("upsampleNearest2x", in -> Ops.upsampleNearest2x(in[0]), ts(rand(r, 1, 2, 2, 2, 3)), 1e-2);
        check("avgPool2x", in -> Ops.avgPool2x(in[0]), ts(rand(r, 1, 2, 2, 4, 5)), 1e-2);
        check("globalAvgPool", in -> Ops.globalAvgPool(in[0]), ts(rand(r, 1, 2, 3, 2, 3)), 1e-2);
        // max pool: distinct, well separated values so that +-eps never changes a window's argmax
        Tensor x = Tensor.zeros(2, 2, 4, 4);
        int[] perm = new int[x.size()];
        for (int i = 0; i < perm.length; i++) perm[i] = i;
        for (int i = perm.length - 1; i > 0; i--) { int j = r.nextInt(i + 1); int t = perm[i]; perm[i] = perm[j]; perm[j] = t; }
        for (int i = 0; i < perm.length; i++) x.data()[i] = 0.1f * perm[i];
        check("maxPool2x", in -> Ops.maxPool2x(in[0]), ts(x), 1e-3);
        int[][] perms = {{0, 2, 1, 3}, {2, 0, 3, 1}, {3, 2, 1, 0}, {0, 1, 2, 3}};
        for (int[] p : perms)
            check("permute4 " + java.util.Arrays.toString(p), in -> Ops.permute4(in[0], p[0], p[1], p[2], p[3]),
                    ts(rand(r, 1, 2, 3, 4, 2)), 1e-2);
        check("embedding", in -> Ops.embedding(in[0], new int[] {2, 0, 2, 3}), ts(rand(r, 1, 4, 3)), 1e-2);
        check("sliceRows", in -> Ops.silu(in[0].sliceRows(1, 3)), ts(rand(r, 1, 4, 3)), 1e-2);
        check("concatRows", in -> Ops.silu(Tensor.concatRows(in[0], in[1], in[0])), ts(rand(r, 1, 2, 3), rand(r, 1, 1, 3)), 1e-2);
        check("copy", in -> Ops.silu(in[0].copy()), ts(rand(r, 1, 5)), 1e-2);
    }

    @Test void reshapeViewsStayConnected() {
        Random r = new Random(9);
        // qkv projection -> reshape -> permute -> attention -> permute -> reshape -> projection (a DiT attention)
        int b = 2, t = 3, c = 4, h = 2;
        check("attention block", in -> {
            Tensor qkv = Ops.linear(in[0], in[1], null).reshape(b, t, 3, h, c / h);
            Tensor p = Ops.permute4(qkv.reshape(b * t, 3, h, c / h), 1, 0, 2, 3); // [3, b*t, h, d]
            Tensor[] parts = new Tensor[3];
            for (int i = 0; i < 3; i++)
                parts[i] = Ops.permute4(p.sliceRows(i, i + 1).reshape(b, t, h, c / h), 0, 2, 1, 3);
            Tensor o = Ops.attention(parts[0], parts[1], parts[2], 0.7f);
            Tensor merged = Ops.permute4(o, 0, 2, 1, 3).reshape(b, t, c);
            return Ops.linear(merged, in[2].reshape(c, c), null);
        }, ts(rand(r, 1, b, t, c), rand(r, 0.5, 3 * c, c), rand(r, 0.5, c * c)), 1e-2);
    }

    // ------------------------------------------------------------------ tape behaviour

    @Test void noRecordingWithoutTapeAndLeafRestriction() {
        assertNull(Tape.active());
        Random r = new Random(10);
        Tensor x = rand(r, 1, 4, 5), w = rand(r, 1, 3, 5), bias = rand(r, 1, 3);
        Gradients all, restricted;
        try (Tape tape = Tape.start()) {
            all = tape.backward(Ops.mean(Ops.silu(Ops.linear(x, w, bias))));
        }
        try (Tape tape = Tape.start(java.util.List.of(w, bias))) {
            Tensor te = Ops.timestepEmbedding(new float[] {1, 2, 3, 4}, 5, true, 0f, 10000);
            Tensor y = Ops.add(Ops.linear(x, w, bias), Ops.linear(te, w, null));
            restricted = tape.backward(Ops.mean(Ops.silu(y)));
            assertThrows(IllegalStateException.class, () -> tape.backward(Ops.mean(x)));
        }
        assertTrue(all.has(x));
        assertFalse(restricted.has(x), "no gradient for a non-leaf input in restricted mode");
        assertNotNull(restricted.get(w));
        assertNotNull(restricted.get(bias));
        assertThrows(IllegalArgumentException.class, () -> {
            try (Tape tape = Tape.start()) { tape.backward(Ops.scale(x, 1f)); }
        });
        try (Tape t1 = Tape.start()) {
            assertThrows(IllegalStateException.class, Tape::start, "nested tapes on one thread are refused");
        }
        assertNull(Tape.active());
    }

    @Test void gradientsDoNotDependOnThreadCount() {
        Random r = new Random(11);
        Tensor x = rand(r, 1, 3, 4, 6, 6), w1 = rand(r, 0.3, 8, 4, 3, 3), b1 = rand(r, 1, 8), gam = rand(r, 1, 8), bet = rand(r, 1, 8);
        Tensor w2 = rand(r, 0.3, 5, 8);
        float[][] first = null;
        for (int threads : new int[] {1, 2, 3}) {
            Parallel.setThreads(threads);
            try (Tape tape = Tape.start()) {
                Tensor h = Ops.silu(Ops.groupNorm(Ops.conv2d(x, w1, b1, 1, 1), 4, gam, bet, 1e-5f));
                Tensor y = Ops.linear(Ops.layerNorm(Ops.permute4(h, 0, 2, 3, 1), null, null, 1e-6f), w2, null);
                Gradients g = tape.backward(Ops.mean(Ops.mul(y, y)));
                float[][] cur = {g.raw(x), g.raw(w1), g.raw(b1), g.raw(gam), g.raw(bet), g.raw(w2)};
                if (first == null) first = cur;
                else for (int i = 0; i < cur.length; i++) assertArrayEquals(first[i], cur[i], "gradient " + i + " with " + threads + " threads");
            }
        }
    }
}
