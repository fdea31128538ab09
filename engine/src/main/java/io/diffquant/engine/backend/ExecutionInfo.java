package io.diffquant.engine.backend;

import io.diffquant.engine.model.Denoiser;
import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.model.Layer;
import io.diffquant.engine.quant.QuantizedModel;

/**
 * How a denoiser's results were computed (issue 7 item 5: every result says whether it came from fake quantization or
 * from real low-bit kernels). Carried by {@link PreparedDenoiser#execution()}, by {@code SamplingRun.execution()} and
 * {@code SamplingResult.execution()}, and shown by the CLI and the GUI through {@link #label()}.
 *
 * @param backend    id of the backend that ran (e.g. {@code jvm}, {@code cpu-int8}, {@code tornado})
 * @param requested  id that was asked for (differs from backend after a fallback)
 * @param execution  what kind of arithmetic produced the numbers
 * @param realLayers quantized layers computed by real low-bit kernels
 * @param fakeLayers quantized layers (or activation probes) computed by fake quantization (FP32 on dequantized values)
 * @param kernels    short name of the low-bit kernels (e.g. "oneDNN s8*s8->s32 GEMM"); empty when none ran
 * @param note       why the backend differs from the request, or which layers stayed fake; empty when nothing to say
 */
public record ExecutionInfo(String backend, String requested, Execution execution, int realLayers, int fakeLayers, String kernels, String note) {

    /** The arithmetic behind a result. */
    public enum Execution {
        /** No quantization: FP32 weights and activations. */
        FULL_PRECISION("FP32 (no quantization)"),
        /** Quantize-dequantize in FP32 (the simulation every PTQ paper reports): same numbers as low-bit, no speed-up. */
        FAKE_QUANTIZATION("fake quantization"),
        /** Every quantized layer ran on real low-bit kernels. */
        REAL_LOW_BIT("real low-bit kernels"),
        /** Some quantized layers ran on real low-bit kernels, the others with fake quantization. */
        MIXED("real low-bit kernels + fake quantization");

        private final String text;
        Execution(String text) { this.text = text; }
        public String text() { return text; }
    }

    public ExecutionInfo {
        if (backend == null || backend.isBlank()) throw new IllegalArgumentException("execution info: backend id is empty");
        if (requested == null || requested.isBlank()) requested = backend;
        if (execution == null) throw new IllegalArgumentException("execution info: execution kind is null");
        if (realLayers < 0 || fakeLayers < 0) throw new IllegalArgumentException("execution info: negative layer counts");
        if (kernels == null) kernels = "";
        if (note == null) note = "";
    }

    /** FP32 on the given backend. */
    public static ExecutionInfo fullPrecision(String backend) {
        return new ExecutionInfo(backend, backend, Execution.FULL_PRECISION, 0, 0, "", "");
    }

    /** Fake quantization of n layers on the given backend. */
    public static ExecutionInfo fake(String backend, int layers) {
        return new ExecutionInfo(backend, backend, layers == 0 ? Execution.FULL_PRECISION : Execution.FAKE_QUANTIZATION, 0, layers, "", "");
    }

    /** real layers on low-bit kernels, fake layers quantized in FP32; the execution kind follows from the counts. */
    public static ExecutionInfo of(String backend, int real, int fake, String kernels, String note) {
        Execution e = real == 0 ? (fake == 0 ? Execution.FULL_PRECISION : Execution.FAKE_QUANTIZATION)
                : fake == 0 ? Execution.REAL_LOW_BIT : Execution.MIXED;
        return new ExecutionInfo(backend, backend, e, real, fake, real == 0 ? "" : kernels, note);
    }

    /**
     * What a denoiser that was not prepared by a backend does: a {@link PreparedDenoiser} reports its own info; a
     * {@link DiffusionModel} runs on the JVM, fake-quantized where an attached {@link QuantizedModel} hooks its layers;
     * any other denoiser is labelled "unknown" FP32-on-JVM with a note saying so.
     */
    public static ExecutionInfo of(Denoiser d) {
        if (d instanceof PreparedDenoiser p) return p.execution();
        if (d instanceof DiffusionModel m) {
            int fake = 0;
            for (Layer l : m.layers().all()) if (QuantizedModel.fakeQuantized(l)) fake++;
            return fake(ExecutionBackend.JVM, fake);
        }
        return new ExecutionInfo(ExecutionBackend.JVM, ExecutionBackend.JVM, Execution.FULL_PRECISION, 0, 0, "",
                "custom denoiser " + d.getClass().getSimpleName() + ": its arithmetic is not known to the engine");
    }

    /** Whether any layer ran on real low-bit kernels. */
    public boolean real() { return realLayers > 0; }

    /** Whether the backend that ran is not the one requested. */
    public boolean fellBack() { return !backend.equals(requested); }

    /** The same info after a fallback from {@code requestedId} (the reason goes into the note). */
    public ExecutionInfo fellBackFrom(String requestedId, String reason) {
        String n = "requested '" + requestedId + "' is not available (" + reason + "), ran on '" + backend + "'";
        return new ExecutionInfo(backend, requestedId, execution, realLayers, fakeLayers, kernels, note.isEmpty() ? n : n + "; " + note);
    }

    /**
     * One line for the CLI and the GUI, e.g. {@code cpu-int8: real low-bit kernels (oneDNN s8*s8->s32 GEMM) on 72 of 75
     * quantized layers, fake quantization on 3 [3 layers are not W8A8 Linear]} or {@code jvm: fake quantization on 75 layers}.
     */
    public String label() {
        StringBuilder sb = new StringBuilder(backend).append(": ");
        int total = realLayers + fakeLayers;
        switch (execution) {
            case FULL_PRECISION -> sb.append(execution.text());
            case FAKE_QUANTIZATION -> sb.append("fake quantization on ").append(fakeLayers).append(fakeLayers == 1 ? " layer" : " layers")
                    .append(" (FP32 kernels on dequantized values)");
            case REAL_LOW_BIT -> sb.append("real low-bit kernels").append(kernels.isEmpty() ? "" : " (" + kernels + ")").append(" on all ")
                    .append(realLayers).append(realLayers == 1 ? " quantized layer" : " quantized layers");
            case MIXED -> sb.append("real low-bit kernels").append(kernels.isEmpty() ? "" : " (" + kernels + ")").append(" on ")
                    .append(realLayers).append(" of ").append(total).append(" quantized layers, fake quantization on ").append(fakeLayers);
        }
        if (!note.isEmpty()) sb.append(" [").append(note).append(']');
        return sb.toString();
    }

    @Override public String toString() { return label(); }
}
