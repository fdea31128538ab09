package io.diffquant.kernels.tornado;

import io.diffquant.engine.model.Denoiser;
import io.diffquant.engine.model.dit.DiT;
import io.diffquant.engine.quant.QuantizedModel;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.Int8Array;

/** Runs each kernel once on some backend (plain JVM loops, TornadoVM loop kernels, TornadoVM tuned kernels). */
interface KernelRunner {
    String describe();

    void quantizePerToken(FloatArray x, Int8Array q, FloatArray s, int rows, int cols, int qmax);

    void quantizeStatic(FloatArray x, Int8Array q, FloatArray s, float d, int qmin, int qmax, int rows, int cols);

    void linear(PackedLinear l, FloatArray x, FloatArray y, int rows, Int8Array xq, FloatArray sx);

    void layerNormModulate(FloatArray x, FloatArray mod, FloatArray y, int rows, int tokens, int d, int chunks, int shift, int scale, float eps);

    void gatedResidual(FloatArray x, FloatArray y, FloatArray mod, int rows, int tokens, int d, int chunks, int gate);

    void gelu(FloatArray x, int n);

    void silu(FloatArray x, FloatArray y, int n);

    void attention(FloatArray qkv, FloatArray out, int batch, int tokens, int heads, int hd, float scale);

    void im2col(FloatArray x, FloatArray cols, int n, int c, int h, int w, int kh, int kw, int pad, int s, int oh, int ow);

    void rowsToNchw(FloatArray y, FloatArray out, int n, int co, int oh, int ow);

    void block(DitBlock b);

    /** A DiT denoiser with the blocks on this backend (closed by the caller when AutoCloseable). */
    Denoiser dit(DiT model, QuantizedModel q);

    /** The plain-JVM runner (loop kernels called as Java methods). */
    final class Jvm implements KernelRunner {
        @Override public String describe() { return "plain JVM, loop kernels"; }

        @Override public void quantizePerToken(FloatArray x, Int8Array q, FloatArray s, int rows, int cols, int qmax) {
            LoopKernels.quantizeInt8PerToken(x, q, s, rows, cols, qmax);
        }

        @Override public void quantizeStatic(FloatArray x, Int8Array q, FloatArray s, float d, int qmin, int qmax, int rows, int cols) {
            LoopKernels.quantizeInt8Static(x, q, s, d, qmin, qmax, rows, cols);
        }

        @Override public void linear(PackedLinear l, FloatArray x, FloatArray y, int rows, Int8Array xq, FloatArray sx) {
            Gemm.run(l, x, y, rows, xq, sx);
        }

        @Override public void layerNormModulate(FloatArray x, FloatArray mod, FloatArray y, int rows, int tokens, int d, int chunks, int shift,
                                                int scale, float eps) {
            LoopKernels.layerNormModulate(x, mod, y, rows, tokens, d, chunks, shift, scale, eps);
        }

        @Override public void gatedResidual(FloatArray x, FloatArray y, FloatArray mod, int rows, int tokens, int d, int chunks, int gate) {
            LoopKernels.gatedResidual(x, y, mod, rows, tokens, d, chunks, gate);
        }

        @Override public void gelu(FloatArray x, int n) { LoopKernels.geluTanh(x, n); }

        @Override public void silu(FloatArray x, FloatArray y, int n) { LoopKernels.silu(x, y, n); }

        @Override public void attention(FloatArray qkv, FloatArray out, int batch, int tokens, int heads, int hd, float scale) {
            LoopKernels.attention(qkv, new FloatArray(batch * heads * tokens * tokens), out, batch, tokens, heads, hd, scale);
        }

        @Override public void im2col(FloatArray x, FloatArray cols, int n, int c, int h, int w, int kh, int kw, int pad, int s, int oh, int ow) {
            LoopKernels.im2col(x, cols, n, c, h, w, kh, kw, pad, s, oh, ow);
        }

        @Override public void rowsToNchw(FloatArray y, FloatArray out, int n, int co, int oh, int ow) {
            LoopKernels.rowsToNchw(y, out, n, co, oh, ow);
        }

        @Override public void block(DitBlock b) { b.runJvm(); }

        @Override public Denoiser dit(DiT model, QuantizedModel q) {
            return TornadoDiT.create(model, q, TornadoDiT.Target.JVM, null);
        }
    }
}
