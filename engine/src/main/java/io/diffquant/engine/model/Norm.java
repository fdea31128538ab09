package io.diffquant.engine.model;

import io.diffquant.engine.tensor.Ops;
import io.diffquant.engine.tensor.Tensor;

/** torch.nn.LayerNorm (last dimension) or torch.nn.GroupNorm (NCHW), optionally affine. */
public final class Norm extends Layer {
    public enum Type { LAYER, GROUP }

    private final Type type;
    private final int groups;
    private final float eps;

    public Norm(String name, Type type, int channels, int groups, float eps, boolean affine) {
        super(name);
        this.type = type;
        this.groups = groups;
        this.eps = eps;
        if (affine) {
            declare("weight", Tensor.full(1f, channels));
            declare("bias", Tensor.zeros(channels));
        }
    }

    public Type type() { return type; }
    public int groups() { return groups; }
    public float eps() { return eps; }

    @Override public LayerKind kind() { return LayerKind.NORM; }

    @Override protected Tensor compute(Tensor x, Tensor w, ForwardContext ctx) {
        return type == Type.LAYER ? Ops.layerNorm(x, w, param("bias"), eps)
                : Ops.groupNorm(x, groups, w, param("bias"), eps);
    }
}
