package io.diffquant.app.gui.vm;

import io.diffquant.engine.analysis.AnalysisSession;
import io.diffquant.engine.analysis.Histograms;
import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.quant.format.Granularity;
import io.diffquant.engine.quant.format.NumberFormat;
import io.diffquant.engine.quant.spec.CalibrationMode;
import io.diffquant.engine.quant.spec.QuantPoint;
import io.diffquant.engine.quant.spec.RangeSpec;
import io.diffquant.engine.quant.spec.TensorSpec;
import javafx.beans.property.BooleanProperty;
import javafx.beans.property.IntegerProperty;
import javafx.beans.property.ObjectProperty;
import javafx.beans.property.SimpleBooleanProperty;
import javafx.beans.property.SimpleIntegerProperty;
import javafx.beans.property.SimpleObjectProperty;
import javafx.beans.property.SimpleStringProperty;
import javafx.beans.property.StringProperty;

import java.util.ArrayList;
import java.util.List;

/**
 * The distributions panel: the weight histogram of the selected layer and its input-activation histograms at every
 * sampling timestep (a slider picks the timestep, or all together), each twice, with the grid of an INT format and of an
 * FP format overlaid side by side (the engine's {@link Histograms}: Q-Diffusion / TFMQ-DM's distribution plots). Weight
 * grids use the format's parameters for the layer (the widest group when per channel); activation grids the layer's
 * min-max over all timesteps.
 */
public final class DistributionsViewModel {
    /** The histograms of one layer. */
    public record Result(String layer, Histograms.Histogram weightInt, Histograms.Histogram weightFp, List<Histograms.Histogram> activationsInt,
                         List<Histograms.Histogram> activationsFp) {
        public Result {
            activationsInt = List.copyOf(activationsInt);
            activationsFp = List.copyOf(activationsFp);
        }
        /** Frames of the timestep slider: one per sampling timestep (sampling order), then all timesteps together. */
        public int frames() { return activationsInt.size(); }
    }

    private final StringProperty layer = new SimpleStringProperty(this, "layer", "");
    private final StringProperty intFormat = new SimpleStringProperty(this, "intFormat", "int4-asym");
    private final StringProperty fpFormat = new SimpleStringProperty(this, "fpFormat", "fp4-e2m1");
    private final StringProperty weightGranularity = new SimpleStringProperty(this, "weightGranularity", "tensor");
    private final IntegerProperty bins = new SimpleIntegerProperty(this, "bins", 80);
    private final BooleanProperty logCounts = new SimpleBooleanProperty(this, "logCounts", true);
    private final IntegerProperty frame = new SimpleIntegerProperty(this, "frame", 0);
    private final ObjectProperty<Result> result = new SimpleObjectProperty<>(this, "result");
    private final AnalysisContext analysis;

    public DistributionsViewModel(AnalysisContext analysis) {
        this.analysis = analysis;
        result.addListener((o, a, r) -> { if (r != null) frame.set(r.frames() - 1); });
    }

    public StringProperty layerProperty() { return layer; }
    public StringProperty intFormatProperty() { return intFormat; }
    public StringProperty fpFormatProperty() { return fpFormat; }
    public StringProperty weightGranularityProperty() { return weightGranularity; }
    public IntegerProperty binsProperty() { return bins; }
    public BooleanProperty logCountsProperty() { return logCounts; }
    /** The timestep shown (index into the result's frames; the last = all timesteps). */
    public IntegerProperty frameProperty() { return frame; }
    public ObjectProperty<Result> resultProperty() { return result; }

    public void reset() { result.set(null); }

    /** The histograms of the selected layer with both grids; errors name the field. */
    public WorkTask.Work<Result> work(DiffusionModel model) {
        String name = layer.get() == null ? "" : layer.get().trim();
        if (name.isEmpty()) throw new IllegalArgumentException("distributions: select a layer in the table first");
        QuantPoint point = QuantPoint.of(model).stream().filter(p -> p.name().equals(name)).findFirst()
                .orElseThrow(() -> new IllegalArgumentException("distributions: '" + name + "' is not a quantizable layer (a Linear/Conv2d layer or an activation probe)"));
        NumberFormat fi = parse("INT format", intFormat.get()), ff = parse("FP format", fpFormat.get());
        Granularity g = Granularity.parse(weightGranularity.get());
        int b = bins.get();
        return (cancelled, progress) -> {
            Histograms.Histogram wi = null, wf = null;
            if (point.hasWeight()) {
                progress.report(0.05, "Weight histogram of " + name + " ...");
                wi = Histograms.weights(model, List.of(name), b, TensorSpec.weight(fi, gridGranularity(fi, g), RangeSpec.MINMAX)).getFirst();
                wf = Histograms.weights(model, List.of(name), b, TensorSpec.weight(ff, gridGranularity(ff, g), RangeSpec.MINMAX)).getFirst();
            }
            progress.report(0.2, "Activation histograms of " + name + " at every timestep ...");
            AnalysisSession s = analysis.session(model);
            List<Histograms.Histogram> ai = Histograms.activations(s, List.of(name), b,
                    TensorSpec.input(fi, gridGranularity(fi, Granularity.TENSOR), RangeSpec.MINMAX, CalibrationMode.STATIC));
            List<Histograms.Histogram> af = new ArrayList<>();
            for (Histograms.Histogram h : ai) {
                float[] grid = ff.grid(ff.paramsForRange(new float[] {(float) h.lo()}, new float[] {(float) h.hi()}), 0);
                af.add(new Histograms.Histogram(h.layer(), h.tensor(), h.timestep(), h.elements(), h.lo(), h.hi(), h.counts(), grid,
                        ff.id() + "/tensor/minmax", "min-max over all timesteps", h.nonFinite()));
            }
            progress.report(1, "Histograms of " + name + " done");
            return new Result(name, wi, wf, ai, af);
        };
    }

    /** Block formats need their block granularity. */
    private static Granularity gridGranularity(NumberFormat f, Granularity g) {
        if (f instanceof io.diffquant.engine.quant.format.BlockFormat bf) return bf.granularity();
        return g;
    }

    private static NumberFormat parse(String field, String name) {
        try {
            return NumberFormat.parse(name.trim());
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(field + ": " + e.getMessage(), e);
        }
    }

    /** The activation histogram of the current frame (INT or FP grid), or null. */
    public Histograms.Histogram activation(boolean fp) {
        Result r = result.get();
        if (r == null || r.frames() == 0) return null;
        int k = Math.max(0, Math.min(frame.get(), r.frames() - 1));
        return (fp ? r.activationsFp() : r.activationsInt()).get(k);
    }

    /** "t = 981 (step 1 of 50)" or "all timesteps". */
    public String frameLabel() {
        Histograms.Histogram h = activation(false);
        if (h == null) return "";
        if (Float.isNaN(h.timestep())) return "all timesteps";
        int k = Math.max(0, Math.min(frame.get(), result.get().frames() - 1));
        return String.format(java.util.Locale.ROOT, "t = %d (step %d of %d)", (int) h.timestep(), k + 1, result.get().frames() - 1);
    }
}
