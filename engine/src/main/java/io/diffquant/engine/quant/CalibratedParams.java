package io.diffquant.engine.quant;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * All calibrated quantization parameters of a model by layer name (what a config stores so that a quantized model is
 * reproduced without recalibrating). Immutable; the {@code with*} methods return modified copies.
 */
public final class CalibratedParams {
    public static final CalibratedParams EMPTY = new CalibratedParams(Map.of());

    private final Map<String, LayerParams> layers;

    public CalibratedParams(Map<String, LayerParams> layers) {
        Map<String, LayerParams> m = new LinkedHashMap<>();
        for (Map.Entry<String, LayerParams> e : layers.entrySet()) if (e.getValue() != null && !e.getValue().isEmpty()) m.put(e.getKey(), e.getValue());
        this.layers = Collections.unmodifiableMap(m);
    }

    public Map<String, LayerParams> layers() { return layers; }

    /** Parameters of a layer (an empty LayerParams when none). */
    public LayerParams get(String layer) {
        LayerParams p = layers.get(layer);
        return p == null ? new LayerParams(null, null) : p;
    }

    public WeightParams weight(String layer) { return get(layer).weight(); }
    public InputParams input(String layer) { return get(layer).input(); }

    public CalibratedParams withWeight(String layer, WeightParams w) {
        Map<String, LayerParams> m = new LinkedHashMap<>(layers);
        m.put(layer, get(layer).withWeight(w));
        return new CalibratedParams(m);
    }

    public CalibratedParams withInput(String layer, InputParams in) {
        Map<String, LayerParams> m = new LinkedHashMap<>(layers);
        m.put(layer, get(layer).withInput(in));
        return new CalibratedParams(m);
    }

    /** This plus every layer of {@code other} (other's weight/input entries win where present). */
    public CalibratedParams merge(CalibratedParams other) {
        Map<String, LayerParams> m = new LinkedHashMap<>(layers);
        for (Map.Entry<String, LayerParams> e : other.layers.entrySet()) {
            LayerParams a = get(e.getKey()), b = e.getValue();
            m.put(e.getKey(), new LayerParams(b.weight() != null ? b.weight() : a.weight(), b.input() != null ? b.input() : a.input()));
        }
        return new CalibratedParams(m);
    }

    @Override public boolean equals(Object o) { return o instanceof CalibratedParams c && c.layers.equals(layers); }
    @Override public int hashCode() { return layers.hashCode(); }
    @Override public String toString() { return "CalibratedParams[" + layers.size() + " layers]"; }
}
