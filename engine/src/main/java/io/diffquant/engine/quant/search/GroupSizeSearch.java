package io.diffquant.engine.quant.search;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.NoSuchElementException;
import java.util.SplittableRandom;

/**
 * Q-DiT's automatic granularity allocation (arXiv 2406.17343 §4.2, ALGORITHMS.md §7): an evolutionary search over
 * genomes of one group size per quantized layer (shared by its weight and input activation), each gene restricted to
 * the choices that divide its layer's width, under the bit budget constraint mean(g) >= budget. The first population
 * holds the seed genome (uniform 128, snapped to each layer's valid choices) and random feasible genomes; each
 * generation keeps the top-k, adds mutations (each gene redrawn with a probability) and uniform crossovers of random
 * parents, all feasible, and evaluates the new ones. The objective is pluggable (the paper: FID of generated images;
 * lower is better) and every genome is evaluated once. Deterministic for a seed. Progress is pulled: each
 * {@link Run#next()} evaluates one genome.
 */
public final class GroupSizeSearch {

    /** A gene: the layer and its allowed group sizes (ascending). */
    public record Gene(String layer, int[] choices) {
        public Gene {
            if (choices == null || choices.length == 0) throw new IllegalArgumentException("gene '" + layer + "' has no choices");
            choices = choices.clone();
            Arrays.sort(choices);
        }
        @Override public int[] choices() { return choices.clone(); }
        int choice(int i) { return choices[i]; }
        int size() { return choices.length; }
    }

    /**
     * @param population   size of the first population (50)
     * @param topK         parents kept per generation (10)
     * @param mutations    mutated children per generation (25)
     * @param crossovers   crossover children per generation (25)
     * @param generations  generations after the first population (10)
     * @param mutationProb per-gene mutation probability (0.1)
     * @param budget       the constraint mean(group size) >= budget (128)
     */
    public record Settings(int population, int topK, int mutations, int crossovers, int generations, double mutationProb,
                           double budget, long seed) {
        public Settings {
            if (population < 1 || topK < 1 || mutations < 0 || crossovers < 0 || generations < 0)
                throw new IllegalArgumentException("search settings: population and topK must be >= 1, mutations, crossovers and generations >= 0");
            if (!(mutationProb >= 0 && mutationProb <= 1)) throw new IllegalArgumentException("mutation probability must be in [0, 1], got " + mutationProb);
            if (!Double.isFinite(budget)) throw new IllegalArgumentException("budget must be finite");
        }
        /** The paper's settings with a budget and seed. */
        public static Settings qdit(double budget, long seed) { return new Settings(50, 10, 25, 25, 10, 0.1, budget, seed); }
    }

    /** Lower is better. */
    @FunctionalInterface
    public interface Objective {
        double evaluate(int[] groupSizes);
    }

    /** The best genome found, its score, the best score after each generation (index 0 = first population), evaluations made. */
    public record Result(int[] best, double score, double[] bestPerGeneration, int evaluations) {
        @Override public int[] best() { return best.clone(); }
        @Override public double[] bestPerGeneration() { return bestPerGeneration.clone(); }
    }

    private final List<Gene> genes;
    private final Settings settings;

    public GroupSizeSearch(List<Gene> genes, Settings settings) {
        if (genes == null || genes.isEmpty()) throw new IllegalArgumentException("group-size search needs at least one layer");
        this.genes = List.copyOf(genes);
        this.settings = settings;
        double maxMean = 0;
        for (Gene g : genes) maxMean += g.choice(g.size() - 1);
        maxMean /= genes.size();
        if (maxMean < settings.budget()) throw new IllegalArgumentException("budget mean(g) >= " + settings.budget()
                + " is infeasible: the largest allowed group sizes average " + maxMean);
    }

    public List<Gene> genes() { return genes; }
    public Settings settings() { return settings; }

    /** The seed genome: for every layer the allowed choice nearest to {@code g} (ties: the larger); raised if infeasible. */
    public int[] uniformGenome(int g) {
        int[] out = new int[genes.size()];
        for (int i = 0; i < out.length; i++) {
            int[] c = genes.get(i).choices;
            int best = c[0];
            for (int v : c) if (Math.abs(v - g) < Math.abs(best - g) || (Math.abs(v - g) == Math.abs(best - g) && v > best)) best = v;
            out[i] = best;
        }
        // raise the smallest genes until the budget holds
        while (!feasible(out)) {
            int idx = -1;
            for (int i = 0; i < out.length; i++) {
                int next = nextLarger(genes.get(i), out[i]);
                if (next > out[i] && (idx < 0 || out[i] < out[idx])) idx = i;
            }
            if (idx < 0) break;
            out[idx] = nextLarger(genes.get(idx), out[idx]);
        }
        return out;
    }

    private static int nextLarger(Gene g, int v) {
        for (int c : g.choices) if (c > v) return c;
        return v;
    }

    /** Whether mean(g) >= budget. */
    public boolean feasible(int[] genome) {
        double s = 0;
        for (int v : genome) s += v;
        return s / genome.length >= settings.budget() - 1e-9;
    }

    /** Runs the whole search. */
    public Result run(Objective objective) {
        Run r = start(objective);
        while (r.hasNext()) r.next();
        return r.result();
    }

    public Run start(Objective objective) { return new Run(objective); }

    /** A search in progress; next() evaluates one genome and returns its score. */
    public final class Run implements Iterator<Double> {
        private final Objective objective;
        private final SplittableRandom rnd = new SplittableRandom(settings.seed());
        private final Map<String, Double> scores = new HashMap<>();
        private final Map<String, int[]> genomes = new LinkedHashMap<>();
        private final List<int[]> pending = new ArrayList<>();
        private List<int[]> population = new ArrayList<>();
        private final List<Double> bestPerGen = new ArrayList<>();
        private int generation;    // 0 = first population being evaluated
        private boolean done, cancelled;

        Run(Objective objective) {
            this.objective = objective;
            int[] seed = uniformGenome(128);
            addUnique(pending, seed);
            int tries = 0;
            while (pending.size() < settings.population() && tries++ < 1000 * settings.population()) {
                int[] g = new int[genes.size()];
                for (int i = 0; i < g.length; i++) g[i] = genes.get(i).choice(rnd.nextInt(genes.get(i).size()));
                if (feasible(g)) addUnique(pending, g);
            }
            population.addAll(pending);
        }

        private boolean addUnique(List<int[]> list, int[] g) {
            for (int[] x : list) if (Arrays.equals(x, g)) return false;
            list.add(g);
            return true;
        }

        public int generation() { return generation; }
        public int evaluations() { return scores.size(); }
        public void cancel() { cancelled = true; }

        @Override public boolean hasNext() { return !done && !cancelled; }

        @Override public Double next() {
            if (!hasNext()) throw new NoSuchElementException("search finished");
            // evaluate the next genome not yet scored
            while (!pending.isEmpty()) {
                int[] g = pending.removeFirst();
                String k = Arrays.toString(g);
                if (scores.containsKey(k)) continue;
                double s = objective.evaluate(g.clone());
                if (Double.isNaN(s)) throw new IllegalStateException("search objective returned NaN for genome " + k);
                scores.put(k, s);
                genomes.put(k, g);
                if (pending.isEmpty()) endGeneration();
                return s;
            }
            endGeneration();
            return best().getValue();
        }

        private void endGeneration() {
            bestPerGen.add(best().getValue());
            if (generation >= settings.generations()) {
                done = true;
                return;
            }
            generation++;
            List<int[]> ranked = new ArrayList<>(population);
            ranked.sort(Comparator.comparingDouble((int[] g) -> scores.get(Arrays.toString(g))).thenComparing(Arrays::toString));
            List<int[]> parents = new ArrayList<>(ranked.subList(0, Math.min(settings.topK(), ranked.size())));
            List<int[]> next = new ArrayList<>(parents);
            int made = 0, tries = 0;
            while (made < settings.mutations() && tries++ < 100 * Math.max(1, settings.mutations())) {
                int[] p = parents.get(rnd.nextInt(parents.size()));
                int[] c = p.clone();
                for (int i = 0; i < c.length; i++) if (rnd.nextDouble() < settings.mutationProb())
                    c[i] = genes.get(i).choice(rnd.nextInt(genes.get(i).size()));
                if (feasible(c) && addUnique(next, c)) made++;
            }
            made = 0;
            tries = 0;
            while (made < settings.crossovers() && tries++ < 100 * Math.max(1, settings.crossovers())) {
                int[] a = parents.get(rnd.nextInt(parents.size())), b = parents.get(rnd.nextInt(parents.size()));
                int[] c = new int[a.length];
                for (int i = 0; i < c.length; i++) c[i] = rnd.nextBoolean() ? a[i] : b[i];
                if (feasible(c) && addUnique(next, c)) made++;
            }
            population = next;
            for (int[] g : next) if (!scores.containsKey(Arrays.toString(g))) pending.add(g);
            if (pending.isEmpty()) endGeneration();
        }

        private Map.Entry<String, Double> best() {
            Map.Entry<String, Double> b = null;
            for (Map.Entry<String, Double> e : scores.entrySet())
                if (b == null || e.getValue() < b.getValue() || (e.getValue().equals(b.getValue()) && e.getKey().compareTo(b.getKey()) < 0)) b = e;
            if (b == null) throw new IllegalStateException("no genome evaluated yet");
            return b;
        }

        public Result result() {
            Map.Entry<String, Double> b = best();
            double[] per = new double[bestPerGen.size()];
            for (int i = 0; i < per.length; i++) per[i] = bestPerGen.get(i);
            return new Result(genomes.get(b.getKey()).clone(), b.getValue(), per, scores.size());
        }
    }
}
