package io.diffquant.kernels.tornado;

import uk.ac.manchester.tornado.api.KernelContext;
import uk.ac.manchester.tornado.api.math.TornadoMath;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.Int8Array;

/**
 * Tuned KernelContext kernels (work-group tiling and local-memory reductions, the CUDA/OpenCL textbook forms of
 * tiled GEMM and row reductions) for the hot paths of the quantized DiT block. Each has a loop twin in
 * {@link LoopKernels} with the same arguments after the context, and is tested against it on TornadoVM.
 *
 * <p>These run only under TornadoVM (KernelContext ids are 0 on the plain JVM). Launch geometry ({@link Launch}):
 * <ul>
 *   <li>GEMMs: 2-D, global (roundUp(out, TS), roundUp(rows, TS)), local (TS, TS); the K loop walks tiles of TS, so the
 *       weight group size must be a multiple of TS or at least the input width ({@link #tiledGroupOk}).</li>
 *   <li>Row kernels (quantize, LayerNorm): 1-D, one work-group of WG threads per row.</li>
 *   <li>Attention: 1-D, one work-group of WG threads per (sample, head, query token); tokens &lt;= MAX_T, head dim
 *       &lt;= MAX_HD.</li>
 * </ul>
 */
public final class TunedKernels {
    private TunedKernels() {}

    /** GEMM tile edge. */
    public static final int TS = 16;
    /**
     * Row pitch of the local weight tile, stored transposed (k-major) and padded by one: the inner loop reads
     * wt[kk * TP + lx], consecutive words across a warp's lanes (no bank conflicts), and the transposing store
     * wt[lx * TP + ly] hits distinct banks too.
     */
    static final int TP = TS + 1;
    /** Threads per work-group of the row and attention kernels (a power of two). */
    public static final int WG = 64;
    /** Largest token count of {@link #attention}. */
    public static final int MAX_T = 1024;
    /** Largest head dimension of {@link #attention}. */
    public static final int MAX_HD = 256;

    /** Whether the tiled GEMMs handle this group size: every K tile of TS must lie inside one group. */
    public static boolean tiledGroupOk(int group, int in) {
        return group >= in || group % TS == 0;
    }

    /** Whether {@link #attention} handles this shape. */
    public static boolean attentionOk(int tokens, int hd) {
        return tokens <= MAX_T && hd <= MAX_HD;
    }

    // ------------------------------------------------------------------ GEMMs

    /** Tiled twin of {@link LoopKernels#gemmF32}. */
    public static void gemmF32(KernelContext kc, FloatArray x, FloatArray w, FloatArray bias, FloatArray y, int rows, int in, int out) {
        int lx = kc.localIdx;
        int ly = kc.localIdy;
        int col = kc.groupIdx * TS + lx;
        int row = kc.groupIdy * TS + ly;
        int wr = kc.groupIdx * TS + ly;
        float[] xt = kc.allocateFloatLocalArray(TS * TS);
        float[] wt = kc.allocateFloatLocalArray(TS * TP);
        float acc = 0f;
        for (int k0 = 0; k0 < in; k0 += TS) {
            int k = k0 + lx;
            float xv = 0f;
            if (row < rows && k < in) {
                xv = x.get(row * in + k);
            }
            float wv = 0f;
            if (wr < out && k < in) {
                wv = w.get(wr * in + k);
            }
            xt[ly * TS + lx] = xv;
            wt[lx * TP + ly] = wv;
            kc.localBarrier();
            for (int kk = 0; kk < TS; kk++) {
                acc += xt[ly * TS + kk] * wt[kk * TP + lx];
            }
            kc.localBarrier();
        }
        if (row < rows && col < out) {
            y.set(row * out + col, acc + bias.get(col));
        }
    }

    /** Tiled twin of {@link LoopKernels#gemmW8A8}: zero points are subtracted while the weight tile is loaded. */
    public static void gemmW8A8(KernelContext kc, Int8Array xq, FloatArray sx, Int8Array wq, FloatArray sw, Int8Array zw,
                                FloatArray bias, FloatArray y, int rows, int in, int out, int group, int asym) {
        int lx = kc.localIdx;
        int ly = kc.localIdy;
        int col = kc.groupIdx * TS + lx;
        int row = kc.groupIdy * TS + ly;
        int wr = kc.groupIdx * TS + ly;
        int gpr = (in + group - 1) / group;
        // columns past the last output read the last column's scales (uniform control flow at the group flush;
        // their results are never stored): a flush guarded by col < out went wrong on PoCL in partial tiles
        int scol = Math.min(col, out - 1);
        int[] xt = kc.allocateIntLocalArray(TS * TS);
        int[] wt = kc.allocateIntLocalArray(TS * TP);
        float acc = 0f;
        int dot = 0;
        for (int k0 = 0; k0 < in; k0 += TS) {
            int k = k0 + lx;
            int xv = 0;
            if (row < rows && k < in) {
                xv = xq.get(row * in + k);
            }
            int wv = 0;
            if (wr < out && k < in) {
                wv = LoopKernels.w8Level(wq, wr * in + k, asym);
                if (asym != 0) {
                    wv = wv - (zw.get(wr * gpr + k / group) & 0xFF);
                }
            }
            xt[ly * TS + lx] = xv;
            wt[lx * TP + ly] = wv;
            kc.localBarrier();
            for (int kk = 0; kk < TS; kk++) {
                dot += xt[ly * TS + kk] * wt[kk * TP + lx];
            }
            kc.localBarrier();
            int kend = k0 + TS;
            if (kend >= in || kend % group == 0) {
                acc += (float) dot * sw.get(scol * gpr + k0 / group);
                dot = 0;
            }
        }
        if (row < rows && col < out) {
            y.set(row * out + col, acc * sx.get(row) + bias.get(col));
        }
    }

    /** Tiled twin of {@link LoopKernels#gemmW4A8}: 4-bit codes are unpacked while the weight tile is loaded. */
    public static void gemmW4A8(KernelContext kc, Int8Array xq, FloatArray sx, Int8Array wp, FloatArray sw, Int8Array zw,
                                FloatArray bias, FloatArray y, int rows, int in, int out, int group, int asym) {
        int lx = kc.localIdx;
        int ly = kc.localIdy;
        int col = kc.groupIdx * TS + lx;
        int row = kc.groupIdy * TS + ly;
        int wr = kc.groupIdx * TS + ly;
        int gpr = (in + group - 1) / group;
        // columns past the last output read the last column's scales (uniform control flow at the group flush;
        // their results are never stored): a flush guarded by col < out went wrong on PoCL in partial tiles
        int scol = Math.min(col, out - 1);
        int[] xt = kc.allocateIntLocalArray(TS * TS);
        int[] wt = kc.allocateIntLocalArray(TS * TP);
        float acc = 0f;
        int dot = 0;
        for (int k0 = 0; k0 < in; k0 += TS) {
            int k = k0 + lx;
            int xv = 0;
            if (row < rows && k < in) {
                xv = xq.get(row * in + k);
            }
            int wv = 0;
            if (wr < out && k < in) {
                wv = LoopKernels.w4Level(wp, wr * in + k, asym);
                if (asym != 0) {
                    wv = wv - (zw.get(wr * gpr + k / group) & 0xFF);
                }
            }
            xt[ly * TS + lx] = xv;
            wt[lx * TP + ly] = wv;
            kc.localBarrier();
            for (int kk = 0; kk < TS; kk++) {
                dot += xt[ly * TS + kk] * wt[kk * TP + lx];
            }
            kc.localBarrier();
            int kend = k0 + TS;
            if (kend >= in || kend % group == 0) {
                acc += (float) dot * sw.get(scol * gpr + k0 / group);
                dot = 0;
            }
        }
        if (row < rows && col < out) {
            y.set(row * out + col, acc * sx.get(row) + bias.get(col));
        }
    }

    /** Tiled twin of {@link LoopKernels#gemmFp4Lut}: the 16-entry table sits in local memory. */
    public static void gemmFp4Lut(KernelContext kc, FloatArray x, Int8Array wp, FloatArray lut, FloatArray gs, FloatArray bias,
                                  FloatArray y, int rows, int in, int out, int group) {
        int lx = kc.localIdx;
        int ly = kc.localIdy;
        int col = kc.groupIdx * TS + lx;
        int row = kc.groupIdy * TS + ly;
        int wr = kc.groupIdx * TS + ly;
        int gpr = (in + group - 1) / group;
        int scol = Math.min(col, out - 1);
        float[] xt = kc.allocateFloatLocalArray(TS * TS);
        float[] wt = kc.allocateFloatLocalArray(TS * TP);
        float[] table = kc.allocateFloatLocalArray(16);
        if (ly == 0) {
            table[lx] = lut.get(lx);
        }
        kc.localBarrier();
        float acc = 0f;
        float part = 0f;
        for (int k0 = 0; k0 < in; k0 += TS) {
            int k = k0 + lx;
            float xv = 0f;
            if (row < rows && k < in) {
                xv = x.get(row * in + k);
            }
            float wv = 0f;
            if (wr < out && k < in) {
                wv = table[LoopKernels.w4Level(wp, wr * in + k, 1)];
            }
            xt[ly * TS + lx] = xv;
            wt[lx * TP + ly] = wv;
            kc.localBarrier();
            for (int kk = 0; kk < TS; kk++) {
                part += xt[ly * TS + kk] * wt[kk * TP + lx];
            }
            kc.localBarrier();
            int kend = k0 + TS;
            if (kend >= in || kend % group == 0) {
                acc += part * gs.get(scol * gpr + k0 / group);
                part = 0f;
            }
        }
        if (row < rows && col < out) {
            y.set(row * out + col, acc + bias.get(col));
        }
    }

    // ------------------------------------------------------------------ row kernels

    /** Work-group twin of {@link LoopKernels#quantizeInt8PerToken}: the row absmax by a local-memory tree reduction. */
    public static void quantizeInt8PerToken(KernelContext kc, FloatArray x, Int8Array q, FloatArray scale, int rows, int cols, int qmax) {
        int r = kc.groupIdx;
        int l = kc.localIdx;
        float[] red = kc.allocateFloatLocalArray(WG);
        int o = r * cols;
        float m = 0f;
        for (int k = l; k < cols; k += WG) {
            m = Math.max(m, Math.abs(x.get(o + k)));
        }
        red[l] = m;
        kc.localBarrier();
        for (int s = WG / 2; s > 0; s >>= 1) {
            if (l < s) {
                red[l] = Math.max(red[l], red[l + s]);
            }
            kc.localBarrier();
        }
        float d = red[0] / (float) qmax;
        if (l == 0) {
            scale.set(r, d);
        }
        for (int k = l; k < cols; k += WG) {
            q.set(o + k, (byte) LoopKernels.level(x.get(o + k), d, -qmax, qmax));
        }
    }

    /** Work-group twin of {@link LoopKernels#layerNormModulate}: mean and variance by local-memory reductions. */
    public static void layerNormModulate(KernelContext kc, FloatArray x, FloatArray mod, FloatArray y, int rows, int tokens, int d,
                                         int chunks, int shiftChunk, int scaleChunk, float eps) {
        int r = kc.groupIdx;
        int l = kc.localIdx;
        float[] red = kc.allocateFloatLocalArray(WG);
        int o = r * d;
        float s = 0f;
        for (int j = l; j < d; j += WG) {
            s += x.get(o + j);
        }
        red[l] = s;
        kc.localBarrier();
        for (int st = WG / 2; st > 0; st >>= 1) {
            if (l < st) {
                red[l] = red[l] + red[l + st];
            }
            kc.localBarrier();
        }
        float mean = red[0] / d;
        kc.localBarrier();
        float v = 0f;
        for (int j = l; j < d; j += WG) {
            float t = x.get(o + j) - mean;
            v += t * t;
        }
        red[l] = v;
        kc.localBarrier();
        for (int st = WG / 2; st > 0; st >>= 1) {
            if (l < st) {
                red[l] = red[l] + red[l + st];
            }
            kc.localBarrier();
        }
        float var = red[0] / d;
        float inv = (float) (1.0 / TornadoMath.sqrt((double) (var + eps)));
        int mo = (r / tokens) * chunks * d;
        int sh = mo + shiftChunk * d;
        int sc = mo + scaleChunk * d;
        for (int j = l; j < d; j += WG) {
            y.set(o + j, ((x.get(o + j) - mean) * inv) * (1f + mod.get(sc + j)) + mod.get(sh + j));
        }
    }

    /**
     * Work-group twin of {@link LoopKernels#attention} (no scratch argument: the score row lives in local memory):
     * one work-group per (sample, head, query token), q cached locally, max and sum by tree reductions.
     */
    public static void attention(KernelContext kc, FloatArray qkv, FloatArray out, int batch, int tokens, int heads, int hd, float scale) {
        int gid = kc.groupIdx;
        int l = kc.localIdx;
        float[] p = kc.allocateFloatLocalArray(MAX_T);
        float[] qv = kc.allocateFloatLocalArray(MAX_HD);
        float[] red = kc.allocateFloatLocalArray(WG);
        int bh = gid / tokens;
        int r = gid - bh * tokens;
        int b = bh / heads;
        int h = bh - b * heads;
        int c = heads * hd;
        int c3 = 3 * c;
        int base = b * tokens * c3 + h * hd;
        int qo = base + r * c3;
        for (int e = l; e < hd; e += WG) {
            qv[e] = qkv.get(qo + e);
        }
        kc.localBarrier();
        float mx = -3.0e38f;
        for (int j = l; j < tokens; j += WG) {
            int ko = base + c + j * c3;
            float s = 0f;
            for (int e = 0; e < hd; e++) {
                s += qv[e] * qkv.get(ko + e);
            }
            s = s * scale;
            p[j] = s;
            mx = Math.max(mx, s);
        }
        red[l] = mx;
        kc.localBarrier();
        for (int st = WG / 2; st > 0; st >>= 1) {
            if (l < st) {
                red[l] = Math.max(red[l], red[l + st]);
            }
            kc.localBarrier();
        }
        float m = red[0];
        kc.localBarrier();
        float z = 0f;
        for (int j = l; j < tokens; j += WG) {
            float e = TornadoMath.exp(p[j] - m);
            p[j] = e;
            z += e;
        }
        red[l] = z;
        kc.localBarrier();
        for (int st = WG / 2; st > 0; st >>= 1) {
            if (l < st) {
                red[l] = red[l] + red[l + st];
            }
            kc.localBarrier();
        }
        float inv = 1f / red[0];
        int oo = (b * tokens + r) * c + h * hd;
        for (int e = l; e < hd; e += WG) {
            float acc = 0f;
            for (int j = 0; j < tokens; j++) {
                acc += p[j] * qkv.get(base + 2 * c + j * c3 + e);
            }
            out.set(oo + e, acc * inv);
        }
    }
}
