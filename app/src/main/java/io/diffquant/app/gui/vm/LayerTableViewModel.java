package io.diffquant.app.gui.vm;

import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.model.Layer;
import io.diffquant.engine.model.LayerKind;
import io.diffquant.engine.model.LayerRegistry;
import javafx.beans.property.BooleanProperty;
import javafx.beans.property.ObjectProperty;
import javafx.beans.property.ReadOnlyDoubleProperty;
import javafx.beans.property.ReadOnlyDoubleWrapper;
import javafx.beans.property.ReadOnlyIntegerProperty;
import javafx.beans.property.ReadOnlyIntegerWrapper;
import javafx.beans.property.ReadOnlyLongProperty;
import javafx.beans.property.ReadOnlyLongWrapper;
import javafx.beans.property.ReadOnlyObjectProperty;
import javafx.beans.property.ReadOnlyObjectWrapper;
import javafx.beans.property.SimpleBooleanProperty;
import javafx.beans.property.SimpleObjectProperty;
import javafx.beans.property.SimpleStringProperty;
import javafx.beans.property.StringProperty;
import javafx.collections.FXCollections;
import javafx.collections.ObservableList;
import javafx.collections.transformation.FilteredList;

import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.Predicate;
import java.util.function.UnaryOperator;
import java.util.regex.Pattern;

/**
 * State and commands of the layer table: every layer and activation probe of the model with its
 * {@link LayerQuantSpec}, name-glob / kind / temporal filters, atomic bulk edits of any set of rows with undo/redo
 * ({@link EditHistory}), and the model totals (parameter count, average weight bits per ALGORITHMS.md §3, size).
 * Holds no Nodes; usable without the JavaFX toolkit.
 */
public final class LayerTableViewModel {
    private final ObservableList<LayerRow> rows = FXCollections.observableArrayList();
    private final FilteredList<LayerRow> visibleRows = new FilteredList<>(rows, r -> true);
    private final Map<String, LayerRow> byName = new LinkedHashMap<>();
    private final StringProperty nameFilter = new SimpleStringProperty(this, "nameFilter", "");
    /** null = every kind. */
    private final ObjectProperty<LayerKind> kindFilter = new SimpleObjectProperty<>(this, "kindFilter");
    private final BooleanProperty temporalOnly = new SimpleBooleanProperty(this, "temporalOnly");
    private final EditHistory history = new EditHistory(500);
    /** The preset the configuration starts from; the table's edits are overrides on its plan. Changed by undoable edits. */
    private final ReadOnlyObjectWrapper<MethodChoice> method = new ReadOnlyObjectWrapper<>(this, "method", MethodChoice.DEFAULT);
    /** Bumped after every change of specs or method (what the calibration cache and the temporal plots listen to). */
    private final ReadOnlyLongWrapper revision = new ReadOnlyLongWrapper(this, "revision");
    private final ReadOnlyLongWrapper totalParameters = new ReadOnlyLongWrapper(this, "totalParameters");
    private final ReadOnlyLongWrapper quantizableWeightElements = new ReadOnlyLongWrapper(this, "quantizableWeightElements");
    private final ReadOnlyDoubleWrapper averageWeightBits = new ReadOnlyDoubleWrapper(this, "averageWeightBits", Double.NaN);
    private final ReadOnlyDoubleWrapper modelSizeBytes = new ReadOnlyDoubleWrapper(this, "modelSizeBytes");
    private final ReadOnlyIntegerWrapper quantizedLayers = new ReadOnlyIntegerWrapper(this, "quantizedLayers");

    public LayerTableViewModel() {
        nameFilter.addListener((o, a, b) -> refilter());
        kindFilter.addListener((o, a, b) -> refilter());
        temporalOnly.addListener((o, a, b) -> refilter());
    }

    // ------------------------------------------------------------------ content

    /** Rows for every layer of a model, in registry (module-tree) order. */
    public static List<LayerRow> rowsOf(DiffusionModel model) {
        LayerRegistry reg = model.layers();
        List<LayerRow> out = new ArrayList<>(reg.size());
        for (Layer l : reg.all()) out.add(LayerRow.of(l));
        return out;
    }

    /** Shows a model: rows from {@link #rowsOf(DiffusionModel)}, total = the model's parameter count. */
    public void setModel(DiffusionModel model) { setRows(rowsOf(model), model.parameterCount()); }

    /** Replaces the rows (all specs as in the rows) and clears the history. */
    public void setRows(List<LayerRow> newRows, long totalParameterCount) {
        byName.clear();
        for (LayerRow r : newRows) {
            if (byName.putIfAbsent(r.name(), r) != null) throw new IllegalArgumentException("duplicate layer name '" + r.name() + "'");
        }
        rows.setAll(newRows);
        totalParameters.set(totalParameterCount);
        history.clear();
        method.set(MethodChoice.DEFAULT);
        recompute();
    }

    public void clear() { setRows(List.of(), 0); }

    public ObservableList<LayerRow> rows() { return FXCollections.unmodifiableObservableList(rows); }
    /** The rows passing the filters (what the table shows). */
    public FilteredList<LayerRow> visibleRows() { return visibleRows; }

    public LayerRow row(String name) {
        LayerRow r = byName.get(name);
        if (r == null) throw new IllegalArgumentException("no layer named '" + name + "' in the table");
        return r;
    }

    /** Current specs by layer name (what the quantization engine will consume). */
    public Map<String, LayerQuantSpec> specs() {
        Map<String, LayerQuantSpec> m = new LinkedHashMap<>();
        for (LayerRow r : rows) m.put(r.name(), r.spec());
        return m;
    }

    /** Whether the table has a row of this name. */
    public boolean hasRow(String name) { return byName.containsKey(name); }

    public ReadOnlyObjectProperty<MethodChoice> methodProperty() { return method.getReadOnlyProperty(); }
    public MethodChoice method() { return method.get(); }
    /** Changes with every edit, undo and redo. */
    public ReadOnlyLongProperty revisionProperty() { return revision.getReadOnlyProperty(); }

    // ------------------------------------------------------------------ filters

    /** Glob on the layer name ({@code *}, {@code ?}); text without wildcards matches as a substring; "" = all. */
    public StringProperty nameFilterProperty() { return nameFilter; }
    public ObjectProperty<LayerKind> kindFilterProperty() { return kindFilter; }
    public BooleanProperty temporalOnlyProperty() { return temporalOnly; }

    /** The predicate the filters make (exposed for tests and the view's "select visible"). */
    public Predicate<LayerRow> filterPredicate() {
        String text = nameFilter.get() == null ? "" : nameFilter.get().trim();
        Predicate<String> nameOk;
        if (text.isEmpty()) nameOk = s -> true;
        else if (text.indexOf('*') >= 0 || text.indexOf('?') >= 0) {
            Pattern p = LayerRegistry.globToRegex(text);
            nameOk = s -> p.matcher(s).matches();
        } else {
            String needle = text.toLowerCase(Locale.ROOT);
            nameOk = s -> s.toLowerCase(Locale.ROOT).contains(needle);
        }
        LayerKind k = kindFilter.get();
        boolean temporal = temporalOnly.get();
        return r -> nameOk.test(r.name()) && (k == null || r.kind() == k) && (!temporal || r.temporal());
    }

    private void refilter() { visibleRows.setPredicate(filterPredicate()); }

    // ------------------------------------------------------------------ edits

    public EditHistory history() { return history; }

    /**
     * Applies {@code change} to every given row, atomically: each new spec is validated first
     * ({@link LayerRow#validate}) and nothing changes if any is invalid (the exception names the layer). Rows the
     * change leaves equal are skipped. Returns how many rows changed; a change of at least one row is one undoable
     * edit.
     */
    public int edit(Collection<LayerRow> targets, String description, UnaryOperator<LayerQuantSpec> change) {
        Map<String, LayerQuantSpec> before = new LinkedHashMap<>(), after = new LinkedHashMap<>();
        for (LayerRow r : targets) {
            if (byName.get(r.name()) != r) throw new IllegalArgumentException("layer '" + r.name() + "' is not in this table");
            if (after.containsKey(r.name())) continue;
            LayerQuantSpec old = r.spec();
            LayerQuantSpec next = change.apply(old);
            if (next == null || next.equals(old)) continue;
            next = r.validate(next);
            if (next.equals(old)) continue;
            before.put(r.name(), old);
            after.put(r.name(), next);
        }
        if (after.isEmpty()) return 0;
        apply(after);
        history.push(new EditHistory.Edit(description + (after.size() > 1 ? " (" + after.size() + " layers)" : " (" + after.keySet().iterator().next() + ")"),
                before, after));
        return after.size();
    }

    /**
     * Replaces the specs of the named rows (others keep theirs) and, when {@code newMethod} is not null, the method, as
     * one undoable edit (a preset applied, a config imported, a budget assignment accepted). Every spec is validated
     * first; nothing changes if one is invalid. Returns how many rows changed.
     */
    public int replaceSpecs(Map<String, LayerQuantSpec> specs, String description, MethodChoice newMethod) {
        Map<String, LayerQuantSpec> before = new LinkedHashMap<>(), after = new LinkedHashMap<>();
        for (var e : specs.entrySet()) {
            LayerRow r = byName.get(e.getKey());
            if (r == null) throw new IllegalArgumentException("no layer named '" + e.getKey() + "' in the table");
            LayerQuantSpec next = r.validate(e.getValue());
            if (next.equals(r.spec())) continue;
            before.put(r.name(), r.spec());
            after.put(r.name(), next);
        }
        MethodChoice oldMethod = method.get();
        boolean methodChanges = newMethod != null && !newMethod.equals(oldMethod);
        if (after.isEmpty() && !methodChanges) return 0;
        if (methodChanges) method.set(newMethod);
        apply(after);
        history.push(new EditHistory.Edit(description + " (" + after.size() + " layer" + (after.size() == 1 ? "" : "s") + ")", before, after,
                methodChanges ? oldMethod : null, methodChanges ? newMethod : null));
        return after.size();
    }

    /**
     * Sets the weight format of the rows that have a quantizable weight (others are skipped). A block format brings
     * its block granularity (MX: block32, NVFP4: block16); leaving a block format for another resets a block
     * granularity to per channel.
     */
    public int setWeightFormat(Collection<LayerRow> targets, String format) {
        String f = Formats.canonical(format);
        String required = Formats.requiredGranularity(f);
        List<LayerRow> applicable = targets.stream().filter(LayerRow::weightQuantizable).toList();
        return edit(applicable, "weight format " + f, s -> {
            String g = s.weightGranularity();
            if (required != null) g = required;
            else if (g.startsWith("block")) g = "channel";
            return s.withWeightFormat(f).withWeightGranularity(g);
        });
    }

    /** Sets the weight granularity of the rows with a quantizable weight. */
    public int setWeightGranularity(Collection<LayerRow> targets, String granularity) {
        String g = Formats.canonicalGranularity(granularity);
        return edit(targets.stream().filter(LayerRow::weightQuantizable).toList(), "weight granularity " + g,
                s -> s.withWeightGranularity(g));
    }

    /** Sets the activation format of the rows with a quantizable activation (block formats bring their block granularity). */
    public int setActivationFormat(Collection<LayerRow> targets, String format) {
        String f = Formats.canonical(format);
        String required = Formats.requiredGranularity(f);
        return edit(targets.stream().filter(LayerRow::activationQuantizable).toList(), "activation format " + f, s -> {
            String g = s.activationGranularity();
            String m = s.activationMode();
            if (required != null) {
                g = required;
                m = "dynamic";
            } else if (g.startsWith("block")) {
                g = "tensor";
                m = "static";
            }
            return s.withActivationFormat(f).withActivationGranularity(g).withActivationMode(m);
        });
    }

    /**
     * Sets the activation granularity of the rows with a quantizable activation. Per-token, group and block
     * granularities are computed online, so they switch the rows to the dynamic mode.
     */
    public int setActivationGranularity(Collection<LayerRow> targets, String granularity) {
        String g = Formats.canonicalGranularity(granularity);
        boolean online = Formats.onlineGranularity(g);
        return edit(targets.stream().filter(LayerRow::activationQuantizable).toList(), "activation granularity " + g,
                s -> online ? s.withActivationGranularity(g).withActivationMode("dynamic") : s.withActivationGranularity(g));
    }

    /** Sets how the activation parameters are found: static, per_timestep (TFMQ's FSC) or dynamic. */
    public int setActivationMode(Collection<LayerRow> targets, String mode) {
        String m = io.diffquant.engine.quant.spec.CalibrationMode.parse(mode).id();
        return edit(targets.stream().filter(LayerRow::activationQuantizable).toList(), "activation calibration " + m,
                s -> s.withActivationMode(m));
    }

    /** Sets the range estimation (minmax, lp, lp-qdit, percentile99.9, ema ...) of the weights or the activations. */
    public int setRange(Collection<LayerRow> targets, boolean weight, String range) {
        String r = io.diffquant.engine.quant.spec.RangeSpec.parse(range).id();
        return edit(targets.stream().filter(weight ? LayerRow::weightQuantizable : LayerRow::activationQuantizable).toList(),
                (weight ? "weight" : "activation") + " range " + r, s -> weight ? s.withWeightRange(r) : s.withActivationRange(r));
    }

    /** Switches quantization of the rows on or off (rows with nothing to quantize, e.g. norms, are skipped). */
    public int setEnabled(Collection<LayerRow> targets, boolean enabled) {
        return edit(targets.stream().filter(r -> r.weightQuantizable() || r.activationQuantizable()).toList(),
                enabled ? "enable" : "disable", s -> s.withEnabled(enabled));
    }

    /** Back to float32 defaults for the rows. */
    public int resetToFloat(Collection<LayerRow> targets) {
        return edit(targets, "reset to fp32", s -> LayerQuantSpec.DEFAULT);
    }

    /** Reverts the last edit; false if there was none. */
    public boolean undo() {
        EditHistory.Edit e = history.undo();
        if (e == null) return false;
        if (e.changesMethod()) method.set(e.methodBefore());
        apply(e.before());
        return true;
    }

    /** Re-applies the last undone edit; false if there was none. */
    public boolean redo() {
        EditHistory.Edit e = history.redo();
        if (e == null) return false;
        if (e.changesMethod()) method.set(e.methodAfter());
        apply(e.after());
        return true;
    }

    private void apply(Map<String, LayerQuantSpec> specs) {
        for (var e : specs.entrySet()) byName.get(e.getKey()).setSpec(e.getValue());
        recompute();
        revision.set(revision.get() + 1);
    }

    // ------------------------------------------------------------------ totals

    /** The model's parameter count (all state_dict tensors). */
    public ReadOnlyLongProperty totalParametersProperty() { return totalParameters.getReadOnlyProperty(); }
    /** Elements of all linear/conv weights (the tensors the weight formats apply to). */
    public ReadOnlyLongProperty quantizableWeightElementsProperty() { return quantizableWeightElements.getReadOnlyProperty(); }
    /**
     * Average stored bits per element over all linear/conv weights: sum(bits_l x n_l) / sum(n_l), float weights
     * counting 32 (ALGORITHMS.md §3); NaN without such weights.
     */
    public ReadOnlyDoubleProperty averageWeightBitsProperty() { return averageWeightBits.getReadOnlyProperty(); }
    public double averageWeightBits() { return averageWeightBits.get(); }
    /** Bytes of the model with the chosen weight formats (every other tensor float32). */
    public ReadOnlyDoubleProperty modelSizeBytesProperty() { return modelSizeBytes.getReadOnlyProperty(); }
    /** Rows whose weight or activation is quantized. */
    public ReadOnlyIntegerProperty quantizedLayersProperty() { return quantizedLayers.getReadOnlyProperty(); }

    private void recompute() {
        double bits = 0;
        long n = 0;
        int q = 0;
        for (LayerRow r : rows) {
            if (r.spec().quantizesWeight() && r.weightQuantizable() || r.spec().quantizesActivation() && r.activationQuantizable()) q++;
            if (!r.weightQuantizable()) continue;
            long e = r.weightElements();
            bits += r.averageBits() * e;
            n += e;
        }
        quantizableWeightElements.set(n);
        averageWeightBits.set(n == 0 ? Double.NaN : bits / n);
        long rest = Math.max(0, totalParameters.get() - n);
        modelSizeBytes.set((bits + 32.0 * rest) / 8.0);
        quantizedLayers.set(q);
    }
}
