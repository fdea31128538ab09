package io.diffquant.engine.tensor;

/**
 * Backward rules of the fused kernels in {@link TransformerOps} (DiT) and {@link ConvOps} (UNet), derived by the
 * chain rule from the unfused compositions they replace (LayerNorm + modulate, GroupNorm + scale-shift + SiLU,
 * attention read from the qkv projection, ...). Same conventions as {@link OpsBackward}: rules add into the
 * buffers from {@link Tape.Grads}, null means no gradient wanted, reductions are thread-count independent.
 */
final class FusedOpsBackward {
    private FusedOpsBackward() {}

    private static final int EW_CHUNK = 1 << 14;

    // ------------------------------------------------------------------ DiT layout

    /** y[img, tok, j] = conv[img, j, tok] + pos[tok, j]. */
    static void patchTokens(float[] gy, float[] gconv, float[] gpos, int n, int t, int d) {
        if (gconv != null) {
            Parallel.forRange(n * d, Math.max(1, EW_CHUNK / Math.max(1, t)), (r0, r1) -> {
                for (int r = r0; r < r1; r++) {
                    int img = r / d, j = r % d, co = r * t;
                    for (int tok = 0; tok < t; tok++) gconv[co + tok] += gy[(img * t + tok) * d + j];
                }
            });
        }
        if (gpos != null) {
            Parallel.forRange(t, Math.max(1, EW_CHUNK / Math.max(1, d * n)), (t0, t1) -> {
                for (int tok = t0; tok < t1; tok++)
                    for (int img = 0; img < n; img++) {
                        int o = (img * t + tok) * d;
                        for (int j = 0; j < d; j++) gpos[tok * d + j] += gy[o + j];
                    }
            });
        }
    }

    /** Inverse of unpatchify's gather: gx[(img, hi, wi), (pi, qi, ch)] += gy[img, ch, hi*p + pi, wi*p + qi]. */
    static void unpatchify(float[] gy, float[] gx, int n, int t, int p, int c) {
        if (gx == null) return;
        int h = (int) Math.round(Math.sqrt(t)), hw = h * p, f = p * p * c;
        Parallel.forRange(n * c, 1, (r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                int img = r / c, ch = r % c, yo = r * hw * hw;
                for (int row = 0; row < hw; row++) {
                    int hi = row / p, pi = row % p;
                    for (int col = 0; col < hw; col++) {
                        int wi = col / p, qi = col % p;
                        gx[(img * t + hi * h + wi) * f + (pi * p + qi) * c + ch] += gy[yo + row * hw + col];
                    }
                }
            }
        });
    }

    /**
     * y = xhat (1 + scale) + shift per token row (xhat = LayerNorm(x) without affine, or x itself for plain
     * modulate when rstd is null); mod chunks [N, chunks*D].
     */
    static void modulate(float[] gy, float[] gx, float[] gmod, float[] xhat, float[] rstd, float[] mod,
                         int n, int t, int d, int chunks, int shiftChunk, int scaleChunk) {
        int md = chunks * d;
        if (gmod != null) {
            Parallel.forRange(n, 1, (i0, i1) -> {
                for (int img = i0; img < i1; img++) {
                    int sh = img * md + shiftChunk * d, sc = img * md + scaleChunk * d;
                    for (int tok = 0; tok < t; tok++) {
                        int o = (img * t + tok) * d;
                        for (int j = 0; j < d; j++) {
                            gmod[sh + j] += gy[o + j];
                            gmod[sc + j] += gy[o + j] * xhat[o + j];
                        }
                    }
                }
            });
        }
        if (gx == null) return;
        Parallel.forRange(n * t, Math.max(1, EW_CHUNK / d), (r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                int o = r * d, sc = (r / t) * md + scaleChunk * d;
                if (rstd == null) {
                    for (int j = 0; j < d; j++) gx[o + j] += gy[o + j] * (1f + mod[sc + j]);
                    continue;
                }
                double s1 = 0, s2 = 0;
                for (int j = 0; j < d; j++) {
                    double dh = (double) gy[o + j] * (1f + mod[sc + j]);
                    s1 += dh;
                    s2 += dh * xhat[o + j];
                }
                double m1 = s1 / d, m2 = s2 / d, rs = rstd[r];
                for (int j = 0; j < d; j++) {
                    double dh = (double) gy[o + j] * (1f + mod[sc + j]);
                    gx[o + j] += (float) (rs * (dh - m1 - xhat[o + j] * m2));
                }
            }
        });
    }

    /** out = x + gate * y per token row. */
    static void gatedResidual(float[] gout, float[] gx, float[] gy, float[] gmod, float[] y, float[] mod,
                              int n, int t, int d, int chunks, int gateChunk) {
        int md = chunks * d;
        OpsBackward.axpy(1f, gout, gx);
        if (gy != null) {
            Parallel.forRange(n * t, Math.max(1, EW_CHUNK / d), (r0, r1) -> {
                for (int r = r0; r < r1; r++) {
                    int o = r * d, g = (r / t) * md + gateChunk * d;
                    for (int j = 0; j < d; j++) gy[o + j] += gout[o + j] * mod[g + j];
                }
            });
        }
        if (gmod != null) {
            Parallel.forRange(n, 1, (i0, i1) -> {
                for (int img = i0; img < i1; img++) {
                    int g = img * md + gateChunk * d;
                    for (int tok = 0; tok < t; tok++) {
                        int o = (img * t + tok) * d;
                        for (int j = 0; j < d; j++) gmod[g + j] += gout[o + j] * y[o + j];
                    }
                }
            });
        }
    }

    /** In-place transform of the accumulator: g = g * f'(x_old), with the factors precomputed. */
    static void scaleInPlace(float[] g, float[] factor) {
        Parallel.forRange(g.length, EW_CHUNK, (s, e) -> { for (int i = s; i < e; i++) g[i] *= factor[i]; });
    }

    /** In-place softmax rows of c: g = y * (g - sum(g * y)). */
    static void softmaxInPlace(float[] g, float[] y, int c) {
        int rows = y.length / c;
        Parallel.forRange(rows, Math.max(1, EW_CHUNK / c), (r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                int o = r * c;
                double dot = 0;
                for (int j = 0; j < c; j++) dot += (double) g[o + j] * y[o + j];
                float df = (float) dot;
                for (int j = 0; j < c; j++) g[o + j] = y[o + j] * (g[o + j] - df);
            }
        });
    }

    // ------------------------------------------------------------------ attention

    /**
     * Backward of one attention head with strided operands: q rows at qd[qo + i*ldq], k/v rows at kd/vd with
     * ldk/ldv, output gradient rows at gy[go + i*ldo]; p is recomputed. Accumulates into gq, gk, gv (nullable)
     * at the same offsets/strides as the operands. dp and p are scratch [t, tk].
     */
    static void attentionHead(float[] qd, int qo, int ldq, float[] kd, int ko, int ldk, float[] vd, int vo, int ldv,
                              float[] gy, int go, int ldo, float[] gq, float[] gk, float[] gv,
                              int t, int tk, int d, float scale, float[] p, float[] dp) {
        Blas.get().sgemm(false, true, t, tk, d, scale, qd, qo, ldq, kd, ko, ldk, 0f, p, 0, tk);
        softmaxRowsSequential(p, t, tk);
        attentionHeadFromProbs(qd, qo, ldq, kd, ko, ldk, vd, vo, ldv, gy, go, ldo, gq, gk, gv, t, tk, d, scale, p, 0, dp);
    }

    /**
     * {@link #attentionHead} with the probabilities P [t, tk] given (saved by the forward) at p[po ...]; dp is
     * scratch [t, tk].
     */
    static void attentionHeadFromProbs(float[] qd, int qo, int ldq, float[] kd, int ko, int ldk, float[] vd, int vo, int ldv,
                                       float[] gy, int go, int ldo, float[] gq, float[] gk, float[] gv,
                                       int t, int tk, int d, float scale, float[] p, int po, float[] dp) {
        Blas blas = Blas.get();
        // dV [tk, d] += P^T dO
        if (gv != null) blas.sgemm(true, false, tk, d, t, 1f, p, po, tk, gy, go, ldo, 1f, gv, vo, ldv);
        if (gq == null && gk == null) return;
        // dP = dO V^T ; dS = P * (dP - rowsum(dP * P))
        blas.sgemm(false, true, t, tk, d, 1f, gy, go, ldo, vd, vo, ldv, 0f, dp, 0, tk);
        for (int i = 0; i < t; i++) {
            int o = i * tk, q = po + o;
            float df = dot(dp, o, p, q, tk);
            for (int j = 0; j < tk; j++) dp[o + j] = p[q + j] * (dp[o + j] - df);
        }
        if (gq != null) blas.sgemm(false, false, t, d, tk, scale, dp, 0, tk, kd, ko, ldk, 1f, gq, qo, ldq);
        if (gk != null) blas.sgemm(true, false, tk, d, t, scale, dp, 0, tk, qd, qo, ldq, 1f, gk, ko, ldk);
    }

    /** Softmax of rows of c, on the calling thread (the attention rules already run heads in parallel). */
    private static void softmaxRowsSequential(float[] s, int rows, int c) {
        for (int r = 0; r < rows; r++) {
            int o = r * c;
            float mx = Float.NEGATIVE_INFINITY;
            for (int j = 0; j < c; j++) mx = Math.max(mx, s[o + j]);
            float sum = 0f;
            for (int j = 0; j < c; j++) { float e = (float) Math.exp(s[o + j] - mx); s[o + j] = e; sum += e; }
            float inv = 1f / sum;
            for (int j = 0; j < c; j++) s[o + j] *= inv;
        }
    }

    /**
     * attentionFromQkv: qkv [B, T, 3C] (q | k | v, heads of d inside each), out [B, T, C]. The (batch, head) pairs
     * write disjoint column blocks of the gradient, so they run as parallel GEMM tasks (deterministic).
     */
    static void attentionFromQkv(float[] gy, float[] gqkv, float[] qkv, int b, int t, int c, int heads, float scale) {
        if (gqkv == null) return;
        int d = c / heads, c3 = 3 * c;
        TransformerOps.gemmTasks(b * heads, (i0, i1) -> {
            float[] p = new float[t * t], dp = new float[t * t];
            for (int i = i0; i < i1; i++) {
                int bi = i / heads, h = i % heads, base = bi * t * c3 + h * d;
                attentionHead(qkv, base, c3, qkv, base + c, c3, qkv, base + 2 * c, c3, gy, bi * t * c + h * d, c,
                        gqkv, gqkv, gqkv, t, t, d, scale, p, dp);
            }
        });
    }

    /** splitQkv output `which` [B, H, T, D] back into the qkv gradient [B, T, 3C]. */
    static void splitQkv(float[] gy, float[] gqkv, int which, int b, int t, int c, int heads) {
        if (gqkv == null) return;
        int d = c / heads, c3 = 3 * c;
        Parallel.forRange(b * t, Math.max(1, EW_CHUNK / c3), (r0, r1) -> {
            for (int row = r0; row < r1; row++) {
                int bi = row / t, ti = row % t;
                for (int h = 0; h < heads; h++) {
                    int src = ((bi * heads + h) * t + ti) * d, dst = row * c3 + which * c + h * d;
                    for (int j = 0; j < d; j++) gqkv[dst + j] += gy[src + j];
                }
            }
        });
    }

    /**
     * Scores s = scale q_i k_i^T for `count` matrices: q_i rows at qd[qOff(i) + r*ldq] (t x d), k_i at kd (tk x d),
     * ds_i = gy[i*t*tk ..] (t x tk).
     */
    static void scores(float[] gy, float[] gq, float[] gk, float[] qd, float[] kd, int count, int t, int tk, int d,
                       float scale, java.util.function.IntUnaryOperator qOff, int ldq,
                       java.util.function.IntUnaryOperator kOff, int ldk) {
        Blas blas = Blas.get();
        TransformerOps.gemmTasks(count, (i0, i1) -> {
          for (int i = i0; i < i1; i++) {
            int so = i * t * tk;
            if (gq != null) blas.sgemm(false, false, t, d, tk, scale, gy, so, tk, kd, kOff.applyAsInt(i), ldk, 1f, gq, qOff.applyAsInt(i), ldq);
            if (gk != null) blas.sgemm(true, false, tk, d, t, scale, gy, so, tk, qd, qOff.applyAsInt(i), ldq, 1f, gk, kOff.applyAsInt(i), ldk);
          }
        });
    }

    /**
     * out_i = p_i v_i for `count` matrices: p_i = pd[i*t*tk ..] (t x tk), v_i rows at vd[vOff(i) + r*ldv] (tk x d),
     * out_i rows at gy[oOff(i) + r*ldo].
     */
    static void apply(float[] gy, float[] gp, float[] gv, float[] pd, float[] vd, int count, int t, int tk, int d,
                      java.util.function.IntUnaryOperator vOff, int ldv, java.util.function.IntUnaryOperator oOff, int ldo) {
        Blas blas = Blas.get();
        TransformerOps.gemmTasks(count, (i0, i1) -> {
          for (int i = i0; i < i1; i++) {
            int po = i * t * tk;
            if (gp != null) blas.sgemm(false, true, t, tk, d, 1f, gy, oOff.applyAsInt(i), ldo, vd, vOff.applyAsInt(i), ldv, 1f, gp, po, tk);
            if (gv != null) blas.sgemm(true, false, tk, d, t, 1f, pd, po, tk, gy, oOff.applyAsInt(i), ldo, 1f, gv, vOff.applyAsInt(i), ldv);
          }
        });
    }

    /** CFG on [2M, C, HW]: guided channels of both halves = s cond + (1 - s) uncond; others pass through. */
    static void classifierFreeGuidance(float[] gy, float[] gx, int half, int c, int hw, int guided, float scale) {
        if (gx == null) return;
        for (int n = 0; n < 2 * half; n++)
            for (int ch = 0; ch < c; ch++) {
                int o = (n * c + ch) * hw;
                if (ch >= guided) { for (int j = 0; j < hw; j++) gx[o + j] += gy[o + j]; continue; }
                if (n >= half) continue; // handled with its conditional partner
                int u = ((n + half) * c + ch) * hw;
                for (int j = 0; j < hw; j++) {
                    float s = gy[o + j] + gy[u + j];
                    gx[o + j] += scale * s;
                    gx[u + j] += (1f - scale) * s;
                }
            }
    }

    // ------------------------------------------------------------------ UNet

    /**
     * y = act(z), z = u (1 + s[n, c]) + sh[n, c] (or z = u without scale-shift), u = xhat gamma + beta, xhat the
     * GroupNorm of x. Saved: x, mean and rstd per (sample, group); xhat = (x - mean) rstd is recomputed per block with the
     * forward's float operations (the same values).
     * <p>One task per (sample, group), two passes over its elements: dz = dy act'(z) into a scratch (act' with z
     * recomputed from xhat) with, per channel, A = sum dz and B = sum dz xhat; then dx. Everything else follows from
     * A and B: d shift = A, d scale = gamma B + beta A, d beta = (1 + s) A, d gamma = (1 + s) B summed over the samples in
     * order, and with dxhat = dz (1 + s) gamma, dx = rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat)) over the group.
     * Sums: float in blocks, blocks accumulated in double; independent of the thread count.
     */
    static void groupNormAct(float[] gy, Tape.Grads g, Tensor x, Tensor gamma, Tensor beta, Tensor scaleShift,
                             boolean silu, float[] means, float[] rstd, int n, int c, int groups, int inner) {
        float[] xd = x.data();
        float[] gx = g.of(x), gg = gamma == null ? null : g.of(gamma), gb = beta == null ? null : g.of(beta);
        float[] gss = scaleShift == null ? null : g.of(scaleShift);
        float[] gam = gamma == null ? null : gamma.data(), bet = beta == null ? null : beta.data();
        float[] ss = scaleShift == null ? null : scaleShift.data();
        int cg = c / groups, gsize = cg * inner;
        double[] sumA = new double[n * c], sumB = new double[n * c];
        Parallel.forRange(n * groups, 1, (r0, r1) -> {
            float[] dzs = silu ? new float[gsize] : null, es = new float[GN_BLK], xh = new float[GN_BLK];
            int[] bits = new int[GN_BLK];
            for (int r = r0; r < r1; r++) {
                int img = r / groups, ch0 = (r % groups) * cg, o = r * gsize;
                float mf = means[r], rsf = rstd[r];
                double m1 = 0, m2 = 0;
                for (int ci = 0; ci < cg; ci++) {
                    int ch = ch0 + ci, co = o + ci * inner;
                    float ga = gam == null ? 1f : gam[ch], be = bet == null ? 0f : bet[ch];
                    float s1 = ss == null ? 1f : 1f + ss[img * 2 * c + ch], sh = ss == null ? 0f : ss[img * 2 * c + c + ch];
                    double a = 0, b = 0;
                    for (int b0 = 0; b0 < inner; b0 += GN_BLK) {
                        int len = Math.min(GN_BLK, inner - b0), q = co + b0;
                        for (int i = 0; i < len; i++) xh[i] = (xd[q + i] - mf) * rsf;
                        float[] dz;
                        int dzo;
                        if (silu) {
                            dz = dzs;
                            dzo = ci * inner + b0;
                            float a1 = ga * s1, a0 = be * s1 + sh;
                            for (int i = 0; i < len; i++) es[i] = -(xh[i] * a1 + a0);
                            TransformerOps.expInPlace(es, 0, len, 0f, bits);
                            // silu'(z) = sg (1 + z (1 - sg)), sg = 1 / (1 + exp(-z)), z recomputed from xhat
                            for (int i = 0; i < len; i++) {
                                float z = xh[i] * a1 + a0, sg = 1f / (1f + es[i]);
                                dz[dzo + i] = gy[q + i] * (sg * (1f + z * (1f - sg)));
                            }
                        } else {
                            dz = gy;
                            dzo = q;
                        }
                        a += TransformerOps.sum(dz, dzo, len);
                        b += dot(dz, dzo, xh, 0, len);
                    }
                    sumA[img * c + ch] = a;
                    sumB[img * c + ch] = b;
                    if (gss != null) {
                        gss[img * 2 * c + ch] += (float) (ga * b + be * a);
                        gss[img * 2 * c + c + ch] += (float) a;
                    }
                    m1 += ga * s1 * a;
                    m2 += ga * s1 * b;
                }
                if (gx == null) continue;
                float rs = rstd[r], k1 = (float) (rs * m1 / gsize), k2 = (float) (rs * m2 / gsize);
                for (int ci = 0; ci < cg; ci++) {
                    int ch = ch0 + ci, co = o + ci * inner;
                    float ga = gam == null ? 1f : gam[ch], s1 = ss == null ? 1f : 1f + ss[img * 2 * c + ch];
                    float k0 = rs * s1 * ga;
                    float[] dz = silu ? dzs : gy;
                    int dzo = silu ? ci * inner : co;
                    for (int j = 0; j < inner; j++) gx[co + j] += k0 * dz[dzo + j] - k1 - k2 * ((xd[co + j] - mf) * rsf);
                }
            }
        });
        if (gb == null && gg == null) return;
        for (int ch = 0; ch < c; ch++) {
            double db = 0, dg = 0;
            for (int img = 0; img < n; img++) {
                double s1 = ss == null ? 1.0 : 1.0 + ss[img * 2 * c + ch];
                db += s1 * sumA[img * c + ch];
                dg += s1 * sumB[img * c + ch];
            }
            if (gb != null) gb[ch] += (float) db;
            if (gg != null) gg[ch] += (float) dg;
        }
    }

    /** Elements per block of the GroupNorm backward's activation scratch. */
    private static final int GN_BLK = 512;

    /** Dot product of a[ao ..+len) and b[bo ..+len) with eight float accumulators. */
    static float dot(float[] a, int ao, float[] b, int bo, int len) {
        float s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
        int j = 0;
        for (; j + 8 <= len; j += 8) {
            int p = ao + j, q = bo + j;
            s0 += a[p] * b[q]; s1 += a[p + 1] * b[q + 1]; s2 += a[p + 2] * b[q + 2]; s3 += a[p + 3] * b[q + 3];
            s4 += a[p + 4] * b[q + 4]; s5 += a[p + 5] * b[q + 5]; s6 += a[p + 6] * b[q + 6]; s7 += a[p + 7] * b[q + 7];
        }
        for (; j < len; j++) s0 += a[ao + j] * b[bo + j];
        return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7));
    }

    /** y = x (1 + s[n, c]) + sh[n, c]. */
    static void scaleShift(float[] gy, float[] gx, float[] gss, float[] x, float[] ss, int n, int c, int inner) {
        Parallel.forRange(n * c, Math.max(1, EW_CHUNK / Math.max(1, inner)), (r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                int img = r / c, ch = r % c, o = r * inner;
                float s1 = 1f + ss[img * 2 * c + ch];
                double dScale = 0, dShift = 0;
                for (int j = 0; j < inner; j++) {
                    if (gx != null) gx[o + j] += gy[o + j] * s1;
                    dScale += (double) gy[o + j] * x[o + j];
                    dShift += gy[o + j];
                }
                if (gss != null) {
                    gss[img * 2 * c + ch] += (float) dScale;
                    gss[img * 2 * c + c + ch] += (float) dShift;
                }
            }
        });
    }

    /** y = pad(x): gx = the interior of gy. */
    static void pad(float[] gy, float[] gx, int planes, int h, int w, int top, int left, int h2, int w2) {
        if (gx == null) return;
        Parallel.forRange(planes, Math.max(1, EW_CHUNK / Math.max(1, h * w)), (r0, r1) -> {
            for (int r = r0; r < r1; r++)
                for (int i = 0; i < h; i++) {
                    int xo = r * h * w + i * w, yo = r * h2 * w2 + (i + top) * w2 + left;
                    for (int j = 0; j < w; j++) gx[xo + j] += gy[yo + j];
                }
        });
    }

    /** y = transpose of the last two dims of x [B, R, C]: gx[b, i, j] += gy[b, j, i]. */
    static void transposeLast2(float[] gy, float[] gx, int bsz, int r, int c) {
        if (gx == null) return;
        Parallel.forRange(bsz * r, Math.max(1, EW_CHUNK / Math.max(1, c)), (q0, q1) -> {
            for (int q = q0; q < q1; q++) {
                int bi = q / r, i = q % r, xo = q * c, yo = bi * c * r + i;
                for (int j = 0; j < c; j++) gx[xo + j] += gy[yo + j * r];
            }
        });
    }
}
