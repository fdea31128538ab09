package io.diffquant.engine.quant.search;

import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Q-DiT's evolutionary group-size search on synthetic objectives with a known constrained optimum. */
class GroupSizeSearchTest {
    static final int[] ALL = {32, 64, 128, 192, 288};

    static List<GroupSizeSearch.Gene> genes(int n) {
        List<GroupSizeSearch.Gene> g = new ArrayList<>();
        for (int i = 0; i < n; i++) g.add(new GroupSizeSearch.Gene("layer" + i, ALL));
        return g;
    }

    /** Squared log-distance to per-layer targets whose mean is below the budget, so the constraint binds. */
    static double objective(int[] g, int[] target) {
        double s = 0;
        for (int i = 0; i < g.length; i++) {
            double d = Math.log(g[i]) / Math.log(2) - Math.log(target[i]) / Math.log(2);
            s += d * d * (1 + i);
        }
        return s;
    }

    /** Brute force over every genome. */
    static int[] bruteForce(int n, double budget, int[] target) {
        int[] best = null, g = new int[n];
        double bestS = Double.POSITIVE_INFINITY;
        int total = (int) Math.pow(ALL.length, n);
        for (int k = 0; k < total; k++) {
            int r = k;
            double sum = 0;
            for (int i = 0; i < n; i++) { g[i] = ALL[r % ALL.length]; r /= ALL.length; sum += g[i]; }
            if (sum / n < budget) continue;
            double s = objective(g, target);
            if (s < bestS) { bestS = s; best = g.clone(); }
        }
        return best;
    }

    @Test void findsTheConstrainedOptimumAndOnlyEvaluatesFeasibleGenomes() {
        int n = 5;
        int[] target = {32, 32, 288, 64, 192};   // mean 121.6 < 128: infeasible
        GroupSizeSearch s = new GroupSizeSearch(genes(n), GroupSizeSearch.Settings.qdit(128, 1));
        List<int[]> seen = new ArrayList<>();
        GroupSizeSearch.Result r = s.run(g -> {
            assertTrue(s.feasible(g), "infeasible genome evaluated: " + Arrays.toString(g));
            for (int[] x : seen) assertTrue(!Arrays.equals(x, g), "genome evaluated twice: " + Arrays.toString(g));
            seen.add(g.clone());
            return objective(g, target);
        });
        int[] opt = bruteForce(n, 128, target);
        assertArrayEquals(opt, r.best(), "search result " + Arrays.toString(r.best()) + " vs brute force " + Arrays.toString(opt));
        assertEquals(objective(opt, target), r.score(), 0);
        assertArrayEquals(new int[] {128, 128, 128, 128, 128}, seen.get(0), "seeded with the uniform-128 genome");
        double[] per = r.bestPerGeneration();
        assertEquals(11, per.length, "first population + 10 generations");
        for (int i = 1; i < per.length; i++) assertTrue(per[i] <= per[i - 1], "best score never gets worse");
        assertEquals(seen.size(), r.evaluations());
        assertTrue(r.evaluations() < 3125, "the search does not enumerate everything (" + r.evaluations() + ")");
        double mean = Arrays.stream(r.best()).average().orElse(0);
        assertTrue(mean >= 128, "budget holds: " + mean);
    }

    @Test void isDeterministicForASeed() {
        int[] target = {64, 32, 192, 288, 32, 128};
        List<Double> a = new ArrayList<>(), b = new ArrayList<>();
        GroupSizeSearch s = new GroupSizeSearch(genes(6), GroupSizeSearch.Settings.qdit(128, 42));
        GroupSizeSearch.Result ra = s.run(g -> { double v = objective(g, target); a.add(v); return v; });
        GroupSizeSearch.Result rb = s.run(g -> { double v = objective(g, target); b.add(v); return v; });
        assertEquals(a, b);
        assertArrayEquals(ra.best(), rb.best());
    }

    @Test void choicesAndBudgetAreRespected() {
        List<GroupSizeSearch.Gene> g = List.of(new GroupSizeSearch.Gene("a", new int[] {32, 64}), new GroupSizeSearch.Gene("b", new int[] {64, 192}),
                new GroupSizeSearch.Gene("c", new int[] {288}));
        GroupSizeSearch s = new GroupSizeSearch(g, new GroupSizeSearch.Settings(20, 5, 10, 10, 3, 0.3, 120, 0));
        // uniform 128 snapped to the nearest allowed value (ties: larger): 64, 192 (|64| = |192| - 128 = 64: larger), 288
        assertArrayEquals(new int[] {64, 192, 288}, s.uniformGenome(128));
        GroupSizeSearch.Result r = s.run(x -> {
            assertTrue(x[0] == 32 || x[0] == 64);
            assertTrue(x[1] == 64 || x[1] == 192);
            assertEquals(288, x[2]);
            return x[0] + x[1];   // prefers small groups
        });
        assertArrayEquals(new int[] {32, 64, 288}, r.best(), "mean 128 >= 120");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> new GroupSizeSearch(g, new GroupSizeSearch.Settings(20, 5, 10, 10, 3, 0.3, 200, 0)));
        assertTrue(e.getMessage().contains("infeasible"), e.getMessage());
    }
}
