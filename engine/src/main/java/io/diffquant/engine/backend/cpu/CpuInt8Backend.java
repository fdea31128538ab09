package io.diffquant.engine.backend.cpu;

import io.diffquant.engine.backend.ExecutionBackend;
import io.diffquant.engine.backend.ExecutionInfo;
import io.diffquant.engine.backend.PreparedDenoiser;
import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.model.ForwardContext;
import io.diffquant.engine.model.Layer;
import io.diffquant.engine.model.LayerHook;
import io.diffquant.engine.model.Linear;
import io.diffquant.engine.model.dit.DiT;
import io.diffquant.engine.quant.ActivationParams;
import io.diffquant.engine.quant.InputParams;
import io.diffquant.engine.quant.QuantizedModel;
import io.diffquant.engine.quant.format.Granularity;
import io.diffquant.engine.quant.format.IntFormat;
import io.diffquant.engine.quant.format.QuantizedTensor;
import io.diffquant.engine.quant.spec.CalibrationMode;
import io.diffquant.engine.quant.spec.PointSpec;
import io.diffquant.engine.quant.spec.QuantPoint;
import io.diffquant.engine.quant.spec.RangeSpec;
import io.diffquant.engine.quant.spec.TensorSpec;
import io.diffquant.engine.tensor.Tensor;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * The {@code cpu-int8} backend: quantized Linear layers with symmetric INT weights (per channel or per tensor, up to 8
 * bits: W8 and W4 codes both fit int8) and symmetric INT input activations (dynamic per token with min-max ranges, or
 * static / per-timestep per tensor) run as real integer GEMMs on oneDNN ({@link Int8Linear}: int8 codes, s8 x s8 -> s32,
 * dequantization and bias fused after the GEMM). Every other quantized layer (convolutions, activation probes, other
 * formats) stays on the JVM's fake quantization, and the {@link ExecutionInfo} counts both.
 */
public final class CpuInt8Backend implements ExecutionBackend {
    public static final String KERNELS = "oneDNN s8*s8->s32 GEMM";

    @Override public String id() { return CPU_INT8; }

    @Override public String description() {
        return "W8A8 Linear layers as int8 GEMMs on oneDNN (dynamic per-token activation scales); other layers fake-quantized";
    }

    @Override public String unavailableReason() { return Int8Gemm.unavailableReason(); }

    /**
     * Why a quantized layer cannot run on int8 kernels here, or null when it can. Public so that tools can show it per
     * layer; the same rules decide {@link #prepare}.
     */
    public static String unsupported(QuantizedModel q, String layer) {
        Layer l = q.model().layers().get(layer);
        if (!(l instanceof Linear)) return l == null ? "no such layer" : "not a Linear layer (" + l.kind().name().toLowerCase() + ")";
        QuantPoint p = q.plan().point(layer);
        PointSpec s = q.plan().spec(layer);
        if (!s.weight().enabled()) return "its weight is not quantized";
        if (!s.input().enabled()) return "its input is not quantized";
        if (p.inputParts() != 1) return "its input is split into parts";
        TensorSpec in = s.input();
        if (!(in.format() instanceof IntFormat f)) return "input format " + in.format().id() + " is not INT";
        String why = Int8Linear.unsupportedInput(f);
        if (why != null) return why;
        Granularity g = in.granularity();
        if (in.mode() == CalibrationMode.DYNAMIC) {
            if (!(g instanceof Granularity.PerToken)) return "dynamic input granularity " + g.id() + " is not per token";
            if (in.range().kind() != RangeSpec.Kind.MINMAX) return "dynamic input range " + in.range().id() + " is not min-max";
        } else if (!(g instanceof Granularity.PerTensor)) {
            return "static input granularity " + g.id() + " is not per tensor";
        }
        QuantizedTensor w = q.weightCodes(layer);
        if (w == null) return "its weight is not quantized";
        return Int8Linear.unsupportedWeight(w);
    }

    @Override public PreparedDenoiser prepare(DiffusionModel model, QuantizedModel quantized) {
        ExecutionBackend.checkArguments(model, quantized);
        if (quantized == null) return new Prepared(model, null, List.of(), ExecutionInfo.fullPrecision(CPU_INT8));
        String unavailable = unavailableReason();
        if (unavailable != null) throw new IllegalStateException("the cpu-int8 backend cannot run here: " + unavailable);
        List<Hook> hooks = new ArrayList<>();
        Map<String, String> fake = new LinkedHashMap<>();
        try {
            for (String layer : quantized.hookedLayers()) {
                String why = unsupported(quantized, layer);
                if (why != null) {
                    fake.put(layer, why);
                    continue;
                }
                Hook h = new Hook(quantized, (Linear) model.layers().get(layer));
                quantized.handOver(layer, true);
                h.layer.addHook(h);
                hooks.add(h);
            }
        } catch (RuntimeException e) {
            for (Hook h : hooks) h.release();
            throw e;
        }
        ExecutionInfo info = ExecutionInfo.of(CPU_INT8, hooks.size(), fake.size(), KERNELS, fakeNote(fake));
        return new Prepared(model, quantized, hooks, info);
    }

    /** Bytes of the packed int8 weights, steps and biases of a denoiser prepared by this backend; -1 for other denoisers. */
    public static long packedBytes(PreparedDenoiser d) {
        return d instanceof Prepared p ? p.packedBytes() : -1;
    }

    /** "fake quantization for: x_embedder.proj (not a Linear layer (conv2d)), ..." grouped by reason. */
    static String fakeNote(Map<String, String> fake) {
        if (fake.isEmpty()) return "";
        Map<String, List<String>> byReason = new LinkedHashMap<>();
        for (var e : fake.entrySet()) byReason.computeIfAbsent(e.getValue(), k -> new ArrayList<>()).add(e.getKey());
        List<String> parts = new ArrayList<>();
        for (var e : byReason.entrySet()) {
            List<String> n = e.getValue();
            String names = n.size() <= 2 ? String.join(", ", n) : n.get(0) + ", " + n.get(1) + " and " + (n.size() - 2) + " more";
            parts.add(names + ": " + e.getKey());
        }
        return "fake-quantized on the JVM: " + String.join("; ", parts);
    }

    /** The replace hook of one layer: the packed weight (repacked if the layer's weight or bias tensor is replaced). */
    static final class Hook implements LayerHook {
        final QuantizedModel q;
        final Linear layer;
        final TensorSpec input;
        private final float staticStep;                 // NaN: dynamic per token or per timestep
        private final TreeMap<Float, Float> perT;       // per-timestep input steps, or null
        private Tensor wSource, bSource;
        private Int8Linear packed;

        Hook(QuantizedModel q, Linear layer) {
            this.q = q;
            this.layer = layer;
            this.input = q.plan().spec(layer.name()).input();
            float st = Float.NaN;
            TreeMap<Float, Float> pt = null;
            if (input.mode() != CalibrationMode.DYNAMIC) {
                InputParams ip = q.params().input(layer.name());
                if (ip == null) throw new IllegalArgumentException("layer '" + layer.name() + "': static input quantization has no calibrated parameters");
                if (ip.isPerTimestep()) {
                    pt = new TreeMap<>();
                    for (Map.Entry<Float, ActivationParams> e : ip.perTimestep().entrySet()) pt.put(e.getKey(), e.getValue().part(0).scale(0));
                } else {
                    st = ip.shared().part(0).scale(0);
                }
            }
            staticStep = st;
            perT = pt;
            current();
        }

        synchronized Int8Linear current() {
            Tensor w = layer.param("weight"), b = layer.param("bias");
            if (packed == null || w != wSource || b != bSource) {
                packed = Int8Linear.pack(layer.name(), q.weightCodes(layer.name()), b, (IntFormat) input.format());
                wSource = w;
                bSource = b;
            }
            return packed;
        }

        float step(ForwardContext ctx) {
            if (perT == null) return staticStep;
            float t = ctx.uniformT();
            if (Float.isNaN(t)) throw new IllegalArgumentException("layer '" + layer.name() + "': per-timestep input quantization needs a batch "
                    + "with one timestep value, got t = " + Arrays.toString(Arrays.copyOf(ctx.t(), Math.min(8, ctx.t().length))));
            Float s = perT.get(t == 0f ? 0f : t);
            if (s == null) throw new IllegalArgumentException("layer '" + layer.name() + "': no input parameters for timestep t = "
                    + QuantizedModel.timestepLabel(t) + " (sample with the sampler and step count used for calibration)");
            return s;
        }

        @Override public Tensor replace(Layer l, Tensor x, ForwardContext ctx) {
            return running().forward(x, step(ctx));
        }

        /** The packed layer, after checking that weight and input quantization are still on. */
        Int8Linear running() {
            if (!q.weightQuantization() || !q.inputQuantization()) throw new IllegalStateException("layer '" + layer.name()
                    + "': weight or input quantization was switched off while the cpu-int8 backend runs it; close the prepared denoiser first");
            return current();
        }

        void release() {
            layer.removeHook(this);
            if (q.attached()) q.handOver(layer.name(), false);
        }
    }

    /** The prepared denoiser: the model's forward with the hooks installed; close() takes them out. */
    static final class Prepared implements PreparedDenoiser {
        private final DiffusionModel model;
        private final QuantizedModel quantized;
        private final List<Hook> hooks;
        private final Map<String, Hook> byLayer = new LinkedHashMap<>();
        private final ExecutionInfo info;
        private volatile boolean closed;

        Prepared(DiffusionModel model, QuantizedModel quantized, List<Hook> hooks, ExecutionInfo info) {
            this.model = model;
            this.quantized = quantized;
            this.hooks = hooks;
            this.info = info;
            for (Hook h : hooks) byLayer.put(h.layer.name(), h);
        }

        /**
         * The model's forward with the int8 hooks; a DiT runs its all-int8 blocks fused ({@link Int8DiTForward}: the
         * same kernels in the same order, without the defensive copies).
         */
        @Override public Tensor forward(Tensor x, float[] t, int[] y) {
            if (closed) throw new IllegalStateException("this cpu-int8 denoiser was closed");
            if (quantized != null && !quantized.attached()) throw new IllegalStateException("the QuantizedModel of this cpu-int8 denoiser was detached");
            if (quantized != null && model instanceof DiT dit && !byLayer.isEmpty()) return Int8DiTForward.forward(dit, quantized, byLayer, x, t, y);
            return model.forward(x, t, y);
        }

        /** Blocks of a DiT that run fused now (0 for other models). */
        int fusedBlocks() {
            return quantized != null && model instanceof DiT dit ? Int8DiTForward.fusedBlocks(dit, quantized, byLayer) : 0;
        }

        @Override public DiffusionModel model() { return model; }
        @Override public ExecutionInfo execution() { return info; }

        /** Bytes of the packed int8 weights, their steps and biases. */
        public long packedBytes() {
            long n = 0;
            for (Hook h : hooks) n += h.current().packedBytes();
            return n;
        }

        @Override public synchronized void close() {
            if (closed) return;
            closed = true;
            for (Hook h : hooks) h.release();
        }
    }
}
