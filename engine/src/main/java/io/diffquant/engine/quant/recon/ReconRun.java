package io.diffquant.engine.quant.recon;

import io.diffquant.engine.model.BlockObserver;
import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.model.ForwardContext;
import io.diffquant.engine.model.Layer;
import io.diffquant.engine.model.LayerHook;
import io.diffquant.engine.quant.CalibratedParams;
import io.diffquant.engine.quant.QuantizedModel;
import io.diffquant.engine.quant.WeightParams;
import io.diffquant.engine.quant.calib.ActivationCalibrator;
import io.diffquant.engine.quant.calib.CalibBatch;
import io.diffquant.engine.quant.calib.CalibrationSet;
import io.diffquant.engine.quant.calib.TimestepSubset;
import io.diffquant.engine.quant.format.Layout;
import io.diffquant.engine.quant.format.QuantizedTensor;
import io.diffquant.engine.quant.format.Quantizer;
import io.diffquant.engine.quant.preset.Reconstruction;
import io.diffquant.engine.quant.spec.PointSpec;
import io.diffquant.engine.quant.spec.QuantPlan;
import io.diffquant.engine.quant.spec.QuantPoint;
import io.diffquant.engine.quant.spec.TensorSpec;
import io.diffquant.engine.tensor.Tensor;

import java.util.ArrayList;
import java.util.Collections;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.NoSuchElementException;
import java.util.Set;
import java.util.concurrent.CancellationException;
import java.util.concurrent.locks.ReentrantLock;

/**
 * A running reconstruction (Xiuyu-Li/q-diffusion recon_model with block_reconstruction / layer_reconstruction, BRECQ's
 * asymmetric reconstruction): the units (blocks and single layers) are reconstructed in model order. Per unit:
 * <ol>
 *   <li>cache: for every calibration batch, the unit's inputs from the quantized model (current parameters: upstream
 *       units already reconstructed, activation quantization as configured) and the full-precision model's output of
 *       the unit; both passes stop at the unit. Rows go to an {@link ActivationStore} (spilled to disk beyond the
 *       memory budget);</li>
 *   <li>measure the unit's MSE with round-to-nearest weights (on {@code evalRows} rows);</li>
 *   <li>optimise the rounding variables ({@link RoundingOptimizer}, one step per {@link #next()});</li>
 *   <li>harden, measure again, and store the learned codes in the parameters.</li>
 * </ol>
 * With activation quantization on and static / per-timestep input specs, ranges are first calibrated provisionally
 * on the round-to-nearest model (one calibration batch per step); they are used only during reconstruction (the
 * calibration job recalibrates activations on the reconstructed weights). Every {@link #next()} does one bounded
 * piece of work and returns its description ({@link #progress()} has it structured); {@link #cancel()} (any thread)
 * stops before the next piece and deletes the temp files. Hooks are attached only inside a step, so the model is
 * never left hooked between steps (except the provisional activation observers, removed by cancel or at the end of
 * that phase).
 */
public final class ReconRun implements Reconstruction.Run {
    public enum Phase { ACTIVATIONS, CACHE, EVALUATE_RTN, OPTIMIZE, FINISH, DONE }

    /** A unit: a block (its optimised layers) or a single layer. */
    public record Unit(String name, boolean block, List<String> layers) {}

    /** What the last step did. loss/rec/round/beta are those of the last optimisation step (NaN before). */
    public record Progress(Phase phase, int unit, int units, String unitName, int done, int total,
                           double loss, double recLoss, double roundLoss, double beta, String message) {}

    /** The outcome of one unit: MSE of its output against the FP target with RTN and with learned rounding. */
    public record UnitReport(String unit, boolean block, List<String> layers, int rows, boolean spilled, int iterations,
                             double rtnMse, double reconMse, double cacheSeconds, double optimizeSeconds) {}

    private static final class Stop extends RuntimeException {
        Stop() { super(null, null, false, false); }
    }

    private final DiffusionModel model;
    private final QuantPlan plan;
    private final CalibrationSet data;
    private final TimestepSubset subset;
    private final int forwardBatch;
    private final ReconSettings settings;
    private final String method;
    private final BlockModel blockModel;
    private final List<Unit> units = new ArrayList<>();
    private final Map<String, String> skipped = new LinkedHashMap<>();
    private final List<UnitReport> reports = new ArrayList<>();
    private final int totalRows;
    private final ReentrantLock lock = new ReentrantLock();
    private volatile boolean cancelled;

    private CalibratedParams current;
    private CalibratedParams provisional;
    private volatile Phase phase;
    private volatile Progress last;
    private volatile RuntimeException failure;

    // provisional activation calibration
    private ActivationCalibrator actCal;
    private Iterator<CalibBatch> actBatches;
    private int actDone, actTotal;

    // the unit in progress
    private int unitIndex = -1;
    private ActivationStore store;
    private Iterator<CalibBatch> cacheBatches;
    private int cacheDone, cacheTotal;
    private RoundingOptimizer optimizer;
    private RoundingOptimizer.UnitForward unitForward;
    private Map<String, Tensor> rtnWeights;
    private double rtnMse = Double.NaN;
    private long unitStart, optimizeStart;
    private double cacheSeconds;

    ReconRun(Reconstruction.Context c, ReconSettings s, boolean blockwise, String method) {
        if (c.data() == null) throw new IllegalArgumentException(method + ": reconstruction needs calibration data");
        this.model = c.model();
        this.plan = c.plan();
        this.data = c.data();
        this.subset = c.subset() != null ? c.subset() : data.settings().subset();
        this.forwardBatch = c.forwardBatch() > 0 ? c.forwardBatch() : data.settings().forwardBatch();
        this.settings = s;
        this.method = method;
        this.current = c.initial() == null ? CalibratedParams.EMPTY : c.initial();
        this.blockModel = BlockModel.of(model);
        int rows = 0;
        for (TimestepSubset.Selection sel : data.select(subset)) rows += sel.rows().length;
        this.totalRows = rows;
        planUnits(blockwise);
        boolean needAct = s.actQuant() && ActivationCalibrator.needed(plan) && !units.isEmpty();
        if (needAct) phase = Phase.ACTIVATIONS;
        else startUnit(0);
    }

    private void planUnits(boolean blockwise) {
        Set<String> blocks = blockwise ? new LinkedHashSet<>(blockModel.blocks()) : Set.of();
        Map<String, List<String>> byUnit = new LinkedHashMap<>();
        Map<String, Boolean> isBlock = new LinkedHashMap<>();
        for (QuantPoint p : plan.points()) {
            PointSpec spec = plan.spec(p.name());
            if (!p.hasWeight() || !spec.weight().enabled()) continue;
            if (settings.excludeTemporal() && p.temporal()) {
                skipped.put(p.name(), "temporal (TIB) layer excluded");
                continue;
            }
            if (!AdaRoundWeight.supports(spec.weight().format())) {
                skipped.put(p.name(), spec.weight().format().id() + " has no learned rounding; round-to-nearest kept");
                continue;
            }
            if (current.weight(p.name()) == null) throw new IllegalArgumentException(method + ": layer '" + p.name()
                    + "' has no round-to-nearest weight parameters to start from");
            boolean inBlock = p.block() != null && blocks.contains(p.block());
            String unit = inBlock ? p.block() : p.name();
            byUnit.computeIfAbsent(unit, k -> new ArrayList<>()).add(p.name());
            isBlock.put(unit, inBlock);
        }
        for (Map.Entry<String, List<String>> e : byUnit.entrySet()) {
            if (settings.selects(e.getKey())) units.add(new Unit(e.getKey(), isBlock.get(e.getKey()), List.copyOf(e.getValue())));
            else for (String l : e.getValue()) skipped.put(l, "unit " + e.getKey() + " not selected; round-to-nearest kept");
        }
    }

    // ------------------------------------------------------------------ public state

    public List<Unit> units() { return Collections.unmodifiableList(units); }
    /** Quantized layers left at round-to-nearest, with the reason. */
    public Map<String, String> skipped() { return Collections.unmodifiableMap(skipped); }
    /** Reports of the finished units. */
    public List<UnitReport> reports() { synchronized (reports) { return List.copyOf(reports); } }
    public ReconSettings settings() { return settings; }
    public Phase phase() { return phase; }
    /** The last step's progress (null before the first step). */
    public Progress progress() { return last; }
    /** Calibration rows every unit is reconstructed on. */
    public int rows() { return totalRows; }
    public boolean cancelled() { return cancelled; }

    @Override public boolean hasNext() { return !cancelled && failure == null && phase != Phase.DONE; }

    @Override public String next() {
        lock.lock();
        try {
            if (cancelled) {
                cleanup();
                throw new CancellationException(method + ": reconstruction cancelled");
            }
            if (failure != null) throw new IllegalStateException(method + ": reconstruction failed earlier: " + failure.getMessage(), failure);
            if (phase == Phase.DONE) throw new NoSuchElementException(method + ": reconstruction finished");
            try {
                Progress p = switch (phase) {
                    case ACTIVATIONS -> activations();
                    case CACHE -> cache();
                    case EVALUATE_RTN -> evaluateRtn();
                    case OPTIMIZE -> optimize();
                    case FINISH -> finish();
                    case DONE -> throw new NoSuchElementException();
                };
                last = p;
                if (cancelled) cleanup();
                return p.message();
            } catch (RuntimeException e) {
                failure = e;
                cleanup();
                throw e;
            }
        } finally {
            lock.unlock();
        }
    }

    @Override public CalibratedParams result() {
        if (cancelled) throw new CancellationException(method + ": reconstruction was cancelled");
        if (failure != null) throw new IllegalStateException(method + ": reconstruction failed: " + failure.getMessage(), failure);
        if (phase != Phase.DONE) throw new IllegalStateException(method + ": reconstruction has not finished (phase " + phase + ")");
        return current;
    }

    /** Stops before the next step (callable from any thread); temp files are deleted. */
    @Override public void cancel() {
        cancelled = true;
        if (lock.tryLock()) {
            try {
                cleanup();
            } finally {
                lock.unlock();
            }
        }
    }

    private void cleanup() {
        if (actCal != null) {
            actCal.close();
            actCal = null;
        }
        if (store != null) {
            store.close();
            store = null;
        }
    }

    // ------------------------------------------------------------------ steps

    private Progress activations() {
        if (actCal == null) {
            actCal = new ActivationCalibrator(model, plan, current, data.settings().reservoir(), data.settings().seed());
            actBatches = data.batches(subset, forwardBatch).iterator();
            actTotal = data.batchCount(subset, forwardBatch);
        }
        if (actBatches.hasNext()) {
            actCal.observe(actBatches.next());
            actDone++;
            return progress(Phase.ACTIVATIONS, actDone, actTotal, "provisional activation ranges for reconstruction: batch " + actDone + " of " + actTotal);
        }
        provisional = actCal.result();
        actCal = null;
        startUnit(0);
        return progress(Phase.ACTIVATIONS, actTotal, actTotal, "provisional activation ranges ready");
    }

    private void startUnit(int k) {
        unitIndex = k;
        optimizer = null;
        unitForward = null;
        rtnWeights = null;
        rtnMse = Double.NaN;
        if (k >= units.size()) {
            phase = Phase.DONE;
            return;
        }
        store = new ActivationStore(totalRows, settings.memoryBudget(), settings.spillDir());
        cacheBatches = data.batches(subset, forwardBatch).iterator();
        cacheTotal = data.batchCount(subset, forwardBatch);
        cacheDone = 0;
        unitStart = System.nanoTime();
        phase = Phase.CACHE;
    }

    private Unit unit() { return units.get(unitIndex); }

    private String head() {
        Unit u = unit();
        return "unit " + (unitIndex + 1) + "/" + units.size() + " " + u.name();
    }

    private Progress cache() {
        Unit u = unit();
        CalibBatch b = cacheBatches.next();
        Tensor[] in;
        Tensor target;
        Layer layer = u.block() ? null : model.layers().get(u.name());
        Capture hook = layer == null ? null : new Capture();
        if (hook != null) layer.addHook(hook);
        QuantizedModel qm = null;
        try {
            boolean act = settings.actQuant();
            qm = QuantizedModel.attach(model, act ? plan : plan.weightsOnly(), act && provisional != null ? current.merge(provisional) : current);
            qm.setInputQuantization(act);
            in = runTo(u, b, hook, true);
            qm.setWeightQuantization(false);
            qm.setInputQuantization(false);
            target = runTo(u, b, hook, false)[0];
        } finally {
            if (qm != null) qm.detach();
            if (hook != null) layer.removeHook(hook);
        }
        Tensor[] fields = new Tensor[in.length + 1];
        System.arraycopy(in, 0, fields, 0, in.length);
        fields[in.length] = target;
        store.append(fields, b.timesteps(), b.y());
        cacheDone++;
        if (store.complete()) {
            cacheSeconds = (System.nanoTime() - unitStart) / 1e9;
            setUpOptimizer();
            phase = settings.evalRows() > 0 ? Phase.EVALUATE_RTN : Phase.OPTIMIZE;
            optimizeStart = System.nanoTime();
        }
        return progress(Phase.CACHE, cacheDone, cacheTotal, head() + ": caching " + (u.block() ? "block" : "layer") + " inputs and FP outputs, batch "
                + cacheDone + " of " + cacheTotal + (store.spilled() ? " (spilled to disk)" : ""));
    }

    /** Runs the model on a calibration batch up to the unit: its inputs (quantized pass) or its output (FP pass). */
    private Tensor[] runTo(Unit u, CalibBatch b, Capture hook, boolean inputs) {
        Tensor[][] got = new Tensor[1][];
        try {
            if (hook != null) {
                hook.inputs = inputs;
                hook.got = null;
                model.forward(b.x(), b.timesteps(), b.y());
                got[0] = hook.got;
            } else {
                blockModel.forward(b.x(), b.timesteps(), b.y(), new BlockObserver() {
                    @Override public void input(String block, Tensor[] in, ForwardContext ctx) {
                        if (inputs && block.equals(u.name())) {
                            got[0] = in.clone();
                            throw new Stop();
                        }
                    }

                    @Override public void output(String block, Tensor out, ForwardContext ctx) {
                        if (!inputs && block.equals(u.name())) {
                            got[0] = new Tensor[] {out};
                            throw new Stop();
                        }
                    }
                });
            }
        } catch (Stop stop) {
            if (hook != null) got[0] = hook.got;
        }
        if (got[0] == null) throw new IllegalStateException(method + ": the forward pass never reached " + (u.block() ? "block '" : "layer '")
                + u.name() + "'");
        return got[0];
    }

    /** Captures a layer's input (before any other hook) or output, then stops the forward pass. */
    private static final class Capture implements LayerHook {
        boolean inputs;
        Tensor[] got;

        @Override public Tensor input(Layer l, Tensor x, ForwardContext ctx) {
            if (inputs) {
                got = new Tensor[] {x};
                throw new Stop();
            }
            return x;
        }

        @Override public Tensor output(Layer l, Tensor y, ForwardContext ctx) {
            if (!inputs) {
                got = new Tensor[] {y};
                throw new Stop();
            }
            return y;
        }
    }

    private void setUpOptimizer() {
        Unit u = unit();
        List<QuantPoint> points = new ArrayList<>();
        if (u.block()) {
            for (QuantPoint p : plan.points()) if (u.name().equals(p.block()) && plan.spec(p.name()).enabled()) points.add(p);
        } else {
            points.add(plan.point(u.name()));
        }
        Set<String> optimised = new LinkedHashSet<>(u.layers());
        CalibratedParams inputParams = settings.actQuant() && provisional != null ? current.merge(provisional) : current;
        List<AdaRoundWeight> weights = new ArrayList<>();
        List<Layer> hookedLayers = new ArrayList<>();
        List<ReconHook> hooks = new ArrayList<>();
        rtnWeights = new LinkedHashMap<>();
        boolean anyInt = false, sameT = false;
        for (QuantPoint p : points) {
            PointSpec spec = plan.spec(p.name());
            Layer layer = model.layers().get(p.name());
            AdaRoundWeight w = null;
            Tensor fixed = null;
            if (optimised.contains(p.name())) {
                TensorSpec ws = spec.weight();
                WeightParams wp = current.weight(p.name());
                w = AdaRoundWeight.create(layer.qualified("weight"), layer.param("weight"), ws.format(), ws.granularity(), wp.params(),
                        settings.fpScaleAware());
                weights.add(w);
                rtnWeights.put(w.name(), AdaRoundWeight.rtn(layer.param("weight"), ws.format(), ws.granularity(), wp.params()));
                anyInt |= w.kind() == AdaRoundWeight.Kind.INT;
            } else if (p.hasWeight() && spec.weight().enabled()) {
                fixed = quantizedWeight(p, layer, spec.weight());
            }
            SteActQuant act = settings.actQuant() ? SteActQuant.of(p, spec.input(), inputParams.input(p.name())) : null;
            sameT |= act != null && act.perTimestep();
            if (w == null && fixed == null && act == null) continue;
            hooks.add(new ReconHook(p.name(), w, fixed, act));
            hookedLayers.add(layer);
        }
        Layer single = u.block() ? null : model.layers().get(u.name());
        unitForward = (in, ctx) -> {
            for (int i = 0; i < hooks.size(); i++) hookedLayers.get(i).addHook(hooks.get(i));
            try {
                return single == null ? blockModel.runBlock(u.name(), in, ctx) : single.forward(in[0], ctx);
            } finally {
                for (int i = 0; i < hooks.size(); i++) hookedLayers.get(i).removeHook(hooks.get(i));
            }
        };
        long seed = settings.seed() * 0x9E3779B97F4A7C15L + unitIndex;
        optimizer = new RoundingOptimizer(u.name(), weights, unitForward, store, settings.iterationsFor(anyInt), settings, seed, sameT);
    }

    /** The fixed quantized weight of a layer the unit does not optimise (learned codes if any, else round to nearest). */
    private Tensor quantizedWeight(QuantPoint p, Layer layer, TensorSpec ws) {
        WeightParams wp = current.weight(p.name());
        if (wp == null) throw new IllegalArgumentException(method + ": layer '" + p.name() + "' has no weight parameters");
        Tensor w = layer.param("weight");
        if (wp.hasCodes()) return Quantizer.dequantize(new QuantizedTensor(ws.format(), ws.granularity(), Layout.WEIGHT, w.shape(), wp.codes(), wp.params()));
        return Quantizer.withParams(ws.format(), ws.granularity(), Layout.WEIGHT, wp.params()).fakeQuant(w);
    }

    private int[] evalRows() { return RoundingOptimizer.spreadRows(store.rows(), settings.evalRows()); }

    private Progress evaluateRtn() {
        for (AdaRoundWeight w : optimizer.weights()) w.useFixed(rtnWeights.get(w.name()));
        rtnMse = optimizer.evaluate(evalRows());
        phase = Phase.OPTIMIZE;
        optimizeStart = System.nanoTime();
        return progress(Phase.EVALUATE_RTN, 0, optimizer.iterations(), head() + ": round-to-nearest output MSE " + fmt(rtnMse));
    }

    private Progress optimize() {
        RoundingOptimizer.Step s = optimizer.step();
        if (!optimizer.hasNext()) phase = Phase.FINISH;
        Progress p = new Progress(Phase.OPTIMIZE, unitIndex, units.size(), unit().name(), s.iteration(), s.iterations(), s.loss(), s.recLoss(),
                s.roundLoss(), s.beta(), head() + ": step " + s.iteration() + "/" + s.iterations() + ", loss " + fmt(s.loss()) + " (rec "
                + fmt(s.recLoss()) + ", round " + fmt(s.roundLoss()) + (s.beta() > 0 ? ", β " + String.format(Locale.ROOT, "%.2f", s.beta()) : "") + ")");
        return p;
    }

    private Progress finish() {
        Unit u = unit();
        optimizer.harden();
        double optSeconds = (System.nanoTime() - optimizeStart) / 1e9;
        double reconMse = settings.evalRows() > 0 ? optimizer.evaluate(evalRows()) : Double.NaN;
        CalibratedParams next = current;
        List<String> names = new ArrayList<>();
        for (AdaRoundWeight w : optimizer.weights()) {
            String layer = w.name().substring(0, w.name().length() - ".weight".length());
            next = next.withWeight(layer, w.weightParams());
            names.add(layer);
        }
        current = next;
        UnitReport r = new UnitReport(u.name(), u.block(), List.copyOf(names), store.rows(), store.spilled(), optimizer.iterations(),
                rtnMse, reconMse, cacheSeconds, optSeconds);
        synchronized (reports) { reports.add(r); }
        store.close();
        store = null;
        int done = unitIndex;
        startUnit(unitIndex + 1);
        return new Progress(Phase.FINISH, done, units.size(), u.name(), r.iterations(), r.iterations(), Double.NaN, Double.NaN, Double.NaN, Double.NaN,
                "unit " + (done + 1) + "/" + units.size() + " " + u.name() + " done: output MSE " + fmt(rtnMse) + " (round to nearest) -> "
                        + fmt(reconMse) + " (learned rounding), " + String.format(Locale.ROOT, "%.1f s", optSeconds + cacheSeconds));
    }

    private Progress progress(Phase ph, int done, int total, String msg) {
        String name = unitIndex >= 0 && unitIndex < units.size() ? units.get(unitIndex).name() : null;
        return new Progress(ph, Math.max(unitIndex, 0), units.size(), name, done, total, Double.NaN, Double.NaN, Double.NaN, Double.NaN, msg);
    }

    private static String fmt(double v) { return Double.isNaN(v) ? "n/a" : String.format(Locale.ROOT, "%.4g", v); }
}
