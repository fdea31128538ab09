package io.diffquant.kernels.tornado;

import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.Int8Array;

/**
 * Runs a {@link PackedLinear} with the loop kernels on the plain JVM: activation quantization (when the layer has integer
 * weights) followed by the layer's GEMM. The TaskGraph form of the same sequence is {@link DeviceGraphs#linear}.
 */
public final class Gemm {
    private Gemm() {}

    /**
     * y[rows, out] = layer(x[rows, in]).
     * @param xq scratch of at least rows * in codes, sx of at least rows scales (used by the integer kinds)
     */
    public static void run(PackedLinear l, FloatArray x, FloatArray y, int rows, Int8Array xq, FloatArray sx) {
        check(l, x, y, rows, xq, sx);
        switch (l.kind()) {
            case F32 -> LoopKernels.gemmF32(x, l.wf, l.bias, y, rows, l.in(), l.out());
            case FP4_LUT -> LoopKernels.gemmFp4Lut(x, l.wq, l.lut, l.ws, l.bias, y, rows, l.in(), l.out(), l.group());
            case W8A8, W4A8 -> {
                quantize(l, x, xq, sx, rows);
                if (l.kind() == PackedLinear.Kind.W8A8) {
                    LoopKernels.gemmW8A8(xq, sx, l.wq, l.ws, l.wz, l.bias, y, rows, l.in(), l.out(), l.group(), l.asymmetric() ? 1 : 0);
                } else {
                    LoopKernels.gemmW4A8(xq, sx, l.wq, l.ws, l.wz, l.bias, y, rows, l.in(), l.out(), l.group(), l.asymmetric() ? 1 : 0);
                }
            }
        }
    }

    /** The activation quantization of an integer layer (loop kernel). */
    public static void quantize(PackedLinear l, FloatArray x, Int8Array xq, FloatArray sx, int rows) {
        if (l.activationMode() == PackedLinear.ActMode.DYNAMIC_TOKEN) {
            LoopKernels.quantizeInt8PerToken(x, xq, sx, rows, l.in(), l.activationQmax());
        } else {
            LoopKernels.quantizeInt8Static(x, xq, sx, l.activationScale(), l.activationQmin(), l.activationQmax(), rows, l.in());
        }
    }

    /** Bounds of every array the kernels will touch, checked once on the host (kernels do no bounds checks on a device). */
    static void check(PackedLinear l, FloatArray x, FloatArray y, int rows, Int8Array xq, FloatArray sx) {
        long need = (long) rows * l.in();
        if (x.getSize() < need) throw new IllegalArgumentException("layer '" + l.name() + "': input holds " + x.getSize()
                + " values, " + rows + " rows of " + l.in() + " need " + need);
        if (y.getSize() < (long) rows * l.out()) throw new IllegalArgumentException("layer '" + l.name() + "': output holds "
                + y.getSize() + " values, " + rows + " rows of " + l.out() + " need " + (long) rows * l.out());
        if (l.kind() == PackedLinear.Kind.W8A8 || l.kind() == PackedLinear.Kind.W4A8) {
            if (xq.getSize() < need || sx.getSize() < rows) throw new IllegalArgumentException("layer '" + l.name()
                    + "': activation code scratch holds " + xq.getSize() + " codes and " + sx.getSize() + " scales, need " + need
                    + " and " + rows);
        }
    }
}
