package io.diffquant.engine.tensor;

import org.junit.jupiter.api.Test;

import java.util.Random;
import java.util.function.Function;

import static io.diffquant.engine.tensor.GradCheckTest.check;
import static io.diffquant.engine.tensor.GradCheckTest.rand;
import static org.junit.jupiter.api.Assertions.*;

/**
 * The UNet training kernels' backward rules ({@link ConvOps#conv2dBackward}: weight gradient over column tiles,
 * input gradient as the transposed convolution; the fused GroupNorm + scale-shift + SiLU rule; attention with kept
 * probabilities) against independent references: the col2im rule of {@link Ops#conv2d}, the backward of the unfused
 * composition, the recomputing attention rule, and finite differences on shapes that cross their tile and block edges.
 */
class ConvBackwardTest {
    private static Tensor[] ts(Tensor... t) { return t; }

    /** Gradients of sum(f(inputs) * weights) w.r.t. every input, under a fresh tape. */
    private static Tensor[] grads(Function<Tensor[], Tensor> f, Tensor[] in, Tensor weights) {
        try (Tape tape = Tape.start()) {
            Tensor out = f.apply(in);
            Gradients g = tape.backward(out, weights, false);
            Tensor[] r = new Tensor[in.length];
            for (int i = 0; i < in.length; i++) r[i] = in[i] == null ? null : g.getOrZeros(in[i]).copy();
            return r;
        }
    }

    /** |a - b| <= tol * max(1, max|b|) element-wise. */
    private static void assertClose(String what, Tensor expected, Tensor actual, double tol) {
        assertArrayEquals(expected.shape(), actual.shape(), what + ": shape");
        double scale = 1;
        for (float v : expected.data()) scale = Math.max(scale, Math.abs(v));
        for (int i = 0; i < expected.size(); i++) {
            double d = Math.abs(expected.data()[i] - actual.data()[i]);
            if (d > tol * scale) fail(what + ": element " + i + " expected " + expected.data()[i] + " got " + actual.data()[i]
                    + " (tolerance " + tol * scale + ")");
        }
    }

    /** {n, c, h, w, o, k, stride, padding}: the UNet's convolutions and edge cases of the transposed-convolution path. */
    private static final int[][] CONVS = {
            {3, 4, 9, 7, 5, 3, 1, 1},    // "same" 3x3 (ResNet convs)
            {2, 3, 6, 6, 4, 1, 1, 0},    // 1x1 (conv_shortcut)
            {2, 3, 8, 7, 4, 3, 2, 1},    // stride 2 (downsampler): col2im path
            {2, 2, 7, 6, 3, 3, 1, 0},    // "valid" 3x3: transposed conv with padding 2
            {2, 2, 6, 6, 3, 5, 1, 2},    // 5x5 "same"
            {5, 3, 5, 5, 2, 3, 1, 1},    // several images per tile
            {1, 1, 28, 28, 2, 3, 1, 1},  // conv_in shape, one channel
    };

    @Test void conv2dBackwardMatchesTheCol2imRule() {
        int keepCols = ConvOps.backwardTileCols, keepThreads = Parallel.threads();
        try {
            for (int threads : new int[] {1, 2})
                for (int cols : new int[] {1024, 40}) {
                    Parallel.setThreads(threads);
                    ConvOps.backwardTileCols = cols;
                    Random r = new Random(7);
                    for (int[] s : CONVS) {
                        String name = java.util.Arrays.toString(s) + " threads " + threads + " tile cols " + cols;
                        Tensor x = rand(r, 1, s[0], s[1], s[2], s[3]), w = rand(r, 0.3, s[4], s[1], s[5], s[5]), b = rand(r, 1, s[4]);
                        int st = s[6], p = s[7];
                        Tensor yRef = Ops.conv2d(x, w, b, st, p);
                        Tensor wt = rand(r, 1, yRef.shape());
                        Tensor[] ref = grads(in -> Ops.conv2d(in[0], in[1], in[2], st, p), ts(x, w, b), wt);
                        Tensor[] got = grads(in -> ConvOps.conv2d(in[0], in[1], in[2], st, p), ts(x, w, b), wt);
                        String[] names = {"dX", "dW", "db"};
                        for (int i = 0; i < 3; i++) assertClose(name + " " + names[i], ref[i], got[i], 1e-5);
                    }
                }
        } finally {
            ConvOps.backwardTileCols = keepCols;
            Parallel.setThreads(keepThreads);
        }
    }

    @Test void conv2dBackwardAddsToExistingGradients() {
        // x feeds the convolution and an identity path: dX = conv part + weights of the identity term
        Random r = new Random(8);
        Tensor x = rand(r, 1, 2, 3, 5, 5), w = rand(r, 0.3, 3, 3, 3, 3);
        Tensor wy = rand(r, 1, 2, 3, 5, 5);
        Function<Tensor[], Tensor> both = in -> Ops.add(ConvOps.conv2d(in[0], in[1], null, 1, 1), in[0]);
        Function<Tensor[], Tensor> conv = in -> ConvOps.conv2d(in[0], in[1], null, 1, 1);
        Tensor gBoth = grads(both, ts(x, w), wy)[0], gConv = grads(conv, ts(x, w), wy)[0];
        for (int i = 0; i < x.size(); i++)
            assertEquals(gConv.data()[i] + wy.data()[i], gBoth.data()[i], 1e-5 * (1 + Math.abs(gBoth.data()[i])), "dX[" + i + "]");
    }

    @Test void conv2dBackwardFiniteDifferences() {
        int keep = ConvOps.backwardTileCols;
        try {
            ConvOps.backwardTileCols = 20; // several tiles, partial sums, and row bands of one image
            Random r = new Random(9);
            check("ConvOps.conv2d 3x3 tiled", in -> ConvOps.conv2d(in[0], in[1], in[2], 1, 1),
                    ts(rand(r, 1, 3, 2, 5, 6), rand(r, 0.4, 3, 2, 3, 3), rand(r, 1, 3)), 1e-2);
            check("ConvOps.conv2d 3x3 valid", in -> ConvOps.conv2d(in[0], in[1], null, 1, 0),
                    ts(rand(r, 1, 2, 2, 5, 4), rand(r, 0.4, 2, 2, 3, 3)), 1e-2);
            check("ConvOps.conv2d 1x1 tiled", in -> ConvOps.conv2d(in[0], in[1], in[2], 1, 0),
                    ts(rand(r, 1, 3, 3, 3, 4), rand(r, 0.4, 2, 3, 1, 1), rand(r, 1, 2)), 1e-2);
        } finally {
            ConvOps.backwardTileCols = keep;
        }
    }

    /** The fused rule against the backward of GroupNorm, scale-shift and SiLU as separate ops. */
    @Test void groupNormActMatchesTheComposition() {
        Random r = new Random(10);
        // inner 600 > one block of 512 and not a multiple of 8; inner 5 tiny
        int[][] shapes = {{2, 4, 20, 30}, {3, 6, 1, 5}};
        for (int[] s : shapes)
            for (boolean silu : new boolean[] {true, false})
                for (boolean withSs : new boolean[] {true, false})
                    for (boolean affine : new boolean[] {true, false}) {
                        int n = s[0], c = s[1], groups = 2;
                        Tensor x = rand(r, 2, s), gamma = affine ? rand(r, 1, c) : null, beta = affine ? rand(r, 1, c) : null;
                        Tensor ss = withSs ? rand(r, 0.5, n, 2 * c) : null;
                        Tensor wy = rand(r, 1, s);
                        Tensor[] in = {x, gamma, beta, ss};
                        Tensor[] ref = grads(t -> {
                            Tensor h = Ops.groupNorm(t[0], groups, t[1], t[2], 1e-5f);
                            if (t[3] != null) h = ConvOps.scaleShift(h, t[3]);
                            return silu ? Ops.silu(h) : h;
                        }, in, wy);
                        Tensor[] got = grads(t -> ConvOps.groupNormAct(t[0], groups, t[1], t[2], 1e-5f, t[3], silu), in, wy);
                        String name = java.util.Arrays.toString(s) + " silu " + silu + " ss " + withSs + " affine " + affine;
                        String[] names = {"dX", "dGamma", "dBeta", "dScaleShift"};
                        for (int i = 0; i < 4; i++) if (in[i] != null) assertClose(name + " " + names[i], ref[i], got[i], 2e-5);
                    }
    }

    @Test void attentionWithKeptProbabilitiesMatchesRecomputation() {
        long keep = ConvOps.maxSavedProbs;
        try {
            Random r = new Random(11);
            Tensor q = rand(r, 1, 3, 6, 8), k = rand(r, 1, 3, 7, 8), v = rand(r, 1, 3, 7, 8), wy = rand(r, 1, 3, 6, 8);
            Function<Tensor[], Tensor> f = in -> ConvOps.multiHeadAttention(in[0], in[1], in[2], 2, 0.5f);
            Tensor[] kept = grads(f, ts(q, k, v), wy);
            ConvOps.maxSavedProbs = 0;
            Tensor[] recomputed = grads(f, ts(q, k, v), wy);
            for (int i = 0; i < 3; i++) assertClose("d input " + i, recomputed[i], kept[i], 1e-5);
            check("multiHeadAttention recomputed", in -> ConvOps.multiHeadAttention(in[0], in[1], in[2], 2, 0.6f),
                    ts(rand(r, 1, 2, 3, 4), rand(r, 1, 2, 5, 4), rand(r, 1, 2, 5, 4)), 1e-2);
        } finally {
            ConvOps.maxSavedProbs = keep;
        }
    }
}
