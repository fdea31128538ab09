package io.diffquant.engine.tensor;

/**
 * Backward rules of {@link Ops} (the chain rule per op, as in PyTorch's derivatives.yaml). Every rule ADDS
 * into the gradient buffers it gets from {@link Tape.Grads}; a null buffer means that input needs no
 * gradient. Reductions run over a fixed partition (per output element, sequentially), so gradients do not
 * depend on the thread count.
 */
final class OpsBackward {
    private OpsBackward() {}

    private static final int EW_CHUNK = 1 << 14;

    /** y += a x (y may be null: nothing to do). */
    static void axpy(float a, float[] x, float[] y) {
        if (y == null) return;
        if (y == x) { // a rule adding a buffer's gradient into itself (e.g. addInPlace(t, t))
            float f = 1f + a;
            Parallel.forRange(y.length, EW_CHUNK, (s, e) -> { for (int i = s; i < e; i++) y[i] *= f; });
            return;
        }
        Parallel.forRange(y.length, EW_CHUNK, (s, e) -> { for (int i = s; i < e; i++) y[i] += a * x[i]; });
    }

    /** g += gy * other (element-wise). */
    static void mulAcc(float[] gy, float[] other, float[] g) {
        if (g == null) return;
        Parallel.forRange(g.length, EW_CHUNK, (s, e) -> { for (int i = s; i < e; i++) g[i] += gy[i] * other[i]; });
    }

    static void fill(float[] g, float v) {
        if (g == null) return;
        for (int i = 0; i < g.length; i++) g[i] += v;
    }

    /** g += gy * f'(x). */
    static void elementwise(float[] gy, float[] g, float[] x, Ops.FloatUnary df) {
        if (g == null) return;
        Parallel.forRange(g.length, EW_CHUNK, (s, e) -> { for (int i = s; i < e; i++) g[i] += gy[i] * df.apply(x[i]); });
    }

    /** out[j] += sum over rows r of m[r * n + j] (double accumulation, parallel over columns). */
    static void columnSums(float[] m, int rows, int n, float[] out) {
        if (out == null) return;
        int colChunk = Math.max(1, Math.min(n, 64));
        Parallel.forRange(n, colChunk, (c0, c1) -> {
            double[] acc = new double[c1 - c0];
            for (int r = 0; r < rows; r++) {
                int o = r * n;
                for (int j = c0; j < c1; j++) acc[j - c0] += m[o + j];
            }
            for (int j = c0; j < c1; j++) out[j] += (float) acc[j - c0];
        });
    }

    static void linear(float[] gy, Tape.Grads g, Tensor x, Tensor w, Tensor b, int m, int in, int out) {
        if (m == 0) return;
        Blas blas = Blas.get();
        float[] gx = g.of(x), gw = g.of(w);
        // dX [m, in] += dY [m, out] W [out, in]
        if (gx != null) blas.sgemm(false, false, m, in, out, 1f, gy, 0, out, w.data(), 0, in, 1f, gx, 0, in);
        // dW [out, in] += dY^T [out, m] X [m, in]
        if (gw != null) blas.sgemm(true, false, out, in, m, 1f, gy, 0, out, x.data(), 0, in, 1f, gw, 0, in);
        if (b != null) columnSums(gy, m, out, g.of(b));
    }

    static void addRowVector(float[] gy, Tape.Grads g, Tensor v) {
        int n = v.size();
        columnSums(gy, gy.length / n, n, g.of(v));
    }

    /** gv[c] (or gv[n, c] when perSample) += sum over inner of gy[n, c, inner]. */
    static void channelSums(float[] gy, float[] gv, int nb, int c, int inner, boolean perSample) {
        if (gv == null) return;
        if (perSample) {
            Parallel.forRange(nb * c, Math.max(1, EW_CHUNK / Math.max(1, inner)), (r0, r1) -> {
                for (int r = r0; r < r1; r++) {
                    double s = 0;
                    int o = r * inner;
                    for (int j = 0; j < inner; j++) s += gy[o + j];
                    gv[r] += (float) s;
                }
            });
        } else {
            Parallel.forRange(c, 1, (c0, c1) -> {
                for (int ch = c0; ch < c1; ch++) {
                    double s = 0;
                    for (int i = 0; i < nb; i++) {
                        int o = (i * c + ch) * inner;
                        for (int j = 0; j < inner; j++) s += gy[o + j];
                    }
                    gv[ch] += (float) s;
                }
            });
        }
    }

    /** Images per im2col group of the convolution backward: about this many GEMM columns (bounds the scratch memory; tests lower it). */
    static int convGroupCols = 8192;

    /**
     * Convolution via im2col, in groups of images (in a fixed order: deterministic): dW += dY_g col_g^T,
     * dcol_g = W^T dY_g, then col2im into dX (parallel over input channels: race-free).
     */
    static void conv2d(float[] gy, Tape.Grads g, Tensor x, Tensor w, Tensor b, int stride, int padding) {
        int n = x.dim(0), c = x.dim(1), h = x.dim(2), wd = x.dim(3);
        int o = w.dim(0), kh = w.dim(2), kw = w.dim(3);
        int ho = (h + 2 * padding - kh) / stride + 1, wo = (wd + 2 * padding - kw) / stride + 1;
        int kdim = c * kh * kw, hw = ho * wo;
        float[] gx = g.of(x), gw = g.of(w), gb = b == null ? null : g.of(b);
        if (gb != null) channelSums(gy, gb, n, o, hw, false);
        if (gx == null && gw == null) return;
        if (n * hw == 0) return;
        Blas blas = Blas.get();
        float[] xd = x.data(), wdat = w.data();
        boolean pointwise = kh == 1 && kw == 1 && stride == 1 && padding == 0;
        int group = Math.max(1, Math.min(n, convGroupCols / Math.max(1, hw)));
        // dW accumulated transposed, [kdim, O] = col dY2^T: oneDNN is several times faster on this shape than on
        // dY2 col^T (small M and N, long K)
        float[] gwT = gw == null ? null : new float[kdim * o];
        for (int i0 = 0; i0 < n; i0 += group) {
            int gi = Math.min(group, n - i0), cols = gi * hw, first = i0;
            // dY of the group as [O, gi*HW]
            float[] gy2;
            int gyOff = 0;
            if (gi == 1) {
                gy2 = gy;
                gyOff = i0 * o * hw;
            } else {
                gy2 = new float[o * cols];
                Parallel.forRange(o, 1, (o0, o1) -> {
                    for (int oc = o0; oc < o1; oc++)
                        for (int img = 0; img < gi; img++)
                            System.arraycopy(gy, ((first + img) * o + oc) * hw, gy2, oc * cols + img * hw, hw);
                });
            }
            if (gw != null) {
                float[] col;
                int colOff = 0;
                if (pointwise && gi == 1) {
                    col = xd;
                    colOff = i0 * c * hw;
                } else {
                    col = Ops.im2col(xd, i0, gi, c, h, wd, kh, kw, stride, padding, ho, wo);
                }
                // dW^T [kdim, O] += col [kdim, cols] dY2^T [cols, O]
                blas.sgemm(false, true, kdim, o, cols, 1f, col, colOff, cols, gy2, gyOff, cols, 1f, gwT, 0, o);
            }
            if (gx != null) {
                float[] gcol = new float[kdim * cols];
                blas.sgemm(true, false, kdim, cols, o, 1f, wdat, 0, kdim, gy2, gyOff, cols, 0f, gcol, 0, cols);
                Parallel.forRange(c, 1, (c0, c1) -> {
                    for (int ci = c0; ci < c1; ci++)
                        for (int ki = 0; ki < kh; ki++)
                            for (int kj = 0; kj < kw; kj++) {
                                int rowOff = ((ci * kh + ki) * kw + kj) * cols;
                                for (int img = 0; img < gi; img++) {
                                    int xo = ((first + img) * c + ci) * h * wd, co = rowOff + img * hw;
                                    // stride 1: the valid output columns form one contiguous run (vectorisable)
                                    int ox0 = Math.max(0, padding - kj), ox1 = Math.min(wo, wd + padding - kj);
                                    for (int oy = 0; oy < ho; oy++) {
                                        int iy = oy * stride - padding + ki;
                                        if (iy < 0 || iy >= h) continue;
                                        int xrow = xo + iy * wd, base = co + oy * wo;
                                        if (stride == 1) {
                                            int shift = xrow - padding + kj - base;
                                            for (int q = base + ox0; q < base + ox1; q++) gx[q + shift] += gcol[q];
                                            continue;
                                        }
                                        for (int ox = 0; ox < wo; ox++) {
                                            int ix = ox * stride - padding + kj;
                                            if (ix >= 0 && ix < wd) gx[xrow + ix] += gcol[base + ox];
                                        }
                                    }
                                }
                            }
                });
            }
        }
        if (gwT != null) {
            Parallel.forRange(o, Math.max(1, EW_CHUNK / Math.max(1, kdim)), (o0, o1) -> {
                for (int oc = o0; oc < o1; oc++)
                    for (int k = 0; k < kdim; k++) gw[oc * kdim + k] += gwT[k * o + oc];
            });
        }
    }

    /** Scaled dot-product attention; the probabilities are recomputed (memory: one [T, Tk] block at a time). */
    static void attention(float[] gy, Tape.Grads g, Tensor q, Tensor k, Tensor v, float scale) {
        int b = q.dim(0), h = q.dim(1), t = q.dim(2), d = q.dim(3), tk = k.dim(2);
        float[] gq = g.of(q), gk = g.of(k), gv = g.of(v);
        if (gq == null && gk == null && gv == null) return;
        float[] qd = q.data(), kd = k.data(), vd = v.data();
        Blas blas = Blas.get();
        float[] qs = new float[t * d], ks = new float[tk * d], vs = new float[tk * d], dos = new float[t * d];
        float[] p = new float[t * tk], dp = new float[t * tk];
        float[] gqs = new float[t * d], gks = new float[tk * d], gvs = new float[tk * d];
        for (int bh = 0; bh < b * h; bh++) {
            System.arraycopy(qd, bh * t * d, qs, 0, t * d);
            System.arraycopy(kd, bh * tk * d, ks, 0, tk * d);
            System.arraycopy(vd, bh * tk * d, vs, 0, tk * d);
            System.arraycopy(gy, bh * t * d, dos, 0, t * d);
            blas.sgemm(false, true, t, tk, d, scale, qs, 0, d, ks, 0, d, 0f, p, 0, tk);
            Ops.softmaxRows(p, t, tk);
            if (gv != null) {
                // dV [tk, d] = P^T dO
                blas.sgemm(true, false, tk, d, t, 1f, p, 0, tk, dos, 0, d, 0f, gvs, 0, d);
                addInto(gv, bh * tk * d, gvs);
            }
            if (gq == null && gk == null) continue;
            // dP [t, tk] = dO V^T ; dS = P * (dP - rowsum(dP * P))
            blas.sgemm(false, true, t, tk, d, 1f, dos, 0, d, vs, 0, d, 0f, dp, 0, tk);
            for (int i = 0; i < t; i++) {
                int o = i * tk;
                double dot = 0;
                for (int j = 0; j < tk; j++) dot += (double) dp[o + j] * p[o + j];
                float df = (float) dot;
                for (int j = 0; j < tk; j++) dp[o + j] = p[o + j] * (dp[o + j] - df);
            }
            if (gq != null) { // dQ = scale dS K
                blas.sgemm(false, false, t, d, tk, scale, dp, 0, tk, ks, 0, d, 0f, gqs, 0, d);
                addInto(gq, bh * t * d, gqs);
            }
            if (gk != null) { // dK = scale dS^T Q
                blas.sgemm(true, false, tk, d, t, scale, dp, 0, tk, qs, 0, d, 0f, gks, 0, d);
                addInto(gk, bh * tk * d, gks);
            }
        }
    }

    private static void addInto(float[] dst, int off, float[] src) {
        for (int i = 0; i < src.length; i++) dst[off + i] += src[i];
    }

    /** y = softmax(x) rows of c: dx = y * (dy - sum(dy * y)). */
    static void softmax(float[] gy, float[] gx, float[] y, int c) {
        if (gx == null) return;
        int rows = y.length / c;
        Parallel.forRange(rows, Math.max(1, EW_CHUNK / c), (r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                int o = r * c;
                double dot = 0;
                for (int j = 0; j < c; j++) dot += (double) gy[o + j] * y[o + j];
                float df = (float) dot;
                for (int j = 0; j < c; j++) gx[o + j] += y[o + j] * (gy[o + j] - df);
            }
        });
    }

    /**
     * LayerNorm rows of c: with xhat and rstd from the forward, dxhat = dy * gamma,
     * dx = rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat)); dgamma = sum dy xhat, dbeta = sum dy.
     */
    static void layerNorm(float[] gy, Tape.Grads g, Tensor x, Tensor gamma, Tensor beta, float[] xhat, float[] rstd, int c) {
        int rows = xhat.length / c;
        float[] gx = g.of(x), gg = gamma == null ? null : g.of(gamma), gb = beta == null ? null : g.of(beta);
        float[] gam = gamma == null ? null : gamma.data();
        if (gb != null) columnSums(gy, rows, c, gb);
        if (gg != null) {
            Parallel.forRange(c, Math.max(1, Math.min(c, 64)), (c0, c1) -> {
                double[] acc = new double[c1 - c0];
                for (int r = 0; r < rows; r++) {
                    int o = r * c;
                    for (int j = c0; j < c1; j++) acc[j - c0] += (double) gy[o + j] * xhat[o + j];
                }
                for (int j = c0; j < c1; j++) gg[j] += (float) acc[j - c0];
            });
        }
        if (gx == null) return;
        Parallel.forRange(rows, Math.max(1, EW_CHUNK / c), (r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                int o = r * c;
                double s1 = 0, s2 = 0;
                for (int j = 0; j < c; j++) {
                    double dh = gam == null ? gy[o + j] : (double) gy[o + j] * gam[j];
                    s1 += dh;
                    s2 += dh * xhat[o + j];
                }
                double m1 = s1 / c, m2 = s2 / c, rs = rstd[r];
                for (int j = 0; j < c; j++) {
                    double dh = gam == null ? gy[o + j] : (double) gy[o + j] * gam[j];
                    gx[o + j] += (float) (rs * (dh - m1 - xhat[o + j] * m2));
                }
            }
        });
    }

    /** GroupNorm on [n, c, inner] with groups of c/groups channels; the LayerNorm rule per (sample, group). */
    static void groupNorm(float[] gy, Tape.Grads g, Tensor x, Tensor gamma, Tensor beta, float[] xhat, float[] rstd,
                          int n, int c, int groups, int inner) {
        float[] gx = g.of(x), gg = gamma == null ? null : g.of(gamma), gb = beta == null ? null : g.of(beta);
        float[] gam = gamma == null ? null : gamma.data();
        if (gb != null) channelSums(gy, gb, n, c, inner, false);
        if (gg != null) {
            Parallel.forRange(c, 1, (c0, c1) -> {
                for (int ch = c0; ch < c1; ch++) {
                    double s = 0;
                    for (int i = 0; i < n; i++) {
                        int o = (i * c + ch) * inner;
                        for (int j = 0; j < inner; j++) s += (double) gy[o + j] * xhat[o + j];
                    }
                    gg[ch] += (float) s;
                }
            });
        }
        if (gx == null) return;
        int cg = c / groups, gsize = cg * inner;
        Parallel.forRange(n * groups, 1, (r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                int o = r * gsize, ch0 = (r % groups) * cg;
                double s1 = 0, s2 = 0;
                for (int ci = 0; ci < cg; ci++) {
                    double gmul = gam == null ? 1.0 : gam[ch0 + ci];
                    int co = o + ci * inner;
                    for (int j = 0; j < inner; j++) {
                        double dh = gy[co + j] * gmul;
                        s1 += dh;
                        s2 += dh * xhat[co + j];
                    }
                }
                double m1 = s1 / gsize, m2 = s2 / gsize, rs = rstd[r];
                for (int ci = 0; ci < cg; ci++) {
                    double gmul = gam == null ? 1.0 : gam[ch0 + ci];
                    int co = o + ci * inner;
                    for (int j = 0; j < inner; j++) gx[co + j] += (float) (rs * (gy[co + j] * gmul - m1 - xhat[co + j] * m2));
                }
            }
        });
    }

    /** Copies channels [from, from + cs) of gy [n, ctot, inner] into (accumulates) g [n, cs, inner]. */
    static void channelSlice(float[] gy, float[] g, int n, int ctot, int from, int cs, int inner) {
        if (g == null) return;
        for (int i = 0; i < n; i++) {
            int yo = (i * ctot + from) * inner, go = i * cs * inner;
            for (int j = 0; j < cs * inner; j++) g[go + j] += gy[yo + j];
        }
    }

    static void upsample2x(float[] gy, float[] gx, int planes, int h, int w) {
        if (gx == null) return;
        Parallel.forRange(planes, 1, (r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                int xo = r * h * w, yo = r * 4 * h * w;
                for (int i = 0; i < h; i++)
                    for (int j = 0; j < w; j++) {
                        int y0 = yo + 2 * i * 2 * w + 2 * j;
                        gx[xo + i * w + j] += gy[y0] + gy[y0 + 1] + gy[y0 + 2 * w] + gy[y0 + 2 * w + 1];
                    }
            }
        });
    }
}
