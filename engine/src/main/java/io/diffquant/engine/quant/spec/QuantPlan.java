package io.diffquant.engine.quant.spec;

import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.model.Layer;
import io.diffquant.engine.model.LayerRegistry;
import io.diffquant.engine.quant.format.Layout;
import io.diffquant.engine.tensor.Tensor;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;

/**
 * The resolved per-layer quantization of one model: the defaults, then every override in order (later entries win),
 * validated against the model's quant points ({@link QuantPoint#of(DiffusionModel)}). Also the bit accounting of
 * ALGORITHMS.md §3: average bits per weight including scale/zero-point overhead, and the model's storage size.
 * Immutable.
 */
public final class QuantPlan {
    private final PointSpec defaults;
    private final List<LayerOverride> overrides;
    private final List<QuantPoint> points;
    private final Map<String, QuantPoint> byName = new LinkedHashMap<>();
    private final Map<String, PointSpec> specs = new LinkedHashMap<>();
    private final Map<String, int[]> stateShapes = new LinkedHashMap<>();
    private final String architecture;

    private QuantPlan(DiffusionModel model, PointSpec defaults, List<LayerOverride> overrides) {
        this.defaults = defaults;
        this.overrides = List.copyOf(overrides);
        this.points = QuantPoint.of(model);
        this.architecture = model.architecture();
        for (QuantPoint p : points) byName.put(p.name(), p);
        for (Map.Entry<String, Tensor> e : model.stateDict().entrySet()) stateShapes.put(e.getKey(), e.getValue().shape());
    }

    /**
     * Resolves defaults and overrides for a model.
     * @throws IllegalArgumentException naming the override's origin and the layer when a pattern matches no quant
     *         point, a patch cannot be applied, or a resulting spec is invalid for its layer
     */
    public static QuantPlan resolve(DiffusionModel model, PointSpec defaults, List<LayerOverride> overrides) {
        if (model == null) throw new IllegalArgumentException("model is null");
        if (defaults == null) throw new IllegalArgumentException("defaults are null");
        try {
            defaults.weight().validate(TensorSpec.Role.WEIGHT);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("defaults.weight." + e.getMessage(), e);
        }
        try {
            defaults.input().validate(TensorSpec.Role.INPUT);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("defaults.input." + e.getMessage(), e);
        }
        QuantPlan plan = new QuantPlan(model, defaults, overrides == null ? List.of() : overrides);
        plan.build(model.layers());
        return plan;
    }

    private void build(LayerRegistry registry) {
        for (QuantPoint p : points) specs.put(p.name(), new PointSpec(p.hasWeight() ? defaults.weight() : TensorSpec.OFF, defaults.input()));
        for (LayerOverride o : overrides) {
            List<QuantPoint> hit = matching(o.pattern());
            if (hit.isEmpty()) {
                int others = 0;
                for (Layer l : registry.all()) if (matches(o.pattern(), l.name())) others++;
                throw new IllegalArgumentException(o.origin() + ": pattern '" + o.pattern() + "' matches no quantizable layer of this "
                        + architecture + (others > 0 ? " (it matches " + others + " layers without weights or inputs to quantize, e.g. norms)"
                        : "; quantizable layers look like " + examples()));
            }
            for (QuantPoint p : hit) {
                PointSpec cur = specs.get(p.name());
                TensorSpec w = cur.weight(), in = cur.input();
                try {
                    if (p.hasWeight()) w = o.weight().apply(w, defaults.weight());
                } catch (IllegalArgumentException e) {
                    throw new IllegalArgumentException(o.origin() + ".weight: layer '" + p.name() + "': " + e.getMessage(), e);
                }
                try {
                    in = o.input().apply(in, defaults.input());
                } catch (IllegalArgumentException e) {
                    throw new IllegalArgumentException(o.origin() + ".input: layer '" + p.name() + "': " + e.getMessage(), e);
                }
                try {
                    w.validate(TensorSpec.Role.WEIGHT);
                    if (w.enabled()) w.format().averageBits(p.weightShape(), Layout.WEIGHT, w.granularity());
                } catch (IllegalArgumentException e) {
                    throw new IllegalArgumentException(o.origin() + ".weight." + e.getMessage() + " (layer '" + p.name() + "')", e);
                }
                try {
                    in.validate(TensorSpec.Role.INPUT);
                } catch (IllegalArgumentException e) {
                    throw new IllegalArgumentException(o.origin() + ".input." + e.getMessage() + " (layer '" + p.name() + "')", e);
                }
                specs.put(p.name(), new PointSpec(w, in));
            }
        }
        for (QuantPoint p : points) {
            TensorSpec w = specs.get(p.name()).weight();
            if (w.enabled()) {
                try {
                    w.format().averageBits(p.weightShape(), Layout.WEIGHT, w.granularity());
                } catch (IllegalArgumentException e) {
                    throw new IllegalArgumentException("defaults.weight.granularity: layer '" + p.name() + "': " + e.getMessage(), e);
                }
            }
        }
    }

    private String examples() {
        List<String> ex = new ArrayList<>();
        for (int i = 0; i < points.size() && ex.size() < 4; i += Math.max(1, points.size() / 4)) ex.add(points.get(i).name());
        return ex.toString();
    }

    /**
     * Whether a glob matches a layer name: the whole name or a dotted prefix of it ({@code *} matches any run of
     * characters including dots, {@code ?} one character).
     */
    public static boolean matches(String glob, String name) {
        Pattern p = LayerRegistry.globToRegex(glob);
        if (p.matcher(name).matches()) return true;
        for (int i = name.indexOf('.'); i >= 0; i = name.indexOf('.', i + 1)) {
            if (p.matcher(name.substring(0, i)).matches()) return true;
        }
        return false;
    }

    /** The quant points a pattern selects (see {@link #matches}). */
    public List<QuantPoint> matching(String glob) {
        Pattern p = LayerRegistry.globToRegex(glob);
        List<QuantPoint> out = new ArrayList<>();
        for (QuantPoint q : points) {
            String name = q.name();
            boolean hit = p.matcher(name).matches();
            for (int i = name.indexOf('.'); !hit && i >= 0; i = name.indexOf('.', i + 1)) hit = p.matcher(name.substring(0, i)).matches();
            if (hit) out.add(q);
        }
        return out;
    }

    /**
     * The same plan with every input-activation spec off (weights as resolved): what activation calibration attaches
     * while it observes inputs.
     */
    public QuantPlan weightsOnly() {
        QuantPlan q = new QuantPlan(this);
        for (Map.Entry<String, PointSpec> e : specs.entrySet()) q.specs.put(e.getKey(), new PointSpec(e.getValue().weight(), TensorSpec.OFF));
        return q;
    }

    private QuantPlan(QuantPlan o) {
        this.defaults = o.defaults;
        this.overrides = o.overrides;
        this.points = o.points;
        this.architecture = o.architecture;
        this.byName.putAll(o.byName);
        this.stateShapes.putAll(o.stateShapes);
    }

    public PointSpec defaults() { return defaults; }
    public List<LayerOverride> overrides() { return overrides; }
    public List<QuantPoint> points() { return Collections.unmodifiableList(points); }
    public String architecture() { return architecture; }

    /** The point of a layer, or null. */
    public QuantPoint point(String layer) { return byName.get(layer); }

    /** The resolved spec of a quant point (throws for unknown names). */
    public PointSpec spec(String layer) {
        PointSpec s = specs.get(layer);
        if (s == null) throw new IllegalArgumentException("'" + layer + "' is not a quant point of this " + architecture);
        return s;
    }

    /** Resolved specs by layer name, in model order. */
    public Map<String, PointSpec> specs() { return Collections.unmodifiableMap(specs); }

    // ------------------------------------------------------------------ bit accounting

    /** Average bits per weight element of a layer including scale/zero-point overhead (32 when not quantized). */
    public double weightBits(String layer) {
        QuantPoint p = byName.get(layer);
        if (p == null || !p.hasWeight()) throw new IllegalArgumentException("'" + layer + "' has no weight to quantize");
        TensorSpec w = specs.get(layer).weight();
        return w.enabled() ? w.format().averageBits(p.weightShape(), Layout.WEIGHT, w.granularity()) : 32.0;
    }

    /** Code bits of a layer's input activations (32 when not quantized). */
    public int inputBits(String layer) {
        TensorSpec in = spec(layer).input();
        return in.enabled() ? in.format().codeBits() : 32;
    }

    /** Average bits over all Linear/Conv2d weight elements (overhead included). */
    public double averageWeightBits() {
        double bits = 0;
        long n = 0;
        for (QuantPoint p : points) {
            if (!p.hasWeight()) continue;
            long e = Tensor.numel(p.weightShape());
            bits += weightBits(p.name()) * e;
            n += e;
        }
        return n == 0 ? 32 : bits / n;
    }

    /** Storage in bytes of the quantized model: quantized weights at their average bits, everything else FP32. */
    public double modelSizeBytes() {
        double bits = 0;
        for (Map.Entry<String, int[]> e : stateShapes.entrySet()) {
            long n = Tensor.numel(e.getValue());
            String name = e.getKey();
            if (name.endsWith(".weight")) {
                QuantPoint p = byName.get(name.substring(0, name.length() - ".weight".length()));
                if (p != null && p.hasWeight()) {
                    bits += weightBits(p.name()) * n;
                    continue;
                }
            }
            bits += 32.0 * n;
        }
        return bits / 8;
    }

    /** Storage in bytes of the full-precision (FP32) model. */
    public double fpSizeBytes() {
        long n = 0;
        for (int[] s : stateShapes.values()) n += Tensor.numel(s);
        return 4.0 * n;
    }
}
