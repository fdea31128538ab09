package io.diffquant.engine.quant.calib;

import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.model.Layer;
import io.diffquant.engine.quant.CalibratedParams;
import io.diffquant.engine.quant.LayerParams;
import io.diffquant.engine.quant.WeightParams;
import io.diffquant.engine.quant.format.Layout;
import io.diffquant.engine.quant.format.QuantChecks;
import io.diffquant.engine.quant.format.QuantParams;
import io.diffquant.engine.quant.spec.QuantPlan;
import io.diffquant.engine.quant.spec.QuantPoint;
import io.diffquant.engine.quant.spec.TensorSpec;
import io.diffquant.engine.tensor.Tensor;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Weight ranges straight from the weights (Q-Diffusion's weight quantizer init: min-max, or Lp search 'mse', or
 * percentile) per the layer's granularity; round-to-nearest with these parameters is the RTN baseline and the
 * initialisation of AdaRound. Non-finite weights are rejected with the tensor's name.
 */
public final class WeightCalibrator {
    private WeightCalibrator() {}

    /** Parameters of one weight for its spec. */
    public static QuantParams params(Layer layer, TensorSpec spec) {
        Tensor w = layer.param("weight");
        String name = layer.qualified("weight");
        QuantChecks.requireFinite(name, w);
        try {
            return spec.range().estimator().estimate(spec.format(), spec.granularity(), Layout.WEIGHT, w);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("tensor '" + name + "': " + e.getMessage(), e);
        }
    }

    /** Round-to-nearest parameters of every enabled weight of a plan. */
    public static CalibratedParams calibrate(DiffusionModel model, QuantPlan plan) {
        Map<String, LayerParams> m = new LinkedHashMap<>();
        for (QuantPoint p : plan.points()) {
            TensorSpec w = plan.spec(p.name()).weight();
            if (!p.hasWeight() || !w.enabled()) continue;
            m.put(p.name(), new LayerParams(WeightParams.rtn(params(model.layers().get(p.name()), w)), null));
        }
        return new CalibratedParams(m);
    }
}
