package io.diffquant.engine.train;

import io.diffquant.engine.model.Conv2d;
import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.model.Embedding;
import io.diffquant.engine.model.Layer;
import io.diffquant.engine.model.Linear;
import io.diffquant.engine.model.Norm;
import io.diffquant.engine.model.dit.DiT;
import io.diffquant.engine.model.unet.UNet2DModel;
import io.diffquant.engine.tensor.Tensor;

/**
 * Initial weights of a model to be trained from scratch, drawn from a {@link TrainRng} stream of the run seed so
 * that a run is reproducible. DiT follows facebookresearch/DiT models.py {@code initialize_weights} (Xavier-uniform
 * linears with zero bias, the patch embedding Xavier-uniform on its [out, in*p*p] view, label table and timestep
 * MLP N(0, 0.02), adaLN modulations and the final linear zero); UNet2DModel follows PyTorch's module defaults as
 * diffusers leaves them (Linear/Conv2d weight and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)), i.e.
 * kaiming_uniform_(a=sqrt(5)); GroupNorm weight 1, bias 0; Embedding N(0, 1)).
 */
public final class ModelInit {
    static final long PURPOSE_INIT = 0x494E4954L; // "INIT"

    private ModelInit() {}

    /** Overwrites every trainable parameter of {@code model} with its initial value for {@code seed}. */
    public static void initialize(DiffusionModel model, long seed) {
        TrainRng rng = TrainRng.derive(seed, PURPOSE_INIT, 0);
        if (model instanceof DiT) initDiT(model, rng);
        else if (model instanceof UNet2DModel) initTorchDefaults(model, rng);
        else throw new IllegalArgumentException("no initialisation rule for " + model.architecture() + " models");
    }

    private static void initDiT(DiffusionModel model, TrainRng rng) {
        for (Layer l : model.layers().all()) {
            String n = l.name();
            Tensor w = l.param("weight"), b = l.param("bias");
            if (l instanceof Linear lin) {
                if (n.startsWith("t_embedder.mlp.")) normal(w, 0.02, rng);
                else if (n.endsWith("adaLN_modulation.1") || n.equals("final_layer.linear")) fill(w, 0);
                else xavierUniform(w, lin.in(), lin.out(), rng);
                if (b != null) fill(b, 0);
            } else if (l instanceof Conv2d c) {
                xavierUniform(w, c.in() * c.kernel() * c.kernel(), c.out(), rng);
                if (b != null) fill(b, 0);
            } else if (l instanceof Embedding) {
                for (Tensor t : l.params().values()) normal(t, 0.02, rng);
            } else if (l instanceof Norm) {
                if (w != null) fill(w, 1);
                if (b != null) fill(b, 0);
            } else if (!l.params().isEmpty()) {
                throw new IllegalStateException("DiT init: no rule for layer '" + n + "' (" + l.kind() + ")");
            }
        }
    }

    private static void initTorchDefaults(DiffusionModel model, TrainRng rng) {
        for (Layer l : model.layers().all()) {
            Tensor w = l.param("weight"), b = l.param("bias");
            if (l instanceof Linear lin) {
                uniform(w, 1 / Math.sqrt(lin.in()), rng);
                if (b != null) uniform(b, 1 / Math.sqrt(lin.in()), rng);
            } else if (l instanceof Conv2d c) {
                double bound = 1 / Math.sqrt((double) c.in() * c.kernel() * c.kernel());
                uniform(w, bound, rng);
                if (b != null) uniform(b, bound, rng);
            } else if (l instanceof Embedding) {
                for (Tensor t : l.params().values()) normal(t, 1.0, rng);
            } else if (l instanceof Norm) {
                if (w != null) fill(w, 1);
                if (b != null) fill(b, 0);
            } else if (!l.params().isEmpty()) {
                throw new IllegalStateException("UNet init: no rule for layer '" + l.name() + "' (" + l.kind() + ")");
            }
        }
    }

    /** torch.nn.init.xavier_uniform_: U(-a, a), a = sqrt(6 / (fan_in + fan_out)). */
    static void xavierUniform(Tensor t, int fanIn, int fanOut, TrainRng rng) {
        uniform(t, Math.sqrt(6.0 / (fanIn + fanOut)), rng);
    }

    static void uniform(Tensor t, double bound, TrainRng rng) {
        float[] d = t.data();
        for (int i = 0; i < d.length; i++) d[i] = (float) ((2 * rng.nextDouble() - 1) * bound);
    }

    static void normal(Tensor t, double std, TrainRng rng) {
        float[] d = t.data();
        rng.gaussian(d);
        for (int i = 0; i < d.length; i++) d[i] = (float) (d[i] * std);
    }

    static void fill(Tensor t, float v) { java.util.Arrays.fill(t.data(), v); }
}
