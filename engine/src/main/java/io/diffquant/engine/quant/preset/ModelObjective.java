package io.diffquant.engine.quant.preset;

import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.quant.QuantizedModel;
import io.diffquant.engine.quant.calib.CalibBatch;
import io.diffquant.engine.quant.calib.CalibrationSet;
import io.diffquant.engine.quant.calib.TimestepSubset;
import io.diffquant.engine.tensor.Tensor;

import java.util.ArrayList;
import java.util.List;

/**
 * The quality of a quantized model, lower is better: the objective of Q-DiT's granularity search (the paper uses the
 * FID of generated images; a product-level FID objective implements this interface). The model is already
 * quantized (hooks attached) when {@link #evaluate} runs.
 */
@FunctionalInterface
public interface ModelObjective {
    double evaluate(QuantizedModel quantized);

    /**
     * Mean squared error of the model output against the full-precision output over calibration batches (a cheap proxy
     * for image quality). The full-precision outputs are computed once, when this is created (the model must have no
     * quantization hooks then).
     */
    static ModelObjective outputMse(DiffusionModel model, CalibrationSet data, TimestepSubset subset, int batchSize) {
        List<CalibBatch> batches = new ArrayList<>();
        List<Tensor> fp = new ArrayList<>();
        for (CalibBatch b : data.batches(subset, batchSize)) {
            batches.add(b);
            fp.add(model.forward(b.x(), b.timesteps(), b.y()));
        }
        return q -> {
            double s = 0;
            long n = 0;
            for (int i = 0; i < batches.size(); i++) {
                CalibBatch b = batches.get(i);
                float[] out = q.model().forward(b.x(), b.timesteps(), b.y()).data(), ref = fp.get(i).data();
                for (int j = 0; j < out.length; j++) {
                    double d = (double) out[j] - ref[j];
                    s += d * d;
                }
                n += out.length;
            }
            return n == 0 ? 0 : s / n;
        };
    }
}
