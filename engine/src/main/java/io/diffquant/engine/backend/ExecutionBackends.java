package io.diffquant.engine.backend;

import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.quant.QuantizedModel;
import io.diffquant.engine.tensor.Tensor;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.ServiceConfigurationError;
import java.util.ServiceLoader;
import java.util.logging.Logger;

/**
 * The installed {@link ExecutionBackend}s, found with {@link ServiceLoader} (issue 7 item 2), and the choice by id with
 * the fallback to {@code jvm}: a known backend that is not installed (no provider on the class path, e.g.
 * {@code tornado} without the kernels-tornado module) or not usable here ({@link ExecutionBackend#unavailableReason()})
 * is replaced by {@code jvm} with exactly one log line, and the result's {@link ExecutionInfo} says so.
 */
public final class ExecutionBackends {
    private static final Logger LOG = Logger.getLogger(ExecutionBackends.class.getName());
    /** The ids the CLI and GUI offer even when not installed (they then fall back). */
    public static final List<String> KNOWN = List.of(ExecutionBackend.JVM, ExecutionBackend.CPU_INT8, ExecutionBackend.TORNADO);

    private ExecutionBackends() {}

    /** A backend chosen for a request: the one that will run, what was asked for, and why it differs (null if not). */
    public record Choice(ExecutionBackend backend, String requested, String fallbackReason) {
        public boolean fellBack() { return fallbackReason != null; }
    }

    /** Every installed backend by id, {@code jvm} first (a fresh ServiceLoader scan of the context class loader). */
    public static Map<String, ExecutionBackend> installed() {
        Map<String, ExecutionBackend> m = new LinkedHashMap<>();
        m.put(ExecutionBackend.JVM, new JvmBackend());
        ClassLoader cl = Thread.currentThread().getContextClassLoader();
        ServiceLoader<ExecutionBackend> sl = ServiceLoader.load(ExecutionBackend.class, cl == null ? ExecutionBackends.class.getClassLoader() : cl);
        var it = sl.iterator();
        while (true) {
            ExecutionBackend b;
            try {
                if (!it.hasNext()) break;
                b = it.next();
            } catch (ServiceConfigurationError e) {
                // a provider that cannot load (missing dependency) is "not installed"; the choice logs the fallback
                LOG.fine("skipping an execution backend provider: " + e.getMessage());
                continue;
            }
            if (!m.containsKey(b.id())) m.put(b.id(), b);
        }
        return m;
    }

    /** The installed backend with this id, if any. */
    public static Optional<ExecutionBackend> find(String id) {
        return Optional.ofNullable(installed().get(id));
    }

    /** Known and installed ids, in that order without duplicates (for option lists). */
    public static List<String> ids() {
        List<String> ids = new ArrayList<>(KNOWN);
        for (String id : installed().keySet()) if (!ids.contains(id)) ids.add(id);
        return ids;
    }

    /**
     * The backend to run for an id: the installed and usable one, else {@code jvm} after one log line.
     * @throws IllegalArgumentException for an id that is neither known nor installed (a typo), listing the valid ids
     */
    public static Choice choose(String id) {
        String want = id == null || id.isBlank() ? ExecutionBackend.JVM : id.trim();
        Map<String, ExecutionBackend> all = installed();
        ExecutionBackend b = all.get(want);
        if (b == null && !KNOWN.contains(want)) throw new IllegalArgumentException("unknown execution backend '" + want + "'; expected one of "
                + String.join(", ", ids()));
        String reason;
        if (b == null) {
            reason = "not installed: no provider of '" + want + "' on the class path"
                    + (want.equals(ExecutionBackend.TORNADO) ? " (build and launch with the TornadoVM profile, see docs/backends.md)" : "");
        } else {
            try {
                reason = b.unavailableReason();
            } catch (RuntimeException | LinkageError e) {
                reason = "its availability check failed: " + e;
            }
            if (reason == null) return new Choice(b, want, null);
        }
        LOG.warning("execution backend '" + want + "' is not available (" + reason + "); falling back to 'jvm' (FP32 kernels, fake quantization)");
        return new Choice(all.get(ExecutionBackend.JVM), want, reason);
    }

    /**
     * {@link #choose} then {@link ExecutionBackend#prepare}: a denoiser of the model on the requested backend (or on
     * {@code jvm} after a fallback, which its {@link ExecutionInfo} notes).
     */
    public static PreparedDenoiser prepare(String id, DiffusionModel model, QuantizedModel quantized) {
        Choice c = choose(id);
        PreparedDenoiser p = c.backend().prepare(model, quantized);
        return c.fellBack() ? new FellBack(p, p.execution().fellBackFrom(c.requested(), c.fallbackReason())) : p;
    }

    /** A prepared denoiser whose info records the fallback. */
    private record FellBack(PreparedDenoiser inner, ExecutionInfo execution) implements PreparedDenoiser {
        @Override public Tensor forward(Tensor x, float[] t, int[] y) { return inner.forward(x, t, y); }
        @Override public DiffusionModel model() { return inner.model(); }
        @Override public void close() { inner.close(); }
    }
}
