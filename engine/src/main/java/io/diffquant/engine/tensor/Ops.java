package io.diffquant.engine.tensor;

import java.util.Arrays;

/**
 * The handful of ops the denoisers need, on {@link Tensor}s (float32, row-major, NCHW for images).
 * GEMMs go through {@link Blas#get()} (oneDNN, or the Java reference when switched off); element-wise
 * work is split over {@link Parallel}. Every result is independent of the thread count.
 */
public final class Ops {
    private Ops() {}

    private static final int EW_CHUNK = 1 << 14;

    // ------------------------------------------------------------------ GEMM-based

    /** y[..., out] = x[..., in] W^T + b, with W [out, in] and b [out] (nullable). */
    public static Tensor linear(Tensor x, Tensor w, Tensor b) {
        int in = x.dim(-1);
        if (w.rank() != 2 || w.dim(1) != in) throw new IllegalArgumentException(
                "linear: input has " + in + " features but weight is " + Arrays.toString(w.shape()));
        int out = w.dim(0);
        int m = x.size() / Math.max(1, in);
        int[] s = x.shape();
        s[s.length - 1] = out;
        Tensor y = Tensor.zeros(s);
        if (m > 0) Blas.get().sgemm(false, true, m, out, in, 1f, x.data(), 0, in, w.data(), 0, in, 0f, y.data(), 0, out);
        if (b != null) addRowVector(y, b);
        return y;
    }

    /** In place: y[r, :] += v for every row r of the trailing dimension. */
    public static void addRowVector(Tensor y, Tensor v) {
        int n = v.size();
        if (y.dim(-1) != n) throw new IllegalArgumentException("bias of " + n + " for last dimension " + y.dim(-1));
        float[] yd = y.data(), vd = v.data();
        int rows = yd.length / n;
        Parallel.forRange(rows, Math.max(1, EW_CHUNK / n), (r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                int o = r * n;
                for (int j = 0; j < n; j++) yd[o + j] += vd[j];
            }
        });
    }

    /** 2-D convolution, NCHW, weight [O, C, kh, kw], square stride and zero padding, groups = 1. */
    public static Tensor conv2d(Tensor x, Tensor w, Tensor b, int stride, int padding) {
        if (x.rank() != 4) throw new IllegalArgumentException("conv2d: input must be NCHW, got " + Arrays.toString(x.shape()));
        if (w.rank() != 4 || w.dim(1) != x.dim(1)) throw new IllegalArgumentException(
                "conv2d: input has " + x.dim(1) + " channels but weight is " + Arrays.toString(w.shape()));
        int n = x.dim(0), c = x.dim(1), h = x.dim(2), wd = x.dim(3);
        int o = w.dim(0), kh = w.dim(2), kw = w.dim(3);
        int ho = (h + 2 * padding - kh) / stride + 1, wo = (wd + 2 * padding - kw) / stride + 1;
        Tensor y = Tensor.zeros(n, o, ho, wo);
        int kdim = c * kh * kw, hw = ho * wo;
        float[] xd = x.data(), yd = y.data(), wdat = w.data();
        boolean pointwise = kh == 1 && kw == 1 && stride == 1 && padding == 0;
        if (pointwise) {
            for (int i = 0; i < n; i++) {
                // W [O, C] x X_i [C, HW]
                Blas.get().sgemm(false, false, o, hw, c, 1f, wdat, 0, c, xd, i * c * h * wd, hw, 0f, yd, i * o * hw, hw);
            }
        } else {
            // batch the im2col of all images: col [kdim, n*hw], then one GEMM, then scatter to NCHW
            int cols = n * hw;
            float[] col = new float[kdim * cols];
            Parallel.forRange(kdim, 1, (r0, r1) -> {
                for (int r = r0; r < r1; r++) {
                    int ci = r / (kh * kw), rem = r % (kh * kw), ki = rem / kw, kj = rem % kw;
                    int rowOff = r * cols;
                    for (int img = 0; img < n; img++) {
                        int xo = (img * c + ci) * h * wd;
                        int co = rowOff + img * hw;
                        for (int oy = 0; oy < ho; oy++) {
                            int iy = oy * stride - padding + ki;
                            int base = co + oy * wo;
                            if (iy < 0 || iy >= h) { Arrays.fill(col, base, base + wo, 0f); continue; }
                            int xrow = xo + iy * wd;
                            for (int ox = 0; ox < wo; ox++) {
                                int ix = ox * stride - padding + kj;
                                col[base + ox] = ix < 0 || ix >= wd ? 0f : xd[xrow + ix];
                            }
                        }
                    }
                }
            });
            if (n == 1) {
                Blas.get().sgemm(false, false, o, hw, kdim, 1f, wdat, 0, kdim, col, 0, cols, 0f, yd, 0, hw);
            } else {
                float[] tmp = new float[o * cols];
                Blas.get().sgemm(false, false, o, cols, kdim, 1f, wdat, 0, kdim, col, 0, cols, 0f, tmp, 0, cols);
                Parallel.forRange(o, 1, (o0, o1) -> {
                    for (int oc = o0; oc < o1; oc++)
                        for (int img = 0; img < n; img++)
                            System.arraycopy(tmp, oc * cols + img * hw, yd, (img * o + oc) * hw, hw);
                });
            }
        }
        if (b != null) addChannelBias(y, b);
        return y;
    }

    /** In place: x[n, c, ...] += v[c]. */
    public static void addChannelBias(Tensor x, Tensor v) {
        int nb = x.dim(0), c = x.dim(1), inner = x.size() / Math.max(1, nb * c);
        if (v.size() != c) throw new IllegalArgumentException("bias of " + v.size() + " for " + c + " channels");
        float[] xd = x.data(), vd = v.data();
        Parallel.forRange(nb * c, Math.max(1, EW_CHUNK / Math.max(1, inner)), (r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                float bv = vd[r % c];
                int o = r * inner;
                for (int j = 0; j < inner; j++) xd[o + j] += bv;
            }
        });
    }

    /** In place: x[n, c, h, w] += v[n, c] (the UNet's time-embedding injection). */
    public static void addPerSampleChannel(Tensor x, Tensor v) {
        int nb = x.dim(0), c = x.dim(1), inner = x.size() / Math.max(1, nb * c);
        if (v.size() != nb * c) throw new IllegalArgumentException(
                "per-sample channel vector " + Arrays.toString(v.shape()) + " for input " + Arrays.toString(x.shape()));
        float[] xd = x.data(), vd = v.data();
        Parallel.forRange(nb * c, Math.max(1, EW_CHUNK / Math.max(1, inner)), (r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                float bv = vd[r];
                int o = r * inner;
                for (int j = 0; j < inner; j++) xd[o + j] += bv;
            }
        });
    }

    /**
     * Scaled dot-product attention on [B, H, T, D] tensors: softmax(q k^T * scale) v, result [B, H, T, D].
     */
    public static Tensor attention(Tensor q, Tensor k, Tensor v, float scale) {
        if (q.rank() != 4 || !q.sameShape(v)) throw new IllegalArgumentException("attention: q " + Arrays.toString(q.shape())
                + " v " + Arrays.toString(v.shape()));
        int b = q.dim(0), h = q.dim(1), t = q.dim(2), d = q.dim(3), tk = k.dim(2);
        Tensor out = Tensor.zeros(b, h, t, d);
        float[] qd = q.data(), kd = k.data(), vd = v.data(), od = out.data();
        Blas blas = Blas.get();
        float[] qs = new float[t * d], ks = new float[tk * d], vs = new float[tk * d], os = new float[t * d];
        float[] s = new float[t * tk];
        for (int bh = 0; bh < b * h; bh++) {
            System.arraycopy(qd, bh * t * d, qs, 0, t * d);
            System.arraycopy(kd, bh * tk * d, ks, 0, tk * d);
            System.arraycopy(vd, bh * tk * d, vs, 0, tk * d);
            blas.sgemm(false, true, t, tk, d, scale, qs, 0, d, ks, 0, d, 0f, s, 0, tk);
            softmaxRows(s, t, tk);
            blas.sgemm(false, false, t, d, tk, 1f, s, 0, tk, vs, 0, d, 0f, os, 0, d);
            System.arraycopy(os, 0, od, bh * t * d, t * d);
        }
        return out;
    }

    // ------------------------------------------------------------------ normalisation

    /** LayerNorm over the last dimension; gamma/beta nullable (DiT uses elementwise_affine=False). */
    public static Tensor layerNorm(Tensor x, Tensor gamma, Tensor beta, float eps) {
        int c = x.dim(-1);
        Tensor y = Tensor.zeros(x.shape());
        float[] xd = x.data(), yd = y.data();
        float[] g = gamma == null ? null : gamma.data(), bt = beta == null ? null : beta.data();
        int rows = xd.length / c;
        Parallel.forRange(rows, Math.max(1, EW_CHUNK / c), (r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                int o = r * c;
                double mean = 0;
                for (int j = 0; j < c; j++) mean += xd[o + j];
                mean /= c;
                double var = 0;
                for (int j = 0; j < c; j++) { double dv = xd[o + j] - mean; var += dv * dv; }
                var /= c;
                float inv = (float) (1.0 / Math.sqrt(var + eps));
                float mf = (float) mean;
                for (int j = 0; j < c; j++) {
                    float v = (xd[o + j] - mf) * inv;
                    if (g != null) v *= g[j];
                    if (bt != null) v += bt[j];
                    yd[o + j] = v;
                }
            }
        });
        return y;
    }

    /** GroupNorm on NCHW (or NC...) with per-channel affine gamma/beta (nullable). */
    public static Tensor groupNorm(Tensor x, int groups, Tensor gamma, Tensor beta, float eps) {
        int n = x.dim(0), c = x.dim(1);
        if (c % groups != 0) throw new IllegalArgumentException("groupNorm: " + c + " channels not divisible by " + groups + " groups");
        int inner = x.size() / (n * c), cg = c / groups, gsize = cg * inner;
        Tensor y = Tensor.zeros(x.shape());
        float[] xd = x.data(), yd = y.data();
        float[] g = gamma == null ? null : gamma.data(), bt = beta == null ? null : beta.data();
        Parallel.forRange(n * groups, 1, (r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                int o = r * gsize, g0 = (r % groups) * cg;
                double mean = 0;
                for (int j = 0; j < gsize; j++) mean += xd[o + j];
                mean /= gsize;
                double var = 0;
                for (int j = 0; j < gsize; j++) { double dv = xd[o + j] - mean; var += dv * dv; }
                var /= gsize;
                float inv = (float) (1.0 / Math.sqrt(var + eps));
                float mf = (float) mean;
                for (int ci = 0; ci < cg; ci++) {
                    float gg = g == null ? 1f : g[g0 + ci], bb = bt == null ? 0f : bt[g0 + ci];
                    float a = inv * gg, bshift = bb - mf * a;
                    int co = o + ci * inner;
                    for (int j = 0; j < inner; j++) yd[co + j] = xd[co + j] * a + bshift;
                }
            }
        });
        return y;
    }

    /** Softmax over the last dimension. */
    public static Tensor softmax(Tensor x) {
        Tensor y = x.copy();
        int c = x.dim(-1);
        softmaxRows(y.data(), y.size() / c, c);
        return y;
    }

    static void softmaxRows(float[] s, int rows, int c) {
        Parallel.forRange(rows, Math.max(1, EW_CHUNK / c), (r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                int o = r * c;
                float mx = Float.NEGATIVE_INFINITY;
                for (int j = 0; j < c; j++) mx = Math.max(mx, s[o + j]);
                float sum = 0f;
                for (int j = 0; j < c; j++) { float e = (float) Math.exp(s[o + j] - mx); s[o + j] = e; sum += e; }
                float inv = 1f / sum;
                for (int j = 0; j < c; j++) s[o + j] *= inv;
            }
        });
    }

    // ------------------------------------------------------------------ element-wise

    @FunctionalInterface
    public interface FloatUnary { float apply(float v); }

    public static Tensor map(Tensor x, FloatUnary f) {
        Tensor y = Tensor.zeros(x.shape());
        float[] xd = x.data(), yd = y.data();
        Parallel.forRange(xd.length, EW_CHUNK, (a, b) -> { for (int i = a; i < b; i++) yd[i] = f.apply(xd[i]); });
        return y;
    }

    public static float silu(float v) { return v / (1f + (float) Math.exp(-v)); }

    /** tanh-approximated GELU (PyTorch approximate="tanh"). */
    public static float geluTanh(float v) {
        double u = 0.7978845608028654 * (v + 0.044715 * v * v * v);
        double th = 1.0 - 2.0 / (Math.exp(2.0 * u) + 1.0);
        return (float) (0.5 * v * (1.0 + th));
    }

    /** exact (erf) GELU. */
    public static float gelu(float v) { return (float) (0.5 * v * (1.0 + erf(v / Math.sqrt(2.0)))); }

    public static Tensor silu(Tensor x) { return map(x, Ops::silu); }
    public static Tensor geluTanh(Tensor x) { return map(x, Ops::geluTanh); }
    public static Tensor gelu(Tensor x) { return map(x, Ops::gelu); }

    /** erf with |error| < 1.2e-7 (Numerical Recipes erfc Chebyshev fit, in double). */
    public static double erf(double x) {
        double z = Math.abs(x);
        double t = 1.0 / (1.0 + 0.5 * z);
        double r = t * Math.exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418
                + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587
                + t * (-0.82215223 + t * 0.17087277)))))))));
        return x >= 0 ? 1.0 - r : r - 1.0;
    }

    public static Tensor add(Tensor a, Tensor b) {
        requireSame("add", a, b);
        Tensor y = Tensor.zeros(a.shape());
        float[] ad = a.data(), bd = b.data(), yd = y.data();
        Parallel.forRange(ad.length, EW_CHUNK, (s, e) -> { for (int i = s; i < e; i++) yd[i] = ad[i] + bd[i]; });
        return y;
    }

    public static void addInPlace(Tensor a, Tensor b) {
        requireSame("addInPlace", a, b);
        float[] ad = a.data(), bd = b.data();
        Parallel.forRange(ad.length, EW_CHUNK, (s, e) -> { for (int i = s; i < e; i++) ad[i] += bd[i]; });
    }

    public static Tensor sub(Tensor a, Tensor b) {
        requireSame("sub", a, b);
        Tensor y = Tensor.zeros(a.shape());
        float[] ad = a.data(), bd = b.data(), yd = y.data();
        Parallel.forRange(ad.length, EW_CHUNK, (s, e) -> { for (int i = s; i < e; i++) yd[i] = ad[i] - bd[i]; });
        return y;
    }

    public static Tensor scale(Tensor a, float s) {
        Tensor y = Tensor.zeros(a.shape());
        float[] ad = a.data(), yd = y.data();
        Parallel.forRange(ad.length, EW_CHUNK, (p, q) -> { for (int i = p; i < q; i++) yd[i] = ad[i] * s; });
        return y;
    }

    private static void requireSame(String op, Tensor a, Tensor b) {
        if (!a.sameShape(b)) throw new IllegalArgumentException(op + ": shapes " + Arrays.toString(a.shape())
                + " and " + Arrays.toString(b.shape()) + " differ");
    }

    // ------------------------------------------------------------------ layout

    /** Concatenate two NCHW tensors along channels. */
    public static Tensor concatChannels(Tensor a, Tensor b) {
        int n = a.dim(0), ca = a.dim(1), cb = b.dim(1);
        int inner = a.size() / (n * ca);
        if (b.dim(0) != n || b.size() / (n * cb) != inner) throw new IllegalArgumentException(
                "concatChannels: " + Arrays.toString(a.shape()) + " and " + Arrays.toString(b.shape()));
        int[] s = a.shape();
        s[1] = ca + cb;
        Tensor y = Tensor.zeros(s);
        for (int i = 0; i < n; i++) {
            System.arraycopy(a.data(), i * ca * inner, y.data(), i * (ca + cb) * inner, ca * inner);
            System.arraycopy(b.data(), i * cb * inner, y.data(), (i * (ca + cb) + ca) * inner, cb * inner);
        }
        return y;
    }

    /** Nearest-neighbour 2x upsampling of NCHW. */
    public static Tensor upsampleNearest2x(Tensor x) {
        int n = x.dim(0), c = x.dim(1), h = x.dim(2), w = x.dim(3);
        Tensor y = Tensor.zeros(n, c, 2 * h, 2 * w);
        float[] xd = x.data(), yd = y.data();
        Parallel.forRange(n * c, 1, (r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                int xo = r * h * w, yo = r * 4 * h * w;
                for (int i = 0; i < 2 * h; i++)
                    for (int j = 0; j < 2 * w; j++) yd[yo + i * 2 * w + j] = xd[xo + (i >> 1) * w + (j >> 1)];
            }
        });
        return y;
    }

    /** 2x2 average pooling with stride 2 on NCHW. */
    public static Tensor avgPool2x(Tensor x) {
        int n = x.dim(0), c = x.dim(1), h = x.dim(2), w = x.dim(3), ho = h / 2, wo = w / 2;
        Tensor y = Tensor.zeros(n, c, ho, wo);
        float[] xd = x.data(), yd = y.data();
        for (int r = 0; r < n * c; r++)
            for (int i = 0; i < ho; i++)
                for (int j = 0; j < wo; j++) {
                    int b = r * h * w + 2 * i * w + 2 * j;
                    yd[r * ho * wo + i * wo + j] = 0.25f * (xd[b] + xd[b + 1] + xd[b + w] + xd[b + w + 1]);
                }
        return y;
    }

    /** Permute a 4-D tensor: out[i0..i3] = x[i_perm...]; perm gives, for each output axis, the input axis. */
    public static Tensor permute4(Tensor x, int p0, int p1, int p2, int p3) {
        int[] s = x.shape();
        int[] p = {p0, p1, p2, p3};
        int[] os = {s[p0], s[p1], s[p2], s[p3]};
        int[] st = {s[1] * s[2] * s[3], s[2] * s[3], s[3], 1};
        int[] ost = {st[p0], st[p1], st[p2], st[p3]};
        Tensor y = Tensor.zeros(os);
        float[] xd = x.data(), yd = y.data();
        Parallel.forRange(os[0] * os[1], Math.max(1, EW_CHUNK / Math.max(1, os[2] * os[3])), (r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                int a = r / os[1], b = r % os[1];
                int base = a * ost[0] + b * ost[1];
                int o = r * os[2] * os[3];
                for (int c = 0; c < os[2]; c++) {
                    int bc = base + c * ost[2];
                    for (int d = 0; d < os[3]; d++) yd[o++] = xd[bc + d * ost[3]];
                }
            }
        });
        return y;
    }

    /** Rows of an embedding table: table [V, D], ids length N -> [N, D]. */
    public static Tensor embedding(Tensor table, int[] ids) {
        int v = table.dim(0), d = table.dim(1);
        Tensor y = Tensor.zeros(ids.length, d);
        for (int i = 0; i < ids.length; i++) {
            if (ids[i] < 0 || ids[i] >= v) throw new IllegalArgumentException("embedding index " + ids[i] + " outside [0, " + v + ")");
            System.arraycopy(table.data(), ids[i] * d, y.data(), i * d, d);
        }
        return y;
    }

    /**
     * Sinusoidal timestep embedding [N, dim]. freqs_j = exp(-ln(maxPeriod) * j / (half - shift)).
     * DiT: flipSinToCos = true ([cos, sin]), shift = 0. diffusers: configurable (UNet2DModel: flip_sin_to_cos, freq_shift).
     * Odd dim gets a zero pad column, as in both references.
     */
    public static Tensor timestepEmbedding(float[] t, int dim, boolean flipSinToCos, float shift, double maxPeriod) {
        int half = dim / 2;
        Tensor y = Tensor.zeros(t.length, dim);
        float[] yd = y.data();
        float[] freqs = new float[half];
        for (int j = 0; j < half; j++) {
            // both references compute exponent and freqs in float32
            float expo = (float) (-Math.log(maxPeriod)) * (float) j / ((float) half - shift);
            freqs[j] = (float) Math.exp(expo);
        }
        for (int i = 0; i < t.length; i++) {
            for (int j = 0; j < half; j++) {
                float arg = t[i] * freqs[j];
                float s = (float) Math.sin(arg), c = (float) Math.cos(arg);
                yd[i * dim + j] = flipSinToCos ? c : s;
                yd[i * dim + half + j] = flipSinToCos ? s : c;
            }
        }
        return y;
    }
}
