package io.diffquant.engine.backend;

import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.quant.QuantizedModel;
import io.diffquant.engine.tensor.Tensor;

/**
 * The {@code jvm} backend: the engine's own forward pass, FP32 GEMMs through {@code Blas} (oneDNN sgemm), with fake
 * quantization where a {@link QuantizedModel} is attached (Q-Diffusion's simulated quantization). Always available; the
 * fallback of every other backend.
 */
public final class JvmBackend implements ExecutionBackend {
    @Override public String id() { return JVM; }

    @Override public String description() { return "FP32 kernels on the JVM; quantized layers are fake-quantized (no speed-up)"; }

    @Override public PreparedDenoiser prepare(DiffusionModel model, QuantizedModel quantized) {
        ExecutionBackend.checkArguments(model, quantized);
        return new Prepared(model, ExecutionInfo.fake(JVM, quantized == null ? 0 : quantized.hookedLayers().size()));
    }

    /** A denoiser that calls the model and reports a fixed execution info. */
    static final class Prepared implements PreparedDenoiser {
        private final DiffusionModel model;
        private final ExecutionInfo info;
        private volatile boolean closed;

        Prepared(DiffusionModel model, ExecutionInfo info) {
            this.model = model;
            this.info = info;
        }

        @Override public Tensor forward(Tensor x, float[] t, int[] y) {
            if (closed) throw new IllegalStateException("this " + info.backend() + " denoiser was closed");
            return model.forward(x, t, y);
        }

        @Override public DiffusionModel model() { return model; }
        @Override public ExecutionInfo execution() { return info; }
        @Override public void close() { closed = true; }
    }
}
