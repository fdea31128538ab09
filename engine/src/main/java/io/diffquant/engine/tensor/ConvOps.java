package io.diffquant.engine.tensor;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

import java.util.Arrays;

/**
 * Fast kernels for the convolutional denoisers (diffusers UNet2DModel, src/diffusers/models/resnet.py and
 * attention_processor.py): im2col convolution with reused scratch and zero-copy GEMMs, GroupNorm fused with the
 * ResNet scale-shift and SiLU, multi-head self-attention on the token layout, and the small layout ops around them.
 * Every kernel has a slow twin in {@link Ops} (or a composition of Ops) that the tests compare it with.
 * Results do not depend on the thread count.
 */
public final class ConvOps {
    private ConvOps() {}

    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final int EW_CHUNK = 1 << 14;
    /** Images are grouped into one im2col/GEMM until the GEMM has about this many columns. */
    private static final int TARGET_COLS = 2048;

    // ------------------------------------------------------------------ scratch

    private static final int SLOT_COL = 0, SLOT_TMP = 1, SLOT_ATT = 2;
    private static final ThreadLocal<float[][]> SCRATCH = ThreadLocal.withInitial(() -> new float[3][]);

    /** A per-thread buffer of at least n floats; contents undefined. Never escapes a kernel. */
    private static float[] scratch(int slot, int n) {
        float[][] s = SCRATCH.get();
        float[] a = s[slot];
        if (a == null || a.length < n) {
            a = new float[n];
            s[slot] = a;
        }
        return a;
    }

    // ------------------------------------------------------------------ convolution

    /**
     * 2-D convolution, NCHW, weight [O, C, kh, kw], bias [O] (nullable), square stride, symmetric zero padding.
     * Same contract and results (up to GEMM summation order) as {@link Ops#conv2d}.
     */
    public static Tensor conv2d(Tensor x, Tensor w, Tensor b, int stride, int padding) {
        if (x.rank() != 4) throw new IllegalArgumentException("conv2d: input must be NCHW, got " + Arrays.toString(x.shape()));
        if (w.rank() != 4 || w.dim(1) != x.dim(1)) throw new IllegalArgumentException(
                "conv2d: input has " + x.dim(1) + " channels but weight is " + Arrays.toString(w.shape()));
        if (stride < 1 || padding < 0) throw new IllegalArgumentException("conv2d: stride " + stride + ", padding " + padding);
        int n = x.dim(0), c = x.dim(1), h = x.dim(2), wd = x.dim(3);
        int o = w.dim(0), kh = w.dim(2), kw = w.dim(3);
        if (b != null && b.size() != o) throw new IllegalArgumentException("conv2d: bias of " + b.size() + " for " + o + " filters");
        int ho = (h + 2 * padding - kh) / stride + 1, wo = (wd + 2 * padding - kw) / stride + 1;
        if (h + 2 * padding < kh || wd + 2 * padding < kw) throw new IllegalArgumentException(
                "conv2d: input " + Arrays.toString(x.shape()) + " smaller than the kernel " + kh + "x" + kw);
        Tensor y = Tensor.zeros(n, o, ho, wo);
        int hw = ho * wo;
        if (n == 0 || o == 0 || hw == 0) return y;
        float[] xd = x.data(), yd = y.data(), wdat = w.data();
        Blas blas = Blas.get();
        if (kh == 1 && kw == 1 && stride == 1 && padding == 0) {
            for (int i = 0; i < n; i++)
                blas.sgemm(false, false, o, hw, c, 1f, wdat, 0, c, xd, i * c * hw, hw, 0f, yd, i * o * hw, hw);
        } else {
            int kdim = c * kh * kw;
            int g = Math.max(1, Math.min(n, TARGET_COLS / hw));
            float[] col = scratch(SLOT_COL, kdim * g * hw);
            float[] tmp = g > 1 ? scratch(SLOT_TMP, o * g * hw) : null;
            for (int i0 = 0; i0 < n; i0 += g) {
                int gi = Math.min(g, n - i0), cols = gi * hw;
                im2col(xd, i0, gi, c, h, wd, kh, kw, stride, padding, ho, wo, col);
                if (gi == 1) {
                    blas.sgemm(false, false, o, hw, kdim, 1f, wdat, 0, kdim, col, 0, hw, 0f, yd, i0 * o * hw, hw);
                } else {
                    blas.sgemm(false, false, o, cols, kdim, 1f, wdat, 0, kdim, col, 0, cols, 0f, tmp, 0, cols);
                    final int first = i0;
                    Parallel.forRange(o, Math.max(1, EW_CHUNK / cols), (o0, o1) -> {
                        for (int oc = o0; oc < o1; oc++)
                            for (int i = 0; i < gi; i++)
                                System.arraycopy(tmp, oc * cols + i * hw, yd, ((first + i) * o + oc) * hw, hw);
                    });
                }
            }
        }
        if (b != null) Ops.addChannelBias(y, b);
        return y;
    }

    /** col[(ci, ki, kj), (img, oy, ox)] for images [i0, i0 + gi): every element is written. */
    private static void im2col(float[] xd, int i0, int gi, int c, int h, int wd, int kh, int kw, int stride, int pad,
                               int ho, int wo, float[] col) {
        int hw = ho * wo, cols = gi * hw, kk = kh * kw;
        Parallel.forRange(c * kk, Math.max(1, 4096 / cols), (r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                int ci = r / kk, rem = r % kk, ki = rem / kw, kj = rem % kw;
                int rowOff = r * cols;
                // valid output columns for this kernel column (stride 1): ix = ox - pad + kj in [0, wd)
                int ox0 = Math.max(0, pad - kj), ox1 = Math.min(wo, wd + pad - kj);
                for (int img = 0; img < gi; img++) {
                    int xo = ((i0 + img) * c + ci) * h * wd;
                    int co = rowOff + img * hw;
                    for (int oy = 0; oy < ho; oy++) {
                        int iy = oy * stride - pad + ki;
                        int base = co + oy * wo;
                        if (iy < 0 || iy >= h) { Arrays.fill(col, base, base + wo, 0f); continue; }
                        int xrow = xo + iy * wd;
                        if (stride == 1) {
                            if (ox1 <= ox0) { Arrays.fill(col, base, base + wo, 0f); continue; }
                            if (ox0 > 0) Arrays.fill(col, base, base + ox0, 0f);
                            System.arraycopy(xd, xrow + ox0 - pad + kj, col, base + ox0, ox1 - ox0);
                            if (ox1 < wo) Arrays.fill(col, base + ox1, base + wo, 0f);
                        } else {
                            for (int ox = 0; ox < wo; ox++) {
                                int ix = ox * stride - pad + kj;
                                col[base + ox] = ix < 0 || ix >= wd ? 0f : xd[xrow + ix];
                            }
                        }
                    }
                }
            }
        });
    }

    /** Zero padding of NCHW: top, bottom, left, right (diffusers' Downsample2D pads (0, 1, 0, 1) when padding = 0). */
    public static Tensor pad(Tensor x, int top, int bottom, int left, int right) {
        if (x.rank() != 4) throw new IllegalArgumentException("pad: input must be NCHW, got " + Arrays.toString(x.shape()));
        if (top < 0 || bottom < 0 || left < 0 || right < 0) throw new IllegalArgumentException("pad: negative padding");
        int n = x.dim(0), c = x.dim(1), h = x.dim(2), w = x.dim(3), h2 = h + top + bottom, w2 = w + left + right;
        Tensor y = Tensor.zeros(n, c, h2, w2);
        float[] xd = x.data(), yd = y.data();
        Parallel.forRange(n * c, Math.max(1, EW_CHUNK / Math.max(1, h * w)), (r0, r1) -> {
            for (int r = r0; r < r1; r++)
                for (int i = 0; i < h; i++)
                    System.arraycopy(xd, r * h * w + i * w, yd, r * h2 * w2 + (i + top) * w2 + left, w);
        });
        return y;
    }

    // ------------------------------------------------------------------ normalisation + activation

    /**
     * GroupNorm on NCHW fused with the ResNet time conditioning and SiLU:
     * {@code y = act(((x - mean_g) * rstd_g * gamma_c + beta_c) * (1 + scale[n, c]) + shift[n, c])}, where
     * {@code scaleShift} [N, 2C] holds scale in its first C columns and shift in the next C (diffusers'
     * {@code torch.chunk(temb, 2, dim=1)}), or is null. Statistics as {@link Ops#groupNorm} (biased variance).
     */
    public static Tensor groupNormAct(Tensor x, int groups, Tensor gamma, Tensor beta, float eps, Tensor scaleShift,
                                      boolean silu) {
        if (x.rank() < 2) throw new IllegalArgumentException("groupNorm: input must be [N, C, ...], got " + Arrays.toString(x.shape()));
        int n = x.dim(0), c = x.dim(1);
        if (groups < 1 || c % groups != 0) throw new IllegalArgumentException("groupNorm: " + c + " channels not divisible by " + groups + " groups");
        if (gamma != null && gamma.size() != c || beta != null && beta.size() != c) throw new IllegalArgumentException(
                "groupNorm: affine parameters do not have " + c + " channels");
        if (scaleShift != null && scaleShift.size() != n * 2 * c) throw new IllegalArgumentException(
                "groupNorm: scale/shift " + Arrays.toString(scaleShift.shape()) + " for input " + Arrays.toString(x.shape()));
        Tensor y = Tensor.zeros(x.shape());
        if (x.size() == 0) return y;
        int inner = x.size() / (n * c), cg = c / groups, gsize = cg * inner;
        float[] xd = x.data(), yd = y.data();
        float[] g = gamma == null ? null : gamma.data(), bt = beta == null ? null : beta.data();
        float[] ss = scaleShift == null ? null : scaleShift.data();
        Parallel.forRange(n * groups, 1, (r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                int o = r * gsize, g0 = (r % groups) * cg, img = r / groups;
                double mean = sum(xd, o, gsize) / gsize;
                float mf = (float) mean;
                double var = sumSqDev(xd, o, gsize, mf) / gsize;
                float inv = (float) (1.0 / Math.sqrt(var + eps));
                for (int ci = 0; ci < cg; ci++) {
                    int ch = g0 + ci;
                    float gg = g == null ? 1f : g[ch], bb = bt == null ? 0f : bt[ch];
                    float a = inv * gg, sh = bb - mf * a;
                    if (ss != null) {
                        float s1 = 1f + ss[img * 2 * c + ch];
                        a *= s1;
                        sh = sh * s1 + ss[img * 2 * c + c + ch];
                    }
                    int co = o + ci * inner;
                    affineAct(xd, yd, co, inner, a, sh, silu);
                }
            }
        });
        return y;
    }

    /** y[o..o+len) = act(x * a + b). */
    private static void affineAct(float[] x, float[] y, int o, int len, float a, float b, boolean silu) {
        int i = 0, up = F.loopBound(len);
        FloatVector va = FloatVector.broadcast(F, a), vb = FloatVector.broadcast(F, b);
        if (silu) {
            for (; i < up; i += F.length()) {
                FloatVector v = FloatVector.fromArray(F, x, o + i).fma(va, vb);
                v.div(v.neg().lanewise(VectorOperators.EXP).add(1f)).intoArray(y, o + i);
            }
            for (; i < len; i++) y[o + i] = Ops.silu(x[o + i] * a + b);
        } else {
            for (; i < up; i += F.length()) FloatVector.fromArray(F, x, o + i).fma(va, vb).intoArray(y, o + i);
            for (; i < len; i++) y[o + i] = x[o + i] * a + b;
        }
    }

    /** Sum in float vector lanes over blocks of 1024 elements, blocks accumulated in double. */
    private static double sum(float[] x, int o, int len) {
        double total = 0;
        for (int b0 = 0; b0 < len; b0 += 1024) {
            int bl = Math.min(1024, len - b0), i = 0, up = F.loopBound(bl);
            FloatVector acc = FloatVector.zero(F);
            for (; i < up; i += F.length()) acc = acc.add(FloatVector.fromArray(F, x, o + b0 + i));
            double s = acc.reduceLanes(VectorOperators.ADD);
            for (; i < bl; i++) s += x[o + b0 + i];
            total += s;
        }
        return total;
    }

    private static double sumSqDev(float[] x, int o, int len, float mean) {
        double total = 0;
        FloatVector vm = FloatVector.broadcast(F, mean);
        for (int b0 = 0; b0 < len; b0 += 1024) {
            int bl = Math.min(1024, len - b0), i = 0, up = F.loopBound(bl);
            FloatVector acc = FloatVector.zero(F);
            for (; i < up; i += F.length()) {
                FloatVector d = FloatVector.fromArray(F, x, o + b0 + i).sub(vm);
                acc = d.fma(d, acc);
            }
            double s = acc.reduceLanes(VectorOperators.ADD);
            for (; i < bl; i++) { float d = x[o + b0 + i] - mean; s += d * d; }
            total += s;
        }
        return total;
    }

    /** SiLU x * sigmoid(x), vectorised; same formula as {@link Ops#silu(float)}. */
    public static Tensor silu(Tensor x) {
        Tensor y = Tensor.zeros(x.shape());
        float[] xd = x.data(), yd = y.data();
        Parallel.forRange(xd.length, EW_CHUNK, (a, b) -> affineAct(xd, yd, a, b - a, 1f, 0f, true));
        return y;
    }

    /**
     * The ResNet scale-shift conditioning alone: y[n, c] = x[n, c] * (1 + ss[n, c]) + ss[n, C + c]
     * (the slow twin of the fused path in {@link #groupNormAct}).
     */
    public static Tensor scaleShift(Tensor x, Tensor ss) {
        int n = x.dim(0), c = x.dim(1), inner = x.size() / Math.max(1, n * c);
        if (ss.size() != n * 2 * c) throw new IllegalArgumentException(
                "scaleShift: " + Arrays.toString(ss.shape()) + " for input " + Arrays.toString(x.shape()));
        Tensor y = Tensor.zeros(x.shape());
        float[] xd = x.data(), yd = y.data(), sd = ss.data();
        Parallel.forRange(n * c, Math.max(1, EW_CHUNK / Math.max(1, inner)), (r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                int img = r / c, ch = r % c, o = r * inner;
                float s1 = 1f + sd[img * 2 * c + ch], sh = sd[img * 2 * c + c + ch];
                for (int j = 0; j < inner; j++) yd[o + j] = xd[o + j] * s1 + sh;
            }
        });
        return y;
    }

    // ------------------------------------------------------------------ element-wise

    /** In place: dst = (dst + src) / divisor (diffusers' {@code (input_tensor + hidden_states) / output_scale_factor}). */
    public static void residualAddInPlace(Tensor dst, Tensor src, float divisor) {
        if (!dst.sameShape(src)) throw new IllegalArgumentException("residual add: shapes " + Arrays.toString(dst.shape())
                + " and " + Arrays.toString(src.shape()) + " differ");
        float[] d = dst.data(), s = src.data();
        boolean div = divisor != 1f;
        Parallel.forRange(d.length, EW_CHUNK, (a, b) -> {
            int i = a, up = a + F.loopBound(b - a);
            for (; i < up; i += F.length()) {
                FloatVector v = FloatVector.fromArray(F, d, i).add(FloatVector.fromArray(F, s, i));
                (div ? v.div(divisor) : v).intoArray(d, i);
            }
            for (; i < b; i++) d[i] = div ? (d[i] + s[i]) / divisor : d[i] + s[i];
        });
    }

    /** y = x * a + b element-wise, computed as two roundings like PyTorch's {@code a * x + b}. */
    public static Tensor affine(Tensor x, float a, float b) {
        Tensor y = Tensor.zeros(x.shape());
        float[] xd = x.data(), yd = y.data();
        Parallel.forRange(xd.length, EW_CHUNK, (p, q) -> { for (int i = p; i < q; i++) yd[i] = (a * xd[i]) + b; });
        return y;
    }

    /** y[n, ...] = x[n, ...] / d[n]. */
    public static Tensor divPerSample(Tensor x, float[] d) {
        int n = x.dim(0);
        if (d.length != n) throw new IllegalArgumentException("divPerSample: " + d.length + " divisors for batch " + n);
        Tensor y = Tensor.zeros(x.shape());
        int inner = x.size() / Math.max(1, n);
        float[] xd = x.data(), yd = y.data();
        for (int i = 0; i < n; i++) for (int j = 0; j < inner; j++) yd[i * inner + j] = xd[i * inner + j] / d[i];
        return y;
    }

    // ------------------------------------------------------------------ layout

    /** [B, R, C] -> [B, C, R] (e.g. NCHW viewed as [N, C, HW] to tokens [N, HW, C] and back), cache-blocked. */
    public static Tensor transposeLast2(Tensor x) {
        if (x.rank() != 3) throw new IllegalArgumentException("transposeLast2: expected rank 3, got " + Arrays.toString(x.shape()));
        int bsz = x.dim(0), r = x.dim(1), c = x.dim(2);
        Tensor y = Tensor.zeros(bsz, c, r);
        float[] xd = x.data(), yd = y.data();
        final int tile = 32;
        int tr = (r + tile - 1) / tile, tc = (c + tile - 1) / tile;
        Parallel.forRange(bsz * tr, Math.max(1, EW_CHUNK / Math.max(1, tile * c)), (t0, t1) -> {
            for (int t = t0; t < t1; t++) {
                int bi = t / tr, i0 = (t % tr) * tile, i1 = Math.min(r, i0 + tile);
                int xo = bi * r * c, yo = bi * c * r;
                for (int jt = 0; jt < tc; jt++) {
                    int j0 = jt * tile, j1 = Math.min(c, j0 + tile);
                    for (int i = i0; i < i1; i++)
                        for (int j = j0; j < j1; j++) yd[yo + j * r + i] = xd[xo + i * c + j];
                }
            }
        });
        return y;
    }

    // ------------------------------------------------------------------ attention

    /**
     * Multi-head self-attention on the token layout, as diffusers' AttnProcessor:
     * q [N, T, heads*d], k/v [N, S, heads*d] -> softmax(q_h k_h^T * scale) v_h, result [N, T, heads*d].
     * Head h is the column block [h*d, (h+1)*d). Fast twin of {@link #attentionScores} + softmax + {@link #attentionValues}.
     */
    public static Tensor multiHeadAttention(Tensor q, Tensor k, Tensor v, int heads, float scale) {
        int[] dims = checkAttention(q, k, v, heads);
        int n = dims[0], t = dims[1], s = dims[2], inner = dims[3], d = inner / heads;
        Tensor out = Tensor.zeros(n, t, inner);
        float[] qd = q.data(), kd = k.data(), vd = v.data(), od = out.data();
        float[] p = scratch(SLOT_ATT, t * s);
        Blas blas = Blas.get();
        for (int i = 0; i < n; i++) {
            for (int h = 0; h < heads; h++) {
                int qo = i * t * inner + h * d, ko = i * s * inner + h * d;
                blas.sgemm(false, true, t, s, d, scale, qd, qo, inner, kd, ko, inner, 0f, p, 0, s);
                softmaxRows(p, 0, t, s);
                blas.sgemm(false, false, t, d, s, 1f, p, 0, s, vd, ko, inner, 0f, od, qo, inner);
            }
        }
        return out;
    }

    /** Attention logits per head: [N, heads, T, S] = q_h k_h^T * scale (explicit path; see {@link #multiHeadAttention}). */
    public static Tensor attentionScores(Tensor q, Tensor k, int heads, float scale) {
        int[] dims = checkAttention(q, k, k, heads);
        int n = dims[0], t = dims[1], s = dims[2], inner = dims[3], d = inner / heads;
        Tensor sc = Tensor.zeros(n, heads, t, s);
        float[] qd = q.data(), kd = k.data(), sd = sc.data();
        Blas blas = Blas.get();
        for (int i = 0; i < n; i++)
            for (int h = 0; h < heads; h++)
                blas.sgemm(false, true, t, s, d, scale, qd, i * t * inner + h * d, inner, kd, i * s * inner + h * d, inner,
                        0f, sd, (i * heads + h) * t * s, s);
        return sc;
    }

    /** Weighted values per head: probabilities [N, heads, T, S], v [N, S, heads*d] -> [N, T, heads*d]. */
    public static Tensor attentionValues(Tensor probs, Tensor v, int heads) {
        if (probs.rank() != 4 || v.rank() != 3 || probs.dim(0) != v.dim(0) || probs.dim(1) != heads || probs.dim(3) != v.dim(1)
                || v.dim(2) % heads != 0) throw new IllegalArgumentException("attentionValues: probabilities "
                + Arrays.toString(probs.shape()) + " and values " + Arrays.toString(v.shape()) + " with " + heads + " heads");
        int n = v.dim(0), t = probs.dim(2), s = v.dim(1), inner = v.dim(2), d = inner / heads;
        Tensor out = Tensor.zeros(n, t, inner);
        float[] pd = probs.data(), vd = v.data(), od = out.data();
        Blas blas = Blas.get();
        for (int i = 0; i < n; i++)
            for (int h = 0; h < heads; h++)
                blas.sgemm(false, false, t, d, s, 1f, pd, (i * heads + h) * t * s, s, vd, i * s * inner + h * d, inner,
                        0f, od, i * t * inner + h * d, inner);
        return out;
    }

    private static int[] checkAttention(Tensor q, Tensor k, Tensor v, int heads) {
        if (q.rank() != 3 || k.rank() != 3 || v.rank() != 3 || heads < 1 || q.dim(2) % heads != 0
                || k.dim(2) != q.dim(2) || v.dim(2) != q.dim(2) || k.dim(0) != q.dim(0) || v.dim(0) != q.dim(0)
                || v.dim(1) != k.dim(1)) throw new IllegalArgumentException("attention: q " + Arrays.toString(q.shape())
                + ", k " + Arrays.toString(k.shape()) + ", v " + Arrays.toString(v.shape()) + " with " + heads + " heads");
        return new int[] {q.dim(0), q.dim(1), k.dim(1), q.dim(2)};
    }

    /** Softmax over the last dimension (vectorised twin of {@link Ops#softmax}). */
    public static Tensor softmax(Tensor x) {
        Tensor y = x.copy();
        int c = x.dim(-1);
        if (c > 0) softmaxRows(y.data(), 0, y.size() / c, c);
        return y;
    }

    static void softmaxRows(float[] s, int off, int rows, int c) {
        Parallel.forRange(rows, Math.max(1, EW_CHUNK / c), (r0, r1) -> {
            int up = F.loopBound(c);
            for (int r = r0; r < r1; r++) {
                int o = off + r * c, j = 0;
                FloatVector vmx = FloatVector.broadcast(F, Float.NEGATIVE_INFINITY);
                for (; j < up; j += F.length()) vmx = vmx.max(FloatVector.fromArray(F, s, o + j));
                float mx = vmx.reduceLanes(VectorOperators.MAX);
                for (; j < c; j++) mx = Math.max(mx, s[o + j]);
                FloatVector vm = FloatVector.broadcast(F, mx), acc = FloatVector.zero(F);
                j = 0;
                for (; j < up; j += F.length()) {
                    FloatVector e = FloatVector.fromArray(F, s, o + j).sub(vm).lanewise(VectorOperators.EXP);
                    e.intoArray(s, o + j);
                    acc = acc.add(e);
                }
                float sum = acc.reduceLanes(VectorOperators.ADD);
                for (; j < c; j++) { float e = (float) Math.exp(s[o + j] - mx); s[o + j] = e; sum += e; }
                float inv = 1f / sum;
                j = 0;
                for (; j < up; j += F.length()) FloatVector.fromArray(F, s, o + j).mul(inv).intoArray(s, o + j);
                for (; j < c; j++) s[o + j] *= inv;
            }
        });
    }

    // ------------------------------------------------------------------ embeddings

    /**
     * diffusers' GaussianFourierProjection (log = True, flip_sin_to_cos = False): x = log(t);
     * p = x * w * 2 * pi; result [N, 2D] = [sin(p), cos(p)]. t must be positive (noise levels).
     */
    public static Tensor fourierEmbedding(float[] t, Tensor w) {
        int d = w.size();
        Tensor y = Tensor.zeros(t.length, 2 * d);
        float[] wd = w.data(), yd = y.data();
        float pi = (float) Math.PI;
        for (int i = 0; i < t.length; i++) {
            if (!(t[i] > 0f)) throw new IllegalArgumentException("fourier time embedding needs positive timesteps (noise levels), got " + t[i]);
            float lx = (float) Math.log(t[i]);
            for (int j = 0; j < d; j++) {
                float p = lx * wd[j] * 2f * pi;
                yd[i * 2 * d + j] = (float) Math.sin(p);
                yd[i * 2 * d + d + j] = (float) Math.cos(p);
            }
        }
        return y;
    }
}
