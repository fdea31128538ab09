package io.diffquant.engine.backend.cpu;

import io.diffquant.engine.quant.format.Granularity;
import io.diffquant.engine.quant.format.IntFormat;
import io.diffquant.engine.quant.format.QuantizedTensor;
import io.diffquant.engine.tensor.NativeThreads;
import io.diffquant.engine.tensor.Parallel;
import io.diffquant.engine.tensor.Tensor;
import io.diffquant.engine.tensor.TransformerOps;

import java.util.Arrays;

/**
 * A Linear layer packed for W8A8 integer execution (LLM.int8()/SmoothQuant-style "dynamic per-token activation x
 * per-channel weight" scaling, ALGORITHMS.md §3-§4): the weight's symmetric INT codes as int8 levels [out, in] and one
 * FP32 step per output row (per channel, or the per-tensor step repeated), packed once. A forward call
 * <ol>
 *   <li>quantizes each input row (token) to int8 with its own step Δ_a = absmax(row) / qmax (dynamic per token), or with
 *       a given fixed step (static per tensor), rounding exactly as the engine's fake quantization does (round half to
 *       even of x / Δ_a, ties of the float quotient redone in double: the codes are identical);</li>
 *   <li>runs oneDNN's s8 x s8 -> s32 GEMM ({@link Int8Gemm});</li>
 *   <li>dequantizes and adds the bias in one pass: y = acc * (Δ_a[row] * Δ_w[col]) + b[col].</li>
 * </ol>
 * Rows are processed in blocks (quantize, GEMM, dequantize while the block is in cache), spread over the engine's pool
 * with each GEMM single-threaded when there are enough rows. Immutable after packing; forward is thread-safe.
 */
public final class Int8Linear {
    private static final float MAGIC = 12582912f;        // 1.5 * 2^23: (q + MAGIC) - MAGIC rounds half to even for |q| < 2^22
    /** Rows quantized, multiplied and dequantized together (GEMMs of this height keep the int8 kernels fastest here). */
    static final int ROW_BLOCK = 128;
    /** Below this many rows per worker a call stays on the caller thread (oneDNN may still use its own threads). */
    static final int MIN_PARALLEL_ROWS = 128;

    private final String name;
    private final int in, out;
    private final byte[] weight;       // [out, in] int8 levels
    private final float[] weightStep;  // [out]
    private final float[] bias;        // [out] or null
    private final int aqmin, aqmax;

    private static final ThreadLocal<Scratch> SCRATCH = ThreadLocal.withInitial(Scratch::new);

    /** Per-thread buffers grown on demand: int8 rows, their steps, the s32 accumulators, one output row. */
    private static final class Scratch {
        byte[] a = new byte[0];
        float[] steps = new float[0];
        int[] acc = new int[0];
        float[] row = new float[0], xr = new float[0], gr = new float[0];

        byte[] a(int n) { if (a.length < n) a = new byte[n]; return a; }
        float[] steps(int n) { if (steps.length < n) steps = new float[n]; return steps; }
        int[] acc(int n) { if (acc.length < n) acc = new int[n]; return acc; }
        float[] row(int n) {
            if (row.length < n) { row = new float[n]; xr = new float[n]; gr = new float[n]; }
            return row;
        }
    }

    /**
     * DiT's gated residual {@code x + gate * y} applied to this layer's output y while it is dequantized: x [N, T, out]
     * (row-major, rows = tokens), gate = columns gate .. gate + out of row n of mod [N, md].
     */
    record Residual(float[] x, float[] mod, int t, int md, int gate) {
        /** Validated against the tensors of {@code TransformerOps.gatedResidual(x, y, mod, chunks, gateChunk, ..)}. */
        static Residual of(String layer, int out, int rows, Tensor x, Tensor mod, int chunks, int gateChunk) {
            if (x.rank() != 3 || x.dim(2) != out || x.dim(0) * x.dim(1) != rows) throw new IllegalArgumentException("layer '" + layer
                    + "': residual " + Arrays.toString(x.shape()) + " does not fit " + rows + " output rows of " + out + " features");
            if (mod.rank() != 2 || mod.dim(0) != x.dim(0) || mod.dim(1) != chunks * out || gateChunk < 0 || gateChunk >= chunks)
                throw new IllegalArgumentException("layer '" + layer + "': modulation " + Arrays.toString(mod.shape()) + " with gate chunk "
                        + gateChunk + " of " + chunks + " does not fit the residual " + Arrays.toString(x.shape()));
            return new Residual(x.data(), mod.data(), x.dim(1), chunks * out, gateChunk * out);
        }
    }

    private Int8Linear(String name, int in, int out, byte[] weight, float[] weightStep, float[] bias, IntFormat input) {
        this.name = name;
        this.in = in;
        this.out = out;
        this.weight = weight;
        this.weightStep = weightStep;
        this.bias = bias;
        this.aqmin = input.qmin();
        this.aqmax = input.qmax();
    }

    /** Null when a weight quantization can be packed (symmetric INT, per channel or per tensor, [out, in]), else why not. */
    public static String unsupportedWeight(QuantizedTensor w) {
        if (!(w.format() instanceof IntFormat f) || !symmetric(f)) return "weight format " + w.format().id() + " is not symmetric INT";
        if (!(w.granularity() instanceof Granularity.PerChannel) && !(w.granularity() instanceof Granularity.PerTensor))
            return "weight granularity " + w.granularity().id() + " is not per channel or per tensor";
        if (w.shape().length != 2) return "weight shape " + Arrays.toString(w.shape()) + " is not [out, in]";
        return null;
    }

    /** Null when input activations in this format can be quantized to int8 here (symmetric INT), else why not. */
    public static String unsupportedInput(IntFormat f) {
        return symmetric(f) ? null : "input format " + f.id() + " is not symmetric INT";
    }

    private static boolean symmetric(IntFormat f) {
        return f.kind() == IntFormat.Kind.SYMMETRIC || f.kind() == IntFormat.Kind.SYMMETRIC_FULL;
    }

    /**
     * Packs a quantized weight [out, in] (codes and steps as the fake quantization uses them) and a bias.
     * @param name  the layer, for error messages
     * @param bias  [out] or null (copied)
     * @param input the input-activation format (symmetric INT, at most 8 bits)
     * @throws IllegalArgumentException naming the layer when the weight or the input format is not supported
     */
    public static Int8Linear pack(String name, QuantizedTensor weightCodes, Tensor bias, IntFormat input) {
        String why = unsupportedWeight(weightCodes);
        if (why == null) why = unsupportedInput(input);
        if (why != null) throw new IllegalArgumentException("layer '" + name + "': cannot run on int8 kernels: " + why);
        int[] s = weightCodes.shape();
        int out = s[0], in = s[1];
        if (bias != null && bias.size() != out) throw new IllegalArgumentException("layer '" + name + "': bias of " + bias.size()
                + " values for " + out + " outputs");
        IntFormat f = (IntFormat) weightCodes.format();
        byte[] codes = weightCodes.codes();
        byte[] w = new byte[codes.length];
        for (int i = 0; i < codes.length; i++) w[i] = (byte) f.levelOfCode(codes[i] & 0xFF);
        float[] step = new float[out];
        boolean perTensor = weightCodes.granularity() instanceof Granularity.PerTensor;
        for (int r = 0; r < out; r++) step[r] = weightCodes.params().scale(perTensor ? 0 : r);
        return new Int8Linear(name, in, out, w, step, bias == null ? null : bias.data().clone(), input);
    }

    public String name() { return name; }
    public int in() { return in; }
    public int out() { return out; }

    /** Bytes held: int8 weight, FP32 steps and bias. */
    public long packedBytes() { return weight.length + 4L * weightStep.length + (bias == null ? 0 : 4L * bias.length); }

    /** {@link #forward(Tensor, float)} with dynamic per-token steps. */
    public Tensor forward(Tensor x) { return forward(x, Float.NaN); }

    /**
     * y = x W^T + b computed in int8: x [.., in] -> y [.., out].
     * @param inputStep the fixed input step Δ_a (static per-tensor quantization), or NaN for dynamic per-token steps
     * @throws IllegalArgumentException naming the layer for a wrong input width or, where the int8 path cannot represent
     *         it, a non-finite input (fake quantization would produce NaN there)
     */
    public Tensor forward(Tensor x, float inputStep) {
        return forward(x, inputStep, null, null, 0, 0);
    }

    /**
     * {@code residual + gate * (x W^T + b)}, DiT's gated residual fused into the dequantization: bit-identical to
     * {@code TransformerOps.gatedResidual(residual, forward(x, inputStep), mod, chunks, gateChunk, true)}.
     * @param residual [N, T, out] (not modified), mod [N, chunks * out] with the gate in chunk gateChunk
     */
    public Tensor forwardGatedResidual(Tensor x, float inputStep, Tensor residual, Tensor mod, int chunks, int gateChunk) {
        if (residual == null || mod == null) throw new IllegalArgumentException("layer '" + name + "': gated residual needs the residual and the modulation");
        return forward(x, inputStep, residual, mod, chunks, gateChunk);
    }

    private Tensor forward(Tensor x, float inputStep, Tensor residual, Tensor mod, int chunks, int gateChunk) {
        if (x.rank() < 1 || x.dim(-1) != in) throw new IllegalArgumentException("layer '" + name + "': input " + Arrays.toString(x.shape())
                + " does not end in the " + in + " input features of its int8 weight");
        if (!Float.isNaN(inputStep) && !(inputStep >= 0 && inputStep < Float.POSITIVE_INFINITY))
            throw new IllegalArgumentException("layer '" + name + "': input step " + inputStep + " must be finite and >= 0");
        int m = x.size() / Math.max(1, in);
        Residual res = residual == null ? null : Residual.of(name, out, m, residual, mod, chunks, gateChunk);
        int[] s = res != null ? residual.shape() : x.shape();
        s[s.length - 1] = out;
        Tensor y = Tensor.zeros(s);
        if (m == 0) return y;
        float[] xd = x.data(), yd = y.data();
        if (Parallel.threads() > 1 && m >= 2 * MIN_PARALLEL_ROWS && NativeThreads.available()) {
            Parallel.forRange(m, MIN_PARALLEL_ROWS, (r0, r1) -> NativeThreads.singleThreaded(() -> rows(xd, yd, r0, r1, inputStep, res)));
        } else {
            rows(xd, yd, 0, m, inputStep, res);
        }
        return y;
    }

    /** Per-thread buffers of the fused MLP: codes and steps of both layers, both accumulators, GELU rows. */
    private static final class MlpScratch {
        byte[] a1 = new byte[0], a2 = new byte[0];
        float[] s1 = new float[0], s2 = new float[0], pre = new float[0], act = new float[0], row = new float[0],
                xr = new float[0], gr = new float[0];
        int[] acc1 = new int[0], acc2 = new int[0], bits = new int[512];

        void size(int rows, int in1, int hid, int out2) {
            if (a1.length < rows * in1) a1 = new byte[rows * in1];
            if (a2.length < rows * hid) a2 = new byte[rows * hid];
            if (s1.length < rows) { s1 = new float[rows]; s2 = new float[rows]; }
            if (pre.length < hid) { pre = new float[hid]; act = new float[hid]; }
            if (row.length < out2) { row = new float[out2]; xr = new float[out2]; gr = new float[out2]; }
            if (acc1.length < rows * hid) acc1 = new int[rows * hid];
            if (acc2.length < rows * out2) acc2 = new int[rows * out2];
        }
    }

    private static final ThreadLocal<MlpScratch> MLP_SCRATCH = ThreadLocal.withInitial(MlpScratch::new);

    /**
     * DiT's MLP {@code fc2(gelu_tanh(fc1(x)))} (timm Mlp) with both layers in int8, fused per block of rows: fc1's s32
     * accumulators are dequantized (+ bias), passed through the tanh GELU and quantized to fc2's int8 input one row at a
     * time while the row is in cache, so the hidden activation never becomes a tensor. Every step uses the same float
     * operations as {@code fc2.forward(geluTanh(fc1.forward(x, step1)), step2)} ({@link TransformerOps#geluTanhRow}),
     * so the result is bit-identical to that.
     * @param step1 fc1's fixed input step, or NaN for dynamic per-token steps; step2 the same for fc2
     * @throws IllegalArgumentException naming the layer for a wrong width, layers that do not chain or non-finite inputs
     */
    public static Tensor mlpGeluTanh(Int8Linear fc1, Int8Linear fc2, Tensor x, float step1, float step2) {
        return mlp(fc1, fc2, x, step1, step2, null, null, 0, 0);
    }

    /**
     * {@code residual + gate * mlpGeluTanh(fc1, fc2, h, step1, step2)}: DiT's gated residual fused into fc2's
     * dequantization, bit-identical to {@code TransformerOps.gatedResidual(residual, mlpGeluTanh(..), mod, chunks, gateChunk, true)}.
     */
    public static Tensor mlpGeluTanhGatedResidual(Int8Linear fc1, Int8Linear fc2, Tensor h, float step1, float step2,
                                                  Tensor residual, Tensor mod, int chunks, int gateChunk) {
        if (residual == null || mod == null) throw new IllegalArgumentException("layer '" + fc2.name + "': gated residual needs the residual and the modulation");
        return mlp(fc1, fc2, h, step1, step2, residual, mod, chunks, gateChunk);
    }

    private static Tensor mlp(Int8Linear fc1, Int8Linear fc2, Tensor x, float step1, float step2, Tensor residual, Tensor mod,
                              int chunks, int gateChunk) {
        if (fc2.in != fc1.out) throw new IllegalArgumentException("layers '" + fc1.name + "' (" + fc1.out + " outputs) and '"
                + fc2.name + "' (" + fc2.in + " inputs) do not chain");
        if (x.rank() < 1 || x.dim(-1) != fc1.in) throw new IllegalArgumentException("layer '" + fc1.name + "': input "
                + Arrays.toString(x.shape()) + " does not end in the " + fc1.in + " input features of its int8 weight");
        for (Int8Linear l : new Int8Linear[] {fc1, fc2}) {
            float st = l == fc1 ? step1 : step2;
            if (!Float.isNaN(st) && !(st >= 0 && st < Float.POSITIVE_INFINITY))
                throw new IllegalArgumentException("layer '" + l.name + "': input step " + st + " must be finite and >= 0");
        }
        int m = x.size() / Math.max(1, fc1.in);
        Residual res = residual == null ? null : Residual.of(fc2.name, fc2.out, m, residual, mod, chunks, gateChunk);
        int[] s = res != null ? residual.shape() : x.shape();
        s[s.length - 1] = fc2.out;
        Tensor y = Tensor.zeros(s);
        if (m == 0) return y;
        float[] xd = x.data(), yd = y.data();
        if (Parallel.threads() > 1 && m >= 2 * MIN_PARALLEL_ROWS && NativeThreads.available()) {
            Parallel.forRange(m, MIN_PARALLEL_ROWS, (r0, r1) -> NativeThreads.singleThreaded(
                    () -> mlpRows(fc1, fc2, xd, yd, r0, r1, step1, step2, res)));
        } else {
            mlpRows(fc1, fc2, xd, yd, 0, m, step1, step2, res);
        }
        return y;
    }

    private static void mlpRows(Int8Linear fc1, Int8Linear fc2, float[] xd, float[] yd, int r0, int r1, float step1, float step2,
                                Residual res) {
        MlpScratch sc = MLP_SCRATCH.get();
        int hid = fc1.out;
        for (int b0 = r0; b0 < r1; b0 += ROW_BLOCK) {
            int rows = Math.min(ROW_BLOCK, r1 - b0);
            sc.size(rows, fc1.in, hid, fc2.out);
            fc1.quantize(xd, b0, rows, sc.a1, sc.s1, step1);
            Int8Gemm.gemm(rows, hid, fc1.in, sc.a1, fc1.weight, sc.acc1, hid);
            float[] ws = fc1.weightStep, b = fc1.bias, pre = sc.pre, act = sc.act;
            int[] acc = sc.acc1;
            for (int r = 0; r < rows; r++) {
                float st = sc.s1[r];
                int co = r * hid;
                if (b != null) {
                    for (int j = 0; j < hid; j++) pre[j] = acc[co + j] * (st * ws[j]) + b[j];
                } else {
                    for (int j = 0; j < hid; j++) pre[j] = acc[co + j] * (st * ws[j]);
                }
                TransformerOps.geluTanhRow(pre, act, hid, sc.bits);
                fc2.quantize(act, 0, 1, sc.a2, r, sc.s2, step2);
            }
            Int8Gemm.gemm(rows, fc2.out, hid, sc.a2, fc2.weight, sc.acc2, fc2.out);
            fc2.dequantize(sc.acc2, sc.s2, yd, b0, rows, sc.row, res, sc.xr, sc.gr);
        }
    }

    /** The int8 codes [rows, in] and steps [rows] that forward computes for x (for tests). */
    void quantizeInto(Tensor x, float inputStep, byte[] codes, float[] steps) {
        quantize(x.data(), 0, x.size() / in, codes, steps, inputStep);
    }

    private void rows(float[] xd, float[] yd, int r0, int r1, float inputStep, Residual res) {
        Scratch sc = SCRATCH.get();
        for (int b0 = r0; b0 < r1; b0 += ROW_BLOCK) {
            int rows = Math.min(ROW_BLOCK, r1 - b0);
            byte[] a = sc.a(rows * in);
            float[] steps = sc.steps(rows);
            int[] acc = sc.acc(rows * out);
            quantize(xd, b0, rows, a, steps, inputStep);
            Int8Gemm.gemm(rows, out, in, a, weight, acc, out);
            dequantize(acc, steps, yd, b0, rows, sc.row(out), res, sc.xr, sc.gr);
        }
    }

    /** Int8 codes of rows [b0, b0 + rows) into a, their steps into steps. */
    private void quantize(float[] xd, int b0, int rows, byte[] a, float[] steps, float fixed) {
        quantize(xd, b0, rows, a, 0, steps, fixed);
    }

    /** Int8 codes of rows [b0, b0 + rows) of xd into rows [a0, a0 + rows) of a, their steps into steps[a0 ..]. */
    private void quantize(float[] xd, int b0, int rows, byte[] a, int a0, float[] steps, float fixed) {
        boolean dynamic = Float.isNaN(fixed);
        for (int r = 0; r < rows; r++) {
            int xo = (b0 + r) * in, ao = (a0 + r) * in;
            float d;
            if (dynamic) {
                float amax = 0f;
                for (int i = 0; i < in; i++) amax = Math.max(amax, Math.abs(xd[xo + i]));
                if (!(amax <= Float.MAX_VALUE)) throw nonFinite(xd, xo, b0 + r);
                d = (float) ((double) amax / aqmax);      // IntFormat.paramsForRange of the row's [min, max]
            } else {
                // fake quantization clamps infinities to +-qmax (kept here) but gives NaN for NaN (refused here)
                float bad = 0f;
                for (int i = 0; i < in; i++) bad = Math.max(bad, xd[xo + i] - xd[xo + i]);
                if (bad != 0f) {
                    for (int i = 0; i < in; i++) if (Float.isNaN(xd[xo + i])) throw nonFinite(xd, xo, b0 + r);
                }
                d = fixed;
            }
            steps[a0 + r] = d;
            quantizeRow(xd, xo, a, ao, d, dynamic);
        }
    }

    /**
     * Codes of one row: round half to even of the exact quotient x / d, clamped, which is what the fake quantization's
     * INT kernel computes (ActivationKernels: float quotient x / d rounded, exact ties of the float quotient redone in
     * double), so the levels are identical. The float quotient is computed the same way here: rounding is monotonic and
     * half-integers are floats, so fl(x / d) rounds like x / d unless it lands exactly on a half-integer; those rows redo
     * their tied elements from the quotient in double. (|q - rint(q)| <= 1/2 is exact, so (int) (2 |q - r|) is 1 exactly
     * at a tie; the flag is an int OR, vectorized and reduced once after the loop.) An earlier version multiplied by
     * 1/d and had to redo every row with a quotient within 2^-13 of a half-integer, about half of the rows of a
     * 1536-wide layer, in a scalar loop. Inputs must be finite here (checked by the caller).
     */
    private void quantizeRow(float[] x, int xo, byte[] a, int ao, float d, boolean dynamic) {
        if (d == 0) {
            Arrays.fill(a, ao, ao + in, (byte) 0);
            return;
        }
        float lo = aqmin, hi = aqmax;
        int tie = 0;
        if (dynamic) {
            // |x| <= absmax = qmax d (up to d's rounding): |q| rounds to at most qmax: no clamp (it halves the loop's speed)
            for (int i = 0; i < in; i++) {
                float q = x[xo + i] / d;
                float r = (q + MAGIC) - MAGIC;
                tie |= (int) (Math.abs(q - r) * 2f);
                a[ao + i] = (byte) (int) r;
            }
        } else {
            for (int i = 0; i < in; i++) {
                float q = x[xo + i] / d;
                float r = (q + MAGIC) - MAGIC;
                tie |= (int) (Math.abs(q - r) * 2f);
                a[ao + i] = (byte) (int) Math.max(lo, Math.min(hi, r));
            }
        }
        if (tie != 0) {
            for (int i = 0; i < in; i++) {
                float v = x[xo + i], q = v / d, r = (q + MAGIC) - MAGIC;
                if ((int) (Math.abs(q - r) * 2f) == 0) continue;
                double t = Math.rint(v / (double) d);
                a[ao + i] = (byte) (t < aqmin ? aqmin : t > aqmax ? aqmax : t);
            }
        }
    }

    /**
     * y[row, j] = acc * (Δ_a[row] * Δ_w[j]) + b[j] for the block's rows, one row at a time through a scratch row
     * (stores and loads of float arrays at the same index vectorize; at different offsets C2 must assume aliasing).
     */
    private void dequantize(int[] acc, float[] steps, float[] yd, int b0, int rows, float[] tmp, Residual res, float[] xr, float[] gr) {
        float[] ws = weightStep, b = bias;
        for (int r = 0; r < rows; r++) {
            float s = steps[r];
            int co = r * out;
            if (b != null) {
                for (int j = 0; j < out; j++) tmp[j] = acc[co + j] * (s * ws[j]) + b[j];
            } else {
                for (int j = 0; j < out; j++) tmp[j] = acc[co + j] * (s * ws[j]);
            }
            if (res != null) {
                // x + gate * y with the same float operations as TransformerOps.gatedResidual (rows copied to same-index scratch)
                int row = b0 + r;
                System.arraycopy(res.x(), row * out, xr, 0, out);
                System.arraycopy(res.mod(), (row / res.t()) * res.md() + res.gate(), gr, 0, out);
                for (int j = 0; j < out; j++) tmp[j] = xr[j] + gr[j] * tmp[j];
            }
            System.arraycopy(tmp, 0, yd, (b0 + r) * out, out);
        }
    }

    private IllegalArgumentException nonFinite(float[] x, int xo, int row) {
        for (int i = 0; i < in; i++) if (!Float.isFinite(x[xo + i])) return new IllegalArgumentException("layer '" + name
                + "': input value " + x[xo + i] + " at token " + row + ", channel " + i + "; int8 execution needs finite inputs");
        return new IllegalArgumentException("layer '" + name + "': non-finite input at token " + row);
    }
}
