package io.diffquant.kernels.tornado;

import io.diffquant.engine.backend.ExecutionBackend;
import io.diffquant.engine.backend.ExecutionInfo;
import io.diffquant.engine.backend.PreparedDenoiser;
import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.model.dit.DiT;
import io.diffquant.engine.quant.QuantizedModel;
import io.diffquant.engine.tensor.Tensor;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The {@code tornado} execution backend (issue 7): the transformer blocks of a DiT run as TornadoVM task graphs
 * ({@link TornadoDiT}, {@link DevicePlan}) with real low-bit kernels (W8A8 / W4A8 integer GEMMs with fused per-group
 * dequantization, FP4 lookup-table GEMMs) or FP32 kernels for unquantized blocks; the patch / conditioning embeddings,
 * the final layer and any block the kernels cannot run stay in the engine (fake quantization on the JVM), and the
 * {@link ExecutionInfo} counts both. Other architectures (UNet) run in the engine with a note saying so.
 *
 * <p>Unlike the per-layer backends this one replaces whole blocks, so the model's own {@code forward} is not changed:
 * only the prepared denoiser runs on the device. Registered through META-INF/services; found only when kernels-tornado is
 * on the class path (the launcher's TornadoVM profile), usable only with the SDK's argfile (TornadoVM runtime loaded).
 */
public final class TornadoBackend implements ExecutionBackend {
    public static final String KERNELS = "TornadoVM OpenCL: INT GEMM with fused dequant, FP4 LUT GEMM";

    private final TornadoDiT.Target target;
    private final DeviceSettings settings;
    private static volatile String reason;
    private static volatile boolean checked;

    /** The service: blocks on the TornadoVM device with the default settings. */
    public TornadoBackend() { this(TornadoDiT.Target.DEVICE, DeviceSettings.defaults()); }

    /** For tests: Target.JVM runs the same kernels as Java loops. */
    TornadoBackend(TornadoDiT.Target target, DeviceSettings settings) {
        this.target = target;
        this.settings = settings;
    }

    @Override public String id() { return TORNADO; }

    @Override public String description() {
        return "DiT blocks as TornadoVM kernels (W8A8/W4A8 INT GEMM, FP4 LUT GEMM) on the default OpenCL device; other layers fake-quantized";
    }

    /** Null when a TornadoVM runtime with a default device is present, else why not (computed once). */
    @Override public String unavailableReason() {
        if (target == TornadoDiT.Target.JVM) return null;
        if (!checked) {
            synchronized (TornadoBackend.class) {
                if (!checked) {
                    reason = probe();
                    checked = true;
                }
            }
        }
        return reason;
    }

    private static String probe() {
        try {
            Class.forName("uk.ac.manchester.tornado.api.runtime.TornadoRuntimeProvider", false, TornadoBackend.class.getClassLoader());
        } catch (Throwable t) {
            return "tornado-api is not on the class path";
        }
        if (System.getProperty("tornado.load.runtime.implementation") == null)
            return "the TornadoVM runtime is not configured (launch with TORNADOVM_HOME set: bin/diffquant adds @$TORNADOVM_HOME/tornado-argfile)";
        try {
            Object dev = uk.ac.manchester.tornado.api.runtime.TornadoRuntimeProvider.getTornadoRuntime().getDefaultDevice();
            return dev == null ? "TornadoVM found no device" : null;
        } catch (Throwable t) {
            return "the TornadoVM runtime did not start: " + t;
        }
    }

    /** The default device's name, for reports ("unknown" when none). */
    public static String deviceName() {
        try {
            return uk.ac.manchester.tornado.api.runtime.TornadoRuntimeProvider.getTornadoRuntime().getDefaultDevice()
                    .getPhysicalDevice().getDeviceName();
        } catch (Throwable t) {
            return "unknown";
        }
    }

    @Override public PreparedDenoiser prepare(DiffusionModel model, QuantizedModel quantized) {
        ExecutionBackend.checkArguments(model, quantized);
        int hooked = quantized == null ? 0 : quantized.hookedLayers().size();
        if (!(model instanceof DiT dit)) {
            String note = "the tornado backend runs DiT blocks; this " + model.architecture() + " ran in the engine";
            return new Prepared(model, null, ExecutionInfo.of(TORNADO, 0, hooked, KERNELS, note));
        }
        String why = unavailableReason();
        if (why != null) throw new IllegalStateException("the tornado backend cannot run here: " + why);
        TornadoDiT td = TornadoDiT.create(dit, quantized, target, settings, false);
        Set<String> real = new HashSet<>();
        for (int i = 0; i < dit.depth(); i++) {
            for (PackedLinear l : td.blockLayers(i)) if (l.kind() != PackedLinear.Kind.F32) real.add(l.name());
        }
        int fake = 0;
        List<String> fakeNames = new ArrayList<>();
        if (quantized != null) {
            for (String l : quantized.hookedLayers()) {
                if (!real.contains(l) && quantized.plan().spec(l).enabled()) {
                    fake++;
                    fakeNames.add(l);
                }
            }
        }
        StringBuilder note = new StringBuilder();
        Map<Integer, String> eng = td.engineBlocks();
        if (!eng.isEmpty()) {
            note.append("blocks ").append(eng.keySet()).append(" in the engine (").append(eng.values().iterator().next()).append(")");
        }
        if (fake > 0) {
            if (note.length() > 0) note.append("; ");
            note.append("fake-quantized on the JVM: ").append(fakeNames.size() <= 3 ? String.join(", ", fakeNames)
                    : fakeNames.get(0) + ", " + fakeNames.get(1) + " and " + (fakeNames.size() - 2) + " more");
        }
        if (target == TornadoDiT.Target.DEVICE) {
            if (note.length() > 0) note.append("; ");
            note.append("device: ").append(deviceName());
        }
        return new Prepared(model, td, ExecutionInfo.of(TORNADO, real.size(), fake, KERNELS, note.toString()));
    }

    /** The prepared denoiser: the TornadoDiT (or the model itself for non-DiT models) and its execution info. */
    static final class Prepared implements PreparedDenoiser {
        private final DiffusionModel model;
        private final TornadoDiT dit;
        private final ExecutionInfo info;
        private volatile boolean closed;

        Prepared(DiffusionModel model, TornadoDiT dit, ExecutionInfo info) {
            this.model = model;
            this.dit = dit;
            this.info = info;
        }

        @Override public synchronized Tensor forward(Tensor x, float[] t, int[] y) {
            if (closed) throw new IllegalStateException("this tornado denoiser was closed");
            return dit == null ? model.forward(x, t, y) : dit.forward(x, t, y);
        }

        @Override public DiffusionModel model() { return model; }
        @Override public ExecutionInfo execution() { return info; }
        /** The kernel runner, or null for a model the backend runs in the engine. */
        TornadoDiT dit() { return dit; }

        @Override public synchronized void close() {
            if (closed) return;
            closed = true;
            if (dit != null) dit.close();
        }
    }
}
