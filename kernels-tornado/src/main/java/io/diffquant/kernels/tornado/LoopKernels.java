package io.diffquant.kernels.tornado;

import uk.ac.manchester.tornado.api.annotations.Parallel;
import uk.ac.manchester.tornado.api.math.TornadoMath;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.Int8Array;

/**
 * The loop (@Parallel) kernels of the quantized DiT forward pass (facebookresearch/DiT models.py DiTBlock; W8A8 as in
 * SmoothQuant's dynamic per-token activations, FP4 weights as FP4DiT and NVIDIA's NVFP4). Each method is valid Java and
 * runs on the plain JVM as written; TornadoVM compiles the same bytecode to OpenCL, mapping the @Parallel loops to the
 * global work grid. Every tuned {@link TunedKernels} kernel has its twin here.
 *
 * <p>Layouts: activations are row-major [rows, cols] (rows = tokens of all samples); weights are PyTorch's [out, in]
 * (Layout.WEIGHT); integer weight codes are the engine's codes as bytes (two's complement for the symmetric kinds, unsigned
 * with a per-group zero point for the asymmetric kind), 4-bit codes packed two per byte as engine PackedCodes (code i
 * in the low nibble of byte i/2 when i is even); per-group parameters are [out, groupsPerRow] with groups of {@code group}
 * consecutive input channels (per channel: group = in). Rounding is half-to-even on the exact quotient, like the engine:
 * kernels must be compiled without -cl-fast-relaxed-math (see {@link DeviceSettings#EXACT_FLAGS}).
 */
public final class LoopKernels {
    private LoopKernels() {}

    /** 1.5 * 2^23: (q + MAGIC) - MAGIC rounds q half to even when |q| < 2^22. */
    static final float MAGIC = 12582912f;

    // ------------------------------------------------------------------ activation quantization

    /**
     * Integer level of x / d rounded half to even on the exact quotient and clamped to [lo, hi]; 0 when d == 0 (as
     * IntFormat.encode: the whole group is 0). The float quotient is correctly rounded, so it can only hide the
     * direction of rounding when it lands exactly on a half-integer; then the exact quotient decides (in double).
     */
    public static int level(float x, float d, int lo, int hi) {
        int out = 0;
        if (d != 0f) {
            float t = x / d;
            float r = (t + MAGIC) - MAGIC;
            if (Math.abs(t - r) == 0.5f) {
                double e = (double) x / (double) d;
                double td = t;
                if (e > td) {
                    r = t + 0.5f;
                } else if (e < td) {
                    r = t - 0.5f;
                }
            }
            float c = Math.min(Math.max(r, (float) lo), (float) hi);
            out = (int) c;
        }
        return out;
    }

    /**
     * Dynamic per-token symmetric integer activations (the engine's int&lt;b&gt;-sym, granularity token, min-max ranges,
     * qmax = 2^(b-1) - 1, 127 for INT8): scale[r] = max|x[r, :]| / qmax, q = clamp(round(x / scale), -qmax, qmax).
     */
    public static void quantizeInt8PerToken(FloatArray x, Int8Array q, FloatArray scale, int rows, int cols, int qmax) {
        for (@Parallel int r = 0; r < rows; r++) {
            int o = r * cols;
            float amax = 0f;
            for (int k = 0; k < cols; k++) {
                amax = Math.max(amax, Math.abs(x.get(o + k)));
            }
            float d = amax / (float) qmax;
            scale.set(r, d);
            for (int k = 0; k < cols; k++) {
                q.set(o + k, (byte) level(x.get(o + k), d, -qmax, qmax));
            }
        }
    }

    /**
     * Static symmetric integer activations with one calibrated step d (the engine's int&lt;b&gt;-sym, granularity tensor,
     * static): every row gets scale[r] = d, q = clamp(round(x / d), qmin, qmax) (int8-sym: -127..127, int8-sym-full: -128..127).
     */
    public static void quantizeInt8Static(FloatArray x, Int8Array q, FloatArray scale, float d, int qmin, int qmax, int rows, int cols) {
        for (@Parallel int r = 0; r < rows; r++) {
            int o = r * cols;
            scale.set(r, d);
            for (int k = 0; k < cols; k++) {
                q.set(o + k, (byte) level(x.get(o + k), d, qmin, qmax));
            }
        }
    }

    // ------------------------------------------------------------------ GEMMs: y[r, o] = sum_k x[r, k] w[o, k] + bias[o]

    /** The FP32 reference path: y = x W^T + bias. */
    public static void gemmF32(FloatArray x, FloatArray w, FloatArray bias, FloatArray y, int rows, int in, int out) {
        for (@Parallel int r = 0; r < rows; r++) {
            for (@Parallel int o = 0; o < out; o++) {
                int xo = r * in;
                int wo = o * in;
                float acc = 0f;
                for (int k = 0; k < in; k++) {
                    acc += x.get(xo + k) * w.get(wo + k);
                }
                y.set(r * out + o, acc + bias.get(o));
            }
        }
    }

    /** Level of an 8-bit weight code: two's complement (symmetric) or unsigned (asymmetric, zero point applied later). */
    static int w8Level(Int8Array w, int i, int asym) {
        int c = w.get(i);
        if (asym != 0) {
            c = c & 0xFF;
        }
        return c;
    }

    /**
     * Level of a packed 4-bit weight code i: sign-extended (symmetric) or unsigned (asymmetric). The nibble is shifted to
     * the top of a signed int and back with an arithmetic shift. Not (b &amp; 0xFF) &gt;&gt; s then (c &lt;&lt; 28) &gt;&gt; 28:
     * TornadoVM 5.2's OpenCL backend types the zero-extended byte as uint and emits the final shift as a logical one, so
     * negative codes came out as 8..15 (seen on PoCL, checked with a one-task kernel and withPrintKernel).
     */
    static int w4Level(Int8Array w, int i, int asym) {
        int b = w.get(i >> 1);
        int c = (b << (28 - ((i & 1) << 2))) >> 28;
        if (asym != 0) {
            c = c & 0xF;
        }
        return c;
    }

    /**
     * W8A8: y[r, o] = sx[r] * sum_g sw[o, g] * sum_{k in g} xq[r, k] (wq[o, k] - z[o, g]) + bias[o], the integer dot per
     * group exact in int32, the per-group dequantization fused. zw holds the per-group zero points (unsigned bytes) when
     * asym != 0 and is not read otherwise.
     */
    public static void gemmW8A8(Int8Array xq, FloatArray sx, Int8Array wq, FloatArray sw, Int8Array zw, FloatArray bias,
                                FloatArray y, int rows, int in, int out, int group, int asym) {
        for (@Parallel int r = 0; r < rows; r++) {
            for (@Parallel int o = 0; o < out; o++) {
                int gpr = (in + group - 1) / group;
                int xo = r * in;
                int wo = o * in;
                float acc = 0f;
                for (int g = 0; g < gpr; g++) {
                    int k0 = g * group;
                    int k1 = Math.min(k0 + group, in);
                    int dot = 0;
                    int xs = 0;
                    for (int k = k0; k < k1; k++) {
                        int xv = xq.get(xo + k);
                        dot += xv * w8Level(wq, wo + k, asym);
                        xs += xv;
                    }
                    int z = 0;
                    if (asym != 0) {
                        z = zw.get(o * gpr + g) & 0xFF;
                    }
                    acc += (float) (dot - z * xs) * sw.get(o * gpr + g);
                }
                y.set(r * out + o, acc * sx.get(r) + bias.get(o));
            }
        }
    }

    /** W4A8: as {@link #gemmW8A8} with 4-bit weight codes packed two per byte (engine PackedCodes order). */
    public static void gemmW4A8(Int8Array xq, FloatArray sx, Int8Array wp, FloatArray sw, Int8Array zw, FloatArray bias,
                                FloatArray y, int rows, int in, int out, int group, int asym) {
        for (@Parallel int r = 0; r < rows; r++) {
            for (@Parallel int o = 0; o < out; o++) {
                int gpr = (in + group - 1) / group;
                int xo = r * in;
                int wo = o * in;
                float acc = 0f;
                for (int g = 0; g < gpr; g++) {
                    int k0 = g * group;
                    int k1 = Math.min(k0 + group, in);
                    int dot = 0;
                    int xs = 0;
                    for (int k = k0; k < k1; k++) {
                        int xv = xq.get(xo + k);
                        dot += xv * w4Level(wp, wo + k, asym);
                        xs += xv;
                    }
                    int z = 0;
                    if (asym != 0) {
                        z = zw.get(o * gpr + g) & 0xFF;
                    }
                    acc += (float) (dot - z * xs) * sw.get(o * gpr + g);
                }
                y.set(r * out + o, acc * sx.get(r) + bias.get(o));
            }
        }
    }

    /**
     * FP4 weights through a 16-entry lookup table, FP32 activations: y[r, o] = sum_g gs[o, g] * sum_{k in g} x[r, k]
     * lut[code[o, k]] + bias[o]. FP4DiT E2M1: lut = the code's value at bias 0 and gs = maxval / w_max; NVFP4: lut = the
     * E2M1 element value and gs = block scale * tensor scale, group 16 (engine CodeTables).
     */
    public static void gemmFp4Lut(FloatArray x, Int8Array wp, FloatArray lut, FloatArray gs, FloatArray bias, FloatArray y,
                                  int rows, int in, int out, int group) {
        for (@Parallel int r = 0; r < rows; r++) {
            for (@Parallel int o = 0; o < out; o++) {
                int gpr = (in + group - 1) / group;
                int xo = r * in;
                int wo = o * in;
                float acc = 0f;
                for (int g = 0; g < gpr; g++) {
                    int k0 = g * group;
                    int k1 = Math.min(k0 + group, in);
                    float part = 0f;
                    for (int k = k0; k < k1; k++) {
                        part += x.get(xo + k) * lut.get(w4Level(wp, wo + k, 1));
                    }
                    acc += part * gs.get(o * gpr + g);
                }
                y.set(r * out + o, acc + bias.get(o));
            }
        }
    }

    // ------------------------------------------------------------------ DiT block pieces

    /**
     * adaLN: y = LayerNorm(x) * (1 + scale) + shift over rows of d (non-affine LayerNorm, biased variance); shift and
     * scale are chunks of mod [samples, chunks * d], row r belonging to sample r / tokens (TransformerOps.layerNormModulate).
     * The sums use the engine's order (eight interleaved partial sums, combined pairwise) and 1 / sqrt in double as the
     * engine does, so on the JVM the result is bit-identical to the engine's and dynamic activation codes downstream agree.
     */
    public static void layerNormModulate(FloatArray x, FloatArray mod, FloatArray y, int rows, int tokens, int d, int chunks,
                                         int shiftChunk, int scaleChunk, float eps) {
        for (@Parallel int r = 0; r < rows; r++) {
            int o = r * d;
            int mo = (r / tokens) * chunks * d;
            float mean = rowSum8(x, o, d, 0f, 0) / d;
            float var = rowSum8(x, o, d, mean, 1) / d;
            float inv = (float) (1.0 / TornadoMath.sqrt((double) (var + eps)));
            int sh = mo + shiftChunk * d;
            int sc = mo + scaleChunk * d;
            for (int j = 0; j < d; j++) {
                y.set(o + j, ((x.get(o + j) - mean) * inv) * (1f + mod.get(sc + j)) + mod.get(sh + j));
            }
        }
    }

    /**
     * Sum of x[o .. o + n) (squares = 0) or of (x - mean)^2 (squares = 1) with eight interleaved partial sums combined
     * as ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7)), the order of the engine's TransformerOps.sum / sumSqDev.
     */
    static float rowSum8(FloatArray x, int o, int n, float mean, int squares) {
        float s0 = 0f;
        float s1 = 0f;
        float s2 = 0f;
        float s3 = 0f;
        float s4 = 0f;
        float s5 = 0f;
        float s6 = 0f;
        float s7 = 0f;
        int n8 = n - n % 8;
        for (int j = 0; j < n8; j += 8) {
            float v0 = x.get(o + j) - mean;
            float v1 = x.get(o + j + 1) - mean;
            float v2 = x.get(o + j + 2) - mean;
            float v3 = x.get(o + j + 3) - mean;
            float v4 = x.get(o + j + 4) - mean;
            float v5 = x.get(o + j + 5) - mean;
            float v6 = x.get(o + j + 6) - mean;
            float v7 = x.get(o + j + 7) - mean;
            if (squares != 0) {
                v0 = v0 * v0;
                v1 = v1 * v1;
                v2 = v2 * v2;
                v3 = v3 * v3;
                v4 = v4 * v4;
                v5 = v5 * v5;
                v6 = v6 * v6;
                v7 = v7 * v7;
            }
            s0 += v0;
            s1 += v1;
            s2 += v2;
            s3 += v3;
            s4 += v4;
            s5 += v5;
            s6 += v6;
            s7 += v7;
        }
        for (int j = n8; j < n; j++) {
            float v = x.get(o + j) - mean;
            if (squares != 0) {
                v = v * v;
            }
            s0 += v;
        }
        return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7));
    }

    /** DiT's gated residual in place: x += gate * y, gate = chunk gateChunk of mod [samples, chunks * d]. */
    public static void gatedResidual(FloatArray x, FloatArray y, FloatArray mod, int rows, int tokens, int d, int chunks, int gateChunk) {
        for (@Parallel int i = 0; i < rows * d; i++) {
            int r = i / d;
            int j = i - r * d;
            int g = (r / tokens) * chunks * d + gateChunk * d + j;
            x.set(i, x.get(i) + mod.get(g) * y.get(i));
        }
    }

    /** tanh-approximated GELU in place, 0.5 x (1 + tanh u) = x e / (e + 1), e = exp(2u), 2u clamped to [-87, 88]. */
    public static void geluTanh(FloatArray x, int n) {
        for (@Parallel int i = 0; i < n; i++) {
            float v = x.get(i);
            float u2 = (v * v * 0.044715f + 1f) * v * 1.5957691216057308f;
            float e = TornadoMath.exp(Math.min(Math.max(u2, -87f), 88f));
            x.set(i, v * (e / (e + 1f)));
        }
    }

    /** SiLU y = x sigmoid(x) = x / (1 + exp(-x)). */
    public static void silu(FloatArray x, FloatArray y, int n) {
        for (@Parallel int i = 0; i < n; i++) {
            float v = x.get(i);
            y.set(i, v / (1f + TornadoMath.exp(Math.min(-v, 88f))));
        }
    }

    /**
     * timm Attention without the projections: out[b, r, h*hd + e] = sum_j softmax_j(scale q_r . k_j) v_j[e], q, k, v read
     * from the qkv Linear output [b, tokens, 3, heads, hd]; scores is scratch of batch * heads * tokens * tokens floats.
     */
    public static void attention(FloatArray qkv, FloatArray scores, FloatArray out, int batch, int tokens, int heads, int hd, float scale) {
        for (@Parallel int bh = 0; bh < batch * heads; bh++) {
            for (@Parallel int r = 0; r < tokens; r++) {
                int b = bh / heads;
                int h = bh - b * heads;
                int c = heads * hd;
                int c3 = 3 * c;
                int base = b * tokens * c3 + h * hd;
                int qo = base + r * c3;
                int so = (bh * tokens + r) * tokens;
                float mx = -3.0e38f;
                for (int j = 0; j < tokens; j++) {
                    int ko = base + c + j * c3;
                    float s = 0f;
                    for (int e = 0; e < hd; e++) {
                        s += qkv.get(qo + e) * qkv.get(ko + e);
                    }
                    s = s * scale;
                    scores.set(so + j, s);
                    mx = Math.max(mx, s);
                }
                float z = 0f;
                for (int j = 0; j < tokens; j++) {
                    float p = TornadoMath.exp(scores.get(so + j) - mx);
                    scores.set(so + j, p);
                    z += p;
                }
                float inv = 1f / z;
                int oo = (b * tokens + r) * c + h * hd;
                for (int e = 0; e < hd; e++) {
                    float acc = 0f;
                    for (int j = 0; j < tokens; j++) {
                        acc += scores.get(so + j) * qkv.get(base + 2 * c + j * c3 + e);
                    }
                    out.set(oo + e, acc * inv);
                }
            }
        }
    }

    // ------------------------------------------------------------------ UNet convolutions as GEMMs

    /**
     * im2col for a 2-D convolution: x [n, c, h, w] to cols [n * oh * ow, c * kh * kw] (column order c, i, j: the flattened
     * conv weight [out, c * kh * kw] of Layout.WEIGHT), zero padding pad, stride s.
     */
    public static void im2col(FloatArray x, FloatArray cols, int n, int c, int h, int w, int kh, int kw, int pad, int s, int oh, int ow) {
        for (@Parallel int row = 0; row < n * oh * ow; row++) {
            int b = row / (oh * ow);
            int rem = row - b * oh * ow;
            int oy = rem / ow;
            int ox = rem - oy * ow;
            int k = c * kh * kw;
            for (int col = 0; col < k; col++) {
                int ch = col / (kh * kw);
                int r2 = col - ch * kh * kw;
                int i = r2 / kw;
                int j = r2 - i * kw;
                int iy = oy * s - pad + i;
                int ix = ox * s - pad + j;
                float v = 0f;
                if (iy >= 0 && iy < h && ix >= 0 && ix < w) {
                    v = x.get(((b * c + ch) * h + iy) * w + ix);
                }
                cols.set(row * k + col, v);
            }
        }
    }

    /** The GEMM output of a convolution [n * oh * ow, out] back to NCHW [n, out, oh, ow]. */
    public static void rowsToNchw(FloatArray y, FloatArray out, int n, int co, int oh, int ow) {
        for (@Parallel int i = 0; i < n * co * oh * ow; i++) {
            int b = i / (co * oh * ow);
            int rem = i - b * co * oh * ow;
            int ch = rem / (oh * ow);
            int p = rem - ch * oh * ow;
            out.set(i, y.get((b * oh * ow + p) * co + ch));
        }
    }
}
