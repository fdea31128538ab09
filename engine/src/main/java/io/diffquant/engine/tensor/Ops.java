package io.diffquant.engine.tensor;

import java.util.Arrays;

/**
 * The handful of ops the denoisers need, on {@link Tensor}s (float32, row-major, NCHW for images).
 * GEMMs go through {@link Blas#get()} (oneDNN, or the Java reference when switched off); element-wise
 * work is split over {@link Parallel}. Every result is independent of the thread count.
 * Every op records itself on the active {@link Tape} (if any) with its backward rule in {@link OpsBackward};
 * ops without a derivative ({@link #map}) refuse to run while a tape records.
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
        if (b != null && b.size() != out) throw new IllegalArgumentException("linear: bias of " + b.size() + " for " + out + " outputs");
        Tensor y = Tensor.zeros(s);
        // the bias is copied into every row first and the GEMM accumulates onto it (beta = 1): one pass less over y
        if (b != null && in > 0) fillRows(y.data(), b.data(), out);
        else if (b != null) addRows(y.data(), b.data(), out);
        if (m > 0 && in > 0) Blas.get().sgemm(false, true, m, out, in, 1f, x.data(), 0, in, w.data(), 0, in,
                b != null ? 1f : 0f, y.data(), 0, out);
        Tape tape = Tape.active();
        if (tape != null) {
            tape.save(x, w);
            tape.record("linear", y, (gy, g) -> OpsBackward.linear(gy, g, x, w, b, m, in, out), x, w, b);
        }
        return y;
    }

    /** In place: y[r, :] += v for every row r of the trailing dimension. */
    public static void addRowVector(Tensor y, Tensor v) {
        int n = v.size();
        if (y.dim(-1) != n) throw new IllegalArgumentException("bias of " + n + " for last dimension " + y.dim(-1));
        Tape tape = Tape.active();
        if (tape != null) tape.recordInPlace("addRowVector", y, (gy, g) -> OpsBackward.addRowVector(gy, g, v), v);
        addRows(y.data(), v.data(), n);
    }

    /** y[r, :] = v for every row r (n = v's length). */
    static void fillRows(float[] yd, float[] vd, int n) {
        if (n == 0) return;
        int rows = yd.length / n;
        Parallel.forRange(rows, Math.max(1, EW_CHUNK / n), (r0, r1) -> {
            for (int r = r0; r < r1; r++) System.arraycopy(vd, 0, yd, r * n, n);
        });
    }

    private static void addRows(float[] yd, float[] vd, int n) {
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
            float[] col = im2col(xd, 0, n, c, h, wd, kh, kw, stride, padding, ho, wo);
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
        if (b != null) {
            if (b.size() != o) throw new IllegalArgumentException("conv2d: bias of " + b.size() + " for " + o + " output channels");
            addChannels(yd, b.data(), n, o, hw, false);
        }
        Tape tape = Tape.active();
        if (tape != null) {
            tape.save(x, w);
            tape.record("conv2d", y, (gy, g) -> OpsBackward.conv2d(gy, g, x, w, b, stride, padding), x, w, b);
        }
        return y;
    }

    /** im2col of images [i0, i0 + n) of NCHW x: [C*kh*kw, n*Ho*Wo], row r = (ci, ki, kj), column = (img, oy, ox). */
    static float[] im2col(float[] xd, int i0, int n, int c, int h, int wd, int kh, int kw, int stride, int padding, int ho, int wo) {
        int kdim = c * kh * kw, hw = ho * wo, cols = n * hw;
        float[] col = new float[kdim * cols];
        Parallel.forRange(kdim, 1, (r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                int ci = r / (kh * kw), rem = r % (kh * kw), ki = rem / kw, kj = rem % kw;
                int rowOff = r * cols;
                for (int img = 0; img < n; img++) {
                    int xo = ((i0 + img) * c + ci) * h * wd;
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
        return col;
    }

    /** In place: x[n, c, ...] += v[c]. */
    public static void addChannelBias(Tensor x, Tensor v) {
        int nb = x.dim(0), c = x.dim(1), inner = x.size() / Math.max(1, nb * c);
        if (v.size() != c) throw new IllegalArgumentException("bias of " + v.size() + " for " + c + " channels");
        Tape tape = Tape.active();
        if (tape != null) tape.recordInPlace("addChannelBias", x,
                (gy, g) -> OpsBackward.channelSums(gy, g.of(v), nb, c, inner, false), v);
        addChannels(x.data(), v.data(), nb, c, inner, false);
    }

    /** xd[n, c, inner] += vd[c], not recorded (for fused kernels that record the whole op). */
    static void addChannelsRaw(float[] xd, float[] vd, int nb, int c, int inner) { addChannels(xd, vd, nb, c, inner, false); }

    /** xd[n, c, inner] += vd[c] (perSample: vd[n, c]). */
    private static void addChannels(float[] xd, float[] vd, int nb, int c, int inner, boolean perSample) {
        Parallel.forRange(nb * c, Math.max(1, EW_CHUNK / Math.max(1, inner)), (r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                float bv = vd[perSample ? r : r % c];
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
        Tape tape = Tape.active();
        if (tape != null) tape.recordInPlace("addPerSampleChannel", x,
                (gy, g) -> OpsBackward.channelSums(gy, g.of(v), nb, c, inner, true), v);
        addChannels(x.data(), v.data(), nb, c, inner, true);
    }

    /**
     * Scaled dot-product attention on [B, H, T, D] tensors: softmax(q k^T * scale) v, result [B, H, T, D].
     */
    public static Tensor attention(Tensor q, Tensor k, Tensor v, float scale) {
        if (q.rank() != 4 || !k.sameShape(v) || k.rank() != 4 || q.dim(0) != k.dim(0) || q.dim(1) != k.dim(1)
                || q.dim(3) != k.dim(3)) throw new IllegalArgumentException("attention: q " + Arrays.toString(q.shape())
                + " k " + Arrays.toString(k.shape()) + " v " + Arrays.toString(v.shape())
                + " must be [B, H, T, D], [B, H, Tk, D], [B, H, Tk, D]");
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
        Tape tape = Tape.active();
        if (tape != null) {
            tape.save(q, k, v);
            tape.record("attention", out, (gy, g) -> OpsBackward.attention(gy, g, q, k, v, scale), q, k, v);
        }
        return out;
    }

    // ------------------------------------------------------------------ normalisation

    /** LayerNorm over the last dimension; gamma/beta nullable (DiT uses elementwise_affine=False). */
    public static Tensor layerNorm(Tensor x, Tensor gamma, Tensor beta, float eps) {
        int c = x.dim(-1);
        if (gamma != null && gamma.size() != c || beta != null && beta.size() != c) throw new IllegalArgumentException(
                "layerNorm: affine parameters must have " + c + " elements");
        Tensor y = Tensor.zeros(x.shape());
        float[] xd = x.data(), yd = y.data();
        float[] g = gamma == null ? null : gamma.data(), bt = beta == null ? null : beta.data();
        int rows = xd.length / c;
        Tape tape = Tape.active();
        // under a tape: the normalised values and 1/std are kept for backward (so x may change in place later)
        float[] xhat = tape == null ? null : new float[xd.length], rstd = tape == null ? null : new float[rows];
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
                if (rstd != null) rstd[r] = inv;
                for (int j = 0; j < c; j++) {
                    float v = (xd[o + j] - mf) * inv;
                    if (xhat != null) xhat[o + j] = v;
                    if (g != null) v *= g[j];
                    if (bt != null) v += bt[j];
                    yd[o + j] = v;
                }
            }
        });
        if (tape != null) tape.record("layerNorm", y,
                (gy, gr) -> OpsBackward.layerNorm(gy, gr, x, gamma, beta, xhat, rstd, c), x, gamma, beta);
        return y;
    }

    /** GroupNorm on NCHW (or NC...) with per-channel affine gamma/beta (nullable). */
    public static Tensor groupNorm(Tensor x, int groups, Tensor gamma, Tensor beta, float eps) {
        int n = x.dim(0), c = x.dim(1);
        if (groups < 1 || c % groups != 0) throw new IllegalArgumentException("groupNorm: " + c + " channels not divisible by " + groups + " groups");
        if (gamma != null && gamma.size() != c || beta != null && beta.size() != c) throw new IllegalArgumentException(
                "groupNorm: affine parameters must have " + c + " elements");
        int inner = x.size() / (n * c), cg = c / groups, gsize = cg * inner;
        Tensor y = Tensor.zeros(x.shape());
        float[] xd = x.data(), yd = y.data();
        float[] g = gamma == null ? null : gamma.data(), bt = beta == null ? null : beta.data();
        Tape tape = Tape.active();
        float[] xhat = tape == null ? null : new float[xd.length], rstd = tape == null ? null : new float[n * groups];
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
                if (rstd != null) {
                    rstd[r] = inv;
                    for (int j = 0; j < gsize; j++) xhat[o + j] = (xd[o + j] - mf) * inv;
                }
                for (int ci = 0; ci < cg; ci++) {
                    float gg = g == null ? 1f : g[g0 + ci], bb = bt == null ? 0f : bt[g0 + ci];
                    float a = inv * gg, bshift = bb - mf * a;
                    int co = o + ci * inner;
                    for (int j = 0; j < inner; j++) yd[co + j] = xd[co + j] * a + bshift;
                }
            }
        });
        if (tape != null) tape.record("groupNorm", y,
                (gy, gr) -> OpsBackward.groupNorm(gy, gr, x, gamma, beta, xhat, rstd, n, c, groups, inner), x, gamma, beta);
        return y;
    }

    /** Softmax over the last dimension. */
    public static Tensor softmax(Tensor x) {
        Tensor y = Tensor.of(x.data().clone(), x.shape());
        int c = x.dim(-1);
        softmaxRows(y.data(), y.size() / c, c);
        Tape tape = Tape.active();
        if (tape != null) {
            tape.save(y);
            tape.record("softmax", y, (gy, g) -> OpsBackward.softmax(gy, g.of(x), y.data(), c), x);
        }
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

    /**
     * y = f(x) element-wise. Not differentiable (a lambda has no derivative): refuses to run while a
     * {@link Tape} records; use the recorded activations ({@link #silu(Tensor)}, {@link #gelu(Tensor)}, ...).
     */
    public static Tensor map(Tensor x, FloatUnary f) {
        if (Tape.active() != null) throw new IllegalStateException("Ops.map is not differentiable and cannot run while a "
                + "Tape records; use Ops.silu/gelu/geluTanh/relu (or pause recording with Tape.pause())");
        return mapRaw(x, f);
    }

    private static Tensor mapRaw(Tensor x, FloatUnary f) {
        Tensor y = Tensor.zeros(x.shape());
        float[] xd = x.data(), yd = y.data();
        Parallel.forRange(xd.length, EW_CHUNK, (a, b) -> { for (int i = a; i < b; i++) yd[i] = f.apply(xd[i]); });
        return y;
    }

    /** An element-wise activation recorded with its derivative f'(x). */
    private static Tensor activation(String op, Tensor x, FloatUnary f, FloatUnary df) {
        Tensor y = mapRaw(x, f);
        Tape tape = Tape.active();
        if (tape != null) {
            tape.save(x);
            tape.record(op, y, (gy, g) -> OpsBackward.elementwise(gy, g.of(x), x.data(), df), x);
        }
        return y;
    }

    public static float silu(float v) { return v / (1f + (float) Math.exp(-v)); }

    /** d silu / dx = s (1 + x (1 - s)), s = sigmoid(x). */
    public static float siluGrad(float v) {
        double s = 1.0 / (1.0 + Math.exp(-v));
        return (float) (s * (1.0 + v * (1.0 - s)));
    }

    private static final double GELU_A = 0.7978845608028654; // sqrt(2 / pi)

    /** tanh-approximated GELU (PyTorch approximate="tanh"). */
    public static float geluTanh(float v) {
        double u = GELU_A * (v + 0.044715 * v * v * v);
        double th = 1.0 - 2.0 / (Math.exp(2.0 * u) + 1.0);
        return (float) (0.5 * v * (1.0 + th));
    }

    /** Derivative of {@link #geluTanh(float)}. */
    public static float geluTanhGrad(float v) {
        double u = GELU_A * (v + 0.044715 * v * v * v);
        double th = 1.0 - 2.0 / (Math.exp(2.0 * u) + 1.0);
        return (float) (0.5 * (1.0 + th) + 0.5 * v * (1.0 - th * th) * GELU_A * (1.0 + 3 * 0.044715 * v * v));
    }

    /** exact (erf) GELU. */
    public static float gelu(float v) { return (float) (0.5 * v * (1.0 + erf(v / Math.sqrt(2.0)))); }

    /** Derivative of exact GELU: Phi(x) + x phi(x). */
    public static float geluGrad(float v) {
        return (float) (0.5 * (1.0 + erf(v / Math.sqrt(2.0))) + v * Math.exp(-0.5 * v * v) * 0.3989422804014327);
    }

    public static Tensor silu(Tensor x) { return activation("silu", x, Ops::silu, Ops::siluGrad); }
    public static Tensor geluTanh(Tensor x) { return activation("geluTanh", x, Ops::geluTanh, Ops::geluTanhGrad); }
    public static Tensor gelu(Tensor x) { return activation("gelu", x, Ops::gelu, Ops::geluGrad); }
    /** max(x, 0); the derivative at 0 is taken as 0 (PyTorch's convention). */
    public static Tensor relu(Tensor x) { return activation("relu", x, v -> v > 0f ? v : 0f, v -> v > 0f ? 1f : 0f); }

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
        Tape tape = Tape.active();
        if (tape != null) tape.record("add", y, (gy, g) -> {
            OpsBackward.axpy(1f, gy, g.of(a));
            OpsBackward.axpy(1f, gy, g.of(b));
        }, a, b);
        return y;
    }

    /** a += b. Under a {@link Tape} it is recorded as an in-place node (see Tape on in-place ops). */
    public static void addInPlace(Tensor a, Tensor b) {
        requireSame("addInPlace", a, b);
        Tape tape = Tape.active();
        if (tape != null) tape.recordInPlace("addInPlace", a, (gy, g) -> OpsBackward.axpy(1f, gy, g.of(b)), b);
        float[] ad = a.data(), bd = b.data();
        Parallel.forRange(ad.length, EW_CHUNK, (s, e) -> { for (int i = s; i < e; i++) ad[i] += bd[i]; });
    }

    public static Tensor sub(Tensor a, Tensor b) {
        requireSame("sub", a, b);
        Tensor y = Tensor.zeros(a.shape());
        float[] ad = a.data(), bd = b.data(), yd = y.data();
        Parallel.forRange(ad.length, EW_CHUNK, (s, e) -> { for (int i = s; i < e; i++) yd[i] = ad[i] - bd[i]; });
        Tape tape = Tape.active();
        if (tape != null) tape.record("sub", y, (gy, g) -> {
            OpsBackward.axpy(1f, gy, g.of(a));
            OpsBackward.axpy(-1f, gy, g.of(b));
        }, a, b);
        return y;
    }

    /** Element-wise product of same-shaped tensors. */
    public static Tensor mul(Tensor a, Tensor b) {
        requireSame("mul", a, b);
        Tensor y = Tensor.zeros(a.shape());
        float[] ad = a.data(), bd = b.data(), yd = y.data();
        Parallel.forRange(ad.length, EW_CHUNK, (s, e) -> { for (int i = s; i < e; i++) yd[i] = ad[i] * bd[i]; });
        Tape tape = Tape.active();
        if (tape != null) {
            tape.save(a, b);
            tape.record("mul", y, (gy, g) -> {
                OpsBackward.mulAcc(gy, bd, g.of(a));
                OpsBackward.mulAcc(gy, ad, g.of(b));
            }, a, b);
        }
        return y;
    }

    public static Tensor scale(Tensor a, float s) {
        Tensor y = Tensor.zeros(a.shape());
        float[] ad = a.data(), yd = y.data();
        Parallel.forRange(ad.length, EW_CHUNK, (p, q) -> { for (int i = p; i < q; i++) yd[i] = ad[i] * s; });
        Tape tape = Tape.active();
        if (tape != null) tape.record("scale", y, (gy, g) -> OpsBackward.axpy(s, gy, g.of(a)), a);
        return y;
    }

    private static void requireSame(String op, Tensor a, Tensor b) {
        if (!a.sameShape(b)) throw new IllegalArgumentException(op + ": shapes " + Arrays.toString(a.shape())
                + " and " + Arrays.toString(b.shape()) + " differ");
    }

    // ------------------------------------------------------------------ reductions and losses

    /** Sum of all elements, as a scalar tensor (double accumulation, sequential: thread-count independent). */
    public static Tensor sum(Tensor x) {
        double s = 0;
        for (float v : x.data()) s += v;
        Tensor y = Tensor.scalar((float) s);
        Tape tape = Tape.active();
        if (tape != null) tape.record("sum", y, (gy, g) -> OpsBackward.fill(g.of(x), gy[0]), x);
        return y;
    }

    /** Mean of all elements, as a scalar tensor. */
    public static Tensor mean(Tensor x) {
        if (x.size() == 0) throw new IllegalArgumentException("mean of an empty tensor " + Arrays.toString(x.shape()));
        double s = 0;
        for (float v : x.data()) s += v;
        int n = x.size();
        Tensor y = Tensor.scalar((float) (s / n));
        Tape tape = Tape.active();
        if (tape != null) tape.record("mean", y, (gy, g) -> OpsBackward.fill(g.of(x), gy[0] / n), x);
        return y;
    }

    /** mean((a - b)^2) over all elements, as a scalar tensor. */
    public static Tensor mseLoss(Tensor a, Tensor b) {
        requireSame("mseLoss", a, b);
        int n = a.size();
        if (n == 0) throw new IllegalArgumentException("mseLoss of empty tensors");
        float[] ad = a.data(), bd = b.data();
        float[] diff = new float[n];
        double s = 0;
        for (int i = 0; i < n; i++) {
            float d = ad[i] - bd[i];
            diff[i] = d;
            s += (double) d * d;
        }
        Tensor y = Tensor.scalar((float) (s / n));
        Tape tape = Tape.active();
        if (tape != null) tape.record("mseLoss", y, (gy, g) -> {
            float k = 2f * gy[0] / n;
            OpsBackward.axpy(k, diff, g.of(a));
            OpsBackward.axpy(-k, diff, g.of(b));
        }, a, b);
        return y;
    }

    /**
     * Mean over the batch of the cross-entropy of softmax(logits) against integer labels: logits [N, K],
     * labels in [0, K). Log-sum-exp in double. Scalar result.
     */
    public static Tensor crossEntropy(Tensor logits, int[] labels) {
        if (logits.rank() != 2 || logits.dim(0) != labels.length) throw new IllegalArgumentException(
                "crossEntropy: logits must be [N, K] with N = " + labels.length + " labels, got " + Arrays.toString(logits.shape()));
        int n = labels.length, k = logits.dim(1);
        if (n == 0) throw new IllegalArgumentException("crossEntropy of an empty batch");
        float[] ld = logits.data();
        float[] probs = new float[ld.length];
        double total = 0;
        for (int i = 0; i < n; i++) {
            if (labels[i] < 0 || labels[i] >= k) throw new IllegalArgumentException(
                    "crossEntropy: label " + labels[i] + " of sample " + i + " outside [0, " + k + ")");
            int o = i * k;
            double mx = Double.NEGATIVE_INFINITY;
            for (int j = 0; j < k; j++) mx = Math.max(mx, ld[o + j]);
            double se = 0;
            for (int j = 0; j < k; j++) se += Math.exp(ld[o + j] - mx);
            double lse = mx + Math.log(se);
            for (int j = 0; j < k; j++) probs[o + j] = (float) Math.exp(ld[o + j] - lse);
            total += lse - ld[o + labels[i]];
        }
        Tensor y = Tensor.scalar((float) (total / n));
        int[] lab = labels.clone();
        Tape tape = Tape.active();
        if (tape != null) tape.record("crossEntropy", y, (gy, g) -> {
            float[] gl = g.of(logits);
            if (gl == null) return;
            float s = gy[0] / n;
            for (int i = 0; i < n; i++) {
                int o = i * k;
                for (int j = 0; j < k; j++) gl[o + j] += s * (probs[o + j] - (j == lab[i] ? 1f : 0f));
            }
        }, logits);
        return y;
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
        Tape tape = Tape.active();
        if (tape != null) tape.record("concatChannels", y, (gy, g) -> {
            OpsBackward.channelSlice(gy, g.of(a), n, ca + cb, 0, ca, inner);
            OpsBackward.channelSlice(gy, g.of(b), n, ca + cb, ca, cb, inner);
        }, a, b);
        return y;
    }

    /** Channels [from, to) of an NC... tensor (a copy). */
    public static Tensor sliceChannels(Tensor x, int from, int to) {
        int n = x.dim(0), c = x.dim(1);
        if (from < 0 || to > c || from >= to) throw new IllegalArgumentException(
                "sliceChannels: [" + from + ", " + to + ") of " + c + " channels");
        int inner = x.size() / Math.max(1, n * c), cs = to - from;
        int[] s = x.shape();
        s[1] = cs;
        Tensor y = Tensor.zeros(s);
        for (int i = 0; i < n; i++) System.arraycopy(x.data(), (i * c + from) * inner, y.data(), i * cs * inner, cs * inner);
        Tape tape = Tape.active();
        if (tape != null) tape.record("sliceChannels", y, (gy, g) -> {
            float[] gx = g.of(x);
            if (gx == null) return;
            for (int i = 0; i < n; i++) {
                int xo = (i * c + from) * inner, yo = i * cs * inner;
                for (int j = 0; j < cs * inner; j++) gx[xo + j] += gy[yo + j];
            }
        }, x);
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
        Tape tape = Tape.active();
        if (tape != null) tape.record("upsampleNearest2x", y, (gy, g) -> OpsBackward.upsample2x(gy, g.of(x), n * c, h, w), x);
        return y;
    }

    /** 2x2 average pooling with stride 2 on NCHW (an odd last row/column is dropped, as in PyTorch). */
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
        Tape tape = Tape.active();
        if (tape != null) tape.record("avgPool2x", y, (gy, g) -> {
            float[] gx = g.of(x);
            if (gx == null) return;
            for (int r = 0; r < n * c; r++)
                for (int i = 0; i < ho; i++)
                    for (int j = 0; j < wo; j++) {
                        int b = r * h * w + 2 * i * w + 2 * j;
                        float v = 0.25f * gy[r * ho * wo + i * wo + j];
                        gx[b] += v;
                        gx[b + 1] += v;
                        gx[b + w] += v;
                        gx[b + w + 1] += v;
                    }
        }, x);
        return y;
    }

    /** 2x2 max pooling with stride 2 on NCHW; the gradient goes to the first maximum of each window. */
    public static Tensor maxPool2x(Tensor x) {
        if (x.rank() != 4) throw new IllegalArgumentException("maxPool2x: input must be NCHW, got " + Arrays.toString(x.shape()));
        int n = x.dim(0), c = x.dim(1), h = x.dim(2), w = x.dim(3), ho = h / 2, wo = w / 2;
        Tensor y = Tensor.zeros(n, c, ho, wo);
        float[] xd = x.data(), yd = y.data();
        int[] arg = new int[y.size()];
        Parallel.forRange(n * c, 1, (r0, r1) -> {
            for (int r = r0; r < r1; r++)
                for (int i = 0; i < ho; i++)
                    for (int j = 0; j < wo; j++) {
                        int b = r * h * w + 2 * i * w + 2 * j;
                        int best = b;
                        if (xd[b + 1] > xd[best]) best = b + 1;
                        if (xd[b + w] > xd[best]) best = b + w;
                        if (xd[b + w + 1] > xd[best]) best = b + w + 1;
                        int o = r * ho * wo + i * wo + j;
                        yd[o] = xd[best];
                        arg[o] = best;
                    }
        });
        Tape tape = Tape.active();
        if (tape != null) tape.record("maxPool2x", y, (gy, g) -> {
            float[] gx = g.of(x);
            if (gx == null) return;
            for (int o = 0; o < arg.length; o++) gx[arg[o]] += gy[o];
        }, x);
        return y;
    }

    /** Mean over the spatial dimensions: [N, C, H, W] (or [N, C, ...]) -> [N, C]. */
    public static Tensor globalAvgPool(Tensor x) {
        int n = x.dim(0), c = x.dim(1), inner = x.size() / Math.max(1, n * c);
        if (inner == 0) throw new IllegalArgumentException("globalAvgPool: empty spatial size " + Arrays.toString(x.shape()));
        Tensor y = Tensor.zeros(n, c);
        float[] xd = x.data(), yd = y.data();
        for (int r = 0; r < n * c; r++) {
            double s = 0;
            for (int j = 0; j < inner; j++) s += xd[r * inner + j];
            yd[r] = (float) (s / inner);
        }
        Tape tape = Tape.active();
        if (tape != null) tape.record("globalAvgPool", y, (gy, g) -> {
            float[] gx = g.of(x);
            if (gx == null) return;
            for (int r = 0; r < n * c; r++) {
                float v = gy[r] / inner;
                for (int j = 0; j < inner; j++) gx[r * inner + j] += v;
            }
        }, x);
        return y;
    }

    /** Permute a 4-D tensor: out[i0..i3] = x[i_perm...]; perm gives, for each output axis, the input axis. */
    public static Tensor permute4(Tensor x, int p0, int p1, int p2, int p3) {
        if (x.rank() != 4) throw new IllegalArgumentException("permute4: input must be 4-D, got " + Arrays.toString(x.shape()));
        int[] p = {p0, p1, p2, p3};
        boolean[] seen = new boolean[4];
        for (int a : p) {
            if (a < 0 || a > 3 || seen[a]) throw new IllegalArgumentException("permute4: " + Arrays.toString(p) + " is not a permutation of 0..3");
            seen[a] = true;
        }
        int[] s = x.shape();
        int[] os = {s[p0], s[p1], s[p2], s[p3]};
        int[] st = {s[1] * s[2] * s[3], s[2] * s[3], s[3], 1};
        int[] ost = {st[p0], st[p1], st[p2], st[p3]};
        Tensor y = Tensor.zeros(os);
        permuteCopy(x.data(), y.data(), os, ost, false);
        Tape tape = Tape.active();
        if (tape != null) tape.record("permute4", y, (gy, g) -> {
            float[] gx = g.of(x);
            if (gx != null) permuteCopy(gx, gy, os, ost, true);
        }, x);
        return y;
    }

    /** Forward: yd[o] = xd[src(o)]; backward (accumulate): xd[src(o)] += yd[o]. Each src is hit once: race-free. */
    private static void permuteCopy(float[] xd, float[] yd, int[] os, int[] ost, boolean backward) {
        Parallel.forRange(os[0] * os[1], Math.max(1, EW_CHUNK / Math.max(1, os[2] * os[3])), (r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                int a = r / os[1], b = r % os[1];
                int base = a * ost[0] + b * ost[1];
                int o = r * os[2] * os[3];
                for (int c = 0; c < os[2]; c++) {
                    int bc = base + c * ost[2];
                    if (backward) for (int d = 0; d < os[3]; d++) xd[bc + d * ost[3]] += yd[o++];
                    else for (int d = 0; d < os[3]; d++) yd[o++] = xd[bc + d * ost[3]];
                }
            }
        });
    }

    /** Rows of an embedding table: table [V, D], ids length N -> [N, D]. */
    public static Tensor embedding(Tensor table, int[] ids) {
        int v = table.dim(0), d = table.dim(1);
        Tensor y = Tensor.zeros(ids.length, d);
        for (int i = 0; i < ids.length; i++) {
            if (ids[i] < 0 || ids[i] >= v) throw new IllegalArgumentException("embedding index " + ids[i] + " outside [0, " + v + ")");
            System.arraycopy(table.data(), ids[i] * d, y.data(), i * d, d);
        }
        Tape tape = Tape.active();
        if (tape != null) {
            int[] idx = ids.clone();
            tape.record("embedding", y, (gy, g) -> {
                float[] gt = g.of(table);
                if (gt == null) return;
                for (int i = 0; i < idx.length; i++) {
                    int to = idx[i] * d, yo = i * d;
                    for (int j = 0; j < d; j++) gt[to + j] += gy[yo + j];
                }
            }, table);
        }
        return y;
    }

    /**
     * Sinusoidal timestep embedding [N, dim]. freqs_j = exp(-ln(maxPeriod) * j / (half - shift)).
     * DiT: flipSinToCos = true ([cos, sin]), shift = 0. diffusers: configurable (UNet2DModel: flip_sin_to_cos, freq_shift).
     * Odd dim gets a zero pad column, as in both references. A constant for autodiff (t is not a tensor).
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

    // ------------------------------------------------------------------ recording of Tensor's copying layout ops

    /** y is a copy of x's elements [offset, offset + y.size()) (sliceRows, copy). */
    static void recordSliceRows(Tensor x, Tensor y, int offset) {
        Tape tape = Tape.active();
        if (tape != null) tape.record("sliceRows", y, (gy, g) -> {
            float[] gx = g.of(x);
            if (gx != null) for (int i = 0; i < gy.length; i++) gx[offset + i] += gy[i];
        }, x);
    }

    static void recordConcatRows(Tensor[] parts, Tensor y) {
        Tape tape = Tape.active();
        if (tape != null) {
            Tensor[] ps = parts.clone();
            tape.record("concatRows", y, (gy, g) -> {
                int off = 0;
                for (Tensor p : ps) {
                    float[] gp = g.of(p);
                    if (gp != null) for (int i = 0; i < gp.length; i++) gp[i] += gy[off + i];
                    off += p.size();
                }
            }, ps);
        }
    }
}
