package io.diffquant.app.gui.vm;

import io.diffquant.engine.model.ModelFolder;
import io.diffquant.engine.quant.config.ModelIdentity;
import io.diffquant.engine.quant.config.QuantConfig;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The temporal panel's bar on the shipped model: toggling a temporal method updates its plot within 1 s on
 * {@code assets/dit-fmnist}. The TFMQ configurations "no maintenance" and "FSC" (tfmq preset, W4A8, no reconstruction,
 * 2 calibration images) are calibrated and "no maintenance" is evaluated (which computes the FP feature table the app
 * keeps); then the FSC switch is turned on exactly as the panel does ({@link TemporalViewModel#applySwitches}): the
 * configuration becomes the calibrated but not yet evaluated FSC one, the view model asks for a refresh, and the refresh
 * runs what {@code StudioViewModel.refreshTemporal} runs — one pass of the Temporal Information Block over the 50
 * sampling timesteps x 10 labels, error only — after which the error chart's current-config series is the FSC one.
 * The process CPU time of that refresh is asserted below 1 s (independent of other load: on one idle core the re-plot
 * then takes under 1 s); the wall-clock time is asserted too when the machine is not overloaded (load average below the
 * core count), else reported. (The click-to-series latency through the real window is checked by StudioSmokeTest.)
 */
class TemporalLatencyTest {
    @TempDir Path tmp;

    @Test void togglingFscOnDitFmnistReplotsWithinASecond() throws Exception {
        Path root = Path.of(System.getProperty("diffquant.root", "..")).toAbsolutePath().normalize();
        Path folder = root.resolve("assets/dit-fmnist");
        assertTrue(Files.isRegularFile(folder.resolve(ModelFolder.DIT_WEIGHTS)), "the shipped model is missing: " + folder);
        ModelFolder.Loaded loaded = ModelFolder.load(folder);
        var model = loaded.model();
        assertEquals(6, model.layers().all().stream().filter(l -> l.name().matches("blocks\\.\\d+\\.attn\\.qkv")).count(), "DiT depth 6");

        LayerTableViewModel layers = new LayerTableViewModel();
        layers.setModel(model);
        QuantViewModel quant = new QuantViewModel(layers, tmp);
        quant.setContext(new ModelContext(folder, model, ModelIdentity.of(model, "dit-fmnist")));
        quant.calibrationImagesProperty().set(2);
        AnalysisContext analysis = new AnalysisContext();
        TemporalViewModel tv = new TemporalViewModel(quant, layers, analysis);
        List<Runnable> refreshes = new ArrayList<>();
        tv.refreshRequestProperty().set(() -> refreshes.add(() -> { }));

        // calibrate "no maintenance" and "FSC"; evaluate "no maintenance" (computes and keeps the FP table)
        QuantViewModel.Target none = tv.target(TemporalViewModel.Method.NONE), fsc = tv.target(TemporalViewModel.Method.FSC);
        for (QuantViewModel.Target t : List.of(none, fsc)) quant.remember(t, Calibrations.run(quant.request(t), () -> false, null, null));
        tv.tiarProperty().set(false);
        tv.fscProperty().set(false);
        tv.applySwitches();
        assertEquals(none.key(), tv.currentTarget().key(), "the switches give the no-maintenance configuration");
        tv.accept(tv.work(List.of(tv.currentTarget()), Map.of(tv.currentTarget(), quant.cached(none)), Map.of(), false, false, model)
                .run(() -> false, (f, m) -> { }));
        double[] before = currentSeries(tv);
        int asked = refreshes.size();

        // the toggle: FSC on
        var os = (com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean();
        long c0 = os.getProcessCpuTime(), t0 = System.nanoTime();
        tv.fscProperty().set(true);
        tv.applySwitches();
        assertEquals(fsc.key(), tv.currentTarget().key(), "the switches give the FSC configuration");
        assertTrue(refreshes.size() > asked, "a calibrated configuration asks for a refresh");
        QuantViewModel.Target cur = tv.currentTarget();
        QuantConfig config = quant.cached(cur);
        assertNotNull(config, "the FSC configuration is calibrated");
        TemporalViewModel.Outcome o = tv.work(List.of(cur), Map.of(cur, config), Map.of(), false, false, model).run(() -> false, (f, m) -> { });
        tv.accept(o);
        double[] after = currentSeries(tv);
        double secs = (System.nanoTime() - t0) / 1e9, cpu = (os.getProcessCpuTime() - c0) / 1e9;

        assertEquals(50, after.length, "50 sampling timesteps");
        assertEquals(before.length, after.length);
        assertFalse(java.util.Arrays.equals(before, after), "the current-config series follows the FSC switch");
        TemporalViewModel.Evaluation e = o.evaluations().get(cur.key());
        assertTrue(e.error().meanRelativeL2() > 0, "W4A8 disturbs the temporal features");
        assertEquals(null, e.mismatch(), "the re-plot computes the error only; the mismatch follows in a second job");
        double load = ManagementFactory.getOperatingSystemMXBean().getSystemLoadAverage();
        int cores = Runtime.getRuntime().availableProcessors();
        System.out.printf(java.util.Locale.ROOT, "FSC toggle on assets/dit-fmnist: re-plot %.3f s wall, %.3f s process CPU (TIB pass %.3f s wall); "
                + "mean rel. L2 %.4g -> %.4g; load average %.1f on %d cores%n", secs, cpu, e.error().seconds(), mean(before), mean(after), load, cores);
        // CPU time does not depend on what else the machine runs: under 1 CPU-second, the re-plot takes under 1 s on one idle core
        assertTrue(cpu < 1.0, "the re-plot used " + cpu + " CPU-seconds");
        // the wall clock only when the machine is not overloaded (the CPU bound above was asserted either way)
        if (load < cores) assertTrue(secs < 1.0, "the re-plot took " + secs + " s");
        else System.out.printf(java.util.Locale.ROOT, "machine overloaded (load %.1f on %d cores): wall clock %.3f s reported, not asserted%n",
                load, cores, secs);
    }

    /** The error chart's current-config series (y values). */
    private static double[] currentSeries(TemporalViewModel tv) {
        return tv.errorChartSeries().stream().filter(s -> s.name().startsWith(TemporalViewModel.CURRENT)).findFirst()
                .orElseThrow(() -> new AssertionError("no current-config series in " + tv.seriesNames())).y();
    }

    private static double mean(double[] v) { return java.util.Arrays.stream(v).average().orElse(Double.NaN); }
}
