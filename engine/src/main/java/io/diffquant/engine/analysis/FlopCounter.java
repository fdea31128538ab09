package io.diffquant.engine.analysis;

import io.diffquant.engine.model.Conv2d;
import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.model.ForwardContext;
import io.diffquant.engine.model.Layer;
import io.diffquant.engine.model.LayerHook;
import io.diffquant.engine.model.LayerKind;
import io.diffquant.engine.model.Linear;
import io.diffquant.engine.tensor.Tensor;

import java.util.ArrayList;
import java.util.List;

/**
 * Counts the floating-point operations of one denoiser call by observing layers through hooks: 2 per
 * multiply-add in every Linear and Conv2d, plus 4·B·H·T²·D for each self-attention (q·kᵀ and probabilities·v),
 * read off the {@code *.q} activation probes. Element-wise work (norms, activations) is not counted.
 */
public final class FlopCounter {
    private FlopCounter() {}

    /** FLOPs of {@code model.forward(x, t, y)} (runs the call once, with hooks, and removes them). */
    public static long count(DiffusionModel model, Tensor x, float[] t, int[] y) {
        long[] total = {0};
        LayerHook hook = new LayerHook() {
            @Override public Tensor output(Layer layer, Tensor out, ForwardContext ctx) {
                if (layer instanceof Linear lin) total[0] += 2L * (out.size() / lin.out()) * lin.in() * lin.out();
                else if (layer instanceof Conv2d c) total[0] += 2L * out.size() * c.in() * c.kernel() * c.kernel();
                else if (layer.kind() == LayerKind.ACTIVATION && layer.name().endsWith(".q") && out.rank() == 4) {
                    long b = out.dim(0), h = out.dim(1), tk = out.dim(2), d = out.dim(3);
                    total[0] += 4L * b * h * tk * tk * d;
                }
                return out;
            }
        };
        List<Layer> hooked = new ArrayList<>();
        for (Layer l : model.layers().all()) {
            if (l instanceof Linear || l instanceof Conv2d || (l.kind() == LayerKind.ACTIVATION && l.name().endsWith(".q"))) {
                l.addHook(hook);
                hooked.add(l);
            }
        }
        try {
            model.forward(x, t, y);
        } finally {
            for (Layer l : hooked) l.removeHook(hook);
        }
        return total[0];
    }
}
