package io.diffquant.engine.backend;

import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.quant.QuantizedModel;
import io.diffquant.engine.quant.export.QuantizedCheckpoint;

/**
 * Service interface of the execution backends (issue 7): where the layers of a (quantized) denoiser run. Found with
 * {@link java.util.ServiceLoader} by {@link #id()} through {@link ExecutionBackends}; a module contributes one by
 * listing its class in {@code META-INF/services/io.diffquant.engine.backend.ExecutionBackend} (public no-argument
 * constructor). The engine ships {@code jvm} ({@link JvmBackend}: FP32 and fake quantization) and {@code cpu-int8}
 * ({@link io.diffquant.engine.backend.cpu.CpuInt8Backend}: oneDNN s8*s8->s32 GEMMs); the {@code kernels-tornado}
 * module provides {@code tornado}.
 *
 * <h2>Contract for implementers</h2>
 * <ul>
 *   <li>{@link #unavailableReason()} is cheap and never throws: null when the backend can run in this process, else a
 *       short reason ("no OpenCL device", "oneDNN did not load"). The registry then falls back to {@code jvm} with one
 *       log line and notes it in the result's {@link ExecutionInfo}.</li>
 *   <li>{@link #prepare} takes the model and, optionally, an ATTACHED {@link QuantizedModel} of that model (fake
 *       quantization through layer hooks; {@code null} = full precision). For each quantized layer the backend can run,
 *       it packs the weight once (codes and scales from {@link QuantizedModel#weightCodes(String)}, the input spec from
 *       {@code quantized.plan().spec(layer).input()}, static input parameters from {@code quantized.params()}), calls
 *       {@link QuantizedModel#handOver(String, boolean) quantized.handOver(layer, true)} so the fake-quant hook passes
 *       the raw input through, and adds its own {@link io.diffquant.engine.model.LayerHook} whose {@code replace}
 *       computes the layer (quantize the input, low-bit GEMM, dequantize + bias) and returns its output [.., out].
 *       Layers it cannot run stay on fake quantization (the JVM), and {@link ExecutionInfo} counts both kinds.</li>
 *   <li>Results must equal fake quantization with the same codes and scales up to float rounding: the engine's
 *       fake-quant forward is the reference every backend is tested against.</li>
 *   <li>The returned {@link PreparedDenoiser#close()} removes the hooks, hands the layers back
 *       ({@code handOver(layer, false)}) and frees what the backend allocated.</li>
 * </ul>
 */
public interface ExecutionBackend {
    /** Ids of the backends the product knows (others may be installed too). */
    String JVM = "jvm", CPU_INT8 = "cpu-int8", TORNADO = "tornado";

    /** Stable id used by {@code --backend} and the GUI, e.g. {@code cpu-int8}. */
    String id();

    /** One line for help texts and the GUI. */
    String description();

    /** Null when this backend can run in this process, else why not. Cheap, never throws. */
    default String unavailableReason() { return null; }

    /**
     * A denoiser running {@code model} on this backend.
     * @param quantized an attached quantization of {@code model}, or null for full precision
     * @throws IllegalArgumentException when {@code quantized} belongs to another model or is detached
     */
    PreparedDenoiser prepare(DiffusionModel model, QuantizedModel quantized);

    /** {@link #prepare(DiffusionModel, QuantizedModel)} for a loaded quantized checkpoint. */
    default PreparedDenoiser prepare(QuantizedCheckpoint.Loaded checkpoint) {
        return prepare(checkpoint.model(), checkpoint.quantized());
    }

    /** Checks the arguments of {@link #prepare} the same way for every backend. */
    static void checkArguments(DiffusionModel model, QuantizedModel quantized) {
        if (model == null) throw new IllegalArgumentException("prepare: model is null");
        if (quantized == null) return;
        if (quantized.model() != model) throw new IllegalArgumentException("prepare: the QuantizedModel belongs to another "
                + quantized.model().architecture() + " instance than the model given");
        if (!quantized.attached()) throw new IllegalArgumentException("prepare: the QuantizedModel is detached (attach it again, or pass null for FP32)");
    }
}
