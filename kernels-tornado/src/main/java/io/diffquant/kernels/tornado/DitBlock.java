package io.diffquant.kernels.tornado;

import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.Int8Array;

/**
 * One DiT block (facebookresearch/DiT models.py DiTBlock, adaLN-Zero) as a fixed sequence of kernels over buffers sized
 * for {@code samples} inputs of {@code tokens} tokens: mod = adaLN(silu c); h = LN(x)(1 + scale_msa) + shift_msa;
 * x += gate_msa * proj(attn(qkv(h))); h = LN(x)(1 + scale_mlp) + shift_mlp; x += gate_mlp * fc2(gelu(fc1(h))).
 * {@link #runJvm()} runs the sequence with the loop kernels on the plain JVM; {@link DeviceGraphs#block} builds the same
 * sequence as one TornadoVM task graph whose weights and intermediate activations stay on the device.
 *
 * <p>Inputs: {@link #x()} the hidden tokens [samples * tokens, hidden] (updated in place) and {@link #conditioning()}
 * silu(c) [samples, hidden], both filled by the caller.
 */
public final class DitBlock {
    public static final int CHUNKS = 6;

    final String name;
    final int samples, tokens, hidden, heads, headDim, mlp, rows;
    final float eps, attnScale;
    final PackedLinear adaLN, qkv, proj, fc1, fc2;
    final FloatArray x, cs, mod, h, qkvOut, scores, att, attOut, f, fOut, sx;
    final Int8Array xq;

    /**
     * @param x  the hidden-token buffer (may be shared between the blocks of a model: each block updates it in place)
     * @param cs the silu(c) buffer (may be shared likewise)
     */
    public DitBlock(String name, int samples, int tokens, int hidden, int heads, float eps, PackedLinear adaLN, PackedLinear qkv,
                    PackedLinear proj, PackedLinear fc1, PackedLinear fc2, FloatArray x, FloatArray cs) {
        if (samples < 1 || tokens < 1 || hidden < 1 || heads < 1 || hidden % heads != 0) throw new IllegalArgumentException(
                name + ": need samples, tokens, hidden >= 1 and hidden divisible by heads, got samples " + samples + ", tokens "
                        + tokens + ", hidden " + hidden + ", heads " + heads);
        this.name = name;
        this.samples = samples;
        this.tokens = tokens;
        this.hidden = hidden;
        this.heads = heads;
        this.headDim = hidden / heads;
        this.mlp = fc1.out();
        this.rows = samples * tokens;
        this.eps = eps;
        this.attnScale = (float) Math.pow(headDim, -0.5);
        expect(adaLN, hidden, CHUNKS * hidden);
        expect(qkv, hidden, 3 * hidden);
        expect(proj, hidden, hidden);
        expect(fc1, hidden, mlp);
        expect(fc2, mlp, hidden);
        this.adaLN = adaLN;
        this.qkv = qkv;
        this.proj = proj;
        this.fc1 = fc1;
        this.fc2 = fc2;
        if (x.getSize() != rows * hidden) throw new IllegalArgumentException(name + ": hidden buffer holds " + x.getSize()
                + " values, expected " + rows * hidden);
        if (cs.getSize() != samples * hidden) throw new IllegalArgumentException(name + ": conditioning buffer holds " + cs.getSize()
                + " values, expected " + samples * hidden);
        long scoreCount = (long) samples * heads * tokens * tokens;
        if (scoreCount > Integer.MAX_VALUE / 2) throw new IllegalArgumentException(name + ": " + samples + " x " + heads + " x "
                + tokens + "^2 attention scores exceed 32-bit indices");
        this.x = x;
        this.cs = cs;
        this.mod = new FloatArray(samples * CHUNKS * hidden);
        this.h = new FloatArray(rows * hidden);
        this.qkvOut = new FloatArray(rows * 3 * hidden);
        this.scores = new FloatArray((int) scoreCount);
        this.att = new FloatArray(rows * hidden);
        this.attOut = new FloatArray(rows * hidden);
        this.f = new FloatArray(rows * mlp);
        this.fOut = new FloatArray(rows * hidden);
        this.xq = new Int8Array(rows * Math.max(hidden, mlp));
        this.sx = new FloatArray(Math.max(rows, samples));
    }

    private void expect(PackedLinear l, int in, int out) {
        if (l.in() != in || l.out() != out) throw new IllegalArgumentException(name + ": layer '" + l.name() + "' is " + l.out()
                + "x" + l.in() + ", the block needs " + out + "x" + in);
    }

    public String name() { return name; }
    public int rows() { return rows; }
    public FloatArray x() { return x; }
    public FloatArray conditioning() { return cs; }

    /** The block with the loop kernels on the plain JVM. */
    public void runJvm() {
        Gemm.run(adaLN, cs, mod, samples, xq, sx);
        LoopKernels.layerNormModulate(x, mod, h, rows, tokens, hidden, CHUNKS, 0, 1, eps);
        Gemm.run(qkv, h, qkvOut, rows, xq, sx);
        LoopKernels.attention(qkvOut, scores, att, samples, tokens, heads, headDim, attnScale);
        Gemm.run(proj, att, attOut, rows, xq, sx);
        LoopKernels.gatedResidual(x, attOut, mod, rows, tokens, hidden, CHUNKS, 2);
        LoopKernels.layerNormModulate(x, mod, h, rows, tokens, hidden, CHUNKS, 3, 4, eps);
        Gemm.run(fc1, h, f, rows, xq, sx);
        LoopKernels.geluTanh(f, rows * mlp);
        Gemm.run(fc2, f, fOut, rows, xq, sx);
        LoopKernels.gatedResidual(x, fOut, mod, rows, tokens, hidden, CHUNKS, 5);
    }

    /** Weight bytes on the device (codes, scales, zero points, tables) and the FP32 size of the same weights. */
    public long[] weightBytes() {
        long q = 0, fp = 0;
        for (PackedLinear l : new PackedLinear[] {adaLN, qkv, proj, fc1, fc2}) {
            q += l.weightBytes();
            fp += l.fp32Bytes();
        }
        return new long[] {q, fp};
    }
}
