package io.diffquant.app.gui.vm;

import io.diffquant.app.gui.charts.StudioCharts;
import io.diffquant.engine.analysis.Histograms;
import io.diffquant.engine.analysis.LayerSensitivity;
import io.diffquant.engine.model.dit.DiT;
import io.diffquant.engine.quant.config.QuantConfig;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The temporal, sensitivity, distributions and bit-budget view models on a tiny random DiT, without the toolkit. */
class AnalysisPanelsTest {
    @TempDir Path tmp;
    private DiT model;
    private LayerTableViewModel layers;
    private QuantViewModel quant;
    private AnalysisContext analysis;

    @BeforeEach void setUp() {
        model = TinyModels.dit(4);
        layers = new LayerTableViewModel();
        layers.setModel(model);
        quant = new QuantViewModel(layers, tmp.resolve("cache"));
        quant.setContext(TinyModels.context(model));
        analysis = new AnalysisContext();
        analysis.setSettings(AnalysisContext.SETTINGS.withSamples(2));
    }

    private TemporalViewModel.Outcome run(TemporalViewModel vm, List<QuantViewModel.Target> targets, boolean trajectories) throws Exception {
        Map<QuantViewModel.Target, QuantConfig> configs = new java.util.LinkedHashMap<>();
        Map<QuantViewModel.Target, io.diffquant.engine.quant.preset.CalibrationJob.Request> requests = new java.util.LinkedHashMap<>();
        for (QuantViewModel.Target t : targets) {
            configs.put(t, quant.cached(t));
            requests.put(t, quant.request(t));
        }
        return vm.work(targets, configs, requests, trajectories, model).run(() -> false, (f, m) -> { });
    }

    @Test void temporalMethodsAreCalibratedOnceAndTogglingReplotsFromTheCache() throws Exception {
        quant.setExtraOptions("tfmq", Map.of("tiar_iters", 5, "tiar_batch", 8));
        quant.calibrationImagesProperty().set(4);
        TemporalViewModel vm = new TemporalViewModel(quant, layers, analysis);
        for (TemporalViewModel.Method m : TemporalViewModel.Method.values())
            vm.shownProperty(m).set(m == TemporalViewModel.Method.NONE || m == TemporalViewModel.Method.FSC);
        List<QuantViewModel.Target> targets = vm.methodTargets(true);
        assertEquals(2, targets.size(), "the FP32 table quantizes nothing: no current-config target");
        TemporalViewModel.Outcome o = run(vm, targets, true);
        assertEquals(2, o.calibrated().size());
        vm.accept(o);
        assertNotNull(quant.cached(vm.target(TemporalViewModel.Method.FSC)), "calibrated configs are remembered");
        assertEquals(1 + o.features().size(), vm.features().size(), "the feature picker lists every TIB feature");

        TemporalViewModel.Evaluation none = vm.evaluation(TemporalViewModel.Method.NONE.label()), fsc = vm.evaluation(TemporalViewModel.Method.FSC.label());
        // the mean series is the mean of the per-feature rows of the engine's result; FSC changes it
        double[][] rel = none.error().relativeL2();
        double[] mean = vm.errorSeries(none);
        for (int k = 0; k < mean.length; k++) {
            double m = 0;
            for (double[] row : rel) m += row[k] / rel.length;
            assertEquals(m, mean[k], 1e-12);
        }
        assertEquals(analysis.settings().steps(), mean.length);
        assertFalse(java.util.Arrays.equals(mean, vm.errorSeries(fsc)), "per-timestep activation ranges change the temporal features");
        vm.featureProperty().set(vm.features().get(1));
        assertArrayEquals(rel[0], vm.errorSeries(none), 0.0);
        List<StudioCharts.Series> chart = vm.errorChartSeries();
        assertEquals(List.of("no maintenance", "FSC"), chart.stream().map(StudioCharts.Series::name).toList());
        assertNotNull(none.trajectory());
        assertEquals(analysis.settings().steps(), none.trajectory().l2().length);
        assertNotNull(vm.mismatch(), "mismatch of the shown series (falls back to all features)");

        // toggling: switches FSC-only make the current config that very method, already evaluated: plotted at once
        vm.tiarProperty().set(false);
        vm.fscProperty().set(true);
        vm.cacheProperty().set(false);
        long t0 = System.nanoTime();
        vm.applySwitches();
        assertEquals(vm.target(TemporalViewModel.Method.FSC).key(), vm.currentKeyProperty().get());
        List<StudioCharts.Series> withCurrent = vm.errorChartSeries();
        double ms = (System.nanoTime() - t0) / 1e6;
        assertEquals(3, withCurrent.size());
        assertArrayEquals(vm.errorSeries(fsc), withCurrent.get(2).y(), 0.0);
        assertEquals("", vm.hintProperty().get());
        // FSC off: the current series becomes the no-maintenance one
        vm.fscProperty().set(false);
        vm.applySwitches();
        assertArrayEquals(vm.errorSeries(none), vm.errorChartSeries().get(2).y(), 0.0);
        assertTrue(ms < 1000, "a toggle to an evaluated method re-plots without computing: " + ms + " ms");
        // undo syncs the switches back from the method
        assertTrue(layers.undo());
        assertTrue(vm.fscProperty().get());
        // a combination never calibrated: the panel says so
        vm.tiarProperty().set(true);
        vm.applySwitches();
        assertTrue(vm.hintProperty().get().contains("not calibrated"), vm.hintProperty().get());
    }

    @Test void layerSensitivityFillsTheTableAndFeedsTheGreedyBudget() throws Exception {
        SensitivityViewModel sens = new SensitivityViewModel(layers, analysis);
        sens.probeSpecProperty().set("w:int4-asym/channel");
        LayerSensitivity.Result r = sens.layerWork(model).run(() -> false, (f, m) -> { });
        sens.layerResultProperty().set(r);
        long linear = layers.rows().stream().filter(LayerRow::weightQuantizable).count();
        assertEquals(linear, r.layers().size());
        int top = r.ranking()[0];
        assertEquals(1.0, layers.row(r.layers().get(top)).sensitivityProperty().get(), 0.0, "the most sensitive layer fills the bar");
        for (int i = 0; i < r.layers().size(); i++)
            assertEquals(r.meanError()[i] / r.meanError()[top], layers.row(r.layers().get(i)).sensitivityProperty().get(), 1e-12);
        assertEquals(r.layers().get(top), sens.rankedLayers(3).getFirst());
        List<String> selected = new ArrayList<>();
        sens.setLayerSelector(selected::add);
        sens.selectLayer("blocks.0.mlp.fc1");
        sens.selectLayer("no.such.layer");
        assertEquals(List.of("blocks.0.mlp.fc1"), selected);

        // greedy budget on an int8 table: with the sensitivity at 4 bits, the least sensitive layers go to int4 first
        quant.applyPreset(new MethodChoice("rtn", Map.of("w_bits", 8)));
        BudgetViewModel budget = new BudgetViewModel(layers, quant, sens, analysis);
        budget.candidatesProperty().set("int8-asym, int4-asym");
        double before = layers.averageWeightBits();
        budget.budgetProperty().set((before + 4.3) / 2);
        BudgetViewModel.Proposal p = budget.withDiff(budget.greedyWork(model).run(() -> false, (f, m) -> { }));
        assertTrue(p.bitsAfter() <= budget.budgetProperty().get() + 1e-9, p.note());
        assertFalse(p.diff().changes().isEmpty());
        double maxLowered = 0, minKept = Double.POSITIVE_INFINITY;
        for (var e : p.specs().entrySet()) {
            double s = r.meanError(e.getKey()) / Math.max(1, layers.row(e.getKey()).weightElements());
            if (e.getValue().weightFormat().equals("int4-asym")) maxLowered = Math.max(maxLowered, r.meanError(e.getKey()));
            else minKept = Math.min(minKept, r.meanError(e.getKey()));
        }
        assertTrue(maxLowered > 0, "some layers were lowered");
        assertEquals(0, layers.history().undoSize() - 1, "computing a proposal changes nothing");
        budget.apply(p);
        assertEquals(p.bitsAfter(), layers.averageWeightBits(), 1e-9, "the table's average is the proposal's");
        assertTrue(layers.undo());
        assertEquals(before, layers.averageWeightBits(), 1e-12);
    }

    @Test void histogramsOfTheSelectedLayerWithBothGrids() throws Exception {
        DistributionsViewModel d = new DistributionsViewModel(analysis);
        assertThrows(IllegalArgumentException.class, () -> d.work(model));
        d.layerProperty().set("blocks.0.attn.proj");
        d.binsProperty().set(32);
        DistributionsViewModel.Result r = d.work(model).run(() -> false, (f, m) -> { });
        d.resultProperty().set(r);
        assertEquals(16, r.weightInt().grid().length, "INT4 has 16 levels");
        assertEquals(32, r.weightInt().counts().length);
        assertEquals(model.layers().get("blocks.0.attn.proj").param("weight").size(), r.weightInt().elements());
        assertEquals(analysis.settings().steps() + 1, r.frames(), "one per timestep and all together");
        assertEquals(d.frameProperty().get(), r.frames() - 1, "starts on all timesteps");
        Histograms.Histogram ai = d.activation(false), af = d.activation(true);
        assertArrayEquals(ai.counts(), af.counts(), "same data, two grids");
        assertTrue(Float.isNaN(ai.timestep()));
        // the FP grid of E2M1 over the layer's range: the FP4DiT grid scaled so that its largest value is the absmax
        double absmax = Math.max(Math.abs(ai.lo()), Math.abs(ai.hi()));
        float[] g = af.grid();
        assertEquals(absmax, g[g.length - 1], 1e-4 * absmax);
        d.frameProperty().set(0);
        assertEquals((float) analysis.settings().timesteps()[0], d.activation(false).timestep());
        assertTrue(d.frameLabel().startsWith("t = "), d.frameLabel());
        // a probe has activations only
        d.layerProperty().set("blocks.0.attn.softmax");
        DistributionsViewModel.Result p = d.work(model).run(() -> false, (f, m) -> { });
        assertNull(p.weightInt());
        assertTrue(p.frames() > 1);
        d.layerProperty().set("blocks.0.norm1");
        var e = assertThrows(IllegalArgumentException.class, () -> d.work(model));
        assertTrue(e.getMessage().contains("blocks.0.norm1"), e.getMessage());
    }
}
