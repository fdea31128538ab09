package io.diffquant.engine.model;

import io.diffquant.engine.tensor.ConvOps;
import io.diffquant.engine.tensor.Tensor;

/** torch.nn.Conv2d (groups = 1, square kernel/stride/padding): weight [out, in, k, k], bias [out]. */
public final class Conv2d extends Layer {
    private final int in, out, kernel, stride, padding;

    public Conv2d(String name, int in, int out, int kernel, int stride, int padding, boolean bias) {
        super(name);
        this.in = in;
        this.out = out;
        this.kernel = kernel;
        this.stride = stride;
        this.padding = padding;
        declare("weight", Tensor.zeros(out, in, kernel, kernel));
        if (bias) declare("bias", Tensor.zeros(out));
    }

    public int in() { return in; }
    public int out() { return out; }
    public int kernel() { return kernel; }
    public int stride() { return stride; }
    public int padding() { return padding; }

    @Override public LayerKind kind() { return LayerKind.CONV2D; }

    @Override protected Tensor compute(Tensor x, Tensor w, ForwardContext ctx) {
        return ConvOps.conv2d(x, w, param("bias"), stride, padding);
    }
}
