package io.diffquant.engine.quant.recon;

import io.diffquant.engine.model.dit.DiT;
import io.diffquant.engine.quant.CalibratedParams;
import io.diffquant.engine.quant.QuantTestSupport;
import io.diffquant.engine.quant.QuantizedModel;
import io.diffquant.engine.quant.WeightParams;
import io.diffquant.engine.quant.calib.CalibrationSet;
import io.diffquant.engine.quant.calib.CalibrationSettings;
import io.diffquant.engine.quant.calib.TimestepSubset;
import io.diffquant.engine.quant.calib.WeightCalibrator;
import io.diffquant.engine.quant.config.ModelIdentity;
import io.diffquant.engine.quant.config.QuantConfig;
import io.diffquant.engine.quant.config.QuantConfigCodec;
import io.diffquant.engine.quant.config.QuantConfigs;
import io.diffquant.engine.quant.format.FpFormat;
import io.diffquant.engine.quant.format.Granularity;
import io.diffquant.engine.quant.format.GroupView;
import io.diffquant.engine.quant.format.IntFormat;
import io.diffquant.engine.quant.format.Layout;
import io.diffquant.engine.quant.format.NumberFormat;
import io.diffquant.engine.quant.preset.CalibrationJob;
import io.diffquant.engine.quant.preset.Presets;
import io.diffquant.engine.quant.preset.PresetOptions;
import io.diffquant.engine.quant.preset.Reconstruction;
import io.diffquant.engine.quant.spec.CalibrationMode;
import io.diffquant.engine.quant.spec.LayerOverride;
import io.diffquant.engine.quant.spec.PointSpec;
import io.diffquant.engine.quant.spec.QuantPlan;
import io.diffquant.engine.quant.spec.RangeSpec;
import io.diffquant.engine.quant.spec.TensorSpec;
import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Reconstruction inside the calibration job and its settings (layer mode, TIB exclusion, activation quantization, per-timestep inputs). */
class ReconPipelineTest {
    @TempDir Path tmp;

    static CalibrationSettings small() {
        return new CalibrationSettings("ddim", 4, 0, "linear", 1, 8, 8, 3, TimestepSubset.uniform(3, 6, 5), 6, 4096);
    }

    @Test void qDiffusionCalibrationJobReconstructsAndTheCodesSurviveTheConfigFile() throws Exception {
        DiT m = QuantTestSupport.ditSmall();
        CalibrationJob job = CalibrationJob.start(new CalibrationJob.Request(m, ModelIdentity.of(m, "dit-small"), "q-diffusion",
                Map.of("recon_iters", 25, "recon_batch", 6, "recon_units", "blocks.0, final_layer.linear"), null, small(), tmp.resolve("cache"), null));
        List<String> recon = new ArrayList<>();
        while (job.hasNext()) {
            CalibrationJob.Progress p = job.next();
            if (p.phase() == CalibrationJob.Phase.RECONSTRUCT) recon.add(p.message());
        }
        assertTrue(recon.stream().anyMatch(s -> s.startsWith("brecq: unit 1/2 blocks.0: step 25/25")), String.join("\n", recon));
        assertTrue(recon.stream().anyMatch(s -> s.contains("blocks.0 done: output MSE")), String.join("\n", recon));
        QuantConfig c = job.result();
        for (String l : List.of("blocks.0.attn.qkv", "blocks.0.attn.proj", "blocks.0.mlp.fc1", "blocks.0.mlp.fc2", "blocks.0.adaLN_modulation.1", "final_layer.linear"))
            assertTrue(c.params().weight(l).hasCodes(), l + " has learned codes");
        assertFalse(c.params().weight("blocks.1.attn.qkv").hasCodes(), "unselected units keep round to nearest");
        assertTrue(c.params().input("blocks.0.attn.qkv") != null, "activation ranges calibrated after reconstruction");
        Path f = tmp.resolve("q.json");
        QuantConfigCodec.write(c, f);
        QuantConfig back = QuantConfigCodec.read(f);
        assertEquals(c.params(), back.params(), "codes round-trip through the config and its sidecar");
        QuantizedModel q = QuantConfigs.attach(back, m, false);
        Tensor x = QuantTestSupport.rand(new Random(1), 1, 2, 4, 8, 8);
        Tensor out = m.forward(x, new float[] {600, 600}, new int[] {1, 2});
        assertTrue(out.allFinite());
        assertArrayEquals(q.quantizedWeight("blocks.0.mlp.fc1").data(), io.diffquant.engine.quant.format.Quantizer.dequantize(
                new io.diffquant.engine.quant.format.QuantizedTensor(IntFormat.asymmetric(4), Granularity.CHANNEL, Layout.WEIGHT,
                        m.layers().get("blocks.0.mlp.fc1").param("weight").shape(), c.params().weight("blocks.0.mlp.fc1").codes(),
                        c.params().weight("blocks.0.mlp.fc1").params())).data());
        q.detach();
    }

    @Test void fp4ditReconstructsOnTheFpGridsWithDynamicTokenActivations() throws Exception {
        DiT m = QuantTestSupport.ditSmall();
        QuantConfig c = CalibrationJob.run(new CalibrationJob.Request(m, ModelIdentity.of(m, "dit-small"), "fp4dit",
                Map.of("recon_iters", 20, "recon_batch", 6, "recon_units", "blocks.1"), null, small(), tmp.resolve("cache"), null));
        for (String l : List.of("blocks.1.attn.qkv", "blocks.1.mlp.fc1")) {
            WeightParams w = c.params().weight(l);
            assertTrue(w.hasCodes(), l);
            NumberFormat f = l.endsWith("fc1") ? FpFormat.of(3, 0) : FpFormat.of(2, 1);
            Tensor wt = m.layers().get(l).param("weight");
            GroupView v = new GroupView(Granularity.group(128), Layout.WEIGHT, wt.shape());
            for (int i = 0; i < wt.size(); i++) {
                float x = f.decode(w.codes()[i] & 0xFF, w.params(), v.groupOf(i));
                float[] grid = f.grid(w.params(), v.groupOf(i));
                assertTrue(Arrays.binarySearch(grid, x == 0f ? 0f : x) >= 0, l + " element " + i + " on the " + f.id() + " grid");
            }
        }
        assertTrue(c.params().input("blocks.1.attn.qkv") == null, "dynamic per-token activations have no parameters");
    }

    record Setup(DiT model, QuantPlan plan, CalibratedParams rtn, CalibrationSet data) {
        Reconstruction.Context context() {
            return new Reconstruction.Context(model, plan, rtn, data, data.settings().subset(), data.settings().forwardBatch(),
                    PresetOptions.resolve(Presets.byName("q-diffusion"), Map.of()));
        }
    }

    Setup setup(PointSpec defaults, List<LayerOverride> overrides) throws Exception {
        DiT m = QuantTestSupport.ditSmall();
        QuantPlan plan = QuantPlan.resolve(m, defaults, overrides);
        CalibrationSet data = CalibrationSet.record(m, ModelIdentity.of(m, "dit-small"), small(), tmp.resolve("data"));
        return new Setup(m, plan, WeightCalibrator.calibrate(m, plan), data);
    }

    static PointSpec w4a8(CalibrationMode mode) {
        return new PointSpec(TensorSpec.weight(IntFormat.asymmetric(4), Granularity.CHANNEL, RangeSpec.MINMAX),
                TensorSpec.input(IntFormat.asymmetric(8), Granularity.TENSOR, RangeSpec.MINMAX, mode));
    }

    static ReconRun run(Setup s, BrecqReconstruction r, ReconSettings settings) {
        ReconRun run = r.start(s.context(), settings);
        while (run.hasNext()) run.next();
        return run;
    }

    @Test void adaRoundModeReconstructsEveryLayerAloneAndTemporalLayersCanBeExcluded() throws Exception {
        Setup s = setup(w4a8(CalibrationMode.STATIC), List.of());
        ReconSettings base = ReconSettings.defaults().withIterations(10).withBatchSize(6).withEvalRows(6).withActQuant(false);
        ReconRun layers = BrecqReconstruction.ADAROUND.start(s.context(), base.withUnits(List.of("blocks.0")));
        assertEquals(List.of("blocks.0.attn.qkv", "blocks.0.attn.proj", "blocks.0.mlp.fc1", "blocks.0.mlp.fc2", "blocks.0.adaLN_modulation.1"),
                layers.units().stream().map(ReconRun.Unit::name).toList(), "adaround: one unit per layer (the glob selects the block's layers)");
        assertTrue(layers.units().stream().noneMatch(ReconRun.Unit::block));
        ReconRun noTib = BrecqReconstruction.BRECQ.start(s.context(), base.withExcludeTemporal(true));
        List<String> names = noTib.units().stream().map(ReconRun.Unit::name).toList();
        assertTrue(!names.contains("t_embedder.mlp.0") && !names.contains("final_layer.adaLN_modulation.1"), names.toString());
        assertEquals(List.of("blocks.0.attn.qkv", "blocks.0.attn.proj", "blocks.0.mlp.fc1", "blocks.0.mlp.fc2"), noTib.units().get(1).layers());
        assertTrue(noTib.skipped().get("blocks.0.adaLN_modulation.1").contains("temporal"));
        noTib.cancel();
        ReconRun done = run(s, BrecqReconstruction.ADAROUND, base.withUnits(List.of("blocks.0.mlp.*")));
        assertEquals(2, done.reports().size());
        for (ReconRun.UnitReport r : done.reports()) assertTrue(r.reconMse() <= r.rtnMse() * 1.05, r.toString());
    }

    @Test void perTimestepInputsReconstructWithSingleTimestepBatchesAndActivationQuantizationOff() throws Exception {
        Setup s = setup(w4a8(CalibrationMode.PER_TIMESTEP), List.of(LayerOverride.fullPrecision("t_embedder")));
        ReconSettings base = ReconSettings.defaults().withIterations(8).withBatchSize(4).withEvalRows(12).withUnits(List.of("blocks.1"));
        // per-timestep activation parameters are looked up by the batch's single timestep: mixed batches would throw
        ReconRun on = run(s, BrecqReconstruction.BRECQ, base);
        assertEquals(1, on.reports().size());
        assertTrue(on.result().weight("blocks.1.mlp.fc2").hasCodes());
        ReconRun off = run(s, BrecqReconstruction.BRECQ, base.withActQuant(false));
        assertTrue(off.reports().get(0).rtnMse() < on.reports().get(0).rtnMse(), "without activation quantization the RTN error is smaller: "
                + off.reports().get(0).rtnMse() + " vs " + on.reports().get(0).rtnMse());
    }

    @Test void reconstructionWithoutDataOrParametersFailsClearly() throws Exception {
        DiT m = QuantTestSupport.ditSmall();
        QuantPlan plan = QuantPlan.resolve(m, w4a8(CalibrationMode.STATIC), List.of());
        Reconstruction.Context noData = new Reconstruction.Context(m, plan, WeightCalibrator.calibrate(m, plan), null, null, 4, null);
        IllegalArgumentException e = org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class, () -> BrecqReconstruction.BRECQ.start(noData));
        assertTrue(e.getMessage().contains("calibration data"), e.getMessage());
        CalibrationSet data = CalibrationSet.record(m, ModelIdentity.of(m, "dit-small"), small(), tmp.resolve("d2"));
        Reconstruction.Context noParams = new Reconstruction.Context(m, plan, CalibratedParams.EMPTY, data, null, 4, null);
        e = org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class, () -> BrecqReconstruction.BRECQ.start(noParams));
        assertTrue(e.getMessage().contains("x_embedder.proj") && e.getMessage().contains("round-to-nearest"), e.getMessage());
    }

    @Test void aFailingStepEndsTheRunNamesTheLayerAndCleansUp() throws Exception {
        Setup s = setup(w4a8(CalibrationMode.STATIC), List.of());
        s.model().layers().get("blocks.0.mlp.fc1").param("weight").data()[3] = Float.NaN;
        Path spill = java.nio.file.Files.createDirectories(tmp.resolve("spill"));
        ReconRun run = BrecqReconstruction.BRECQ.start(s.context(), ReconSettings.defaults().withIterations(5).withActQuant(false).withMemory(0, spill));
        IllegalArgumentException e = org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class, () -> {
            while (run.hasNext()) run.next();
        });
        assertTrue(e.getMessage().contains("blocks.0.mlp.fc1"), e.getMessage());
        assertFalse(run.hasNext());
        org.junit.jupiter.api.Assertions.assertThrows(IllegalStateException.class, run::next);
        org.junit.jupiter.api.Assertions.assertThrows(IllegalStateException.class, run::result);
        try (var files = java.nio.file.Files.list(spill)) {
            assertEquals(0, files.count(), "the spill file is deleted after a failure");
        }
        for (var l : s.model().layers().all()) assertTrue(l.hooks().isEmpty(), l.name() + " still hooked");
    }
}
