package io.diffquant.engine.quant.recon;

import io.diffquant.engine.model.ForwardContext;
import io.diffquant.engine.tensor.Gradients;
import io.diffquant.engine.tensor.Ops;
import io.diffquant.engine.tensor.Tape;
import io.diffquant.engine.tensor.Tensor;
import io.diffquant.engine.train.AdamW;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * The optimisation loop of AdaRound / BRECQ for one unit (a layer or a block), as Xiuyu-Li/q-diffusion
 * qdiff/block_recon.py and layer_recon.py run it: each step draws a mini-batch of cached rows without replacement,
 * runs the unit with the soft-quantized weights under a {@link Tape}, takes loss = reconstruction loss against the
 * full-precision target + (after the warm-up) λ Σ (1 - |2h - 1|^β) over all the unit's rounding variables, with β
 * annealed linearly from betaStart to betaEnd, and updates the variables with Adam. Deterministic for a seed.
 *
 * <p>The data store holds the unit's inputs in fields 0 .. k-1 and the target in field k.
 */
public final class RoundingOptimizer {
    /** Runs the unit on a batch of inputs; the weights it computes with are the variables' active weights. */
    @FunctionalInterface
    public interface UnitForward {
        Tensor apply(Tensor[] inputs, ForwardContext ctx);
    }

    /** One finished step: total loss = rec + round, at regulariser exponent beta (0 while the regulariser is off). */
    public record Step(int iteration, int iterations, double loss, double recLoss, double roundLoss, double beta) {}

    private final List<AdaRoundWeight> weights;
    private final UnitForward forward;
    private final ActivationStore data;
    private final int inputs;
    private final int iterations;
    private final ReconSettings settings;
    private final AdamW adam;
    private final SplittableRandom rnd;
    private final List<int[]> byTimestep;
    private final String unit;
    private int count;

    /**
     * @param unit                name for messages
     * @param sameTimestepBatches draw each mini-batch from the rows of one timestep value (needed when an input uses
     *                            per-timestep parameters); otherwise across all rows
     */
    public RoundingOptimizer(String unit, List<AdaRoundWeight> weights, UnitForward forward, ActivationStore data,
                             int iterations, ReconSettings settings, long seed, boolean sameTimestepBatches) {
        if (weights.isEmpty()) throw new IllegalArgumentException(unit + ": nothing to reconstruct (no rounding variables)");
        if (!data.complete()) throw new IllegalArgumentException(unit + ": the cached data has " + data.filled() + " of " + data.rows() + " rows");
        if (data.fields() < 2) throw new IllegalArgumentException(unit + ": the cached data needs input and target fields");
        if (iterations < 1) throw new IllegalArgumentException(unit + ": iterations must be >= 1, got " + iterations);
        this.unit = unit;
        this.weights = List.copyOf(weights);
        this.forward = forward;
        this.data = data;
        this.inputs = data.fields() - 1;
        this.iterations = iterations;
        this.settings = settings;
        Map<String, Tensor> vars = new LinkedHashMap<>();
        for (AdaRoundWeight w : weights) {
            if (vars.put(w.name(), w.variables()) != null) throw new IllegalArgumentException(unit + ": rounding variables of '" + w.name() + "' given twice");
        }
        this.adam = new AdamW(vars, new AdamW.Config(settings.lr(), 0.9, 0.999, 1e-8, 0.0));
        this.rnd = new SplittableRandom(seed);
        this.byTimestep = sameTimestepBatches ? data.rowsByTimestep() : null;
    }

    public int iteration() { return count; }
    public int iterations() { return iterations; }
    public boolean hasNext() { return count < iterations; }
    public List<AdaRoundWeight> weights() { return weights; }

    /** One Adam step on a fresh mini-batch. */
    public Step step() {
        if (!hasNext()) throw new IllegalStateException(unit + ": all " + iterations + " iterations done");
        count++;
        ActivationStore.Batch b = data.gather(drawBatch());
        Tensor[] in = Arrays.copyOf(b.fields(), inputs);
        Tensor target = b.fields()[inputs];
        boolean reg = settings.regularized(count, iterations) && settings.lambda() > 0;
        double beta = reg ? settings.beta(count, iterations) : 0;
        List<Tensor> leaves = new ArrayList<>();
        for (AdaRoundWeight w : weights) leaves.add(w.variables());
        double rec, round = 0;
        Tensor loss;
        Gradients g;
        try (Tape tape = Tape.start(leaves)) {
            for (AdaRoundWeight w : weights) w.beginSoft();
            Tensor pred = forward.apply(in, new ForwardContext(b.t(), b.y()));
            Tensor recLoss = reconstructionLoss(pred, target, settings.loss(), unit);
            rec = recLoss.data()[0];
            loss = recLoss;
            if (reg) {
                for (AdaRoundWeight w : weights) {
                    Tensor p = w.penalty(settings.lambda(), beta);
                    round += p.data()[0];
                    loss = Ops.add(loss, p);
                }
            }
            if (!Float.isFinite(loss.data()[0])) throw new ArithmeticException(unit + ": the reconstruction loss is " + loss.data()[0]
                    + " at iteration " + count + " (rec " + rec + ", round " + round + ")");
            g = tape.backward(loss);
        }
        adam.step(g);
        return new Step(count, iterations, rec + round, rec, round, beta);
    }

    private int[] drawBatch() {
        int[] pool;
        if (byTimestep != null) {
            int r = rnd.nextInt(data.rows());
            pool = null;
            for (int[] rows : byTimestep) {
                if (r < rows.length) { pool = rows; break; }
                r -= rows.length;
            }
        } else {
            pool = null;
        }
        int n = pool == null ? data.rows() : pool.length;
        int k = Math.min(settings.batchSize(), n);
        int[] perm = new int[n];
        for (int i = 0; i < n; i++) perm[i] = pool == null ? i : pool[i];
        for (int i = 0; i < k; i++) {                           // partial Fisher-Yates: torch.randperm(n)[:k]
            int j = i + rnd.nextInt(n - i);
            int t = perm[i]; perm[i] = perm[j]; perm[j] = t;
        }
        return Arrays.copyOf(perm, k);
    }

    /** Hardens every weight (h = 1[V >= 0]) and makes the hardened weights active. */
    public void harden() {
        for (AdaRoundWeight w : weights) w.useHard();
    }

    /**
     * Mean squared error (over all elements) of the unit's output with the currently active weights against the
     * target, on the given rows, in batches of the mini-batch size; nothing is recorded.
     */
    public double evaluate(int[] rows) {
        return evaluate(forward, data, rows, settings.batchSize(), byTimestep != null);
    }

    static double evaluate(UnitForward forward, ActivationStore data, int[] rows, int batch, boolean sameTimestep) {
        if (rows.length == 0) throw new IllegalArgumentException("evaluation needs at least one row");
        int inputs = data.fields() - 1;
        double sum = 0;
        long n = 0;
        List<int[]> chunks = new ArrayList<>();
        if (sameTimestep) {
            java.util.Set<Integer> want = new java.util.HashSet<>();
            for (int r : rows) want.add(r);
            for (int[] group : data.rowsByTimestep()) {
                int[] sel = Arrays.stream(group).filter(want::contains).toArray();
                for (int i = 0; i < sel.length; i += batch) chunks.add(Arrays.copyOfRange(sel, i, Math.min(sel.length, i + batch)));
            }
        } else {
            for (int i = 0; i < rows.length; i += batch) chunks.add(Arrays.copyOfRange(rows, i, Math.min(rows.length, i + batch)));
        }
        try (var off = Tape.pause()) {
            for (int[] idx : chunks) {
                ActivationStore.Batch b = data.gather(idx);
                Tensor pred = forward.apply(Arrays.copyOf(b.fields(), inputs), new ForwardContext(b.t(), b.y()));
                float[] p = pred.data(), t = b.fields()[inputs].data();
                if (p.length != t.length) throw new IllegalArgumentException("unit output " + Arrays.toString(pred.shape())
                        + " and target " + Arrays.toString(b.fields()[inputs].shape()) + " differ");
                for (int i = 0; i < p.length; i++) {
                    double d = (double) p[i] - t[i];
                    sum += d * d;
                }
                n += p.length;
            }
        }
        return sum / n;
    }

    /** The loss of {@link ReconSettings.LossMode}, recorded: QDIFF = mean squared error x dim(1) (sum over dim 1, mean over the rest). */
    public static Tensor reconstructionLoss(Tensor pred, Tensor target, ReconSettings.LossMode mode, String unit) {
        if (!pred.sameShape(target)) throw new IllegalArgumentException(unit + ": output " + Arrays.toString(pred.shape())
                + " and full-precision target " + Arrays.toString(target.shape()) + " differ");
        Tensor mse = Ops.mseLoss(pred, target);
        if (mode == ReconSettings.LossMode.MSE || pred.rank() < 2) return mse;
        return Ops.scale(mse, pred.dim(1));
    }

    /** Evenly spread rows for evaluation: min(n, rows) indices. */
    public static int[] spreadRows(int rows, int n) {
        int k = Math.min(rows, n);
        int[] out = new int[k];
        for (int i = 0; i < k; i++) out[i] = (int) ((long) i * rows / k);
        return out;
    }
}
