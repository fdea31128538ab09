package io.diffquant.engine.quant.recon;

import io.diffquant.engine.quant.preset.OptionDef;
import io.diffquant.engine.quant.preset.PresetOptions;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * Settings of rounding by reconstruction (ALGORITHMS.md §5), with the defaults of Xiuyu-Li/q-diffusion
 * (qdiff/block_recon.py, layer_recon.py and the sample scripts: Adam lr 1e-3 on the rounding variables, λ = 0.01,
 * β from 20 to 2 with a 20 % warm-up, mini-batches of 32, L2 loss summed over dim 1) and FP4DiT's iteration count.
 *
 * @param iterations       optimisation steps per unit (layer or block); 0 = the papers' counts: {@link #INT_ITERATIONS}
 *                         when a unit has integer weights, {@link #FP_ITERATIONS} when all its weights are FP
 * @param batchSize        rows per optimisation step (drawn without replacement from the cached unit data)
 * @param lr               Adam learning rate of the rounding variables
 * @param lambda           weight λ of the rounding regulariser
 * @param betaStart        β at the start of the annealing
 * @param betaEnd          β at the last iteration
 * @param warmup           fraction of the iterations without regulariser (and at β = betaStart)
 * @param loss             reconstruction loss
 * @param actQuant         activation quantization in the unit's forward during reconstruction (dynamic quantizers as
 *                         specified; static / per-timestep ones with ranges calibrated provisionally on the RTN model)
 * @param excludeTemporal  leave layers tagged {@code temporal} (TFMQ's Temporal Information Block) at round-to-nearest
 * @param fpScaleAware     FP formats use FP4DiT's scale-aware h(V/s) (else plain AdaRound on the FP grid)
 * @param memoryBudget     bytes of cached unit inputs/targets kept in memory; larger caches are spilled to a temp file
 * @param spillDir         directory of spill files (null = java.io.tmpdir)
 * @param evalRows         rows of the cached data on which each unit's loss is measured with RTN and with the learned
 *                         rounding (0 = no measurement)
 * @param seed             seed of the mini-batch draws
 * @param units            glob patterns of the units (block names such as {@code blocks.*}, or layer names) to
 *                         reconstruct; empty = all. Layers of other units keep round-to-nearest.
 */
public record ReconSettings(int iterations, int batchSize, double lr, double lambda, double betaStart, double betaEnd,
                            double warmup, LossMode loss, boolean actQuant, boolean excludeTemporal, boolean fpScaleAware,
                            long memoryBudget, Path spillDir, int evalRows, long seed, List<String> units) {

    /** AdaRound / BRECQ / Q-Diffusion iterations per layer or block. */
    public static final int INT_ITERATIONS = 20_000;
    /** FP4DiT's iterations per block (8x fewer than Q-Diffusion). */
    public static final int FP_ITERATIONS = 2_500;

    /** The reconstruction loss between the unit's output and the full-precision target. */
    public enum LossMode {
        /** Q-Diffusion's lp_loss(p = 2): squared error summed over dim 1 (channels / tokens), mean over the rest. */
        QDIFF("qdiff"),
        /** Mean squared error over all elements. */
        MSE("mse");

        private final String id;
        LossMode(String id) { this.id = id; }
        public String id() { return id; }

        public static LossMode parse(String s) {
            for (LossMode m : values()) if (m.id.equals(s == null ? null : s.trim().toLowerCase(Locale.ROOT))) return m;
            throw new IllegalArgumentException("unknown reconstruction loss '" + s + "'; valid: qdiff, mse");
        }
    }

    public ReconSettings {
        if (iterations < 0) throw new IllegalArgumentException("recon_iters: expected >= 0 (0 = the papers' counts), got " + iterations);
        if (batchSize < 1) throw new IllegalArgumentException("recon_batch: expected >= 1, got " + batchSize);
        if (!(lr > 0) || Double.isInfinite(lr)) throw new IllegalArgumentException("recon_lr: expected > 0, got " + lr);
        if (!(lambda >= 0) || Double.isInfinite(lambda)) throw new IllegalArgumentException("recon_lambda: expected >= 0, got " + lambda);
        if (!(betaStart >= 1) || !(betaEnd >= 1) || Double.isInfinite(betaStart) || Double.isInfinite(betaEnd))
            throw new IllegalArgumentException("recon_beta: β must be finite and >= 1, got " + betaStart + " -> " + betaEnd);
        if (!(warmup >= 0 && warmup < 1)) throw new IllegalArgumentException("recon_warmup: expected a fraction in [0, 1), got " + warmup);
        if (loss == null) throw new IllegalArgumentException("recon_loss is null");
        if (memoryBudget < 0) throw new IllegalArgumentException("recon_memory_mb: expected >= 0, got " + memoryBudget);
        if (evalRows < 0) throw new IllegalArgumentException("recon_eval_rows: expected >= 0, got " + evalRows);
        units = units == null ? List.of() : List.copyOf(units);
    }

    /** The papers' settings: automatic iteration counts, batch 32, activation quantization on, 1 GiB in memory. */
    public static ReconSettings defaults() {
        return new ReconSettings(0, 32, 1e-3, 0.01, 20, 2, 0.2, LossMode.QDIFF, true, false, true, 1L << 30, null, 64, 0, List.of());
    }

    public ReconSettings withIterations(int n) {
        return new ReconSettings(n, batchSize, lr, lambda, betaStart, betaEnd, warmup, loss, actQuant, excludeTemporal, fpScaleAware, memoryBudget, spillDir, evalRows, seed, units);
    }

    public ReconSettings withBatchSize(int n) {
        return new ReconSettings(iterations, n, lr, lambda, betaStart, betaEnd, warmup, loss, actQuant, excludeTemporal, fpScaleAware, memoryBudget, spillDir, evalRows, seed, units);
    }

    public ReconSettings withLr(double rate) {
        return new ReconSettings(iterations, batchSize, rate, lambda, betaStart, betaEnd, warmup, loss, actQuant, excludeTemporal, fpScaleAware, memoryBudget, spillDir, evalRows, seed, units);
    }

    public ReconSettings withLambda(double l) {
        return new ReconSettings(iterations, batchSize, lr, l, betaStart, betaEnd, warmup, loss, actQuant, excludeTemporal, fpScaleAware, memoryBudget, spillDir, evalRows, seed, units);
    }

    public ReconSettings withActQuant(boolean on) {
        return new ReconSettings(iterations, batchSize, lr, lambda, betaStart, betaEnd, warmup, loss, on, excludeTemporal, fpScaleAware, memoryBudget, spillDir, evalRows, seed, units);
    }

    public ReconSettings withExcludeTemporal(boolean on) {
        return new ReconSettings(iterations, batchSize, lr, lambda, betaStart, betaEnd, warmup, loss, actQuant, on, fpScaleAware, memoryBudget, spillDir, evalRows, seed, units);
    }

    public ReconSettings withFpScaleAware(boolean on) {
        return new ReconSettings(iterations, batchSize, lr, lambda, betaStart, betaEnd, warmup, loss, actQuant, excludeTemporal, on, memoryBudget, spillDir, evalRows, seed, units);
    }

    public ReconSettings withMemory(long budgetBytes, Path dir) {
        return new ReconSettings(iterations, batchSize, lr, lambda, betaStart, betaEnd, warmup, loss, actQuant, excludeTemporal, fpScaleAware, budgetBytes, dir, evalRows, seed, units);
    }

    public ReconSettings withEvalRows(int n) {
        return new ReconSettings(iterations, batchSize, lr, lambda, betaStart, betaEnd, warmup, loss, actQuant, excludeTemporal, fpScaleAware, memoryBudget, spillDir, n, seed, units);
    }

    public ReconSettings withLoss(LossMode m) {
        return new ReconSettings(iterations, batchSize, lr, lambda, betaStart, betaEnd, warmup, m, actQuant, excludeTemporal, fpScaleAware, memoryBudget, spillDir, evalRows, seed, units);
    }

    public ReconSettings withSeed(long s) {
        return new ReconSettings(iterations, batchSize, lr, lambda, betaStart, betaEnd, warmup, loss, actQuant, excludeTemporal, fpScaleAware, memoryBudget, spillDir, evalRows, s, units);
    }

    /** Only the units matching these glob patterns (empty = all). */
    public ReconSettings withUnits(List<String> patterns) {
        return new ReconSettings(iterations, batchSize, lr, lambda, betaStart, betaEnd, warmup, loss, actQuant, excludeTemporal, fpScaleAware, memoryBudget, spillDir, evalRows, seed, patterns);
    }

    /** Whether a unit is selected by {@link #units()}. */
    public boolean selects(String unit) {
        if (units.isEmpty()) return true;
        for (String g : units) if (io.diffquant.engine.quant.spec.QuantPlan.matches(g, unit)) return true;
        return false;
    }

    /** Iterations of a unit: the configured count, or the papers' count by the unit's formats. */
    public int iterationsFor(boolean anyInt) {
        return iterations > 0 ? iterations : (anyInt ? INT_ITERATIONS : FP_ITERATIONS);
    }

    /** Q-Diffusion's LinearTempDecay: β = betaStart until warmup·T, then linear to betaEnd at step T (count from 1). */
    public double beta(int count, int total) {
        double start = warmup * total;
        if (count < start) return betaStart;
        double rel = (count - start) / (total - start);
        return betaEnd + (betaStart - betaEnd) * Math.max(0.0, 1 - rel);
    }

    /** Whether the rounding regulariser is on at this step (Q-Diffusion: from count >= warmup·T on). */
    public boolean regularized(int count, int total) { return count >= warmup * total; }

    // ------------------------------------------------------------------ preset options

    public static final String ITERS = "recon_iters", BATCH = "recon_batch", LR = "recon_lr", LAMBDA = "recon_lambda",
            BETA_START = "recon_beta_start", BETA_END = "recon_beta_end", WARMUP = "recon_warmup", LOSS = "recon_loss",
            ACT_QUANT = "recon_act_quant", EXCLUDE_TEMPORAL = "recon_exclude_temporal", FP_SCALE_AWARE = "recon_fp_scale_aware",
            MEMORY_MB = "recon_memory_mb", EVAL_ROWS = "recon_eval_rows", SEED = "recon_seed", UNITS = "recon_units";

    /**
     * The preset options of the reconstruction settings (presets that offer a reconstruction add these).
     * @param iterations the preset's default iteration count (0 = the papers' counts)
     */
    public static List<OptionDef> options(int iterations, int batch) {
        ReconSettings d = defaults();
        List<OptionDef> o = new ArrayList<>();
        o.add(OptionDef.integer(ITERS, iterations, "reconstruction steps per layer or block (0 = the papers' counts: "
                + INT_ITERATIONS + " with integer weights, " + FP_ITERATIONS + " when all weights of the unit are FP)"));
        o.add(OptionDef.integer(BATCH, batch, "rows per reconstruction step"));
        o.add(OptionDef.real(LR, d.lr, "Adam learning rate of the rounding variables"));
        o.add(OptionDef.real(LAMBDA, d.lambda, "weight of the rounding regulariser"));
        o.add(OptionDef.real(BETA_START, d.betaStart, "regulariser exponent β at the start of the annealing"));
        o.add(OptionDef.real(BETA_END, d.betaEnd, "regulariser exponent β at the end"));
        o.add(OptionDef.real(WARMUP, d.warmup, "fraction of the steps without the regulariser"));
        o.add(OptionDef.choice(LOSS, d.loss.id(), List.of("qdiff", "mse"), "reconstruction loss: qdiff = squared error summed over dim 1, "
                + "mean over the rest (Q-Diffusion's lp_loss); mse = mean over all elements"));
        o.add(OptionDef.bool(ACT_QUANT, d.actQuant, "quantize activations in the reconstructed layer or block (static ranges "
                + "calibrated provisionally on the round-to-nearest model); false = Q-Diffusion's weight phase (act_quant=False)"));
        o.add(OptionDef.bool(EXCLUDE_TEMPORAL, d.excludeTemporal, "keep the Temporal Information Block layers (tag temporal) at "
                + "round-to-nearest (TFMQ's TIAR reconstructs them separately)"));
        o.add(OptionDef.bool(FP_SCALE_AWARE, d.fpScaleAware, "FP weights: FP4DiT's scale-aware AdaRound, h(V/s)"));
        o.add(OptionDef.integer(MEMORY_MB, (int) (d.memoryBudget >> 20), "MiB of cached block inputs/outputs kept in memory; more is spilled to a temp file"));
        o.add(OptionDef.integer(EVAL_ROWS, d.evalRows, "rows on which each unit's loss is measured before and after (0 = none)"));
        o.add(OptionDef.integer(SEED, (int) d.seed, "seed of the mini-batch draws"));
        o.add(OptionDef.string(UNITS, "", "comma-separated glob patterns of the units (blocks such as blocks.*, or layers) to reconstruct; empty = all"));
        return o;
    }

    /** Settings from preset options; options a preset does not declare keep their defaults. */
    public static ReconSettings from(PresetOptions o) {
        ReconSettings d = defaults();
        if (o == null) return d;
        return new ReconSettings(
                o.has(ITERS) ? o.getInt(ITERS) : d.iterations,
                o.has(BATCH) ? o.getInt(BATCH) : d.batchSize,
                o.has(LR) ? o.getDouble(LR) : d.lr,
                o.has(LAMBDA) ? o.getDouble(LAMBDA) : d.lambda,
                o.has(BETA_START) ? o.getDouble(BETA_START) : d.betaStart,
                o.has(BETA_END) ? o.getDouble(BETA_END) : d.betaEnd,
                o.has(WARMUP) ? o.getDouble(WARMUP) : d.warmup,
                o.has(LOSS) ? LossMode.parse(o.getString(LOSS)) : d.loss,
                o.has(ACT_QUANT) ? o.getBoolean(ACT_QUANT) : d.actQuant,
                o.has(EXCLUDE_TEMPORAL) ? o.getBoolean(EXCLUDE_TEMPORAL) : d.excludeTemporal,
                o.has(FP_SCALE_AWARE) ? o.getBoolean(FP_SCALE_AWARE) : d.fpScaleAware,
                o.has(MEMORY_MB) ? (long) o.getInt(MEMORY_MB) << 20 : d.memoryBudget,
                null,
                o.has(EVAL_ROWS) ? o.getInt(EVAL_ROWS) : d.evalRows,
                o.has(SEED) ? o.getInt(SEED) : d.seed,
                o.has(UNITS) ? splitPatterns(o.getString(UNITS)) : d.units);
    }

    private static List<String> splitPatterns(String s) {
        List<String> out = new ArrayList<>();
        for (String p : s.split(",")) if (!p.isBlank()) out.add(p.trim());
        return out;
    }
}
