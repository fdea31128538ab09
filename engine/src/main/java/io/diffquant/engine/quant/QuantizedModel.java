package io.diffquant.engine.quant;

import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.model.ForwardContext;
import io.diffquant.engine.model.Layer;
import io.diffquant.engine.model.LayerHook;
import io.diffquant.engine.quant.format.Layout;
import io.diffquant.engine.quant.format.QuantChecks;
import io.diffquant.engine.quant.format.QuantizedTensor;
import io.diffquant.engine.quant.format.Quantizer;
import io.diffquant.engine.quant.spec.CalibrationMode;
import io.diffquant.engine.quant.spec.PointSpec;
import io.diffquant.engine.quant.spec.QuantPlan;
import io.diffquant.engine.quant.spec.QuantPoint;
import io.diffquant.engine.quant.spec.TensorSpec;
import io.diffquant.engine.tensor.Tensor;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.NavigableMap;
import java.util.TreeMap;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Fake quantization of a denoiser through its layer hooks (Q-Diffusion's QuantModel with set_quant_state): every
 * quant point of a {@link QuantPlan} gets a hook whose weight() returns the fake-quantized weight (computed once when
 * attached and cached; recomputed only if the layer's weight tensor is replaced) and whose input() fake-quantizes the
 * input activations with fixed, per-timestep (looked up by the batch's timestep VALUE, {@link ForwardContext#uniformT()})
 * or dynamic parameters. The model's own tensors are never modified: {@link #detach()} restores full precision
 * exactly.
 */
public final class QuantizedModel {
    private final DiffusionModel model;
    private final QuantPlan plan;
    private final CalibratedParams params;
    private final Map<String, PointHook> hooks = new LinkedHashMap<>();
    private final AtomicLong weightQuantizations = new AtomicLong();
    private final List<Runnable> onDetach = new java.util.concurrent.CopyOnWriteArrayList<>();
    private volatile boolean weightsOn = true, inputsOn = true, attached;

    private QuantizedModel(DiffusionModel model, QuantPlan plan, CalibratedParams params) {
        this.model = model;
        this.plan = plan;
        this.params = params;
    }

    /**
     * Attaches fake quantization to the model. Every enabled weight and every static / per-timestep input must have
     * calibrated parameters; dynamic inputs need none. Weights are fake-quantized here, once.
     * @throws IllegalArgumentException naming the layer for missing or mismatched parameters or non-finite weights
     */
    public static QuantizedModel attach(DiffusionModel model, QuantPlan plan, CalibratedParams params) {
        if (!plan.architecture().equals(model.architecture())) throw new IllegalArgumentException("the quantization plan is for a "
                + plan.architecture() + ", the model is a " + model.architecture());
        QuantizedModel q = new QuantizedModel(model, plan, params == null ? CalibratedParams.EMPTY : params);
        for (QuantPoint p : plan.points()) {
            PointSpec s = plan.spec(p.name());
            if (!s.enabled()) continue;
            Layer layer = model.layers().get(p.name());
            q.hooks.put(p.name(), new PointHook(q, p, s, layer, q.params.get(p.name())));
        }
        for (String name : q.params.layers().keySet()) {
            if (plan.point(name) == null) throw new IllegalArgumentException("calibrated parameters for '" + name
                    + "', which is not a quant point of this " + model.architecture());
        }
        for (PointHook h : q.hooks.values()) {
            for (LayerHook other : h.layer.hooks()) if (other instanceof PointHook) throw new IllegalStateException("layer '" + h.layer.name()
                    + "' is already fake-quantized by another QuantizedModel: detach it first");
        }
        for (PointHook h : q.hooks.values()) h.layer.addHook(h);
        q.attached = true;
        return q;
    }

    /** Applies a config file to a model (checks the model identity unless forced): see {@code QuantConfigs.apply}. */
    public static QuantizedModel apply(DiffusionModel model, Path configFile, boolean force) throws java.io.IOException {
        return io.diffquant.engine.quant.config.QuantConfigs.apply(model, configFile, force);
    }

    /** Removes every hook this object added; the model computes in full precision again. Idempotent. */
    public synchronized void detach() {
        if (!attached) return;
        for (PointHook h : hooks.values()) h.layer.removeHook(h);
        for (Runnable r : onDetach) r.run();
        attached = false;
    }

    /**
     * Registers an action run by {@link #detach()}: hooks attached together with this quantization (e.g. TFMQ's cached
     * temporal features, {@code io.diffquant.engine.temporal.TemporalCacheHooks}) are removed with it.
     */
    public void onDetach(Runnable action) {
        if (action == null) throw new IllegalArgumentException("onDetach: action is null");
        onDetach.add(action);
    }

    public boolean attached() { return attached; }
    public DiffusionModel model() { return model; }
    public QuantPlan plan() { return plan; }
    public CalibratedParams params() { return params; }

    /** Turns weight fake quantization on or off without detaching (e.g. to calibrate activations on FP weights). */
    public void setWeightQuantization(boolean on) { weightsOn = on; }
    /** Turns input-activation fake quantization on or off without detaching (calibration observes FP inputs). */
    public void setInputQuantization(boolean on) { inputsOn = on; }
    public boolean weightQuantization() { return weightsOn; }
    public boolean inputQuantization() { return inputsOn; }

    /** How many times a weight was fake-quantized since attaching (once per quantized weight unless weights are replaced). */
    public long weightQuantizations() { return weightQuantizations.get(); }

    /** The names of the layers with hooks, in model order. */
    public List<String> hookedLayers() { return Collections.unmodifiableList(new ArrayList<>(hooks.keySet())); }

    /** The fake-quantized weight of a layer (the cached tensor the forward uses); null when its weight is not quantized. */
    public Tensor quantizedWeight(String layer) {
        PointHook h = hooks.get(layer);
        return h == null || h.wq == null ? null : h.quantizedWeight(h.layer.param("weight"));
    }

    /**
     * Hands a layer's computation to an execution backend ({@code io.diffquant.engine.backend}) or gives it back. While
     * handed over, this object's hook on the layer passes the input and the weight through unchanged, so a backend's
     * hook added after it sees the raw input and computes the quantized layer itself (from {@link #weightCodes} and the
     * plan's input spec, with real low-bit kernels). Nothing else changes: the plan, the parameters and the other
     * layers are as before.
     * @throws IllegalArgumentException when the layer is not quantized by this object
     */
    public void handOver(String layer, boolean handedOver) {
        PointHook h = hooks.get(layer);
        if (h == null) throw new IllegalArgumentException("layer '" + layer + "' is not quantized by this QuantizedModel (quantized layers: "
                + hooks.size() + ")");
        h.handedOver = handedOver;
    }

    /** Whether {@link #handOver} gave the layer to a backend. */
    public boolean handedOver(String layer) {
        PointHook h = hooks.get(layer);
        return h != null && h.handedOver;
    }

    /** Whether a layer currently runs fake quantization: it carries a hook of an attached QuantizedModel that was not handed over. */
    public static boolean fakeQuantized(Layer layer) {
        for (LayerHook h : layer.hooks()) if (h instanceof PointHook p && !p.handedOver) return true;
        return false;
    }

    /** The quantized weight of a layer as codes + parameters (for export); null when its weight is not quantized. */
    public QuantizedTensor weightCodes(String layer) {
        PointHook h = hooks.get(layer);
        if (h == null || h.wq == null) return null;
        Tensor w = h.layer.param("weight");
        if (h.wparams.hasCodes()) return new QuantizedTensor(h.wspec.format(), h.wspec.granularity(), Layout.WEIGHT, w.shape(),
                h.wparams.codes(), h.wparams.params());
        return h.wq.quantize(w);
    }

    // ------------------------------------------------------------------ the hook

    private static final class PointHook implements LayerHook {
        final QuantizedModel owner;
        final QuantPoint point;
        final Layer layer;
        final TensorSpec wspec, ispec;
        final Quantizer wq;                // null when the weight is off
        final WeightParams wparams;
        private Tensor wSource, wCached;
        final Quantizer[] staticQ;         // static input quantizers (one per part)
        final NavigableMap<Float, Quantizer[]> perT;
        final Quantizer[] dynamicQ;
        /** the input format/granularity have a fast kernel (and dynamic ranges are min-max) */
        final boolean fast;
        /** set by {@link #handOver}: a backend computes this layer, the hook passes input and weight through */
        volatile boolean handedOver;

        PointHook(QuantizedModel owner, QuantPoint p, PointSpec s, Layer layer, LayerParams lp) {
            this.owner = owner;
            this.point = p;
            this.layer = layer;
            this.wspec = s.weight();
            this.ispec = s.input();
            if (wspec.enabled()) {
                WeightParams w = lp.weight();
                if (w == null) throw new IllegalArgumentException("layer '" + p.name() + "': weight quantization " + wspec.describe(TensorSpec.Role.WEIGHT)
                        + " has no calibrated parameters (calibrate the weights first)");
                Tensor weight = layer.param("weight");
                try {
                    wq = Quantizer.withParams(wspec.format(), wspec.granularity(), Layout.WEIGHT, w.params()).named(layer.qualified("weight"));
                    int groups = wq.view(weight.shape()).groups();
                    if (groups != w.params().groups()) throw new IllegalArgumentException(wspec.describe(TensorSpec.Role.WEIGHT) + " on "
                            + Arrays.toString(weight.shape()) + " needs " + groups + " parameter groups, the calibrated parameters have " + w.params().groups());
                    if (w.hasCodes() && w.codes().length != weight.size()) throw new IllegalArgumentException("the learned codes hold "
                            + w.codes().length + " values, the weight " + Arrays.toString(weight.shape()) + " has " + weight.size());
                } catch (IllegalArgumentException e) {
                    throw new IllegalArgumentException("layer '" + p.name() + "': " + e.getMessage(), e);
                }
                wparams = w;
                quantizedWeight(weight);
            } else {
                wq = null;
                wparams = null;
            }
            Quantizer[] st = null, dyn = null;
            NavigableMap<Float, Quantizer[]> pt = null;
            if (ispec.enabled()) {
                int parts = p.inputParts();
                if (ispec.mode() == CalibrationMode.DYNAMIC) {
                    dyn = new Quantizer[parts];
                    for (int i = 0; i < parts; i++) dyn[i] = Quantizer.dynamic(ispec.format(), ispec.granularity(), Layout.ACTIVATION,
                            ispec.range().estimator()).named(partName(i));
                } else {
                    InputParams ip = lp.input();
                    if (ip == null) throw new IllegalArgumentException("layer '" + p.name() + "': input quantization "
                            + ispec.describe(TensorSpec.Role.INPUT) + " has no calibrated parameters (calibrate the activations first)");
                    boolean wantPerT = ispec.mode() == CalibrationMode.PER_TIMESTEP;
                    if (ip.isPerTimestep() != wantPerT) throw new IllegalArgumentException("layer '" + p.name() + "': the input spec is "
                            + ispec.mode().id() + " but the calibrated parameters are " + (ip.isPerTimestep() ? "per timestep" : "shared"));
                    if (wantPerT) {
                        pt = new TreeMap<>();
                        for (Map.Entry<Float, ActivationParams> e : ip.perTimestep().entrySet())
                            pt.put(e.getKey(), quantizers(e.getValue(), " at t=" + timestepLabel(e.getKey())));
                    } else {
                        st = quantizers(ip.shared(), "");
                    }
                }
            }
            staticQ = st;
            perT = pt;
            dynamicQ = dyn;
            fast = ispec.enabled() && ActivationKernels.supports(ispec.format(), ispec.granularity())
                    && (ispec.mode() != CalibrationMode.DYNAMIC || ispec.range().kind() == io.diffquant.engine.quant.spec.RangeSpec.Kind.MINMAX);
        }

        private String partName(int i) {
            return point.name() + ".input" + (point.inputParts() > 1 ? "[part " + i + "]" : "");
        }

        private Quantizer[] quantizers(ActivationParams ap, String where) {
            if (ap.size() != point.inputParts()) throw new IllegalArgumentException("layer '" + point.name() + "': input parameters"
                    + where + " have " + ap.size() + " parts, the layer's input has " + point.inputParts()
                    + (point.splitAt() >= 0 ? " (skip concatenation split at channel " + point.splitAt() + ")" : ""));
            Quantizer[] q = new Quantizer[ap.size()];
            for (int i = 0; i < q.length; i++) {
                try {
                    q[i] = Quantizer.withParams(ispec.format(), ispec.granularity(), Layout.ACTIVATION, ap.part(i)).named(partName(i));
                } catch (IllegalArgumentException e) {
                    throw new IllegalArgumentException("layer '" + point.name() + "': input parameters" + where + ": " + e.getMessage(), e);
                }
            }
            return q;
        }

        synchronized Tensor quantizedWeight(Tensor w) {
            if (w != wSource) {
                QuantChecks.requireFinite(layer.qualified("weight"), w);
                Tensor out;
                if (wparams.hasCodes()) {
                    out = Quantizer.dequantize(new QuantizedTensor(wspec.format(), wspec.granularity(), Layout.WEIGHT, w.shape(),
                            wparams.codes(), wparams.params()));
                } else {
                    out = wq.fakeQuant(w);
                }
                owner.weightQuantizations.incrementAndGet();
                wCached = out;
                wSource = w;
            }
            return wCached;
        }

        @Override public Tensor weight(Layer l, Tensor w, ForwardContext ctx) {
            if (wq == null || !owner.weightsOn || handedOver) return w;
            return quantizedWeight(w);
        }

        @Override public Tensor input(Layer l, Tensor x, ForwardContext ctx) {
            if (!ispec.enabled() || !owner.inputsOn || handedOver) return x;
            Quantizer[] q;
            if (dynamicQ != null) q = dynamicQ;
            else if (staticQ != null) q = staticQ;
            else q = lookup(ctx);
            Tensor[] parts = InputParts.split(point, ispec.granularity(), x);
            Tensor[] out = new Tensor[parts.length];
            boolean direct = InputParts.direct(point, ispec.granularity());
            for (int i = 0; i < parts.length; i++) {
                Tensor dst = direct ? Tensor.zeros(parts[i].shape()) : parts[i];   // split parts are private copies
                if (fast) ActivationKernels.fakeQuant(ispec.format(), ispec.granularity(), q[i].params(), parts[i], dst, q[i].name());
                else q[i].fakeQuant(parts[i], dst);
                out[i] = dst;
            }
            return InputParts.merge(point, ispec.granularity(), x, out);
        }

        private Quantizer[] lookup(ForwardContext ctx) {
            float t = ctx.uniformT();
            if (Float.isNaN(t)) throw new IllegalArgumentException("layer '" + point.name() + "': per-timestep input quantization needs a batch "
                    + "with one timestep value, got t = " + Arrays.toString(Arrays.copyOf(ctx.t(), Math.min(8, ctx.t().length)))
                    + (ctx.t().length > 8 ? "..." : ""));
            Quantizer[] q = perT.get(t == 0f ? 0f : t);
            if (q == null) throw new IllegalArgumentException("layer '" + point.name() + "': no input parameters for timestep t = "
                    + timestepLabel(t) + "; calibrated timesteps: " + timestepList(perT) + " (sample with the sampler and step count used for calibration)");
            return q;
        }
    }

    /** "999" for integral timestep values, else the float. */
    public static String timestepLabel(float t) {
        return t == Math.rint(t) && Math.abs(t) < 1e9 ? Long.toString((long) t) : Float.toString(t);
    }

    private static String timestepList(NavigableMap<Float, ?> m) {
        List<String> s = new ArrayList<>();
        for (Float t : m.descendingKeySet()) s.add(timestepLabel(t));
        return s.size() <= 12 ? String.join(", ", s) : String.join(", ", s.subList(0, 6)) + ", ..., " + String.join(", ", s.subList(s.size() - 3, s.size()))
                + " (" + s.size() + " values)";
    }
}
