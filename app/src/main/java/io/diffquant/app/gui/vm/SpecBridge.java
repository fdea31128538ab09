package io.diffquant.app.gui.vm;

import io.diffquant.engine.quant.format.Granularity;
import io.diffquant.engine.quant.spec.CalibrationMode;
import io.diffquant.engine.quant.spec.LayerOverride;
import io.diffquant.engine.quant.spec.PointSpec;
import io.diffquant.engine.quant.spec.QuantPlan;
import io.diffquant.engine.quant.spec.QuantPoint;
import io.diffquant.engine.quant.spec.RangeSpec;
import io.diffquant.engine.quant.spec.SpecPatch;
import io.diffquant.engine.quant.spec.TensorSpec;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Converts between the layer table's {@link LayerQuantSpec} (strings the user edits) and the engine's
 * {@link PointSpec} (docs/config-format.md), and expresses a table as per-layer {@link LayerOverride}s on top of a
 * preset's {@link QuantPlan}: the config the CLI's {@code calibrate --method P --override ...} would make.
 */
public final class SpecBridge {
    /** Origin of the overrides the studio writes (shows in config error messages). */
    public static final String ORIGIN = "studio layer table";

    private SpecBridge() {}

    /** The engine spec of a table spec (disabled rows and "fp32" tensors are off). Throws naming the field for bad names. */
    public static PointSpec toPointSpec(LayerQuantSpec s, boolean hasWeight) {
        if (!s.enabled()) return PointSpec.FP;
        TensorSpec w = TensorSpec.OFF, in = TensorSpec.OFF;
        if (hasWeight && !Formats.isFloat(s.weightFormat()))
            w = TensorSpec.weight(Formats.format(s.weightFormat()), Granularity.parse(s.weightGranularity()), RangeSpec.parse(s.weightRange()));
        if (!Formats.isFloat(s.activationFormat()))
            in = TensorSpec.input(Formats.format(s.activationFormat()), Granularity.parse(s.activationGranularity()),
                    RangeSpec.parse(s.activationRange()), CalibrationMode.parse(s.activationMode()));
        return new PointSpec(w, in);
    }

    /** The table spec of an engine spec (canonical names; off tensors become "fp32" with the default granularity). */
    public static LayerQuantSpec fromPointSpec(PointSpec p) {
        LayerQuantSpec d = LayerQuantSpec.DEFAULT;
        TensorSpec w = p.weight(), in = p.input();
        return new LayerQuantSpec(
                w.enabled() ? w.format().id() : d.weightFormat(), w.enabled() ? w.granularity().id() : d.weightGranularity(),
                in.enabled() ? in.format().id() : d.activationFormat(), in.enabled() ? in.granularity().id() : d.activationGranularity(),
                true,
                w.enabled() ? w.range().id() : d.weightRange(),
                in.enabled() ? in.range().id() : d.activationRange(),
                in.enabled() ? in.mode().id() : d.activationMode());
    }

    /** A comparable description of what a spec does ("int4-asym/group32/minmax | int8-asym/tensor/minmax/static"). */
    public static String key(PointSpec p) {
        return p.weight().describe(TensorSpec.Role.WEIGHT) + " | " + p.input().describe(TensorSpec.Role.INPUT);
    }

    /** The table specs of every quant point of a plan, by layer name in model order. */
    public static Map<String, LayerQuantSpec> specsOf(QuantPlan plan) {
        Map<String, LayerQuantSpec> m = new LinkedHashMap<>();
        for (QuantPoint p : plan.points()) m.put(p.name(), fromPointSpec(plan.spec(p.name())));
        return m;
    }

    /**
     * The overrides that turn {@code base} into the table: one per quant point whose table spec does something else
     * than the base plan's (exact layer names as patterns). A pattern also selects the layers below its name
     * (QuantPlan.matches), so such layers get their own override after it. Points missing from {@code table} keep the
     * base spec.
     */
    public static List<LayerOverride> overridesFrom(QuantPlan base, Map<String, LayerQuantSpec> table) {
        List<QuantPoint> points = base.points();
        Set<String> changed = new LinkedHashSet<>();
        Map<String, PointSpec> want = new LinkedHashMap<>();
        for (QuantPoint p : points) {
            LayerQuantSpec t = table.get(p.name());
            PointSpec w = t == null ? base.spec(p.name()) : toPointSpec(t, p.hasWeight());
            want.put(p.name(), w);
            if (!key(w).equals(key(base.spec(p.name())))) changed.add(p.name());
        }
        // a changed layer's pattern also hits the layers below it: give those their own override too
        Set<String> emit = new LinkedHashSet<>();
        for (QuantPoint p : points) {
            if (changed.contains(p.name())) { emit.add(p.name()); continue; }
            for (String c : changed) if (p.name().startsWith(c + ".")) { emit.add(p.name()); break; }
        }
        List<QuantPoint> order = new ArrayList<>();
        for (QuantPoint p : points) if (emit.contains(p.name())) order.add(p);
        order.sort(Comparator.comparingInt(p -> depth(p.name())));   // stable: model order within a depth
        List<LayerOverride> out = new ArrayList<>();
        for (QuantPoint p : order) {
            PointSpec w = want.get(p.name());
            out.add(new LayerOverride(p.name(), p.hasWeight() ? SpecPatch.of(w.weight()) : SpecPatch.KEEP, SpecPatch.of(w.input()), ORIGIN));
        }
        return out;
    }

    private static int depth(String name) {
        int d = 0;
        for (int i = 0; i < name.length(); i++) if (name.charAt(i) == '.') d++;
        return d;
    }
}
