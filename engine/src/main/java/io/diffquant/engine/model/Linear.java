package io.diffquant.engine.model;

import io.diffquant.engine.tensor.Ops;
import io.diffquant.engine.tensor.Tensor;

/** torch.nn.Linear: weight [out, in], optional bias [out]; applies to the last dimension. */
public final class Linear extends Layer {
    private final int in, out;

    public Linear(String name, int in, int out, boolean bias) {
        super(name);
        this.in = in;
        this.out = out;
        declare("weight", Tensor.zeros(out, in));
        if (bias) declare("bias", Tensor.zeros(out));
    }

    public int in() { return in; }
    public int out() { return out; }

    @Override public LayerKind kind() { return LayerKind.LINEAR; }

    @Override protected Tensor compute(Tensor x, Tensor w, ForwardContext ctx) {
        return Ops.linear(x, w, param("bias"));
    }
}
