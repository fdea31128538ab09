package io.diffquant.engine.quant.results;

import io.diffquant.engine.diffusion.SampleBatches;
import io.diffquant.engine.metrics.FmnistMetrics;
import io.diffquant.engine.metrics.MetricsTable;
import io.diffquant.engine.model.dit.DiT;
import io.diffquant.engine.model.dit.DiTConfig;
import io.diffquant.engine.quant.QuantTestSupport;
import io.diffquant.engine.quant.QuantizedModel;
import io.diffquant.engine.quant.config.ModelIdentity;
import io.diffquant.engine.quant.config.QuantConfig;
import io.diffquant.engine.quant.config.QuantConfigCodec;
import io.diffquant.engine.quant.config.QuantConfigs;
import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/** The results runner on a tiny random class-conditional 28x28x1 DiT with the shipped classifier. */
class ResultsRunTest {

    static List<ResultsRun.Progress> runAll(ResultsRun r) {
        List<ResultsRun.Progress> out = new ArrayList<>();
        while (r.hasNext()) out.add(r.next());
        return out;
    }

    @Test void rowsAreTheMetricsOfTheQuantizedSamplesAgainstFpAndFailuresAreRecorded(@TempDir Path tmp) throws Exception {
        DiT m = QuantTestSupport.randomDiT(new DiTConfig(28, 4, 1, 32, 1, 2, 2.0, 0.1, 10, false), 3, 0.05);
        ModelIdentity id = ModelIdentity.of(m, "tiny");
        FmnistMetrics metrics = FmnistMetrics.loadDefault();
        SampleBatches.Settings s = SampleBatches.Settings.ddim(2, 1.5, 7, 3);
        List<ResultConfig> configs = List.of(new ResultConfig("q-dit", 8, 8, "int"), new ResultConfig("q-dit", 4, 8, "fp"),
                new ResultConfig("rtn", 8, 8, "int"));
        Map<String, ResultsRun.RowMetric> extras = new LinkedHashMap<>();
        extras.put("hooked layers", (model, c) -> {
            if (c.method().preset().equals("rtn")) throw new IllegalStateException("extra metric refuses rtn");
            assertTrue(model.layers().all().stream().allMatch(l -> l.hooks().isEmpty()), "extras see the FP model");
            try {
                QuantizedModel q = QuantConfigs.attach(c, model, false);
                q.detach();
                return q.hookedLayers().size();
            } catch (java.io.IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
        });
        extras.put(ResultsRun.TEMPORAL_ERROR, ResultsRun.temporalFeatureError(m, s));
        ResultsRun run = ResultsRun.start(new ResultsRun.Request(m, id, configs, 4, s, Map.of("search", "false"), tmp, metrics, extras, false));
        List<ResultsRun.Progress> progress = runAll(run);
        List<ResultRow> rows = run.rows();
        assertEquals(4, rows.size());
        assertTrue(m.layers().all().stream().allMatch(l -> l.hooks().isEmpty()), "the model is left without hooks");
        assertEquals(4, progress.stream().filter(p -> p.phase() == ResultsRun.Phase.REFERENCE).count(), "2 batches x 2 steps");

        // FP row: the metrics of the FP images
        int[] y = {0, 1, 2, 3};
        Tensor fp = ResultsRun.clampUnit(SampleBatches.sample(m, s, 4, y, null));
        MetricsTable fpT = metrics.evaluate(fp, y, null);
        ResultRow r0 = rows.get(0);
        assertTrue(r0.isFullPrecision() && r0.ok());
        assertEquals(fpT.row(MetricsTable.FID_FMNIST).orElseThrow().value(), r0.fid(), 1e-9 * r0.fid());
        assertEquals(fpT.row(MetricsTable.CLASS_ACCURACY).orElseThrow().value(), r0.classAccuracy(), 1e-12);
        assertTrue(Double.isNaN(r0.psnr()));

        // each quantized row: the config written to workDir/configs, attached independently, gives the same metrics
        for (int k = 0; k < 2; k++) {
            ResultRow r = rows.get(k + 1);
            assertTrue(r.ok(), r.label() + ": " + r.error());
            Path cfg = tmp.resolve("configs").resolve(configs.get(k).id() + ".json");
            QuantizedModel q = QuantConfigs.apply(m, cfg, false);
            double layers = q.hookedLayers().size();
            double bits = q.plan().averageWeightBits();
            Tensor img = ResultsRun.clampUnit(SampleBatches.sample(m, s, 4, y, null));
            q.detach();
            MetricsTable t = metrics.evaluate(img, y, fp);
            assertEquals(t.row(MetricsTable.FID_FMNIST).orElseThrow().value(), r.fid(), 1e-9 * r.fid(), r.label());
            assertEquals(t.row(MetricsTable.PSNR).orElseThrow().value(), r.psnr(), 1e-9, r.label());
            assertEquals(t.row(MetricsTable.SSIM).orElseThrow().value(), r.ssim(), 1e-12, r.label());
            assertEquals(layers, r.extra().get("hooked layers"));
            assertEquals(bits, r.weightBits(), 1e-12);
            assertTrue(r.psnr() > 5 && r.psnr() < 200, r.label() + " PSNR " + r.psnr());
        }
        assertTrue(rows.get(1).psnr() > rows.get(2).psnr(), "8-bit INT is closer to FP than 4-bit FP weights: " + rows.get(1).psnr() + " vs "
                + rows.get(2).psnr());
        assertTrue(rows.get(1).weightBits() > rows.get(2).weightBits());
        double t8 = rows.get(1).extra().get(ResultsRun.TEMPORAL_ERROR), t4 = rows.get(2).extra().get(ResultsRun.TEMPORAL_ERROR);
        assertTrue(t8 > 0 && t8 < t4, "the adaLN modulations are quantized: W8A8 INT disturbs the temporal features less than W4A8 FP: " + t8 + " vs " + t4);
        ResultRow bad = rows.get(3);
        assertFalse(bad.ok());
        assertEquals("extra metric refuses rtn", bad.error());
        assertTrue(Files.isRegularFile(tmp.resolve("configs").resolve("rtn-w8a8-int.json")), "rtn was calibrated before the metric failed");

        // a second run reuses the configs and reproduces the rows exactly
        ResultsRun again = ResultsRun.start(new ResultsRun.Request(m, id, configs.subList(0, 2), 4, s, Map.of("search", "false"), tmp, metrics,
                null, true));
        List<ResultsRun.Progress> p2 = runAll(again);
        assertTrue(p2.stream().anyMatch(p -> p.message().contains("reusing")), "configs reused");
        assertEquals(0, p2.stream().filter(p -> p.message().contains("[weights]")).count(), "no calibration step");
        for (int k = 0; k < 3; k++) assertEquals(rows.get(k).fid(), again.rows().get(k).fid(), 0.0);
        // the reused rows show how long their config took when it was made (stored in the config), not the reading time
        for (int k = 1; k < 3; k++) {
            QuantConfig stored = QuantConfigCodec.read(tmp.resolve("configs").resolve(configs.get(k - 1).id() + ".json"));
            double when = stored.extensions().get(ResultsRun.RESULTS_EXTENSION).path("calibration_seconds").asDouble();
            assertEquals(Math.round(rows.get(k).calibrationSeconds()), when, 1.0, "stored calibration time of row " + k);
            assertEquals(when, again.rows().get(k).calibrationSeconds(), 0.0, "reused row " + k + " reports the stored time");
        }
    }

    @Test void badRequestsAreRefused(@TempDir Path tmp) throws Exception {
        DiT m = QuantTestSupport.randomDiT(new DiTConfig(28, 4, 1, 32, 1, 2, 2.0, 0.1, 10, false), 3, 0.05);
        ModelIdentity id = ModelIdentity.of(m, "tiny");
        FmnistMetrics metrics = FmnistMetrics.loadDefault();
        SampleBatches.Settings s = SampleBatches.Settings.ddim(2, 1.5, 7, 3);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new ResultsRun.Request(m, id,
                List.of(new ResultConfig("rtn", 8, 8, "int")), 4, s, Map.of("recon_iters", "5"), tmp, metrics, null, false));
        assertTrue(e.getMessage().contains("'recon_iters' is not an option of any preset of this run (rtn)"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> new ResultsRun.Request(m, id, List.of(), 1, s, null, tmp, metrics, null, false));
        assertTrue(e.getMessage().contains("at least 2 images"), e.getMessage());
        DiT big = QuantTestSupport.ditSmall();
        e = assertThrows(IllegalArgumentException.class, () -> new ResultsRun.Request(big, ModelIdentity.of(big, "x"), List.of(), 4, s, null, tmp,
                metrics, null, false));
        assertTrue(e.getMessage().contains("[N, 1, 28, 28]"), e.getMessage());
    }
}
