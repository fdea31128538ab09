package io.diffquant.engine.backend.cpu;

import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.quant.CalibratedParams;
import io.diffquant.engine.quant.QuantizedModel;
import io.diffquant.engine.quant.calib.WeightCalibrator;
import io.diffquant.engine.quant.format.Granularity;
import io.diffquant.engine.quant.format.IntFormat;
import io.diffquant.engine.quant.spec.CalibrationMode;
import io.diffquant.engine.model.LayerKind;
import io.diffquant.engine.quant.spec.LayerOverride;
import io.diffquant.engine.quant.spec.PointSpec;
import io.diffquant.engine.quant.spec.QuantPlan;
import io.diffquant.engine.quant.spec.QuantPoint;
import io.diffquant.engine.quant.spec.RangeSpec;
import io.diffquant.engine.quant.spec.SpecPatch;
import io.diffquant.engine.quant.spec.TensorSpec;

import java.util.ArrayList;
import java.util.List;

/**
 * The quantization the {@code cpu-int8} backend runs natively, as a plan: W{b} symmetric INT per output channel
 * (min-max, round to nearest) and A8 symmetric INT per token, dynamic (min-max of every token at run time), the
 * LLM.int8()/SmoothQuant "per-token x per-channel" W8A8 scheme. Activation probes (attention q/k/v/softmax) are not
 * quantized; convolutions get per-tensor dynamic inputs (they stay fake-quantized on the JVM).
 */
public final class Int8Specs {
    private Int8Specs() {}

    /** W{weightBits} per-channel symmetric min-max weights, A8 per-token dynamic symmetric inputs. */
    public static PointSpec perTokenSpec(int weightBits) {
        return new PointSpec(TensorSpec.weight(IntFormat.symmetric(weightBits), Granularity.CHANNEL, RangeSpec.MINMAX),
                TensorSpec.input(IntFormat.symmetric(8), Granularity.TOKEN, RangeSpec.MINMAX, CalibrationMode.DYNAMIC));
    }

    /** The plan of {@link #perTokenSpec} for a model: probes off, convolution inputs per tensor (dynamic). */
    public static QuantPlan plan(DiffusionModel model, int weightBits) {
        List<LayerOverride> ov = new ArrayList<>();
        for (QuantPoint p : QuantPoint.of(model)) {
            if (p.kind() == LayerKind.ACTIVATION) {
                ov.add(new LayerOverride(p.name(), SpecPatch.KEEP, SpecPatch.OFF, "activation probes are not quantized"));
            } else if (p.kind() == LayerKind.CONV2D) {
                ov.add(new LayerOverride(p.name(), SpecPatch.KEEP, new SpecPatch(null, null, Granularity.TENSOR, null, null),
                        "convolution inputs per tensor"));
            }
        }
        return QuantPlan.resolve(model, perTokenSpec(weightBits), ov);
    }

    /** Round-to-nearest weights for {@link #plan}, attached as fake quantization (needs no calibration data). */
    public static QuantizedModel attach(DiffusionModel model, int weightBits) {
        QuantPlan plan = plan(model, weightBits);
        CalibratedParams w = WeightCalibrator.calibrate(model, plan);
        return QuantizedModel.attach(model, plan, w);
    }
}
