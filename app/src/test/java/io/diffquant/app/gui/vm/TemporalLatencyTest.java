package io.diffquant.app.gui.vm;

import io.diffquant.engine.model.dit.DiT;
import io.diffquant.engine.model.dit.DiTConfig;
import io.diffquant.engine.quant.config.QuantConfig;
import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.lang.management.ManagementFactory;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The temporal panel's bar: toggling a temporal method updates its plot within 1 s on a dit-fmnist-sized model
 * (tools/train/dit-fmnist.json: 28x28x1, patch 4, hidden 192, depth 6, 4 heads, learn_sigma, 10 classes, random weights
 * here). A toggle to a calibrated configuration costs one evaluation of the Temporal Information Block over the 50
 * sampling timesteps x 10 labels (the FP table is cached by then); that evaluation is timed here for two configurations.
 * The process CPU time of the re-evaluation is asserted below 1 s (independent of other load: on one idle core the
 * re-plot then takes under 1 s); the wall-clock time is asserted too when the machine is not overloaded (load average
 * below the core count), else reported.
 */
class TemporalLatencyTest {
    @TempDir Path tmp;

    @Test void reEvaluatingACalibratedConfigurationTakesLessThanASecond() throws Exception {
        DiTConfig cfg = new DiTConfig(28, 4, 1, 192, 6, 4, 4.0, 0.1, 10, true);
        DiT model = new DiT(cfg);
        Random r = new Random(11);
        Map<String, Tensor> sd = new LinkedHashMap<>();
        for (var e : model.stateDict().entrySet()) {
            Tensor t = e.getValue().copy();
            if (!e.getKey().equals("pos_embed")) for (int i = 0; i < t.size(); i++) t.data()[i] = (float) (r.nextGaussian() * 0.05);
            sd.put(e.getKey(), t);
        }
        model.loadWeights(sd, "random(11)");
        LayerTableViewModel layers = new LayerTableViewModel();
        layers.setModel(model);
        QuantViewModel quant = new QuantViewModel(layers, tmp);
        quant.setContext(TinyModels.context(model));
        AnalysisContext analysis = new AnalysisContext();
        TemporalViewModel tv = new TemporalViewModel(quant, layers, analysis);
        // two configurations that need no calibration data (q-dit: RTN weights, dynamic activations), W4 and W3
        List<QuantViewModel.Target> targets = new java.util.ArrayList<>();
        for (int bits : new int[] {4, 3}) {
            quant.applyPreset(new MethodChoice("q-dit", Map.of("w_bits", bits, "group_size", 64)));
            QuantViewModel.Target t = tv.currentTarget();
            QuantConfig c = Calibrations.run(quant.request(t), () -> false, null, null);
            quant.remember(t, c);
            targets.add(t);
        }
        Map<QuantViewModel.Target, QuantConfig> configs = new LinkedHashMap<>();
        for (QuantViewModel.Target t : targets) configs.put(t, quant.cached(t));
        // first evaluation computes (and caches) the FP feature table
        tv.accept(tv.work(List.of(targets.getFirst()), configs, Map.of(), false, model).run(() -> false, (f, m) -> { }));
        var os = (com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean();
        long c0 = os.getProcessCpuTime(), t0 = System.nanoTime();
        TemporalViewModel.Outcome o = tv.work(List.of(targets.get(1)), configs, Map.of(), false, false, model).run(() -> false, (f, m) -> { });
        tv.accept(o);
        double secs = (System.nanoTime() - t0) / 1e9, cpu = (os.getProcessCpuTime() - c0) / 1e9;
        TemporalViewModel.Evaluation e = o.evaluations().get(targets.get(1).key());
        assertEquals(50, e.error().relativeL2()[0].length, "50 sampling timesteps");
        assertTrue(e.error().meanRelativeL2() > 0, "W3 disturbs the temporal features");
        // the follow-up job adds the mismatch from the kept table (no second TIB pass)
        long calls = analysis.session(model).featureTablesComputed();
        tv.accept(tv.mismatchWork(e, configs.get(targets.get(1)), model).run(() -> false, (f, m) -> { }));
        assertEquals(calls, analysis.session(model).featureTablesComputed());
        assertEquals(50, tv.snapshot().byKey().get(targets.get(1).key()).mismatch().all().distance().length);
        double load = ManagementFactory.getOperatingSystemMXBean().getSystemLoadAverage();
        int cores = Runtime.getRuntime().availableProcessors();
        System.out.printf(java.util.Locale.ROOT, "temporal re-evaluation of a calibrated config on a dit-fmnist-sized DiT: %.3f s wall, "
                + "%.3f s process CPU (TIB pass %.3f s wall); load average %.1f on %d cores%n", secs, cpu, e.error().seconds(), load, cores);
        // CPU time does not depend on what else the machine runs: under 1 CPU-second, the re-plot takes under 1 s on one idle core
        assertTrue(cpu < 1.0, "re-evaluation used " + cpu + " CPU-seconds");
        assumeTrue(load < cores, String.format(java.util.Locale.ROOT, "machine overloaded (load %.1f on %d cores): measured %.3f s, bound not asserted",
                load, cores, secs));
        assertTrue(secs < 1.0, "re-evaluation took " + secs + " s");
    }
}
