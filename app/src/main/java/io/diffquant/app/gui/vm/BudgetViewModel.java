package io.diffquant.app.gui.vm;

import io.diffquant.engine.analysis.AnalysisSession;
import io.diffquant.engine.analysis.LayerSensitivity;
import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.quant.config.QuantConfig;
import io.diffquant.engine.quant.config.QuantConfigs;
import io.diffquant.engine.quant.format.Granularity;
import io.diffquant.engine.quant.format.NumberFormat;
import io.diffquant.engine.quant.preset.CalibrationJob;
import io.diffquant.engine.quant.search.BitBudget;
import io.diffquant.engine.quant.spec.PointSpec;
import io.diffquant.engine.quant.spec.RangeSpec;
import io.diffquant.engine.quant.spec.TensorSpec;
import javafx.beans.property.DoubleProperty;
import javafx.beans.property.IntegerProperty;
import javafx.beans.property.ObjectProperty;
import javafx.beans.property.SimpleDoubleProperty;
import javafx.beans.property.SimpleIntegerProperty;
import javafx.beans.property.SimpleObjectProperty;
import javafx.beans.property.SimpleStringProperty;
import javafx.beans.property.StringProperty;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.CancellationException;

/**
 * "Assign under a bit budget": proposes weight formats for the layer table so that the model's average weight bits
 * (ALGORITHMS.md §3, the number the status bar shows) stay within a budget, shown as a diff before it is applied.
 * Two strategies: greedy by per-layer sensitivity (the engine's {@link BitBudget} over the layers the table quantizes,
 * sensitivity from the sensitivity panel or measured here with {@link LayerSensitivity}), or Q-DiT's evolutionary
 * group-size search (the engine's q-dit preset with search on: one group size per layer under mean(g) >= the group
 * budget, the paper's granularity allocation).
 */
public final class BudgetViewModel {
    public enum Strategy {
        GREEDY("greedy by per-layer sensitivity"), QDIT("Q-DiT group-size search");
        private final String label;
        Strategy(String label) { this.label = label; }
        @Override public String toString() { return label; }
    }

    /**
     * A proposal: the specs to apply (changed layers only), its diff, the average weight bits before and after, and
     * what the strategy says about it.
     */
    public record Proposal(Map<String, LayerQuantSpec> specs, MethodChoice method, SpecDiff diff, double bitsBefore, double bitsAfter,
                           String note) {}

    private final LayerTableViewModel layers;
    private final QuantViewModel quant;
    private final SensitivityViewModel sensitivity;
    private final AnalysisContext analysis;
    private final DoubleProperty budget = new SimpleDoubleProperty(this, "budget", 6.0);
    /** Candidate weight formats, most precise first or any order (comma separated). */
    private final StringProperty candidates = new SimpleStringProperty(this, "candidates", "int8-asym, int6-asym, int4-asym");
    private final ObjectProperty<Strategy> strategy = new SimpleObjectProperty<>(this, "strategy", Strategy.GREEDY);
    private final DoubleProperty groupBudget = new SimpleDoubleProperty(this, "groupBudget", 128);
    private final IntegerProperty generations = new SimpleIntegerProperty(this, "generations", 10);
    private final IntegerProperty population = new SimpleIntegerProperty(this, "population", 50);

    public BudgetViewModel(LayerTableViewModel layers, QuantViewModel quant, SensitivityViewModel sensitivity, AnalysisContext analysis) {
        this.layers = layers;
        this.quant = quant;
        this.sensitivity = sensitivity;
        this.analysis = analysis;
    }

    public DoubleProperty budgetProperty() { return budget; }
    public StringProperty candidatesProperty() { return candidates; }
    public ObjectProperty<Strategy> strategyProperty() { return strategy; }
    public DoubleProperty groupBudgetProperty() { return groupBudget; }
    public IntegerProperty generationsProperty() { return generations; }
    public IntegerProperty populationProperty() { return population; }

    /** The candidate formats (parsed, canonical ids). */
    public List<NumberFormat> parseCandidates() {
        List<NumberFormat> out = new ArrayList<>();
        for (String p : candidates.get().split("[,\\s]+")) {
            if (p.isBlank()) continue;
            try {
                out.add(Formats.format(p));
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("candidate formats: " + e.getMessage(), e);
            }
        }
        if (out.isEmpty()) throw new IllegalArgumentException("candidate formats: give at least one, e.g. int8-asym, int4-asym");
        return out;
    }

    /** The rows the assignment may change: layers whose weight the table quantizes; all linear/conv layers if none. */
    List<LayerRow> assignable() {
        List<LayerRow> q = layers.rows().stream().filter(r -> r.weightQuantizable() && r.spec().quantizesWeight()).toList();
        return q.isEmpty() ? layers.rows().stream().filter(LayerRow::weightQuantizable).toList() : q;
    }

    // ------------------------------------------------------------------ greedy

    /**
     * The greedy assignment: per-layer sensitivity (the panel's result when its probe has a weight format, else measured
     * here with the cheapest candidate per channel), then {@link BitBudget#greedy} with the budget on the whole model's
     * average (layers not assigned count as they are).
     */
    public WorkTask.Work<Proposal> greedyWork(DiffusionModel model) {
        List<NumberFormat> cands = parseCandidates();
        double target = budget.get();
        if (!(target > 0)) throw new IllegalArgumentException("bit budget: must be > 0 bits, got " + target);
        List<LayerRow> rows = assignable();
        Map<String, LayerQuantSpec> current = new LinkedHashMap<>();
        for (LayerRow r : rows) current.put(r.name(), r.spec());
        LayerSensitivity.Result known = sensitivity.layerResultProperty().get();
        int knownBits = 0;
        if (known != null && !known.probes().isEmpty() && known.probes().getFirst().spec().weight().enabled())
            knownBits = known.probes().getFirst().spec().weight().format().codeBits();
        NumberFormat cheapest = cands.stream().min(java.util.Comparator.comparingInt(NumberFormat::codeBits)).orElseThrow();
        double fixedBits = 0, fixedElements = 0;
        for (LayerRow r : layers.rows()) {
            if (!r.weightQuantizable() || current.containsKey(r.name())) continue;
            fixedBits += r.averageBits() * r.weightElements();
            fixedElements += r.weightElements();
        }
        double fb = fixedBits, fe = fixedElements;
        int refBitsKnown = knownBits;
        return (cancelled, progress) -> {
            LayerSensitivity.Result sens = known;
            int refBits = refBitsKnown;
            if (sens == null || refBits == 0 || !sens.layers().containsAll(current.keySet())) {
                AnalysisSession s = analysis.session(model);
                PointSpec probe = new PointSpec(TensorSpec.weight(cheapest, Granularity.CHANNEL, RangeSpec.MINMAX), TensorSpec.OFF);
                List<LayerSensitivity.LayerProbe> probes = new ArrayList<>();
                for (String l : current.keySet()) probes.add(new LayerSensitivity.LayerProbe(l, probe));
                double[][] err = new double[probes.size()][];
                double[] mean = new double[probes.size()];
                int[] ts = new int[0];
                progress.report(0, "Bit budget: the full-precision trajectory ...");
                s.fpOutputs();
                for (int i = 0; i < probes.size(); i++) {
                    if (cancelled.getAsBoolean()) throw new CancellationException("bit budget cancelled");
                    progress.report(0.9 * i / probes.size(), "Bit budget: sensitivity of " + probes.get(i).layer() + " (" + (i + 1) + " of " + probes.size() + ")");
                    LayerSensitivity.Result r = LayerSensitivity.evaluate(s, List.of(probes.get(i)));
                    err[i] = r.relativeError()[0];
                    mean[i] = r.meanError()[0];
                    ts = r.timesteps();
                }
                sens = new LayerSensitivity.Result(probes, ts, err, mean, 0);
                refBits = cheapest.codeBits();
            }
            List<BitBudget.Item> items = new ArrayList<>();
            Map<String, Map<String, String>> granularityOf = new LinkedHashMap<>();
            for (LayerRow r : rows) {
                List<BitBudget.Choice> choices = new ArrayList<>();
                Map<String, String> g = new LinkedHashMap<>();
                for (NumberFormat f : cands) {
                    String gran = Formats.requiredGranularity(f.id()) != null ? Formats.requiredGranularity(f.id())
                            : r.spec().quantizesWeight() ? r.spec().weightGranularity() : "channel";
                    try {
                        choices.add(new BitBudget.Choice(f.id(), f.codeBits(), Formats.averageWeightBits(f.id(), gran, r.weightShape())));
                        g.put(f.id(), gran);
                    } catch (IllegalArgumentException e) {
                        // this format cannot use the layer's granularity on its shape: not a candidate for it
                    }
                }
                if (choices.isEmpty()) continue;
                double sv = Math.max(0, sens.meanError(r.name()));
                items.add(new BitBudget.Item(r.name(), Math.max(1, r.weightElements()), Double.isFinite(sv) ? sv : 0, refBits, choices));
                granularityOf.put(r.name(), g);
            }
            double itemElements = items.stream().mapToLong(BitBudget.Item::elements).sum();
            double itemBudget = (target * (itemElements + fe) - fb) / itemElements;
            BitBudget.Result res = BitBudget.greedy(items, itemBudget);
            Map<String, LayerQuantSpec> specs = new LinkedHashMap<>();
            for (var e : res.choices().entrySet()) {
                LayerQuantSpec cur = current.get(e.getKey());
                String gran = granularityOf.get(e.getKey()).get(e.getValue().id());
                LayerQuantSpec base = cur.quantizesWeight() ? cur : cur.withEnabled(true);
                specs.put(e.getKey(), base.withWeightFormat(e.getValue().id()).withWeightGranularity(gran));
            }
            double after = (res.averageBits() * itemElements + fb) / (itemElements + fe);
            String note = String.format(Locale.ROOT, "%s: %d layers, budget %.2f bits, result %.3f average weight bits%s; estimated error %.4g "
                            + "(sensitivity at %d bits x 4^(%d − bits))", Strategy.GREEDY, items.size(), target, after,
                    res.feasible() ? "" : " (the cheapest candidates are above the budget)", res.estimatedError(), refBits, refBits);
            progress.report(1, note);
            return new Proposal(specs, null, null, Double.NaN, after, note);
        };
    }

    // ------------------------------------------------------------------ Q-DiT

    /** The q-dit preset with its group-size search (the method bar's bits), as CalibrationJob runs it. */
    public MethodChoice qditSearchChoice() {
        return quant.choiceFor("q-dit").withOption("search", true).withOption("budget", groupBudget.get())
                .withOption("generations", generations.get()).withOption("population", population.get());
    }

    /** Runs q-dit with the search; the proposal is the searched plan as table specs with the q-dit method (search off). */
    public WorkTask.Work<Proposal> qditWork(DiffusionModel model) {
        MethodChoice m = qditSearchChoice();
        QuantViewModel.Target t = new QuantViewModel.Target("Q-DiT search", m, List.of(), quant.key(m, List.of()), true);
        CalibrationJob.Request req = quant.request(t);
        MethodChoice after = m.withOption("search", false);
        return (cancelled, progress) -> {
            QuantConfig c = Calibrations.run(req, cancelled, null, p -> progress.report(Calibrations.fraction(p),
                    "Q-DiT search: [" + p.phase().name().toLowerCase(Locale.ROOT) + "] " + p.message()));
            var plan = QuantConfigs.bind(c, model, true).plan();
            Map<String, LayerQuantSpec> specs = SpecBridge.specsOf(plan);
            String note = String.format(Locale.ROOT, "%s: mean group size >= %.0f, %.3f average weight bits", Strategy.QDIT, groupBudget.get(),
                    plan.averageWeightBits());
            return new Proposal(specs, after, null, Double.NaN, plan.averageWeightBits(), note);
        };
    }

    /** Completes a proposal on the FX thread with its diff against the table as it is now. */
    public Proposal withDiff(Proposal p) {
        MethodChoice m = p.method() == null ? layers.method() : p.method();
        return new Proposal(p.specs(), p.method(), SpecDiff.of(layers.rows(), p.specs(), layers.method(), m), layers.averageWeightBits(),
                p.bitsAfter(), p.note());
    }

    /** Applies a proposal as one undoable edit. */
    public int apply(Proposal p) {
        return layers.replaceSpecs(p.specs(), "bit budget (" + strategy.get() + ")", p.method());
    }
}
