package io.diffquant.engine.tensor;

import java.util.Arrays;

/**
 * Fused kernels of the DiT transformer (facebookresearch/DiT models.py with timm's Attention and Mlp):
 * patch tokens + position embedding, LayerNorm + adaLN modulate, gated residual, tanh-GELU, softmax and
 * attention read straight from the qkv projection. Token activations are [N, T, D] row-major; adaLN vectors
 * are [N, chunks * D] (chunk i = columns i*D .. (i+1)*D, as torch's {@code chunk(k, dim=1)}).
 * Element-wise loops are written so that C2 auto-vectorises them (same-index in-place loops; exp by a
 * Cephes-style polynomial in blocks of scratch arrays) and split over {@link Parallel}; GEMMs go through
 * {@link Blas#get()}. Results do not depend on the thread count. Every op records itself on an active {@link Tape}
 * (backward rules in {@link FusedOpsBackward}).
 */
public final class TransformerOps {
    private TransformerOps() {}

    /** elements per exp block (scratch arrays of this size stay in L1). */
    private static final int BLK = 512;
    /** elements per parallel chunk for element-wise work. */
    private static final int EW_CHUNK = 1 << 14;

    // ------------------------------------------------------------------ embedding / layout

    /**
     * DiT's {@code x_embedder(x) + pos_embed}: the Conv2d output [N, D, h, w] flattened to tokens
     * (row-major over h, w) and transposed to [N, T, D], plus the position embedding [1, T, D] (or [T, D]).
     */
    public static Tensor patchTokens(Tensor conv, Tensor pos) {
        if (conv.rank() != 4) throw new IllegalArgumentException("patchTokens: expected [N, D, h, w], got " + Arrays.toString(conv.shape()));
        int n = conv.dim(0), d = conv.dim(1), t = conv.dim(2) * conv.dim(3);
        if (pos.size() != t * d || pos.dim(-1) != d) throw new IllegalArgumentException("patchTokens: position embedding "
                + Arrays.toString(pos.shape()) + " does not fit " + t + " tokens of width " + d);
        Tensor y = Tensor.zeros(n, t, d);
        float[] cd = conv.data(), pd = pos.data(), yd = y.data();
        Parallel.forRange(n * t, Math.max(1, EW_CHUNK / d), (r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                int img = r / t, tok = r % t;
                int src = img * d * t + tok, dst = r * d, po = tok * d;
                for (int j = 0; j < d; j++) yd[dst + j] = cd[src + j * t] + pd[po + j];
            }
        });
        Tape tape = Tape.active();
        if (tape != null) tape.record("patchTokens", y,
                (gy, g) -> FusedOpsBackward.patchTokens(gy, g.of(conv), g.of(pos), n, t, d), conv, pos);
        return y;
    }

    /**
     * DiT's unpatchify: tokens [N, T, p*p*c] (T = h*w, feature order (p, q, c)) to images [N, c, h*p, w*p].
     */
    public static Tensor unpatchify(Tensor x, int p, int c) {
        if (x.rank() != 3 || x.dim(2) != p * p * c) throw new IllegalArgumentException("unpatchify: expected [N, T, "
                + (p * p * c) + "], got " + Arrays.toString(x.shape()));
        int n = x.dim(0), t = x.dim(1);
        int h = (int) Math.round(Math.sqrt(t));
        if (h * h != t) throw new IllegalArgumentException("unpatchify: " + t + " tokens do not form a square grid");
        int hw = h * p, f = p * p * c;
        Tensor y = Tensor.zeros(n, c, hw, hw);
        float[] xd = x.data(), yd = y.data();
        Parallel.forRange(n * c, 1, (r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                int img = r / c, ch = r % c;
                int yo = r * hw * hw;
                for (int row = 0; row < hw; row++) {
                    int hi = row / p, pi = row % p;
                    for (int col = 0; col < hw; col++) {
                        int wi = col / p, qi = col % p;
                        yd[yo + row * hw + col] = xd[(img * t + hi * h + wi) * f + (pi * p + qi) * c + ch];
                    }
                }
            }
        });
        Tape tape = Tape.active();
        if (tape != null) tape.record("unpatchify", y, (gy, g) -> FusedOpsBackward.unpatchify(gy, g.of(x), n, t, p, c), x);
        return y;
    }

    // ------------------------------------------------------------------ position embedding (DiT/MAE)

    /**
     * get_2d_sincos_pos_embed(d, g) of DiT/MAE as [1, g*g, d]: for token (row i, column j), the first d/2
     * values encode the column j and the last d/2 the row i, each as [sin(pos w_k), cos(pos w_k)] with
     * w_k = 10000^(-k / (d/4)), k < d/4 (computed in double, stored as float).
     */
    public static Tensor sincosPosEmbed2d(int d, int g) {
        if (d % 4 != 0) throw new IllegalArgumentException("2-D sin-cos position embedding needs a width divisible by 4, got " + d);
        int quarter = d / 4;
        double[] omega = new double[quarter];
        for (int k = 0; k < quarter; k++) omega[k] = 1.0 / Math.pow(10000.0, k / (double) quarter);
        Tensor pe = Tensor.zeros(1, g * g, d);
        float[] pd = pe.data();
        for (int i = 0; i < g; i++)
            for (int j = 0; j < g; j++) {
                int o = (i * g + j) * d;
                for (int k = 0; k < quarter; k++) {
                    double aw = j * omega[k], ah = i * omega[k];
                    pd[o + k] = (float) Math.sin(aw);
                    pd[o + quarter + k] = (float) Math.cos(aw);
                    pd[o + 2 * quarter + k] = (float) Math.sin(ah);
                    pd[o + 3 * quarter + k] = (float) Math.cos(ah);
                }
            }
        return pe;
    }

    // ------------------------------------------------------------------ adaLN

    private static void checkMod(String op, Tensor x, Tensor mod, int chunks, int... which) {
        if (x.rank() != 3) throw new IllegalArgumentException(op + ": expected tokens [N, T, D], got " + Arrays.toString(x.shape()));
        int n = x.dim(0), d = x.dim(2);
        if (mod.rank() != 2 || mod.dim(0) != n || mod.dim(1) != chunks * d) throw new IllegalArgumentException(op
                + ": modulation " + Arrays.toString(mod.shape()) + " does not fit tokens " + Arrays.toString(x.shape())
                + " with " + chunks + " chunks");
        for (int w : which) if (w < 0 || w >= chunks) throw new IllegalArgumentException(op + ": chunk " + w + " of " + chunks);
    }

    /**
     * {@code modulate(LayerNorm(x), shift, scale) = LN(x) * (1 + scale) + shift} with a non-affine LayerNorm
     * over D; shift and scale are chunks {@code shiftChunk}, {@code scaleChunk} of mod [N, chunks*D].
     */
    public static Tensor layerNormModulate(Tensor x, Tensor mod, int chunks, int shiftChunk, int scaleChunk, float eps) {
        checkMod("layerNormModulate", x, mod, chunks, shiftChunk, scaleChunk);
        int t = x.dim(1), d = x.dim(2), md = chunks * d;
        Tensor y = Tensor.zeros(x.shape());
        float[] xd = x.data(), yd = y.data(), m = mod.data();
        Tape tape = Tape.active();
        // under a tape: normalised rows and 1/std kept for backward
        float[] xhat = tape == null ? null : new float[xd.length], rstd = tape == null ? null : new float[x.dim(0) * t];
        Parallel.forRange(x.dim(0) * t, Math.max(1, EW_CHUNK / d), (r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                int o = r * d, mo = (r / t) * md;
                float mean = sum(xd, o, d) / d;
                float var = sumSqDev(xd, o, d, mean) / d;
                float inv = (float) (1.0 / Math.sqrt(var + eps));
                modulateRow(xd, o, mean, inv, m, mo + shiftChunk * d, mo + scaleChunk * d, yd, o, d);
                if (rstd != null) {
                    rstd[r] = inv;
                    for (int j = 0; j < d; j++) xhat[o + j] = (xd[o + j] - mean) * inv;
                }
            }
        });
        if (tape != null) {
            tape.save(mod);
            tape.record("layerNormModulate", y, (gy, g) -> FusedOpsBackward.modulate(gy, g.of(x), g.of(mod), xhat, rstd, m,
                    x.dim(0), t, d, chunks, shiftChunk, scaleChunk), x, mod);
        }
        return y;
    }

    /** {@code x * (1 + scale) + shift} for an already normalised x [N, T, D] (used when the norm layer is hooked). */
    public static Tensor modulate(Tensor x, Tensor mod, int chunks, int shiftChunk, int scaleChunk) {
        checkMod("modulate", x, mod, chunks, shiftChunk, scaleChunk);
        int t = x.dim(1), d = x.dim(2), md = chunks * d;
        Tensor y = Tensor.zeros(x.shape());
        float[] xd = x.data(), yd = y.data(), m = mod.data();
        Parallel.forRange(x.dim(0) * t, Math.max(1, EW_CHUNK / d), (r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                int o = r * d, mo = (r / t) * md;
                modulateRow(xd, o, 0f, 1f, m, mo + shiftChunk * d, mo + scaleChunk * d, yd, o, d);
            }
        });
        Tape tape = Tape.active();
        if (tape != null) {
            tape.save(x, mod);
            tape.record("modulate", y, (gy, g) -> FusedOpsBackward.modulate(gy, g.of(x), g.of(mod), xd, null, m,
                    x.dim(0), t, d, chunks, shiftChunk, scaleChunk), x, mod);
        }
        return y;
    }

    /** y = ((x - mean) * inv) * (1 + scale) + shift over one row. */
    private static void modulateRow(float[] x, int xo, float mean, float inv, float[] m, int sh, int sc,
                                    float[] y, int yo, int d) {
        for (int j = 0; j < d; j++) y[yo + j] = ((x[xo + j] - mean) * inv) * (1f + m[sc + j]) + m[sh + j];
    }

    /**
     * DiT's gated residual {@code x + gate * y} (gate = chunk {@code gateChunk} of mod [N, chunks*D]).
     * With {@code intoY} the result overwrites y (the caller must own y), else a new tensor is returned.
     */
    public static Tensor gatedResidual(Tensor x, Tensor y, Tensor mod, int chunks, int gateChunk, boolean intoY) {
        checkMod("gatedResidual", x, mod, chunks, gateChunk);
        if (!x.sameShape(y)) throw new IllegalArgumentException("gatedResidual: x " + Arrays.toString(x.shape())
                + " and y " + Arrays.toString(y.shape()) + " differ");
        int t = x.dim(1), d = x.dim(2), md = chunks * d;
        Tape tape = Tape.active();
        if (tape != null) intoY = false; // y's values are needed for the gate's gradient
        Tensor out = intoY ? y : Tensor.zeros(x.shape());
        float[] xd = x.data(), yd = y.data(), od = out.data(), m = mod.data();
        Parallel.forRange(x.dim(0) * t, Math.max(1, EW_CHUNK / d), (r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                int o = r * d, g = (r / t) * md + gateChunk * d;
                for (int j = 0; j < d; j++) od[o + j] = xd[o + j] + m[g + j] * yd[o + j];
            }
        });
        if (tape != null) {
            tape.save(y, mod);
            tape.record("gatedResidual", out, (go, gr) -> FusedOpsBackward.gatedResidual(go, gr.of(x), gr.of(y), gr.of(mod),
                    yd, m, x.dim(0), t, d, chunks, gateChunk), x, y, mod);
        }
        return out;
    }

    // ------------------------------------------------------------------ MLP

    /** Below this many hidden activations (rows x hidden) the unfused ops are used: the native path would not pay. */
    private static final long FUSED_MLP_MIN = 1 << 15;

    /**
     * timm's Mlp with tanh GELU (DiT's {@code mlp}): {@code linear(geluTanh(linear(x, w1, b1)), w2, b2)} for x [..., d],
     * w1 [h, d], w2 [o, h], biases nullable. Without a recording {@link Tape} and with oneDNN reachable through FFM,
     * the hidden activation never becomes a Java array: fc1 writes it to native memory (bias pre-filled, beta = 1),
     * oneDNN's eltwise gelu_tanh runs on it in place and fc2 reads it from there. Otherwise (tape, JFR, no oneDNN),
     * the unfused recorded ops run. Both agree to float rounding (oneDNN's tanh vs the engine's exp-based one).
     */
    public static Tensor mlpGeluTanh(Tensor x, Tensor w1, Tensor b1, Tensor w2, Tensor b2) {
        int d = x.dim(-1);
        if (w1.rank() != 2 || w1.dim(1) != d || w2.rank() != 2 || w2.dim(1) != w1.dim(0)) throw new IllegalArgumentException(
                "mlpGeluTanh: input width " + d + ", fc1 weight " + Arrays.toString(w1.shape()) + ", fc2 weight "
                        + Arrays.toString(w2.shape()) + " do not chain");
        int h = w1.dim(0), o = w2.dim(0), m = x.size() / Math.max(1, d);
        if (b1 != null && b1.size() != h) throw new IllegalArgumentException("mlpGeluTanh: fc1 bias of " + b1.size() + " for " + h + " outputs");
        if (b2 != null && b2.size() != o) throw new IllegalArgumentException("mlpGeluTanh: fc2 bias of " + b2.size() + " for " + o + " outputs");
        if (Tape.active() == null && d > 0 && (long) m * h >= FUSED_MLP_MIN && NativeFused.available()) {
            int[] s = x.shape();
            s[s.length - 1] = o;
            Tensor y = Tensor.zeros(s);
            if (NativeFused.mlpGeluTanh(x.data(), m, d, w1.data(), b1 == null ? null : b1.data(), h, w2.data(),
                    b2 == null ? null : b2.data(), o, y.data())) return y;
        }
        Tensor f = Ops.linear(x, w1, b1);
        geluTanhInPlace(f);
        return Ops.linear(f, w2, b2);
    }

    // ------------------------------------------------------------------ activations

    /** tanh-approximated GELU (torch approximate="tanh"), in place: 0.5 x (1 + tanh u) = x e / (e + 1) with e = exp(2u). */
    public static void geluTanhInPlace(Tensor x) {
        Tape tape = Tape.active();
        if (tape != null) {
            float[] f = new float[x.size()];
            geluTanhGrad(x.data(), f);
            tape.recordInPlace("geluTanhInPlace", x, (gy, g) -> FusedOpsBackward.scaleInPlace(gy, f));
        }
        geluTanh(x.data(), x.data());
    }

    /** tanh-approximated GELU into a new tensor. */
    public static Tensor geluTanh(Tensor x) {
        Tensor y = Tensor.zeros(x.shape());
        geluTanh(x.data(), y.data());
        recordActivation("geluTanh", x, y, false);
        return y;
    }

    /** Records y = f(x) with its derivative f'(x), evaluated now and kept instead of x. */
    static void recordActivation(String op, Tensor x, Tensor y, boolean silu) {
        Tape tape = Tape.active();
        if (tape == null) return;
        float[] f = new float[x.size()];
        if (silu) siluGrad(x.data(), f);
        else geluTanhGrad(x.data(), f);
        tape.record(op, y, (gy, g) -> OpsBackward.mulAcc(gy, f, g.of(x)), x);
    }

    /**
     * d/dx of the tanh GELU with e = exp(2u), u = sqrt(2/pi)(x + 0.044715 x^3):
     * e/(e+1) + x sqrt(2/pi)(1 + 3 0.044715 x^2) 2e/(e+1)^2 (= 0.5(1 + th) + 0.5 x (1 - th^2) du/dx).
     */
    static void geluTanhGrad(float[] x, float[] out) {
        final float a = (float) Math.sqrt(2.0 / Math.PI);
        int n = x.length, blocks = (n + BLK - 1) / BLK;
        Parallel.forRange(blocks, Math.max(1, EW_CHUNK / BLK), (b0, b1) -> {
            float[] es = new float[BLK];
            int[] bits = new int[BLK];
            for (int blk = b0; blk < b1; blk++) {
                int off = blk * BLK, len = Math.min(BLK, n - off);
                for (int i = 0; i < len; i++) {
                    float v = x[off + i];
                    es[i] = (v * v * 0.044715f + 1f) * v * TWO_SQRT_2_OVER_PI;
                }
                expInPlace(es, 0, len, 0f, bits);
                for (int i = 0; i < len; i++) {
                    // e q = e / (e + 1) <= 1 first: e (up to exp(88)) times the polynomial overflows to infinity
                    // for x near 10 when multiplied in the other order (a NaN gradient in dit-fmnist's training)
                    float v = x[off + i], e = es[i], q = 1f / (e + 1f), eq = e * q;
                    out[off + i] = eq + v * a * (1f + 3 * 0.044715f * v * v) * 2f * (eq * q);
                }
            }
        });
    }

    /** d/dx of SiLU: s (1 + x (1 - s)), s = 1 / (1 + exp(-x)). */
    static void siluGrad(float[] x, float[] out) {
        int n = x.length, blocks = (n + BLK - 1) / BLK;
        Parallel.forRange(blocks, Math.max(1, EW_CHUNK / BLK), (b0, b1) -> {
            float[] es = new float[BLK];
            int[] bits = new int[BLK];
            for (int blk = b0; blk < b1; blk++) {
                int off = blk * BLK, len = Math.min(BLK, n - off);
                for (int i = 0; i < len; i++) es[i] = -x[off + i];
                expInPlace(es, 0, len, 0f, bits);
                for (int i = 0; i < len; i++) {
                    float sg = 1f / (1f + es[i]);
                    out[off + i] = sg * (1f + x[off + i] * (1f - sg));
                }
            }
        });
    }

    private static final float TWO_SQRT_2_OVER_PI = (float) (2.0 * Math.sqrt(2.0 / Math.PI));

    private static void geluTanh(float[] x, float[] y) {
        int n = x.length, blocks = (n + BLK - 1) / BLK;
        Parallel.forRange(blocks, Math.max(1, EW_CHUNK / BLK), (b0, b1) -> {
            float[] xs = new float[BLK], ps = new float[BLK];
            int[] bits = new int[BLK];
            for (int blk = b0; blk < b1; blk++) {
                int off = blk * BLK, len = Math.min(BLK, n - off);
                System.arraycopy(x, off, xs, 0, len);
                // separate simple loops: C2 vectorises each of them, not a merged one
                for (int i = 0; i < len; i++) {
                    float v = xs[i];
                    ps[i] = (v * v * 0.044715f + 1f) * v * TWO_SQRT_2_OVER_PI;       // 2u
                }
                expInPlace(ps, 0, len, 0f, bits);                                      // e = exp(2u)
                for (int i = 0; i < len; i++) ps[i] = xs[i] * (ps[i] / (ps[i] + 1f));
                System.arraycopy(ps, 0, y, off, len);
            }
        });
    }

    /**
     * y[i] = geluTanh(x[i]) for i < len (x and y distinct arrays, both from index 0), with exactly the float operations
     * of {@link #geluTanhInPlace} (so the values are bit-identical to it); no {@link Tape}. For fused kernels that
     * produce a row at a time (the cpu-int8 MLP epilogue). bits is scratch of at least min(len, 512) ints.
     */
    public static void geluTanhRow(float[] x, float[] y, int len, int[] bits) {
        if (x == y) throw new IllegalArgumentException("geluTanhRow: x and y must be distinct arrays");
        for (int i = 0; i < len; i++) {
            float v = x[i];
            y[i] = (v * v * 0.044715f + 1f) * v * TWO_SQRT_2_OVER_PI;                 // 2u
        }
        expInPlace(y, 0, len, 0f, bits);                                               // e = exp(2u)
        for (int i = 0; i < len; i++) y[i] = x[i] * (y[i] / (y[i] + 1f));
    }

    /** exp(r) for |r| <= ln(2)/2 (Cephes expf polynomial). */
    private static float expPoly(float r) {
        float p = 1.9875691500E-4f;
        p = p * r + 1.3981999507E-3f;
        p = p * r + 8.3334519073E-3f;
        p = p * r + 4.1665795894E-2f;
        p = p * r + 1.6666665459E-1f;
        p = p * r + 5.0000001201E-1f;
        return p * r * r + r + 1f;
    }

    private static final float LOG2E = 1.44269504088896341f, LN2_HI = 0.693359375f, LN2_LO = -2.12194440e-4f;

    /**
     * a[off + i] = exp(a[off + i] - shift) for i < n, in place (Cephes expf: Cody-Waite reduction and a
     * polynomial, relative error below 2.5e-7). Arguments are clamped to [-87.33, 88]: below, the result is the
     * smallest normal float instead of a subnormal or 0; above, about 1.65e38 instead of a larger value or
     * infinity. bits is scratch of at least min(n, BLK) ints. Written as same-index in-place loops over blocks,
     * so that C2 vectorises them.
     */
    static void expInPlace(float[] a, int off, int n, float shift, int[] bits) {
        for (int b0 = 0; b0 < n; b0 += BLK) {
            int o = off + b0, len = Math.min(BLK, n - b0);
            for (int i = 0; i < len; i++) {
                float v = Math.min(Math.max(a[o + i] - shift, -87.33654f), 88f);
                float nf = (v * LOG2E + 12582912f) - 12582912f;   // round to nearest integer
                a[o + i] = expPoly(v - nf * LN2_HI - nf * LN2_LO);
                bits[i] = ((int) nf + 127) << 23;
            }
            for (int i = 0; i < len; i++) a[o + i] *= Float.intBitsToFloat(bits[i]);
        }
    }

    /** SiLU x * sigmoid(x) into a new tensor (small: the conditioning vector). */
    public static Tensor silu(Tensor x) {
        Tensor y = Tensor.zeros(x.shape());
        float[] xd = x.data(), yd = y.data();
        for (int i = 0; i < xd.length; i++) yd[i] = xd[i] / (1f + (float) Math.exp(-xd[i]));
        recordActivation("silu", x, y, true);
        return y;
    }

    /** Softmax over the last dimension, in place. */
    public static void softmaxInPlace(Tensor x) {
        int c = x.dim(-1);
        Tape tape = Tape.active();
        if (tape != null && c > 0) {
            float[] y = x.data(); // the rule reads the probabilities, i.e. the values this op leaves in x
            tape.recordInPlace("softmaxInPlace", x, (gy, g) -> FusedOpsBackward.softmaxInPlace(gy, y, c));
            tape.save(x);
        }
        softmaxRows(x.data(), 0, x.size() / Math.max(1, c), c);
    }

    /** Softmax of rows [0, rows) of width c of s starting at off, in place (exp(x - max) / sum). */
    static void softmaxRows(float[] s, int off, int rows, int c) {
        if (c == 0) return;
        Parallel.forRange(rows, Math.max(1, EW_CHUNK / c / 2), (r0, r1) -> {
            softmaxRange(s, off, r0, r1, c, new int[BLK]);
        });
    }

    /** Sequential softmax of rows [r0, r1) (width c, from off); bits is scratch of BLK ints. */
    private static void softmaxRange(float[] s, int off, int r0, int r1, int c, int[] bits) {
        for (int r = r0; r < r1; r++) {
            int o = off + r * c;
            float mx = max(s, o, c);
            expInPlace(s, o, c, mx, bits);
            float inv = 1f / sum(s, o, c);
            for (int j = 0; j < c; j++) s[o + j] *= inv;
        }
    }

    // ------------------------------------------------------------------ attention

    private static int[] qkvDims(String op, Tensor qkv, int heads) {
        if (qkv.rank() != 3 || qkv.dim(2) % 3 != 0 || heads < 1 || (qkv.dim(2) / 3) % heads != 0)
            throw new IllegalArgumentException(op + ": expected qkv [B, T, 3*H*D] for " + heads + " heads, got "
                    + Arrays.toString(qkv.shape()));
        int c = qkv.dim(2) / 3;
        return new int[] {qkv.dim(0), qkv.dim(1), c, c / heads};
    }

    /**
     * timm Attention without the projections: softmax(q k^T * scale) v per (batch, head), with q, k, v read
     * in place from the qkv Linear output [B, T, 3, H, D] and the result written as [B, T, H*D] (heads merged),
     * ready for attn.proj. No permute copies.
     */
    public static Tensor attentionFromQkv(Tensor qkv, int heads, float scale) {
        int[] dm = qkvDims("attentionFromQkv", qkv, heads);
        int b = dm[0], t = dm[1], c = dm[2], d = dm[3], c3 = 3 * c;
        Tensor out = Tensor.zeros(b, t, c);
        if (t == 0) return out;
        float[] qd = qkv.data(), od = out.data();
        Blas blas = Blas.get();
        float absScale = Math.abs(scale);
        // no tape: where oneDNN is reachable through FFM, the probabilities stay native (oneDNN softmax)
        boolean nativeHeads = Tape.active() == null && NativeFused.available();
        gemmTasks(b * heads, (i0, i1) -> {
            float[] s = null, qn = null, inv = null;
            int[] bits = null;
            for (int i = i0; i < i1; i++) {
                int bi = i / heads, h = i % heads, base = bi * t * c3 + h * d, ob = bi * t * c + h * d;
                if (nativeHeads && NativeFused.attentionHead(qd, base, base + c, base + 2 * c, c3, t, d, scale, od, ob, c))
                    continue;
                if (s == null) {
                    s = new float[t * t];
                    qn = new float[t];
                    inv = new float[t];
                    bits = new int[BLK];
                }
                // softmax shift per row: |q_r| max_j |k_j| |scale| >= max_j s_rj (Cauchy-Schwarz), so no max pass
                float kmax = 0f;
                for (int j = 0; j < t; j++) kmax = Math.max(kmax, sumSq(qd, base + c + j * c3, d));
                kmax = (float) Math.sqrt(kmax) * absScale;
                for (int r = 0; r < t; r++) qn[r] = (float) Math.sqrt(sumSq(qd, base + r * c3, d));
                blas.sgemm(false, true, t, t, d, scale, qd, base, c3, qd, base + c, c3, 0f, s, 0, t);
                for (int r = 0; r < t; r++) {
                    int o = r * t;
                    float shift = qn[r] * kmax;
                    if (!(shift < 1e30f)) shift = max(s, o, t);
                    expInPlace(s, o, t, shift, bits);
                    float z = sum(s, o, t);
                    if (!(z >= 1e-20f)) {
                        // the bound was too loose (the largest term nearly underflowed): redo the row exactly
                        blas.sgemm(false, true, 1, t, d, scale, qd, base + r * c3, c3, qd, base + c, c3, 0f, s, o, t);
                        expInPlace(s, o, t, max(s, o, t), bits);
                        z = sum(s, o, t);
                    }
                    inv[r] = 1f / z;
                }
                // unnormalised probabilities times v, then each output row divided by its sum
                blas.sgemm(false, false, t, d, t, 1f, s, 0, t, qd, base + 2 * c, c3, 0f, od, ob, c);
                for (int r = 0; r < t; r++) {
                    float f = inv[r];
                    int o = ob + r * c;
                    for (int e = 0; e < d; e++) od[o + e] *= f;
                }
            }
        });
        Tape tape = Tape.active();
        if (tape != null) {
            tape.save(qkv);
            tape.record("attentionFromQkv", out,
                    (gy, g) -> FusedOpsBackward.attentionFromQkv(gy, g.of(qkv), qd, b, t, c, heads, scale), qkv);
        }
        return out;
    }

    /**
     * Runs body over [0, n) independent GEMM tasks: spread over the engine's pool with the native GEMM
     * single-threaded in each worker when that can be controlled, else on the caller (native GEMM threads).
     */
    static void gemmTasks(int n, Parallel.RangeBody body) {
        if (Parallel.threads() == 1 || n <= 1) {
            body.run(0, n);
        } else if (!(Blas.get() instanceof DnnlBlas)) {
            Parallel.forRange(n, 1, body);                       // the Java GEMM: plain pool tasks
        } else if (DnnlBlas.zeroCopy() && NativeThreads.available()) {
            Parallel.forRange(n, 1, (a, b) -> NativeThreads.singleThreaded(() -> body.run(a, b)));
        } else {
            body.run(0, n);                                      // oneDNN's own threads, one GEMM at a time
        }
    }

    /** q, k, v [B, H, T, D] gathered from the qkv Linear output [B, T, 3, H, D] (timm's reshape + permute). */
    public static Tensor[] splitQkv(Tensor qkv, int heads) {
        int[] dm = qkvDims("splitQkv", qkv, heads);
        int b = dm[0], t = dm[1], c = dm[2], d = dm[3], c3 = 3 * c;
        Tensor[] r = {Tensor.zeros(b, heads, t, d), Tensor.zeros(b, heads, t, d), Tensor.zeros(b, heads, t, d)};
        float[] src = qkv.data();
        Parallel.forRange(b * t, Math.max(1, EW_CHUNK / c3), (r0, r1) -> {
            for (int row = r0; row < r1; row++) {
                int bi = row / t, ti = row % t;
                for (int which = 0; which < 3; which++) {
                    float[] dst = r[which].data();
                    for (int h = 0; h < heads; h++)
                        System.arraycopy(src, row * c3 + which * c + h * d, dst, ((bi * heads + h) * t + ti) * d, d);
                }
            }
        });
        Tape tape = Tape.active();
        if (tape != null) for (int which = 0; which < 3; which++) {
            int wch = which;
            tape.record("splitQkv", r[which], (gy, g) -> FusedOpsBackward.splitQkv(gy, g.of(qkv), wch, b, t, c, heads), qkv);
        }
        return r;
    }

    /** Attention scores q k^T * scale: q [B, H, T, D], k [B, H, Tk, D] -> [B, H, T, Tk] (before softmax). */
    public static Tensor attentionScores(Tensor q, Tensor k, float scale) {
        if (q.rank() != 4 || k.rank() != 4 || q.dim(0) != k.dim(0) || q.dim(1) != k.dim(1) || q.dim(3) != k.dim(3))
            throw new IllegalArgumentException("attentionScores: q " + Arrays.toString(q.shape()) + " k " + Arrays.toString(k.shape()));
        int bh = q.dim(0) * q.dim(1), t = q.dim(2), tk = k.dim(2), d = q.dim(3);
        Tensor s = Tensor.zeros(q.dim(0), q.dim(1), t, tk);
        Blas blas = Blas.get();
        gemmTasks(bh, (i0, i1) -> {
            for (int i = i0; i < i1; i++)
                blas.sgemm(false, true, t, tk, d, scale, q.data(), i * t * d, d, k.data(), i * tk * d, d,
                        0f, s.data(), i * t * tk, tk);
        });
        Tape tape = Tape.active();
        if (tape != null) {
            tape.save(q, k);
            tape.record("attentionScores", s, (gy, g) -> FusedOpsBackward.scores(gy, g.of(q), g.of(k), q.data(), k.data(),
                    bh, t, tk, d, scale, i -> i * t * d, d, i -> i * tk * d, d), q, k);
        }
        return s;
    }

    /** Probabilities p [B, H, T, Tk] times v [B, H, Tk, D], heads merged: [B, T, H*D]. */
    public static Tensor attentionApply(Tensor p, Tensor v) {
        if (p.rank() != 4 || v.rank() != 4 || p.dim(0) != v.dim(0) || p.dim(1) != v.dim(1) || p.dim(3) != v.dim(2))
            throw new IllegalArgumentException("attentionApply: p " + Arrays.toString(p.shape()) + " v " + Arrays.toString(v.shape()));
        int b = p.dim(0), heads = p.dim(1), t = p.dim(2), tk = p.dim(3), d = v.dim(3), c = heads * d;
        Tensor out = Tensor.zeros(b, t, c);
        Blas blas = Blas.get();
        gemmTasks(b * heads, (i0, i1) -> {
            for (int i = i0; i < i1; i++) {
                int bi = i / heads, h = i % heads;
                blas.sgemm(false, false, t, d, tk, 1f, p.data(), i * t * tk, tk, v.data(), i * tk * d, d,
                        0f, out.data(), bi * t * c + h * d, c);
            }
        });
        Tape tape = Tape.active();
        if (tape != null) {
            tape.save(p, v);
            tape.record("attentionApply", out, (gy, g) -> FusedOpsBackward.apply(gy, g.of(p), g.of(v), p.data(), v.data(),
                    b * heads, t, tk, d, i -> i * tk * d, d, i -> (i / heads) * t * c + (i % heads) * d, c), p, v);
        }
        return out;
    }

    // ------------------------------------------------------------------ guidance

    /**
     * Classifier-free guidance on a [2M, C, H, W] model output whose first half is conditional and second half
     * unconditional: for the first {@code guided} channels, both halves become
     * {@code uncond + scale * (cond - uncond)}; the other channels are passed through (DiT forward_with_cfg).
     */
    public static Tensor classifierFreeGuidance(Tensor out, int guided, float scale) {
        if (out.rank() != 4 || out.dim(0) % 2 != 0) throw new IllegalArgumentException(
                "classifierFreeGuidance: expected [2M, C, H, W], got " + Arrays.toString(out.shape()));
        int half = out.dim(0) / 2, c = out.dim(1), hw = out.dim(2) * out.dim(3);
        if (guided < 0 || guided > c) throw new IllegalArgumentException("classifierFreeGuidance: " + guided
                + " guided channels of " + c);
        Tensor y = Tensor.of(out.data().clone(), out.shape());
        float[] od = out.data(), yd = y.data();
        for (int n = 0; n < half; n++)
            for (int ch = 0; ch < guided; ch++) {
                int co = (n * c + ch) * hw, uo = ((n + half) * c + ch) * hw;
                for (int j = 0; j < hw; j++) {
                    float cond = od[co + j], unc = od[uo + j];
                    float g = unc + scale * (cond - unc);
                    yd[co + j] = g;
                    yd[uo + j] = g;
                }
            }
        Tape tape = Tape.active();
        if (tape != null) tape.record("classifierFreeGuidance", y,
                (gy, g) -> FusedOpsBackward.classifierFreeGuidance(gy, g.of(out), half, c, hw, guided, scale), out);
        return y;
    }

    // ------------------------------------------------------------------ helpers

    /** Sum with eight independent accumulators (fixed order: independent of threads). */
    static float sum(float[] a, int off, int len) {
        float s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
        int j = 0;
        for (; j + 8 <= len; j += 8) {
            int o = off + j;
            s0 += a[o]; s1 += a[o + 1]; s2 += a[o + 2]; s3 += a[o + 3];
            s4 += a[o + 4]; s5 += a[o + 5]; s6 += a[o + 6]; s7 += a[o + 7];
        }
        for (; j < len; j++) s0 += a[off + j];
        return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7));
    }

    /** Sum of squares of a[off .. off + len) with eight independent accumulators. */
    static float sumSq(float[] a, int off, int len) {
        float s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
        int j = 0;
        for (; j + 8 <= len; j += 8) {
            int o = off + j;
            s0 += a[o] * a[o]; s1 += a[o + 1] * a[o + 1]; s2 += a[o + 2] * a[o + 2]; s3 += a[o + 3] * a[o + 3];
            s4 += a[o + 4] * a[o + 4]; s5 += a[o + 5] * a[o + 5]; s6 += a[o + 6] * a[o + 6]; s7 += a[o + 7] * a[o + 7];
        }
        for (; j < len; j++) s0 += a[off + j] * a[off + j];
        return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7));
    }

    /** Sum of (a - mean)^2 with eight independent accumulators. */
    static float sumSqDev(float[] a, int off, int len, float mean) {
        float s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
        int j = 0;
        for (; j + 8 <= len; j += 8) {
            int o = off + j;
            float d0 = a[o] - mean, d1 = a[o + 1] - mean, d2 = a[o + 2] - mean, d3 = a[o + 3] - mean;
            float d4 = a[o + 4] - mean, d5 = a[o + 5] - mean, d6 = a[o + 6] - mean, d7 = a[o + 7] - mean;
            s0 += d0 * d0; s1 += d1 * d1; s2 += d2 * d2; s3 += d3 * d3;
            s4 += d4 * d4; s5 += d5 * d5; s6 += d6 * d6; s7 += d7 * d7;
        }
        for (; j < len; j++) { float dv = a[off + j] - mean; s0 += dv * dv; }
        return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7));
    }

    /** Maximum of a row (a plain loop: C2 handles this reduction better than unrolled Math.max chains). */
    static float max(float[] a, int off, int len) {
        float m = Float.NEGATIVE_INFINITY;
        for (int j = 0; j < len; j++) m = Math.max(m, a[off + j]);
        return m;
    }
}
