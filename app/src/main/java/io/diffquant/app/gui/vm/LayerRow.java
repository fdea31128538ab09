package io.diffquant.app.gui.vm;

import io.diffquant.engine.model.Layer;
import io.diffquant.engine.model.LayerKind;
import io.diffquant.engine.quant.format.Granularity;
import io.diffquant.engine.tensor.Tensor;
import javafx.beans.property.DoubleProperty;
import javafx.beans.property.ReadOnlyDoubleProperty;
import javafx.beans.property.ReadOnlyDoubleWrapper;
import javafx.beans.property.ReadOnlyObjectProperty;
import javafx.beans.property.ReadOnlyObjectWrapper;
import javafx.beans.property.SimpleDoubleProperty;

import java.util.Arrays;
import java.util.Map;

/**
 * One row of the layer table: a layer of the model (state_dict prefix, {@link Layer#kind()}), or a weightless
 * activation probe (attention q/k/v, softmax, UNet skip concat) treated as a quantization point, with its current
 * {@link LayerQuantSpec}. Only {@link LayerTableViewModel} changes the spec (so that every edit can be undone).
 */
public final class LayerRow {
    private final String name;
    private final LayerKind kind;
    private final int[] weightShape;
    private final long parameterCount;
    private final boolean temporal;
    private final String block;
    private final ReadOnlyObjectWrapper<LayerQuantSpec> spec = new ReadOnlyObjectWrapper<>(this, "spec", LayerQuantSpec.DEFAULT);
    private final ReadOnlyDoubleWrapper averageBits = new ReadOnlyDoubleWrapper(this, "averageBits");
    /** Sensitivity in [0, 1] (filled by the analysis later); NaN = not measured. */
    private final DoubleProperty sensitivity = new SimpleDoubleProperty(this, "sensitivity", Double.NaN);

    public LayerRow(String name, LayerKind kind, int[] weightShape, long parameterCount, Map<String, String> tags) {
        this.name = name;
        this.kind = kind;
        this.weightShape = weightShape == null ? null : weightShape.clone();
        this.parameterCount = parameterCount;
        this.temporal = "true".equalsIgnoreCase(tags.getOrDefault("temporal", ""));
        this.block = tags.getOrDefault("block", "");
        averageBits.set(computeAverageBits(LayerQuantSpec.DEFAULT));
    }

    /** A row describing a model layer (reads the weight's shape, the parameter count and the tags). */
    public static LayerRow of(Layer layer) {
        Tensor w = layer.param("weight");
        return new LayerRow(layer.name(), layer.kind(), w == null ? null : w.shape(), layer.parameterCount(), layer.tags());
    }

    public String name() { return name; }
    public LayerKind kind() { return kind; }
    /** Shape of the weight, or null for layers without one (probes). */
    public int[] weightShape() { return weightShape == null ? null : weightShape.clone(); }
    public String shapeText() { return weightShape == null ? "" : Arrays.toString(weightShape); }
    public long parameterCount() { return parameterCount; }
    /** Elements of the weight (0 without one). */
    public long weightElements() { return weightShape == null ? 0 : Tensor.numel(weightShape); }
    /** Tagged "temporal" by the model (TFMQ's TIB: the time-embedding path). */
    public boolean temporal() { return temporal; }
    /** The block the layer belongs to ("" if untagged). */
    public String block() { return block; }

    /** Linear and conv weights can be quantized; embeddings and norms stay float32. */
    public boolean weightQuantizable() { return weightShape != null && (kind == LayerKind.LINEAR || kind == LayerKind.CONV2D); }
    /** Inputs of linear/conv layers and the activation probes can be quantized. */
    public boolean activationQuantizable() { return kind == LayerKind.LINEAR || kind == LayerKind.CONV2D || kind == LayerKind.ACTIVATION; }

    public LayerQuantSpec spec() { return spec.get(); }
    public ReadOnlyObjectProperty<LayerQuantSpec> specProperty() { return spec.getReadOnlyProperty(); }

    /** Average weight bits with the current spec; 32 when the weight stays float, NaN when it has no quantizable weight. */
    public double averageBits() { return averageBits.get(); }
    public ReadOnlyDoubleProperty averageBitsProperty() { return averageBits.getReadOnlyProperty(); }

    /** Code bits of the weight format (32 for float, 0 when there is no quantizable weight). */
    public int weightBits() {
        if (!weightQuantizable()) return 0;
        LayerQuantSpec s = spec();
        return s.quantizesWeight() ? Formats.codeBits(s.weightFormat()) : 32;
    }

    /** Code bits of the activation format (32 for float, 0 when the activation is not quantizable). */
    public int activationBits() {
        if (!activationQuantizable()) return 0;
        LayerQuantSpec s = spec();
        return s.quantizesActivation() ? Formats.codeBits(s.activationFormat()) : 32;
    }

    public DoubleProperty sensitivityProperty() { return sensitivity; }

    /**
     * Checks a spec for this layer and returns it with canonical names: formats parse, granularities parse and the
     * weight format accepts its granularity on this weight's shape. Errors name the layer.
     */
    public LayerQuantSpec validate(LayerQuantSpec s) {
        try {
            String wf = Formats.canonical(s.weightFormat());
            String wg = Formats.canonicalGranularity(s.weightGranularity());
            String af = Formats.canonical(s.activationFormat());
            String ag = Formats.canonicalGranularity(s.activationGranularity());
            String wr = io.diffquant.engine.quant.spec.RangeSpec.parse(s.weightRange()).id();
            String ar = io.diffquant.engine.quant.spec.RangeSpec.parse(s.activationRange()).id();
            String am = io.diffquant.engine.quant.spec.CalibrationMode.parse(s.activationMode()).id();
            if (!Formats.isFloat(wf) && !weightQuantizable()) throw new IllegalArgumentException(
                    "a " + kind.name().toLowerCase() + " layer has no quantizable weight");
            if (!Formats.isFloat(af) && !activationQuantizable()) throw new IllegalArgumentException(
                    "a " + kind.name().toLowerCase() + " layer has no quantizable activation");
            LayerQuantSpec c = new LayerQuantSpec(wf, wg, af, ag, s.enabled(), wr, ar, am);
            if (weightQuantizable()) Formats.averageWeightBits(wf, wg, weightShape);   // checks format x granularity x shape
            io.diffquant.engine.quant.spec.PointSpec p = SpecBridge.toPointSpec(c.withEnabled(true), weightQuantizable());
            try {
                p.weight().validate(io.diffquant.engine.quant.spec.TensorSpec.Role.WEIGHT);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("weight " + e.getMessage(), e);
            }
            try {
                p.input().validate(io.diffquant.engine.quant.spec.TensorSpec.Role.INPUT);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("activation " + e.getMessage(), e);
            }
            return c;
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("layer '" + name + "': " + e.getMessage(), e);
        }
    }

    /** Sets the spec (already validated); package-private: edits go through the view model's history. */
    void setSpec(LayerQuantSpec s) {
        spec.set(s);
        averageBits.set(computeAverageBits(s));
    }

    private double computeAverageBits(LayerQuantSpec s) {
        if (!weightQuantizable()) return Double.NaN;
        if (!s.quantizesWeight()) return 32.0;
        return Formats.averageWeightBits(s.weightFormat(), s.weightGranularity(), weightShape);
    }

    @Override public String toString() { return kind + " " + name; }
}
