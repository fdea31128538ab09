package io.diffquant.engine.temporal;

import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.model.ForwardContext;
import io.diffquant.engine.model.Layer;
import io.diffquant.engine.model.LayerHook;
import io.diffquant.engine.quant.CalibratedParams;
import io.diffquant.engine.quant.WeightParams;
import io.diffquant.engine.quant.format.Layout;
import io.diffquant.engine.quant.format.QuantizedTensor;
import io.diffquant.engine.quant.format.Quantizer;
import io.diffquant.engine.quant.recon.AdaRoundWeight;
import io.diffquant.engine.quant.recon.ReconSettings;
import io.diffquant.engine.quant.recon.RoundingOptimizer;
import io.diffquant.engine.quant.spec.QuantPlan;
import io.diffquant.engine.quant.spec.QuantPoint;
import io.diffquant.engine.quant.spec.TensorSpec;
import io.diffquant.engine.tensor.Gradients;
import io.diffquant.engine.tensor.Ops;
import io.diffquant.engine.tensor.Tape;
import io.diffquant.engine.tensor.Tensor;
import io.diffquant.engine.train.AdamW;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.NoSuchElementException;
import java.util.SplittableRandom;

/**
 * TFMQ's temporal information aware reconstruction (TIAR; Huang et al., "TFMQ-DM", CVPR 2024, and the TPAMI version,
 * ALGORITHMS.md §6): the learned rounding (AdaRound for integer formats, FP4DiT's scale-aware FP AdaRound for ExMy
 * formats, {@link AdaRoundWeight}) of the Temporal Information Block's weights only, with the inputs t (and y) and the
 * full-precision temporal features as the target, over every (sampling timestep value, label) pair:
 * <pre>
 *   loss = Σ_i mean over the mini-batch of ||e_i(t, y) - ê_i(t, y)||²  +  λ Σ (1 - |2h - 1|^β)
 * </pre>
 * with β annealed after the warm-up as in BRECQ / Q-Diffusion (settings from {@link ReconSettings}: λ, β, warm-up, Adam
 * learning rate, scale-aware FP). All TIB layers are optimised jointly (gradients flow through the time MLP into every
 * modulation linear); activations stay in full precision (the weight phase of Q-Diffusion / TFMQ-DM). Layers of the
 * TIB whose weight format has no learned rounding keep round-to-nearest (and enter the forward quantized). Pulled step
 * by step: {@link Run#next()}.
 */
public final class Tiar {
    private Tiar() {}

    /** What TIAR did: the loss Σ_i mean ||e_i - ê_i||² over all (t, y) pairs with round-to-nearest and after TIAR. */
    public record Report(List<String> layers, List<String> keptRtn, int rows, int iterations, double rtnLoss, double tiarLoss, double seconds) {}

    /**
     * Starts TIAR.
     * @param model     the full-precision model (no quantization hooks attached on the TIB)
     * @param plan      the quantization plan (TIB weight specs)
     * @param initial   round-to-nearest weight parameters of (at least) the quantized TIB layers
     * @param timesteps the sampling timestep values
     * @param labels    labels (null = every label of the TIB; must be null for unconditional models)
     * @param settings  λ, β schedule, warm-up, lr, scale-aware FP, seed (its iterations / batch size are replaced by
     *                  {@code iterations} / {@code batchSize})
     */
    public static Run start(DiffusionModel model, QuantPlan plan, CalibratedParams initial, float[] timesteps, int[] labels,
                            ReconSettings settings, int iterations, int batchSize) {
        return new Run(model, plan, initial, timesteps, labels, settings, iterations, batchSize);
    }

    /** Runs TIAR to the end. */
    public static CalibratedParams run(DiffusionModel model, QuantPlan plan, CalibratedParams initial, float[] timesteps, int[] labels,
                                       ReconSettings settings, int iterations, int batchSize) {
        Run r = start(model, plan, initial, timesteps, labels, settings, iterations, batchSize);
        while (r.hasNext()) r.next();
        return r.result();
    }

    /**
     * Heap TIAR takes per TIB weight whose rounding it learns: the rounding state (base, step, lo, hi, V: 20 bytes),
     * Adam's two moments (8), and per step the soft targets, their derivative, the weight gradient factor and the soft
     * weight (16), V's gradient and the soft weight's gradient (8) and the rounding regulariser's terms (8).
     */
    public static final int BYTES_PER_WEIGHT = 60;

    /** Weights whose rounding TIAR learns (the TIB's Linear layers with an enabled weight spec of a learnable format). */
    public static long learnedWeights(DiffusionModel model, QuantPlan plan, TemporalInfoBlock tib) {
        long n = 0;
        for (String name : tib.linearLayers(model)) {
            QuantPoint p = plan.point(name);
            if (p == null || !p.hasWeight()) continue;
            TensorSpec ws = plan.spec(name).weight();
            if (ws.enabled() && AdaRoundWeight.supports(ws.format())) n += model.layers().get(name).param("weight").size();
        }
        return n;
    }

    /** Bytes of the FP temporal feature table TIAR targets: timesteps x labels (1 if unconditional) x TIB width floats. */
    static long tableBytes(TemporalInfoBlock tib, float[] timesteps, int[] labels) {
        int[] ys = labels != null ? labels : tib.labels();
        return 4L * (timesteps == null ? 0 : timesteps.length) * (ys == null ? 1 : ys.length) * tib.totalWidth();
    }

    /** A running TIAR; each next() is one Adam step (the first also prepares, the last hardens). */
    public static final class Run implements Iterator<String> {
        private final DiffusionModel model;
        private final TemporalInfoBlock tib;
        private final CalibratedParams initial;
        private final ReconSettings settings;
        private final int iterations, batchSize;
        private final TemporalFeatures target;
        private final int[] rowT, rowY;            // timestep / label index of each (t, y) row
        private final List<AdaRoundWeight> weights = new ArrayList<>();
        private final List<Layer> hooked = new ArrayList<>();
        private final List<LayerHook> hooks = new ArrayList<>();
        private final List<String> keptRtn = new ArrayList<>();
        private final AdamW adam;
        private final SplittableRandom rnd;
        private final long start = System.nanoTime();
        private final double rtnLoss;
        private int count;
        private boolean done;
        private volatile boolean cancelled;
        private CalibratedParams result;
        private Report report;
        private double lastLoss = Double.NaN, lastRec = Double.NaN;

        Run(DiffusionModel model, QuantPlan plan, CalibratedParams initial, float[] timesteps, int[] labels, ReconSettings settings,
            int iterations, int batchSize) {
            if (iterations < 0) throw new IllegalArgumentException("TIAR: iterations must be >= 0, got " + iterations);
            if (batchSize < 1) throw new IllegalArgumentException("TIAR: batch size must be >= 1, got " + batchSize);
            this.model = model;
            this.tib = TemporalInfoBlock.of(model);
            this.initial = initial;
            this.settings = settings;
            this.iterations = iterations;
            this.batchSize = batchSize;
            long learned = learnedWeights(model, plan, tib), table = tableBytes(tib, timesteps, labels);
            io.diffquant.engine.model.MemoryBudget.requireWorkspace(learned * BYTES_PER_WEIGHT + table, String.format(Locale.ROOT,
                    "TIAR on the %,d weights of the Temporal Information Block (learned rounding of all of them at once: about %d bytes per weight, "
                            + "plus the full-precision temporal feature table of %.2f GiB)", learned, BYTES_PER_WEIGHT, table / (double) (1L << 30)),
                    "calibrate without TIAR (option tiar = false)");
            this.target = TemporalFeatures.compute(model, tib, timesteps, labels);
            int nt = target.timestepCount(), ny = target.labelCount();
            rowT = new int[nt * ny];
            rowY = new int[nt * ny];
            for (int t = 0; t < nt; t++) for (int y = 0; y < ny; y++) { rowT[t * ny + y] = t; rowY[t * ny + y] = y; }
            Map<String, Tensor> vars = new LinkedHashMap<>();
            for (String name : tib.linearLayers(model)) {
                QuantPoint p = plan.point(name);
                if (p == null || !p.hasWeight()) continue;
                TensorSpec ws = plan.spec(name).weight();
                if (!ws.enabled()) continue;
                WeightParams wp = initial.weight(name);
                if (wp == null) throw new IllegalArgumentException("TIAR: layer '" + name + "' has no round-to-nearest weight parameters to start from");
                Layer layer = model.layers().get(name);
                if (!AdaRoundWeight.supports(ws.format())) {
                    keptRtn.add(name);
                    Tensor fixed = wp.hasCodes()
                            ? Quantizer.dequantize(new QuantizedTensor(ws.format(), ws.granularity(), Layout.WEIGHT, layer.param("weight").shape(), wp.codes(), wp.params()))
                            : Quantizer.withParams(ws.format(), ws.granularity(), Layout.WEIGHT, wp.params()).fakeQuant(layer.param("weight"));
                    hooked.add(layer);
                    hooks.add(new FixedWeight(fixed));
                    continue;
                }
                AdaRoundWeight w = AdaRoundWeight.create(layer.qualified("weight"), layer.param("weight"), ws.format(), ws.granularity(),
                        wp.params(), settings.fpScaleAware());
                weights.add(w);
                vars.put(w.name(), w.variables());
                hooked.add(layer);
                hooks.add(new SoftWeight(w));
            }
            this.adam = weights.isEmpty() ? null : new AdamW(vars, new AdamW.Config(settings.lr(), 0.9, 0.999, 1e-8, 0.0));
            this.rnd = new SplittableRandom(settings.seed() * 0x9E3779B97F4A7C15L + 0x7A1A);
            // round-to-nearest baseline over all rows
            for (AdaRoundWeight w : weights) w.useFixed(AdaRoundWeight.rtn(model.layers().get(layerOf(w)).param("weight"), w.format(),
                    w.granularity(), w.params()));
            this.rtnLoss = evaluate();
        }

        /** The TIB layers whose rounding is learned. */
        public List<String> layers() {
            List<String> n = new ArrayList<>();
            for (AdaRoundWeight w : weights) n.add(layerOf(w));
            return n;
        }

        /** Rows: (timestep, label) pairs. */
        public int rows() { return rowT.length; }
        public int iteration() { return count; }
        public int iterations() { return iterations; }
        /** Σ_i mean ||e_i - ê_i||² over all rows with round-to-nearest weights. */
        public double rtnLoss() { return rtnLoss; }
        /** Total and reconstruction loss of the last step (NaN before). */
        public double lastLoss() { return lastLoss; }
        public double lastRecLoss() { return lastRec; }

        public void cancel() { cancelled = true; }

        @Override public boolean hasNext() { return !done && !cancelled; }

        @Override public String next() {
            if (cancelled) throw new java.util.concurrent.CancellationException("TIAR cancelled");
            if (done) throw new NoSuchElementException("TIAR finished");
            if (weights.isEmpty() || count >= iterations) return finish();
            count++;
            int[] rows = draw();
            float[] tv = new float[rows.length];
            int[] yv = target.labels() == null ? null : new int[rows.length];
            float[] ts = target.timesteps();
            int[] ls = target.labels();
            for (int k = 0; k < rows.length; k++) {
                tv[k] = ts[rowT[rows[k]]];
                if (yv != null) yv[k] = ls[rowY[rows[k]]];
            }
            boolean reg = settings.regularized(count, iterations) && settings.lambda() > 0;
            double beta = reg ? settings.beta(count, iterations) : 0;
            List<Tensor> leaves = new ArrayList<>();
            for (AdaRoundWeight w : weights) leaves.add(w.variables());
            Gradients g;
            double rec, round = 0;
            attach();
            try (Tape tape = Tape.start(leaves)) {
                for (AdaRoundWeight w : weights) w.beginSoft();
                Tensor[] out = TemporalFeatures.run(model, tib, tv, yv);
                Tensor loss = recLoss(out, rows);
                rec = loss.data()[0];
                if (reg) for (AdaRoundWeight w : weights) {
                    Tensor p = w.penalty(settings.lambda(), beta);
                    round += p.data()[0];
                    loss = Ops.add(loss, p);
                }
                if (!Float.isFinite(loss.data()[0])) throw new ArithmeticException("TIAR: the loss is " + loss.data()[0] + " at iteration " + count);
                g = tape.backward(loss);
            } finally {
                detach();
            }
            adam.step(g);
            lastRec = rec;
            lastLoss = rec + round;
            return String.format(Locale.ROOT, "TIAR step %d/%d, loss %.4g (temporal features %.4g, round %.4g%s)", count, iterations,
                    lastLoss, rec, round, reg ? String.format(Locale.ROOT, ", β %.2f", beta) : "");
        }

        private String finish() {
            for (AdaRoundWeight w : weights) w.useHard();
            double after = weights.isEmpty() ? rtnLoss : evaluate();
            CalibratedParams p = initial;
            for (AdaRoundWeight w : weights) p = p.withWeight(layerOf(w), w.weightParams());
            result = p;
            report = new Report(layers(), List.copyOf(keptRtn), rows(), count, rtnLoss, after, (System.nanoTime() - start) / 1e9);
            done = true;
            return String.format(Locale.ROOT, "TIAR done: temporal feature loss %.4g (round to nearest) -> %.4g (learned rounding) over %d (t, y) pairs",
                    rtnLoss, after, rows());
        }

        /** The TIB weights with learned rounding (valid after the last step). */
        public CalibratedParams result() {
            if (!done) throw new IllegalStateException("TIAR has not finished");
            return result;
        }

        public Report report() {
            if (!done) throw new IllegalStateException("TIAR has not finished");
            return report;
        }

        private int[] draw() {
            int n = rowT.length, k = Math.min(batchSize, n);
            if (k == n) {
                int[] all = new int[n];
                for (int i = 0; i < n; i++) all[i] = i;
                return all;
            }
            int[] perm = new int[n];
            for (int i = 0; i < n; i++) perm[i] = i;
            for (int i = 0; i < k; i++) {
                int j = i + rnd.nextInt(n - i);
                int t = perm[i]; perm[i] = perm[j]; perm[j] = t;
            }
            int[] out = Arrays.copyOf(perm, k);
            Arrays.sort(out);
            return out;
        }

        /** Σ_i of Q-Diffusion's lp_loss: squared error summed over the feature, mean over the rows (recorded). */
        private Tensor recLoss(Tensor[] out, int[] rows) {
            Tensor loss = null;
            for (TemporalInfoBlock.Feature f : tib.features()) {
                int w = f.width();
                Tensor tgt = Tensor.zeros(rows.length, w);
                float[] src = target.raw(f.index());
                int ny = target.labelCount();
                for (int k = 0; k < rows.length; k++)
                    System.arraycopy(src, (rowT[rows[k]] * ny + rowY[rows[k]]) * w, tgt.data(), k * w, w);
                Tensor l = RoundingOptimizer.reconstructionLoss(out[f.index()], tgt, ReconSettings.LossMode.QDIFF, "TIAR feature " + f.name());
                loss = loss == null ? l : Ops.add(loss, l);
            }
            return loss;
        }

        /** The loss over all rows with the active weights, not recorded. */
        private double evaluate() {
            int n = rowT.length;
            double sum = 0;
            attach();
            try (AutoCloseable off = Tape.pause()) {
                for (int s = 0; s < n; s += 256) {
                    int e = Math.min(n, s + 256);
                    int[] rows = new int[e - s];
                    for (int i = 0; i < rows.length; i++) rows[i] = s + i;
                    float[] tv = new float[rows.length];
                    int[] yv = target.labels() == null ? null : new int[rows.length];
                    for (int k = 0; k < rows.length; k++) {
                        tv[k] = target.timesteps()[rowT[rows[k]]];
                        if (yv != null) yv[k] = target.labels()[rowY[rows[k]]];
                    }
                    sum += recLoss(TemporalFeatures.run(model, tib, tv, yv), rows).data()[0] * rows.length;
                }
            } catch (RuntimeException ex) {
                throw ex;
            } catch (Exception ex) {
                throw new IllegalStateException(ex);
            } finally {
                detach();
            }
            return sum / n;
        }

        private void attach() { for (int i = 0; i < hooked.size(); i++) hooked.get(i).addHook(hooks.get(i)); }
        private void detach() { for (int i = 0; i < hooked.size(); i++) hooked.get(i).removeHook(hooks.get(i)); }
    }

    private static String layerOf(AdaRoundWeight w) { return w.name().substring(0, w.name().length() - ".weight".length()); }

    /** The soft (or hardened) weight of a TIB layer under reconstruction. */
    private record SoftWeight(AdaRoundWeight rounding) implements LayerHook {
        @Override public Tensor weight(Layer l, Tensor w, ForwardContext ctx) { return rounding.active(); }
    }

    /** The round-to-nearest weight of a TIB layer whose format has no learned rounding. */
    private record FixedWeight(Tensor weight) implements LayerHook {
        @Override public Tensor weight(Layer l, Tensor w, ForwardContext ctx) { return weight; }
    }
}
