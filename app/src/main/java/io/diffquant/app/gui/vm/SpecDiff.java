package io.diffquant.app.gui.vm;

import io.diffquant.engine.quant.spec.PointSpec;
import io.diffquant.engine.quant.spec.TensorSpec;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * What a proposed set of layer specs changes against the table (an imported config, a bit-budget assignment), shown
 * to the user before it is applied: one {@link Change} per layer whose effective quantization differs, and the method
 * change if any.
 *
 * @param changes      the changed layers in table order
 * @param methodBefore the table's method
 * @param methodAfter  the proposal's method (equal to methodBefore when it keeps it)
 */
public record SpecDiff(List<Change> changes, MethodChoice methodBefore, MethodChoice methodAfter) {
    public SpecDiff {
        changes = List.copyOf(changes);
    }

    /** One changed layer: its spec before and after, and a readable summary per tensor. */
    public record Change(String layer, LayerQuantSpec before, LayerQuantSpec after, String weightBefore, String weightAfter,
                         String inputBefore, String inputAfter) {
        public boolean weightChanged() { return !weightBefore.equals(weightAfter); }
        public boolean inputChanged() { return !inputBefore.equals(inputAfter); }
    }

    /** The differences of {@code proposed} (by layer name; absent layers keep their spec) against the table rows. */
    public static SpecDiff of(List<LayerRow> rows, Map<String, LayerQuantSpec> proposed, MethodChoice methodBefore, MethodChoice methodAfter) {
        List<Change> out = new ArrayList<>();
        for (LayerRow r : rows) {
            LayerQuantSpec next = proposed.get(r.name());
            if (next == null) continue;
            PointSpec a = SpecBridge.toPointSpec(r.spec(), r.weightQuantizable());
            PointSpec b = SpecBridge.toPointSpec(next, r.weightQuantizable());
            String wa = a.weight().describe(TensorSpec.Role.WEIGHT), wb = b.weight().describe(TensorSpec.Role.WEIGHT);
            String ia = a.input().describe(TensorSpec.Role.INPUT), ib = b.input().describe(TensorSpec.Role.INPUT);
            if (wa.equals(wb) && ia.equals(ib)) continue;
            out.add(new Change(r.name(), r.spec(), next, wa, wb, ia, ib));
        }
        return new SpecDiff(out, methodBefore, methodAfter == null ? methodBefore : methodAfter);
    }

    public boolean methodChanges() { return !methodBefore.equals(methodAfter); }
    public boolean isEmpty() { return changes.isEmpty() && !methodChanges(); }

    /** "3 layers change; method rtn -> q-dit". */
    public String summary() {
        String s = changes.isEmpty() ? "no layer changes" : changes.size() + " layer" + (changes.size() == 1 ? " changes" : "s change");
        return methodChanges() ? s + "; method " + methodBefore.label() + " → " + methodAfter.label() : s;
    }

    /** Markdown table of the changes (for the report and the dialog's copy button). */
    public String toMarkdown() {
        StringBuilder sb = new StringBuilder();
        if (methodChanges()) sb.append("Method: `").append(methodBefore.label()).append("` → `").append(methodAfter.label()).append("`\n\n");
        if (changes.isEmpty()) return sb.append("No layer changes.\n").toString();
        sb.append("| layer | weight before | weight after | input before | input after |\n|---|---|---|---|---|\n");
        for (Change c : changes) sb.append("| `").append(c.layer()).append("` | ").append(c.weightBefore()).append(" | ").append(c.weightAfter())
                .append(" | ").append(c.inputBefore()).append(" | ").append(c.inputAfter()).append(" |\n");
        return sb.toString();
    }
}
