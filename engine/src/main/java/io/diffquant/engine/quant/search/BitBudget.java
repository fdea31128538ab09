package io.diffquant.engine.quant.search;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Mixed-precision bit assignment under an average-bits budget, greedy by per-layer sensitivity (the classic
 * sensitivity-ordered allocation of mixed-precision PTQ, e.g. HAWQ's Pareto greedy with a measured instead of a Hessian
 * sensitivity; ALGORITHMS.md §3 bit accounting). Every layer starts at its most precise choice; while the
 * element-weighted average of the layers' stored bits is above the budget, the layer whose next cheaper choice costs the
 * least estimated error per saved bit (error increase / (elements x bits saved)) steps down one choice. The estimated
 * error of a choice is the layer's measured sensitivity at a reference bit width scaled by the quantization-noise law
 * 4^(reference bits − code bits) (noise power ∝ Δ² ∝ 2^(−2b)). Deterministic; ties go to the earlier layer.
 */
public final class BitBudget {
    private BitBudget() {}

    /**
     * One candidate for a layer.
     * @param id       what to assign (e.g. a format id "int4-asym")
     * @param codeBits the code bits (for the error law)
     * @param avgBits  stored bits per element including scale/zero-point overhead (for the budget)
     */
    public record Choice(String id, int codeBits, double avgBits) {
        public Choice {
            if (id == null || codeBits < 1 || !(avgBits > 0)) throw new IllegalArgumentException("budget choice needs an id, code bits >= 1 and "
                    + "average bits > 0, got " + id + "/" + codeBits + "/" + avgBits);
        }
    }

    /**
     * A layer to assign.
     * @param elements    weight elements (the budget weights layers by them)
     * @param sensitivity measured error when the layer alone is quantized at {@code referenceBits} (>= 0)
     * @param choices     candidates; any order (sorted by average bits, most precise first)
     */
    public record Item(String layer, long elements, double sensitivity, int referenceBits, List<Choice> choices) {
        public Item {
            if (elements < 1) throw new IllegalArgumentException("layer '" + layer + "': elements must be >= 1, got " + elements);
            if (!(sensitivity >= 0)) throw new IllegalArgumentException("layer '" + layer + "': sensitivity must be >= 0 and finite, got " + sensitivity);
            if (choices == null || choices.isEmpty()) throw new IllegalArgumentException("layer '" + layer + "' has no choices");
            List<Choice> c = new ArrayList<>(choices);
            c.sort((a, b) -> Double.compare(b.avgBits(), a.avgBits()));
            choices = List.copyOf(c);
        }

        /** Estimated error of a choice: sensitivity x 4^(referenceBits - codeBits). */
        public double estimatedError(Choice c) { return sensitivity * Math.pow(4, referenceBits - c.codeBits()); }
    }

    /**
     * The assignment.
     * @param choices        layer -> chosen candidate, in item order
     * @param averageBits    element-weighted average stored bits of the assignment
     * @param estimatedError sum of the estimated errors
     * @param feasible       whether the average is within the budget (false: even the cheapest choices are above it)
     */
    public record Result(Map<String, Choice> choices, double averageBits, double estimatedError, boolean feasible) {}

    /** Average stored bits of an assignment (choice index per item). */
    static double averageBits(List<Item> items, int[] at) {
        double bits = 0, n = 0;
        for (int i = 0; i < items.size(); i++) {
            bits += items.get(i).choices().get(at[i]).avgBits() * items.get(i).elements();
            n += items.get(i).elements();
        }
        return bits / n;
    }

    /** Greedy assignment of {@code items} under {@code budget} average bits. */
    public static Result greedy(List<Item> items, double budget) {
        if (items == null || items.isEmpty()) throw new IllegalArgumentException("bit budget: no layers to assign");
        if (!(budget > 0)) throw new IllegalArgumentException("bit budget must be > 0, got " + budget);
        int[] at = new int[items.size()];
        double total = 0;
        for (Item it : items) total += it.elements();
        double avg = averageBits(items, at);
        while (avg > budget + 1e-12) {
            int best = -1;
            double bestCost = Double.POSITIVE_INFINITY;
            for (int i = 0; i < items.size(); i++) {
                Item it = items.get(i);
                if (at[i] + 1 >= it.choices().size()) continue;
                Choice cur = it.choices().get(at[i]), next = it.choices().get(at[i] + 1);
                double saved = (cur.avgBits() - next.avgBits()) * it.elements();
                if (saved <= 0) continue;
                double cost = (it.estimatedError(next) - it.estimatedError(cur)) / saved;
                if (cost < bestCost) { bestCost = cost; best = i; }
            }
            if (best < 0) break;
            Item it = items.get(best);
            avg -= (it.choices().get(at[best]).avgBits() - it.choices().get(at[best] + 1).avgBits()) * it.elements() / total;
            at[best]++;
        }
        Map<String, Choice> out = new LinkedHashMap<>();
        double err = 0;
        for (int i = 0; i < items.size(); i++) {
            Choice c = items.get(i).choices().get(at[i]);
            out.put(items.get(i).layer(), c);
            err += items.get(i).estimatedError(c);
        }
        double exact = averageBits(items, at);
        return new Result(out, exact, err, exact <= budget + 1e-9);
    }
}
