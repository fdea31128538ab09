package io.diffquant.app.cli;

import io.diffquant.engine.analysis.AnalysisSettings;
import io.diffquant.engine.analysis.Histograms;
import io.diffquant.engine.analysis.LayerSensitivity;
import io.diffquant.engine.analysis.PerturbationSensitivity;
import io.diffquant.engine.analysis.TemporalFeatureError;
import io.diffquant.engine.analysis.TemporalMismatch;
import io.diffquant.engine.analysis.TrajectoryDeviation;
import io.diffquant.engine.model.CheckpointImport;
import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.model.ModelFolder;
import io.diffquant.engine.model.RandomCheckpoints;
import io.diffquant.engine.model.dit.DiTConfig;
import io.diffquant.engine.model.unet.UNet2DConfig;
import io.diffquant.engine.quant.QuantizedModel;
import io.diffquant.engine.quant.calib.CalibrationSettings;
import io.diffquant.engine.quant.calib.TimestepSubset;
import io.diffquant.engine.quant.config.ModelIdentity;
import io.diffquant.engine.quant.config.QuantConfig;
import io.diffquant.engine.quant.config.QuantConfigCodec;
import io.diffquant.engine.quant.config.QuantConfigs;
import io.diffquant.engine.quant.config.TemporalSection;
import io.diffquant.engine.quant.export.QuantizedCheckpoint;
import io.diffquant.engine.quant.format.QuantizedTensor;
import io.diffquant.engine.quant.preset.Presets;
import io.diffquant.engine.quant.spec.QuantPoint;
import io.diffquant.engine.tensor.Tensor;
import io.diffquant.engine.temporal.TemporalInfoBlock;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The code path of {@code bench-full --methods all --analyses all} (FullSizeSuite) on small random checkpoints with the
 * real parameter names: a DiT with the facebookresearch/DiT state_dict names and the 1000 ImageNet classes (DiT-XL/2's
 * layout at width 64, depth 2), and the google/ddpm-cifar10-32 UNet with reduced channels written under the CompVis/DDIM
 * names and converted by the importer. Every registered preset is calibrated, exported and reloaded; the reload must
 * reproduce the fake-quant output of one denoiser call bitwise (tolerance 0: the checkpoint stores the exact codes), and
 * the test repeats that comparison itself for every preset from the exported files. Every analysis returns finite values
 * of the expected shapes; λ = 0 perturbs nothing (MSE exactly 0); tfmq-cache's config holds one [timesteps, labels,
 * width] cache tensor per TIB feature.
 */
class FullSizeSuiteTest {
    @TempDir Path tmp;

    static final int CALIB_STEPS = 2, ANALYSIS_STEPS = 2;
    static final FullSizeSuite.Budget BUDGET = new FullSizeSuite.Budget(null, null, 2, 2, 3, 8);

    static CalibrationSettings calibration() {
        return new CalibrationSettings("ddim", CALIB_STEPS, 0, "linear", 1, 1, 1, 0, TimestepSubset.uniform(2, 1, 0), 16, 1 << 12);
    }

    static FullSizeSuite.AnalysisOptions analysisOptions() {
        return new FullSizeSuite.AnalysisOptions(new AnalysisSettings("ddim", ANALYSIS_STEPS, 0, "linear", 1, 0, 1, 1), new double[] {0, 0.1}, 1,
                AnalyzeCommand.parseSpec("w:int4-asym/channel/minmax"), List.of(), 2, List.of(), 16, List.of());
    }

    @Test void everyPresetAndAnalysisOnADiTWithTheFacebookNamesAnd1000Classes() throws Exception {
        DiTConfig c = new DiTConfig(4, 2, 4, 64, 2, 4, 4.0, 0.1, 1000, true);
        RandomCheckpoints.writeDiT(tmp.resolve("dit"), c, 5);
        DiffusionModel m = ModelFolder.load(tmp.resolve("dit")).model();
        assertTrue(m.stateDict().containsKey("blocks.1.adaLN_modulation.1.weight") && m.stateDict().containsKey("y_embedder.embedding_table.weight"),
                "facebookresearch/DiT names");
        runEverything(m, c.depth() + 1, 1001);
    }

    @Test void everyPresetAndAnalysisOnTheCifarUNetWithReducedChannelsThroughTheCompVisImport() throws Exception {
        UNet2DConfig c = UNet2DConfig.fromJson(RandomCheckpoints.DDPM_CIFAR10_CONFIG.replace("[128, 256, 256, 256]", "[32, 32, 32, 32]")
                .replace("\"sample_size\": 32", "\"sample_size\": 8"), "reduced ddpm-cifar10 config");
        Path cv = tmp.resolve("model-compvis.safetensors");
        RandomCheckpoints.writeCompVis(cv, c, 9);
        CheckpointImport.run(new CheckpointImport.Request(cv, tmp.resolve("unet"), CheckpointImport.Kind.COMPVIS, null, 8, 0, false, null, null, null, 0));
        DiffusionModel m = ModelFolder.load(tmp.resolve("unet")).model();
        assertTrue(m.stateDict().containsKey("down_blocks.1.attentions.0.to_q.weight") || m.stateDict().keySet().stream().anyMatch(k -> k.contains("attentions")),
                "diffusers names after the CompVis import");
        // the CIFAR UNet's TIB: 2 resnets x 4 down levels + 2 mid + 3 x 4 up levels, whatever the channel counts
        runEverything(m, 22, 1);
    }

    /** Runs every preset and every analysis through FullSizeSuite and checks the results. */
    void runEverything(DiffusionModel m, int features, int labels) throws Exception {
        TemporalInfoBlock tib = TemporalInfoBlock.of(m);
        assertEquals(features, tib.features().size(), "TIB features");
        FullSizeSuite suite = new FullSizeSuite(m, ModelIdentity.of(m, "small"), calibration(), tmp.resolve("work"));
        int[] ts = suite.recordCalibrationData();
        assertEquals(CALIB_STEPS, ts.length, Arrays.toString(ts));
        long fp32 = 4 * m.parameterCount();
        Map<String, FullSizeSuite.PresetResult> results = new LinkedHashMap<>();
        for (String p : FullSizeSuite.presets(List.of("all"))) results.put(p, suite.calibrate(p, BUDGET));
        assertEquals(Presets.names(), new ArrayList<>(results.keySet()), "every registered preset");
        Tensor x = RandomCheckpoints.random("independent probe", new int[] {2, m.inChannels(), m.sampleSize(), m.sampleSize()}, 77);
        int[] y = m.numClasses() > 0 ? new int[] {3, m.numClasses()} : null;    // a class and the null class of guidance
        for (FullSizeSuite.PresetResult r : results.values()) {
            String p = r.preset();
            assertTrue(r.bitwise() && r.maxAbsDiff() == 0 && r.outputFinite() && r.outputMaxAbs() > 0, p + ": reload reproduces the probe call, "
                    + r.maxAbsDiff());
            // smaller than FP32 without the cached temporal features (which a 1000-class model with this little width outweigh)
            assertTrue(r.quantizedTensors() > 0 && r.checkpointBytes() - r.temporalBytes() < fp32, p + ": " + r.quantizedTensors() + " weights, "
                    + r.checkpointBytes() + " bytes");
            // rtn: every layer at 8 bits; q-diffusion and tfmq*: every layer at 4 bits, the first and last at 8; q-dit and fp4dit keep layers in FP32
            double lo = p.equals("rtn") ? 8 : 4, hi = p.equals("rtn") ? 9 : p.equals("q-dit") || p.equals("fp4dit") ? 32 : 8;
            assertTrue(r.avgWeightBits() > lo && r.avgWeightBits() < hi, p + ": average weight bits " + r.avgWeightBits());
            assertEquals(ts[0], r.probeT(), 0, p);
            // TIAR (tfmq, tfmq-ds) runs blockwise (the default) and its closing line reaches the table note
            assertEquals(p.equals("tfmq") || p.equals("tfmq-ds"), r.tiar() != null, p + ": " + r.tiar());
            if (r.tiar() != null) assertTrue(r.tiar().startsWith("TIAR blockwise done: temporal feature loss ") && FullSizeSuite.notes(r, tib).contains(r.tiar()), r.tiar());
            assertTrue(Files.isRegularFile(r.configFile()) && Files.isRegularFile(r.checkpointFile()), p);
            // independently: the exported config (fake quantization) and the exported checkpoint agree on another input, bitwise
            QuantConfig cfg = QuantConfigCodec.read(r.configFile());
            QuantizedModel q = QuantConfigs.attach(cfg, m, false);
            Tensor fq;
            try {
                fq = m.forward(x, new float[] {ts[1], ts[1]}, y);
            } finally {
                q.detach();
            }
            QuantizedCheckpoint.Loaded l = QuantizedCheckpoint.load(r.checkpointFile());
            Tensor back = l.model().forward(x, new float[] {ts[1], ts[1]}, y);
            l.quantized().detach();
            assertArrayEquals(fq.shape(), back.shape(), p);
            for (int i = 0; i < fq.size(); i++)
                assertEquals(Float.floatToRawIntBits(fq.data()[i]), Float.floatToRawIntBits(back.data()[i]), p + ": element " + i);
            TemporalSection t = cfg.temporal();
            assertEquals(p.startsWith("tfmq"), t != null, p + ": temporal section");
            if (p.equals("tfmq-cache") || p.equals("tfmq-ds")) {
                TemporalSection.CachedFeatures cache = t.cached();
                assertNotNull(cache, p);
                assertEquals(features, cache.tensors().size(), p + ": one cached tensor per TIB feature");
                long codes = 0, paramSets = 0;
                for (int i = 0; i < features; i++) {
                    paramSets += (long) Math.max(1, tib.features().get(i).chunks()) * CALIB_STEPS * labels;   // cache_granularity chunk (the default)
                    QuantizedTensor qt = cache.tensors().get(i);
                    assertArrayEquals(new int[] {CALIB_STEPS, labels, tib.features().get(i).width()}, qt.shape(), p + ": " + tib.features().get(i).name());
                    codes += qt.size();
                }
                // 8-bit codes, plus per (t, y) row a scale and zero point (at most 8 bytes) per shift / scale / gate chunk
                assertTrue(r.temporalBytes() == cache.bytes() && cache.bytes() >= codes && cache.bytes() <= codes + 8L * paramSets,
                        p + ": cache bytes " + cache.bytes() + " for " + codes + " codes");
                if (p.equals("tfmq-cache")) {
                    assertNull(t.selectionMap(), p);
                    assertEquals(features * CALIB_STEPS, t.cachedEntries(), "tfmq-cache serves every feature at every timestep");
                } else {
                    assertEquals(features, t.selectionMap().length);
                    assertEquals(CALIB_STEPS, t.selectionMap()[0].length);
                }
            } else if (t != null) {
                assertNull(t.cached(), p);
            }
        }

        // the joint schedule (the paper's; what auto picks when it fits) exports and reloads bitwise as well
        FullSizeSuite.PresetResult joint = suite.calibrate("tfmq", BUDGET, Map.of("tiar_mode", "auto"));
        assertTrue(joint.tiar() != null && joint.tiar().startsWith("TIAR joint done: temporal feature loss "), joint.tiar());
        assertTrue(joint.bitwise() && joint.outputFinite(), "joint tfmq: reload reproduces the probe call, " + joint.maxAbsDiff());

        FullSizeSuite.AnalysisOptions o = analysisOptions();
        int points = QuantPoint.of(m).size();
        List<String> weightLayers = new ArrayList<>(), everySecond = new ArrayList<>();
        for (QuantPoint p : QuantPoint.of(m)) if (p.hasWeight()) weightLayers.add(p.name());
        for (int i = 0; i < weightLayers.size(); i += 2) everySecond.add(weightLayers.get(i));
        int weights = weightLayers.size();
        int n = results.size();
        for (String a : AnalysisRuns.ANALYSES) {
            FullSizeSuite.AnalysisResult r = suite.analyze(a, o);
            assertEquals(a, r.analysis());
            assertTrue(!r.key().isBlank() && !r.summary().isBlank(), a);
            switch (a) {
                case "temporal-error" -> {
                    TemporalFeatureError.Result e = (TemporalFeatureError.Result) r.result();
                    assertEquals(n, e.configs().size());
                    assertEquals(features, e.features().size());
                    assertEquals(labels == 1 ? 1 : labels - 1, e.labels() == null ? 1 : e.labels().length, "every class (no guidance: no null class)");
                    for (TemporalFeatureError.ConfigError c : e.configs()) {
                        assertEquals(features, c.relativeL2().length, c.config());
                        for (double[] row : c.relativeL2()) {
                            assertEquals(ANALYSIS_STEPS, row.length);
                            for (double v : row) assertTrue(Double.isFinite(v) && v >= 0, c.config() + ": " + v);
                        }
                    }
                }
                case "mismatch" -> {
                    List<?> ms = (List<?>) r.result();
                    assertEquals(n, ms.size());
                    for (Object o1 : ms) {
                        TemporalMismatch.Result mr = (TemporalMismatch.Result) o1;
                        assertEquals(ANALYSIS_STEPS, mr.all().distance().length);
                        for (double[] row : mr.all().distance()) for (double v : row) assertTrue(Double.isFinite(v) && v >= 0, mr.config());
                        assertTrue(mr.all().rate() >= 0 && mr.all().rate() <= 1, mr.config());
                        assertEquals(features, mr.features().size());
                    }
                }
                case "trajectory" -> {
                    TrajectoryDeviation.Result tr = (TrajectoryDeviation.Result) r.result();
                    assertEquals(n, tr.configs().size());
                    for (TrajectoryDeviation.Series s : tr.configs()) {
                        assertEquals(ANALYSIS_STEPS, s.l2().length);
                        for (double v : s.l2()) assertTrue(Double.isFinite(v) && v >= 0, s.config());
                        assertTrue(s.finalL2() > 0, s.config() + ": quantization moves the trajectory");
                    }
                }
                case "perturbation" -> {
                    PerturbationSensitivity.Result pr = (PerturbationSensitivity.Result) r.result();
                    assertEquals(0, pr.temporal().mse()[0], 0, "λ = 0 perturbs nothing");
                    assertEquals(0, pr.nonTemporal().mse()[0], 0, "λ = 0 perturbs nothing");
                    assertTrue(pr.temporal().mse()[1] > 0 && Double.isFinite(pr.temporal().mse()[1]), "λ = 0.1, temporal");
                    assertTrue(pr.nonTemporal().mse()[1] > 0 && Double.isFinite(pr.nonTemporal().mse()[1]), "λ = 0.1, non-temporal");
                    assertTrue(Double.isNaN(pr.fpFid()), "no FID on these models");
                    assertEquals(features, pr.temporal().sites().size());
                }
                case "layer-sensitivity" -> {
                    LayerSensitivity.Result ls = (LayerSensitivity.Result) r.result();
                    assertEquals(everySecond, ls.layers(), "every second Linear/Conv2d in model order");
                    assertEquals(everySecond.size(), ls.relativeError().length);
                    for (double[] row : ls.relativeError()) {
                        assertEquals(ANALYSIS_STEPS, row.length);
                        for (double v : row) assertTrue(Double.isFinite(v) && v >= 0);
                    }
                    assertTrue(ls.meanError()[ls.ranking()[0]] > 0, "int4 changes the most sensitive layer's output");
                }
                case "histogram" -> {
                    List<?> hs = (List<?>) r.result();
                    assertEquals(weights + points * (ANALYSIS_STEPS + 1), hs.size(), "weights, and inputs per timestep plus overall");
                    Map<String, Long> perT = new LinkedHashMap<>();
                    for (Object o1 : hs) {
                        Histograms.Histogram h = (Histograms.Histogram) o1;
                        assertEquals(16, h.bins());
                        assertEquals(0, h.nonFinite(), h.layer());
                        assertEquals(h.elements(), Arrays.stream(h.counts()).sum(), h.layer() + " " + h.tensor());
                        if (h.tensor().equals("weight")) assertEquals(m.layers().get(h.layer()).param("weight").size(), h.elements(),
                                h.layer() + ": every weight counted");
                        else if (!Float.isNaN(h.timestep())) perT.merge(h.layer(), h.elements(), Long::sum);
                        else assertEquals(perT.get(h.layer()), h.elements(), h.layer() + ": overall = sum over the timesteps");
                    }
                }
                default -> throw new AssertionError(a);
            }
        }
    }
}
