package io.diffquant.engine.quant.search;

import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Greedy bit assignment: hand-worked cases and an exhaustive check on small random instances. */
class BitBudgetTest {
    private static final BitBudget.Choice W8 = new BitBudget.Choice("int8", 8, 8.5), W4 = new BitBudget.Choice("int4", 4, 4.5);

    @Test void theLeastSensitiveLayersGoDownFirst() {
        // equal sizes: average 8.5 -> 4.5 in steps of 1.0 per layer; a budget of 6.5 needs two of the four layers at 4 bits
        List<BitBudget.Item> items = List.of(
                new BitBudget.Item("a", 100, 0.30, 4, List.of(W8, W4)),
                new BitBudget.Item("b", 100, 0.01, 4, List.of(W4, W8)),      // order of choices does not matter
                new BitBudget.Item("c", 100, 0.10, 4, List.of(W8, W4)),
                new BitBudget.Item("d", 100, 0.02, 4, List.of(W8, W4)));
        BitBudget.Result r = BitBudget.greedy(items, 6.5);
        assertEquals("int4", r.choices().get("b").id());
        assertEquals("int4", r.choices().get("d").id());
        assertEquals("int8", r.choices().get("a").id());
        assertEquals("int8", r.choices().get("c").id());
        assertEquals(6.5, r.averageBits(), 1e-12);
        assertTrue(r.feasible());
        // estimated error: 4-bit layers at their sensitivity, 8-bit layers at sensitivity x 4^-4
        assertEquals(0.01 + 0.02 + (0.30 + 0.10) / 256, r.estimatedError(), 1e-12);
    }

    @Test void biggerLayersSaveMoreBitsPerUnitOfError() {
        // same sensitivity, one layer 10x larger: it goes down first (10x the bits saved for the same error)
        List<BitBudget.Item> items = List.of(new BitBudget.Item("small", 10, 0.1, 4, List.of(W8, W4)),
                new BitBudget.Item("big", 100, 0.1, 4, List.of(W8, W4)));
        BitBudget.Result r = BitBudget.greedy(items, 8.0);
        assertEquals("int4", r.choices().get("big").id());
        assertEquals("int8", r.choices().get("small").id());
    }

    @Test void anUnreachableBudgetGivesTheCheapestAssignmentFlaggedInfeasible() {
        BitBudget.Result r = BitBudget.greedy(List.of(new BitBudget.Item("a", 4, 1, 4, List.of(W8, W4))), 3);
        assertEquals("int4", r.choices().get("a").id());
        assertFalse(r.feasible());
        assertEquals(4.5, r.averageBits(), 1e-12);
        assertTrue(BitBudget.greedy(List.of(new BitBudget.Item("a", 4, 1, 4, List.of(W8, W4))), 9).choices().get("a").id().equals("int8"));
        assertThrows(IllegalArgumentException.class, () -> new BitBudget.Item("x", 0, 1, 4, List.of(W8)));
        assertThrows(IllegalArgumentException.class, () -> new BitBudget.Item("x", 1, Double.NaN, 4, List.of(W8)));
    }

    @Test void withTwoChoicesAndEqualSizesGreedyIsOptimal() {
        // equal sizes and two choices: the optimum under the budget lowers the k least sensitive layers; check exhaustively
        Random rnd = new Random(7);
        for (int trial = 0; trial < 50; trial++) {
            int n = 6;
            List<BitBudget.Item> items = new ArrayList<>();
            for (int i = 0; i < n; i++) items.add(new BitBudget.Item("l" + i, 64, rnd.nextDouble(), 4, List.of(W8, W4)));
            double budget = 4.5 + 4 * rnd.nextDouble();
            BitBudget.Result g = BitBudget.greedy(items, budget);
            double best = Double.POSITIVE_INFINITY;
            for (int mask = 0; mask < 1 << n; mask++) {
                int[] at = new int[n];
                double err = 0;
                for (int i = 0; i < n; i++) {
                    at[i] = (mask >> i) & 1;
                    err += items.get(i).estimatedError(items.get(i).choices().get(at[i]));
                }
                if (BitBudget.averageBits(items, at) <= budget + 1e-9) best = Math.min(best, err);
            }
            assertEquals(best, g.estimatedError(), 1e-12, "trial " + trial);
        }
    }
}
