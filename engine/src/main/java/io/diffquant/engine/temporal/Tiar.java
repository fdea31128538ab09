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
 *
 * <p>Two schedules ({@link Mode}). <b>Joint</b> (above) learns every TIB rounding at once against a stored table of the
 * FP features. <b>Blockwise</b> uses the TIB's structure: every feature is one Linear layer applied to a shared trunk
 * (SiLU of the DiT conditioning or of the UNet time embedding, {@link TemporalFeatures#trunk}), so it first learns the
 * trunk's rounding against all features (feature layers in full precision), then, with the trunk hardened, each feature
 * layer alone on its own feature, {@code iterations} steps per stage; the FP targets are computed per mini-batch from
 * stored FP trunk activations, so it needs one layer's rounding state instead of the whole TIB's (DiT-XL/2: 8 M instead
 * of 227 M weights). {@link Mode#AUTO} (the default of {@link #start} without a mode; the tfmq presets default to
 * blockwise) runs joint when its working memory fits the heap, else blockwise.
 * Both report the same loss, Σ_i mean ||e_i - ê_i||² over all (t, y).
 */
public final class Tiar {
    private Tiar() {}

    /** TIAR's schedule: all TIB layers at once, stage by stage, or joint when it fits the heap (else blockwise). */
    public enum Mode {
        AUTO, JOINT, BLOCKWISE;

        /** The option value ("auto", "joint", "blockwise"). */
        public String id() { return name().toLowerCase(Locale.ROOT); }

        /** Parses an option value; the message lists the choices. */
        public static Mode of(String id) {
            for (Mode m : values()) if (m.id().equals(id)) return m;
            throw new IllegalArgumentException("option 'tiar_mode': unknown value '" + id + "' (expected auto, joint or blockwise)");
        }
    }

    /**
     * What TIAR did: the loss Σ_i mean ||e_i - ê_i||² over all (t, y) pairs with round-to-nearest and after TIAR;
     * {@code reverted}: learned layers that keep round to nearest because their learned rounding had the higher loss
     * (checked per stage when blockwise, for the whole TIB when joint; e.g. after too few steps).
     */
    public record Report(List<String> layers, List<String> keptRtn, int rows, int iterations, double rtnLoss, double tiarLoss, double seconds,
                         List<String> reverted) {}

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
        return start(model, plan, initial, timesteps, labels, settings, iterations, batchSize, Mode.AUTO);
    }

    /** {@link #start(DiffusionModel, QuantPlan, CalibratedParams, float[], int[], ReconSettings, int, int)} with a schedule. */
    public static Run start(DiffusionModel model, QuantPlan plan, CalibratedParams initial, float[] timesteps, int[] labels,
                            ReconSettings settings, int iterations, int batchSize, Mode mode) {
        if (iterations < 0) throw new IllegalArgumentException("TIAR: iterations must be >= 0, got " + iterations);
        if (batchSize < 1) throw new IllegalArgumentException("TIAR: batch size must be >= 1, got " + batchSize);
        TemporalInfoBlock tib = TemporalInfoBlock.of(model);
        if (mode == Mode.JOINT) return new JointRun(model, tib, plan, initial, timesteps, labels, settings, iterations, batchSize);
        if (mode == Mode.BLOCKWISE) return new BlockwiseRun(model, tib, plan, initial, timesteps, labels, settings, iterations, batchSize);
        if (io.diffquant.engine.model.MemoryBudget.fitsWorkspace(jointBytes(model, plan, tib, timesteps, labels)))
            return new JointRun(model, tib, plan, initial, timesteps, labels, settings, iterations, batchSize);
        return new BlockwiseRun(model, tib, plan, initial, timesteps, labels, settings, iterations, batchSize);
    }

    /** Working memory of joint TIAR: the rounding state of every learned TIB weight plus the FP feature table. */
    static long jointBytes(DiffusionModel model, QuantPlan plan, TemporalInfoBlock tib, float[] timesteps, int[] labels) {
        return learnedWeights(model, plan, tib) * BYTES_PER_WEIGHT + tableBytes(tib, timesteps, labels);
    }

    /** Runs TIAR to the end. */
    public static CalibratedParams run(DiffusionModel model, QuantPlan plan, CalibratedParams initial, float[] timesteps, int[] labels,
                                       ReconSettings settings, int iterations, int batchSize) {
        return run(model, plan, initial, timesteps, labels, settings, iterations, batchSize, Mode.AUTO);
    }

    /** Runs TIAR to the end with a schedule. */
    public static CalibratedParams run(DiffusionModel model, QuantPlan plan, CalibratedParams initial, float[] timesteps, int[] labels,
                                       ReconSettings settings, int iterations, int batchSize, Mode mode) {
        Run r = start(model, plan, initial, timesteps, labels, settings, iterations, batchSize, mode);
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
        for (String name : quantizedLinears(model, plan, tib))
            if (learnable(plan, name)) n += model.layers().get(name).param("weight").size();
        return n;
    }

    /** The TIB's Linear layers with an enabled weight spec (quantized), in model order. */
    static List<String> quantizedLinears(DiffusionModel model, QuantPlan plan, TemporalInfoBlock tib) {
        List<String> out = new ArrayList<>();
        for (String name : tib.linearLayers(model)) {
            QuantPoint p = plan.point(name);
            if (p != null && p.hasWeight() && plan.spec(name).weight().enabled()) out.add(name);
        }
        return out;
    }

    /** Whether a quantized layer's weight format has a learned rounding (AdaRound / FP AdaRound). */
    static boolean learnable(QuantPlan plan, String name) { return AdaRoundWeight.supports(plan.spec(name).weight().format()); }

    /** Bytes of the FP temporal feature table TIAR targets: timesteps x labels (1 if unconditional) x TIB width floats. */
    static long tableBytes(TemporalInfoBlock tib, float[] timesteps, int[] labels) {
        int[] ys = labels != null ? labels : tib.labels();
        return 4L * (timesteps == null ? 0 : timesteps.length) * (ys == null ? 1 : ys.length) * tib.totalWidth();
    }

    /** A running TIAR; each next() is one Adam step (the first also prepares, the last hardens). */
    public abstract static sealed class Run implements Iterator<String> permits JointRun, BlockwiseRun {
        final DiffusionModel model;
        final TemporalInfoBlock tib;
        final QuantPlan plan;
        final CalibratedParams initial;
        final ReconSettings settings;
        final int iterations, batchSize;
        final float[] ts;                  // the timestep values
        final int[] ys;                    // the labels (null when unconditional)
        final int[] rowT, rowY;            // timestep / label index of each (t, y) row
        final List<String> keptRtn = new ArrayList<>();
        final SplittableRandom rnd;
        final long start = System.nanoTime();
        double rtnLoss;
        int count;
        boolean done;
        volatile boolean cancelled;
        CalibratedParams result;
        Report report;
        final List<String> reverted = new ArrayList<>();
        double lastLoss = Double.NaN, lastRec = Double.NaN;

        Run(DiffusionModel model, TemporalInfoBlock tib, QuantPlan plan, CalibratedParams initial, float[] timesteps, int[] labels,
            ReconSettings settings, int iterations, int batchSize) {
            this.model = model;
            this.tib = tib;
            this.plan = plan;
            this.initial = initial;
            this.settings = settings;
            this.iterations = iterations;
            this.batchSize = batchSize;
            this.ts = TemporalFeatures.checkTimesteps(timesteps);
            this.ys = TemporalFeatures.checkLabels(tib, labels);
            int nt = ts.length, ny = ys == null ? 1 : ys.length;
            rowT = new int[nt * ny];
            rowY = new int[nt * ny];
            for (int t = 0; t < nt; t++) for (int y = 0; y < ny; y++) { rowT[t * ny + y] = t; rowY[t * ny + y] = y; }
            this.rnd = new SplittableRandom(settings.seed() * 0x9E3779B97F4A7C15L + 0x7A1A);
        }

        /** The schedule this run uses (never AUTO). */
        public abstract Mode mode();

        /** The TIB layers whose rounding is learned. */
        public abstract List<String> layers();

        /** Rows: (timestep, label) pairs. */
        public int rows() { return rowT.length; }
        /** Adam steps taken so far (all stages). */
        public int iteration() { return count; }
        /** Adam steps in all (all stages). */
        public abstract int iterations();
        /** Σ_i mean ||e_i - ê_i||² over all rows with round-to-nearest weights. */
        public double rtnLoss() { return rtnLoss; }
        /** Total and reconstruction loss of the last step (NaN before). */
        public double lastLoss() { return lastLoss; }
        public double lastRecLoss() { return lastRec; }

        public void cancel() { cancelled = true; }

        @Override public boolean hasNext() { return !done && !cancelled; }

        /** The TIB weights with learned rounding (valid after the last step). */
        public CalibratedParams result() {
            if (!done) throw new IllegalStateException("TIAR has not finished");
            return result;
        }

        public Report report() {
            if (!done) throw new IllegalStateException("TIAR has not finished");
            return report;
        }

        void checkNext() {
            if (cancelled) throw new java.util.concurrent.CancellationException("TIAR cancelled");
            if (done) throw new NoSuchElementException("TIAR finished");
        }

        /** A random mini-batch of row indices (sorted; all rows when the batch covers them). */
        int[] draw() {
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

        /** The forward context (timestep values, labels) of some rows. */
        ForwardContext context(int[] rows) {
            float[] tv = new float[rows.length];
            int[] yv = ys == null ? null : new int[rows.length];
            for (int k = 0; k < rows.length; k++) {
                tv[k] = ts[rowT[rows[k]]];
                if (yv != null) yv[k] = ys[rowY[rows[k]]];
            }
            return new ForwardContext(tv, yv);
        }

        /** Rows [s, e). */
        static int[] range(int s, int e) {
            int[] rows = new int[e - s];
            for (int i = 0; i < rows.length; i++) rows[i] = s + i;
            return rows;
        }

        /** One Adam step on the rounding variables of {@code ws}: loss = rec + the rounding regulariser. */
        String regularised(List<AdaRoundWeight> ws, int stageCount, int stageTotal, java.util.function.Supplier<Tensor> rec, AdamW adam, String where) {
            boolean reg = settings.regularized(stageCount, stageTotal) && settings.lambda() > 0;
            double beta = reg ? settings.beta(stageCount, stageTotal) : 0;
            List<Tensor> leaves = new ArrayList<>();
            for (AdaRoundWeight w : ws) leaves.add(w.variables());
            Gradients g;
            double r, round = 0;
            try (Tape tape = Tape.start(leaves)) {
                for (AdaRoundWeight w : ws) w.beginSoft();
                Tensor loss = rec.get();
                r = loss.data()[0];
                if (reg) for (AdaRoundWeight w : ws) {
                    Tensor p = w.penalty(settings.lambda(), beta);
                    round += p.data()[0];
                    loss = Ops.add(loss, p);
                }
                if (!Float.isFinite(loss.data()[0])) throw new ArithmeticException("TIAR: the loss is " + loss.data()[0] + " at iteration " + count
                        + (where.isEmpty() ? "" : " (" + where + ")"));
                g = tape.backward(loss);
            }
            adam.step(g);
            lastRec = r;
            lastLoss = r + round;
            return String.format(Locale.ROOT, "loss %.4g (temporal features %.4g, round %.4g%s)", lastLoss, r, round,
                    reg ? String.format(Locale.ROOT, ", β %.2f", beta) : "");
        }

        /** The quantized layers of the TIB ({@link Tiar#quantizedLinears}), each with its round-to-nearest parameters. */
        List<String> quantizedLinears() {
            List<String> out = Tiar.quantizedLinears(model, plan, tib);
            for (String name : out)
                if (initial.weight(name) == null)
                    throw new IllegalArgumentException("TIAR: layer '" + name + "' has no round-to-nearest weight parameters to start from");
            return out;
        }

        boolean learnable(String name) { return Tiar.learnable(plan, name); }

        /** The round-to-nearest weight of a quantized TIB layer (from its calibrated parameters or codes). */
        Tensor rtnWeight(String name) {
            TensorSpec ws = plan.spec(name).weight();
            WeightParams wp = initial.weight(name);
            Layer layer = model.layers().get(name);
            return wp.hasCodes()
                    ? Quantizer.dequantize(new QuantizedTensor(ws.format(), ws.granularity(), Layout.WEIGHT, layer.param("weight").shape(), wp.codes(), wp.params()))
                    : Quantizer.withParams(ws.format(), ws.granularity(), Layout.WEIGHT, wp.params()).fakeQuant(layer.param("weight"));
        }

        AdaRoundWeight rounding(String name) {
            TensorSpec ws = plan.spec(name).weight();
            Layer layer = model.layers().get(name);
            return AdaRoundWeight.create(layer.qualified("weight"), layer.param("weight"), ws.format(), ws.granularity(),
                    initial.weight(name).params(), settings.fpScaleAware());
        }

        void finished(List<String> learned, double after) {
            report = new Report(learned, List.copyOf(keptRtn), rows(), count, rtnLoss, after, (System.nanoTime() - start) / 1e9, List.copyOf(reverted));
            done = true;
        }

        String doneMessage(double after) {
            return String.format(Locale.ROOT, "TIAR %s done: temporal feature loss %.4g (round to nearest) -> %.4g (learned rounding) over %d (t, y) pairs%s",
                    mode().id(), rtnLoss, after, rows(), reverted.isEmpty() ? "" : "; round to nearest kept for " + reverted.size()
                            + " layer(s) where the learned rounding was worse");
        }
    }

    /** Joint TIAR: every TIB rounding at once against a stored FP feature table. */
    static final class JointRun extends Run {
        private final TemporalFeatures target;
        private final List<AdaRoundWeight> weights = new ArrayList<>();
        private final List<Layer> hooked = new ArrayList<>();
        private final List<LayerHook> hooks = new ArrayList<>();
        private final AdamW adam;

        JointRun(DiffusionModel model, TemporalInfoBlock tib, QuantPlan plan, CalibratedParams initial, float[] timesteps, int[] labels,
                 ReconSettings settings, int iterations, int batchSize) {
            super(model, tib, plan, initial, timesteps, labels, settings, iterations, batchSize);
            long learned = learnedWeights(model, plan, tib), table = tableBytes(tib, timesteps, labels);
            io.diffquant.engine.model.MemoryBudget.requireWorkspace(learned * BYTES_PER_WEIGHT + table, String.format(Locale.ROOT,
                    "TIAR on the %,d weights of the Temporal Information Block (learned rounding of all of them at once: about %d bytes per weight, "
                            + "plus the full-precision temporal feature table of %.2f GiB)", learned, BYTES_PER_WEIGHT, table / (double) (1L << 30)),
                    "TIAR block by block (option tiar_mode = blockwise), or calibrate without TIAR (option tiar = false)");
            this.target = TemporalFeatures.compute(model, tib, ts, ys);
            Map<String, Tensor> vars = new LinkedHashMap<>();
            for (String name : quantizedLinears()) {
                Layer layer = model.layers().get(name);
                if (!learnable(name)) {
                    keptRtn.add(name);
                    hooked.add(layer);
                    hooks.add(new FixedWeight(rtnWeight(name)));
                    continue;
                }
                AdaRoundWeight w = rounding(name);
                weights.add(w);
                vars.put(w.name(), w.variables());
                hooked.add(layer);
                hooks.add(new SoftWeight(w));
            }
            this.adam = weights.isEmpty() ? null : new AdamW(vars, new AdamW.Config(settings.lr(), 0.9, 0.999, 1e-8, 0.0));
            // round-to-nearest baseline over all rows
            for (AdaRoundWeight w : weights) w.useFixed(AdaRoundWeight.rtn(model.layers().get(layerOf(w)).param("weight"), w.format(),
                    w.granularity(), w.params()));
            this.rtnLoss = evaluate();
        }

        @Override public Mode mode() { return Mode.JOINT; }

        @Override public List<String> layers() {
            List<String> n = new ArrayList<>();
            for (AdaRoundWeight w : weights) n.add(layerOf(w));
            return n;
        }

        @Override public int iterations() { return weights.isEmpty() ? 0 : iterations; }

        @Override public String next() {
            checkNext();
            if (weights.isEmpty() || count >= iterations) return finish();
            count++;
            int[] rows = draw();
            ForwardContext ctx = context(rows);
            String msg;
            attach();
            try {
                msg = regularised(weights, count, iterations, () -> recLoss(TemporalFeatures.run(model, tib, ctx.t(), ctx.y()), rows), adam, "");
            } finally {
                detach();
            }
            return String.format(Locale.ROOT, "TIAR step %d/%d, %s", count, iterations, msg);
        }

        private String finish() {
            for (AdaRoundWeight w : weights) w.useHard();
            double after = weights.isEmpty() ? rtnLoss : evaluate();
            CalibratedParams p = initial;
            if (after > rtnLoss) {
                // the learned rounding is worse than round to nearest (too few steps): keep round to nearest
                reverted.addAll(layers());
                after = rtnLoss;
            } else {
                for (AdaRoundWeight w : weights) p = p.withWeight(layerOf(w), w.weightParams());
            }
            result = p;
            finished(layers(), after);
            return doneMessage(after);
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
            try (var off = Tape.pause()) {
                for (int s = 0; s < n; s += 256) {
                    int[] rows = range(s, Math.min(n, s + 256));
                    ForwardContext ctx = context(rows);
                    sum += recLoss(TemporalFeatures.run(model, tib, ctx.t(), ctx.y()), rows).data()[0] * rows.length;
                }
            } finally {
                detach();
            }
            return sum / n;
        }

        private void attach() { for (int i = 0; i < hooked.size(); i++) hooked.get(i).addHook(hooks.get(i)); }
        private void detach() { for (int i = 0; i < hooked.size(); i++) hooked.get(i).removeHook(hooks.get(i)); }
    }

    /**
     * Blockwise TIAR: stage 0 learns the trunk's rounding (the TIB linears that are not a feature's layer) against all
     * features with the feature layers in full precision; then each feature layer with learned rounding alone, on the
     * hardened trunk's output, against its FP feature. Only the current stage's rounding state is alive; the FP targets
     * are one Linear applied to the stored FP trunk activations of the mini-batch.
     */
    static final class BlockwiseRun extends Run {
        private final List<String> learned = new ArrayList<>();
        private final List<String> quantized;   // every quantized TIB linear
        private final List<List<String>> stages = new ArrayList<>();   // layer names learned per stage
        private final List<TemporalInfoBlock.Feature> stageFeature = new ArrayList<>();   // null for the trunk stage
        private final Map<String, Tensor> fixedTrunk = new LinkedHashMap<>();   // the trunk's quantized layers: weights (RTN, then learned)
        private final Map<String, WeightParams> learnedParams = new LinkedHashMap<>();
        private final float[] actFp;       // FP trunk activations, rows x width
        private float[] actQ;              // the quantized trunk's activations (RTN until stage 0 ends)
        private final int width;
        private final double[] featureAfter;   // per feature: the loss after TIAR (NaN until known)
        private int stage = -1, stageCount;
        private List<AdaRoundWeight> current = List.of();
        private AdamW adam;

        BlockwiseRun(DiffusionModel model, TemporalInfoBlock tib, QuantPlan plan, CalibratedParams initial, float[] timesteps, int[] labels,
                     ReconSettings settings, int iterations, int batchSize) {
            super(model, tib, plan, initial, timesteps, labels, settings, iterations, batchSize);
            java.util.Set<String> featureLayers = new java.util.HashSet<>();
            for (TemporalInfoBlock.Feature f : tib.features()) featureLayers.add(f.layer());
            this.quantized = quantizedLinears();
            List<String> trunkLearned = new ArrayList<>(), trunkQuantized = new ArrayList<>();
            long trunkWeights = 0, maxStage = 0;
            for (String name : quantized) {
                if (!learnable(name)) keptRtn.add(name);
                if (featureLayers.contains(name)) continue;
                trunkQuantized.add(name);
                long size = model.layers().get(name).param("weight").size();
                trunkWeights += size;
                if (learnable(name)) { trunkLearned.add(name); maxStage += size; }
            }
            if (!trunkLearned.isEmpty()) { stages.add(trunkLearned); stageFeature.add(null); }
            for (TemporalInfoBlock.Feature f : tib.features()) {
                if (!quantized.contains(f.layer()) || !learnable(f.layer())) continue;
                stages.add(List.of(f.layer()));
                stageFeature.add(f);
                maxStage = Math.max(maxStage, model.layers().get(f.layer()).param("weight").size());
            }
            for (List<String> st : stages) learned.addAll(st);
            this.featureAfter = new double[tib.features().size()];
            Arrays.fill(featureAfter, Double.NaN);
            // the trunk's width, from one row
            int n = rowT.length;
            try (var off = Tape.pause()) {
                width = TemporalFeatures.trunk(model, context(new int[]{0})).shape()[1];
            }
            int maxWidth = 0;
            for (TemporalInfoBlock.Feature f : tib.features()) maxWidth = Math.max(maxWidth, f.width());
            long work = maxStage * BYTES_PER_WEIGHT + trunkWeights * 4L + 2L * 4 * n * width
                    + 16L * Math.min(batchSize, n) * (stages.isEmpty() || stageFeature.get(0) != null ? maxWidth : tib.totalWidth())
                    + 8L * 256 * maxWidth + 4L * maxStage;
            io.diffquant.engine.model.MemoryBudget.requireWorkspace(work, String.format(Locale.ROOT,
                    "blockwise TIAR of the Temporal Information Block (the largest stage learns %,d weights at about %d bytes each; "
                            + "trunk activations of %,d (t, y) pairs)", maxStage, BYTES_PER_WEIGHT, n),
                    "calibrate without TIAR (option tiar = false), or use fewer calibration timesteps");
            if ((long) n * width > Integer.MAX_VALUE - 16)
                throw new IllegalArgumentException("TIAR: " + n + " (t, y) pairs x " + width + " trunk floats do not fit in one table; use fewer timesteps");
            for (String name : trunkQuantized) fixedTrunk.put(name, rtnWeight(name));
            this.actFp = trunkActivations(false);
            this.actQ = trunkActivations(true);
            // round-to-nearest baseline: Σ over the features, each with its layer at RTN (or FP when not quantized)
            double sum = 0;
            for (TemporalInfoBlock.Feature f : tib.features()) {
                Tensor w = quantized.contains(f.layer()) ? rtnWeight(f.layer()) : null;
                sum += featureLoss(f, w);
            }
            this.rtnLoss = sum;
        }

        @Override public Mode mode() { return Mode.BLOCKWISE; }
        @Override public List<String> layers() { return List.copyOf(learned); }
        @Override public int iterations() { return iterations * stages.size(); }

        /** Stages: the trunk (when it has learned rounding) and one per feature layer with learned rounding. */
        public int stages() { return stages.size(); }

        @Override public String next() {
            checkNext();
            if (stage >= 0 && stageCount >= iterations) endStage();
            if (stage < 0 || current.isEmpty()) {
                if (stage + 1 >= stages.size() || iterations == 0) {
                    // no (more) stages; with 0 iterations every stage hardens to its starting (RTN) rounding at once
                    while (stage + 1 < stages.size()) { beginStage(); endStage(); }
                    return finish();
                }
                beginStage();
            }
            count++;
            stageCount++;
            int[] rows = draw();
            ForwardContext ctx = context(rows);
            TemporalInfoBlock.Feature f = stageFeature.get(stage);
            String msg;
            if (f == null) {
                Tensor[] target;
                try (var off = Tape.pause()) {
                    target = TemporalFeatures.run(model, tib, ctx.t(), ctx.y());
                }
                Map<Layer, LayerHook> hooks = new LinkedHashMap<>();
                for (var e : fixedTrunk.entrySet()) {
                    AdaRoundWeight w = find(e.getKey());
                    LayerHook h = w != null ? new SoftWeight(w) : new FixedWeight(e.getValue());
                    Layer l = model.layers().get(e.getKey());
                    l.addHook(h);
                    hooks.put(l, h);
                }
                try {
                    msg = regularised(current, stageCount, iterations, () -> {
                        Tensor[] out = TemporalFeatures.run(model, tib, ctx.t(), ctx.y());
                        Tensor loss = null;
                        for (TemporalInfoBlock.Feature g : tib.features()) {
                            Tensor l = RoundingOptimizer.reconstructionLoss(out[g.index()], target[g.index()], ReconSettings.LossMode.QDIFF,
                                    "TIAR feature " + g.name());
                            loss = loss == null ? l : Ops.add(loss, l);
                        }
                        return loss;
                    }, adam, "trunk");
                } finally {
                    hooks.forEach(Layer::removeHook);
                }
            } else {
                Layer layer = model.layers().get(f.layer());
                Tensor target;
                Tensor xq = gather(actQ, rows), xf = gather(actFp, rows);
                try (var off = Tape.pause()) {
                    target = layer.forward(xf, ctx);
                }
                LayerHook h = new SoftWeight(current.get(0));
                layer.addHook(h);
                try {
                    msg = regularised(current, stageCount, iterations, () -> RoundingOptimizer.reconstructionLoss(layer.forward(xq, ctx), target,
                            ReconSettings.LossMode.QDIFF, "TIAR feature " + f.name()), adam, f.layer());
                } finally {
                    layer.removeHook(h);
                }
            }
            return String.format(Locale.ROOT, "TIAR stage %d/%d (%s), step %d/%d, %s", stage + 1, stages.size(),
                    f == null ? "time embedding" : f.layer(), stageCount, iterations, msg);
        }

        private AdaRoundWeight find(String layer) {
            for (AdaRoundWeight w : current) if (layerOf(w).equals(layer)) return w;
            return null;
        }

        private void beginStage() {
            stage++;
            stageCount = 0;
            List<AdaRoundWeight> ws = new ArrayList<>();
            Map<String, Tensor> vars = new LinkedHashMap<>();
            for (String name : stages.get(stage)) {
                AdaRoundWeight w = rounding(name);
                ws.add(w);
                vars.put(w.name(), w.variables());
            }
            current = ws;
            adam = new AdamW(vars, new AdamW.Config(settings.lr(), 0.9, 0.999, 1e-8, 0.0));
        }

        /** Hardens the current stage; after the trunk stage the quantized trunk activations are recomputed. */
        private void endStage() {
            TemporalInfoBlock.Feature f = stageFeature.get(stage);
            if (f == null) {
                // the trunk: its loss over every feature (feature layers in FP), round to nearest vs learned
                Map<String, Tensor> rtnTrunk = new LinkedHashMap<>(fixedTrunk);
                float[] rtnAct = actQ;
                for (AdaRoundWeight w : current) fixedTrunk.put(layerOf(w), w.useHard());
                actQ = trunkActivations(true);
                double before = 0, after = 0;
                for (TemporalInfoBlock.Feature g : tib.features()) {
                    double[] l = featureLosses(g, new float[][] {rtnAct, actQ}, new Tensor[] {null, null});
                    before += l[0];
                    after += l[1];
                }
                if (after > before) {
                    fixedTrunk.clear();
                    fixedTrunk.putAll(rtnTrunk);
                    actQ = rtnAct;
                    for (AdaRoundWeight w : current) reverted.add(layerOf(w));
                } else {
                    for (AdaRoundWeight w : current) learnedParams.put(layerOf(w), w.weightParams());
                }
            } else {
                AdaRoundWeight w = current.get(0);
                double[] l = featureLosses(f, new float[][] {actQ, actQ}, new Tensor[] {w.useHard(), rtnWeight(f.layer())});
                double learnedLoss = l[0], rtn = l[1];
                if (learnedLoss > rtn) {
                    reverted.add(f.layer());
                    featureAfter[f.index()] = rtn;
                } else {
                    learnedParams.put(f.layer(), w.weightParams());
                    featureAfter[f.index()] = learnedLoss;
                }
            }
            current = List.of();
            adam = null;
        }

        private String finish() {
            double after = 0;
            for (TemporalInfoBlock.Feature f : tib.features()) {
                if (Double.isNaN(featureAfter[f.index()])) {
                    featureAfter[f.index()] = featureLoss(f, quantized.contains(f.layer()) ? rtnWeight(f.layer()) : null);
                }
                after += featureAfter[f.index()];
            }
            CalibratedParams p = initial;
            for (var e : learnedParams.entrySet()) p = p.withWeight(e.getKey(), e.getValue());
            result = p;
            finished(layers(), after);
            return doneMessage(after);
        }

        /** Trunk activations of every row, with the quantized trunk weights ({@code quantized}) or in full precision. */
        private float[] trunkActivations(boolean quantized) {
            int n = rowT.length;
            float[] out = new float[n * width];
            List<Layer> hooked = new ArrayList<>();
            List<LayerHook> hooks = new ArrayList<>();
            if (quantized) for (var e : fixedTrunk.entrySet()) {
                Layer l = model.layers().get(e.getKey());
                LayerHook h = new FixedWeight(e.getValue());
                l.addHook(h);
                hooked.add(l);
                hooks.add(h);
            }
            try (var off = Tape.pause()) {
                for (int s = 0; s < n; s += 256) {
                    int[] rows = range(s, Math.min(n, s + 256));
                    float[] a = TemporalFeatures.trunk(model, context(rows)).data();
                    System.arraycopy(a, 0, out, s * width, rows.length * width);
                }
            } finally {
                for (int i = 0; i < hooked.size(); i++) hooked.get(i).removeHook(hooks.get(i));
            }
            return out;
        }

        private Tensor gather(float[] act, int[] rows) {
            Tensor x = Tensor.zeros(rows.length, width);
            for (int k = 0; k < rows.length; k++) System.arraycopy(act, rows[k] * width, x.data(), k * width, width);
            return x;
        }

        /**
         * mean over all rows of ||e_f(FP trunk, FP layer) - e_f(quantized trunk, {@code weight})||² (weight null: the layer
         * in full precision), not recorded.
         */
        private double featureLoss(TemporalInfoBlock.Feature f, Tensor weight) {
            return featureLosses(f, new float[][] {actQ}, new Tensor[] {weight})[0];
        }

        /**
         * {@link #featureLoss} of several candidates k (trunk activations {@code acts[k]}, layer weight {@code weights[k]},
         * null = FP) in one pass, so the FP target of each chunk of rows (one Linear on the FP trunk activations: 32
         * GFLOP per feature over 2002 rows at DiT-XL/2 size) is computed once for all of them.
         */
        private double[] featureLosses(TemporalInfoBlock.Feature f, float[][] acts, Tensor[] weights) {
            Layer layer = model.layers().get(f.layer());
            int n = rowT.length;
            double[] sum = new double[acts.length];
            try (var off = Tape.pause()) {
                for (int s = 0; s < n; s += 256) {
                    int[] rows = range(s, Math.min(n, s + 256));
                    ForwardContext ctx = context(rows);
                    Tensor target = layer.forward(gather(actFp, rows), ctx);
                    for (int k = 0; k < acts.length; k++) {
                        LayerHook h = weights[k] == null ? null : new FixedWeight(weights[k]);
                        if (h != null) layer.addHook(h);
                        Tensor out;
                        try {
                            out = layer.forward(gather(acts[k], rows), ctx);
                        } finally {
                            if (h != null) layer.removeHook(h);
                        }
                        sum[k] += RoundingOptimizer.reconstructionLoss(out, target, ReconSettings.LossMode.QDIFF, "TIAR feature " + f.name())
                                .data()[0] * rows.length;
                    }
                }
            }
            for (int k = 0; k < sum.length; k++) sum[k] /= n;
            return sum;
        }
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
