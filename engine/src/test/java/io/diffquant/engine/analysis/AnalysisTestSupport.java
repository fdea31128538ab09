package io.diffquant.engine.analysis;

import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.model.ForwardContext;
import io.diffquant.engine.model.Layer;
import io.diffquant.engine.model.LayerHook;
import io.diffquant.engine.model.dit.DiT;
import io.diffquant.engine.model.dit.DiTConfig;
import io.diffquant.engine.quant.CalibratedParams;
import io.diffquant.engine.quant.calib.WeightCalibrator;
import io.diffquant.engine.quant.config.ModelIdentity;
import io.diffquant.engine.quant.config.QuantConfig;
import io.diffquant.engine.quant.format.Granularity;
import io.diffquant.engine.quant.format.IntFormat;
import io.diffquant.engine.quant.spec.PointSpec;
import io.diffquant.engine.quant.spec.QuantPlan;
import io.diffquant.engine.quant.spec.RangeSpec;
import io.diffquant.engine.quant.spec.TensorSpec;
import io.diffquant.engine.quant.QuantTestSupport;
import io.diffquant.engine.tensor.Ops;
import io.diffquant.engine.tensor.Tensor;

import java.util.List;
import java.util.concurrent.atomic.AtomicLong;

/** Small random models, round-to-nearest configs and counting hooks for the analysis tests. */
final class AnalysisTestSupport {
    private AnalysisTestSupport() {}

    /** 8x8x1 DiT, patch 2, hidden 32, depth 2, 2 heads, 3 classes, learn_sigma: 16 tokens, 14 feature rows at most. */
    static DiT tinyDiT(long seed) {
        return QuantTestSupport.randomDiT(new DiTConfig(8, 2, 1, 32, 2, 2, 4.0, 0.1, 3, true), seed, 0.2);
    }

    /** Few steps, few samples: every analysis runs in well under a second. */
    static AnalysisSettings fast() {
        return new AnalysisSettings("ddim", 4, 0.0, "linear", 1.0, 7, 3, 3);
    }

    static TensorSpec weightInt(int bits) {
        return TensorSpec.weight(IntFormat.asymmetric(bits), new Granularity.PerChannel(), RangeSpec.MINMAX);
    }

    /** Weights of every Linear/Conv2d at {@code bits} per channel (round to nearest), activations FP. */
    static QuantConfig rtn(DiffusionModel m, int bits) {
        PointSpec defaults = new PointSpec(weightInt(bits), TensorSpec.OFF);
        QuantPlan plan = QuantPlan.resolve(m, defaults, List.of());
        CalibratedParams p = WeightCalibrator.calibrate(m, plan);
        return new QuantConfig(ModelIdentity.of(m, "tiny"), null, null, defaults, List.of(), p, null, "rtn-w" + bits);
    }

    /** A variant that multiplies the output of one layer by {@code factor}. */
    static Variant scaled(String name, String layer, float factor) {
        return new Variant(name, m -> {
            Layer l = m.layers().get(layer);
            LayerHook h = new LayerHook() {
                @Override public Tensor output(Layer layer1, Tensor y, ForwardContext ctx) { return Ops.scale(y, factor); }
            };
            l.addHook(h);
            return () -> l.removeHook(h);
        });
    }

    /** Counts the calls of a layer. */
    static AtomicLong countCalls(DiffusionModel m, String layer) {
        AtomicLong n = new AtomicLong();
        m.layers().get(layer).addHook(new LayerHook() {
            @Override public Tensor input(Layer l, Tensor x, ForwardContext ctx) {
                n.incrementAndGet();
                return x;
            }
        });
        return n;
    }
}
