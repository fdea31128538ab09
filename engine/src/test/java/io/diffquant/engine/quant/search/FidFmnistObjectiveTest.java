package io.diffquant.engine.quant.search;

import io.diffquant.engine.diffusion.SampleBatches;
import io.diffquant.engine.metrics.FmnistMetrics;
import io.diffquant.engine.model.dit.DiT;
import io.diffquant.engine.model.dit.DiTConfig;
import io.diffquant.engine.quant.QuantTestSupport;
import io.diffquant.engine.quant.QuantizedModel;
import io.diffquant.engine.quant.config.ModelIdentity;
import io.diffquant.engine.quant.config.QuantConfig;
import io.diffquant.engine.quant.config.QuantConfigs;
import io.diffquant.engine.quant.format.Granularity;
import io.diffquant.engine.quant.preset.CalibrationJob;
import io.diffquant.engine.quant.spec.LayerOverride;
import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/** Q-DiT's search objective fid-fmnist on a tiny random 28x28x1 DiT with the shipped classifier. */
class FidFmnistObjectiveTest {
    static DiT tiny() {
        // width 64: group sizes 32 and 64 are both valid choices
        return QuantTestSupport.randomDiT(new DiTConfig(28, 4, 1, 64, 1, 2, 2.0, 0.1, 10, false), 5, 0.05);
    }

    static QuantizedModel qdit(DiT m, int wBits, int aBits) throws Exception {
        QuantConfig c = CalibrationJob.run(new CalibrationJob.Request(m, ModelIdentity.of(m, "tiny"), "q-dit",
                Map.of("w_bits", wBits, "a_bits", aBits, "group_size", 32), null, null, null, null));
        return QuantConfigs.attach(c, m, false);
    }

    @Test void theObjectiveIsTheFidOfTheQuantizedSamplesAndCoarserQuantizationMovesItFurther() throws Exception {
        DiT m = tiny();
        FmnistMetrics metrics = FmnistMetrics.loadDefault();
        SampleBatches.Settings s = SampleBatches.Settings.ddim(3, 1.5, 11, 4);
        FidFmnistObjective obj = new FidFmnistObjective(m, metrics, 8, s);
        double fp = obj.evaluateModel();

        QuantizedModel q8 = qdit(m, 8, 8);
        double f8 = obj.evaluate(q8);
        // independently: sample the same images (labels cycle 0..9, same seed), clamp, FID against the test-set statistics
        Tensor img = SampleBatches.sample(m, s, 8, new int[] {0, 1, 2, 3, 4, 5, 6, 7}, null);
        float[] d = img.data();
        for (int i = 0; i < d.length; i++) d[i] = Math.max(-1f, Math.min(1f, d[i]));
        assertEquals(metrics.fid(metrics.classifier().features(img)), f8, 0.0, "objective = FID-FMNIST of the quantized samples");
        assertEquals(f8, obj.evaluate(q8), 0.0, "common noise: the same genome scores the same");
        q8.detach();

        QuantizedModel q2 = qdit(m, 2, 3);
        double f2 = obj.evaluate(q2);
        q2.detach();
        assertEquals(fp, obj.evaluateModel(), 0.0, "detached: back to the FP score");
        assertTrue(Double.isFinite(fp) && fp > 0 && Double.isFinite(f2), fp + " " + f2);
        assertTrue(Math.abs(f8 - fp) < Math.abs(f2 - fp), "W8A8 stays closer to FP than W2A3: FP " + fp + ", W8A8 " + f8 + ", W2A3 " + f2);
        assertTrue(Math.abs(f8 - fp) < 0.05 * fp, "W8A8 barely moves FID-FMNIST: " + fp + " -> " + f8);
    }

    @Test void theSearchRunsOnFidFmnistWithoutCalibrationData(@TempDir Path tmp) throws Exception {
        DiT m = tiny();
        CalibrationJob job = CalibrationJob.start(new CalibrationJob.Request(m, ModelIdentity.of(m, "tiny"), "q-dit",
                Map.of("search", true, "search_objective", "fid-fmnist", "search_images", 4, "search_steps", 2, "budget", 48.0,
                        "population", 3, "generations", 1), null, null, tmp.resolve("cache"), null));
        List<String> scores = new java.util.ArrayList<>();
        while (job.hasNext()) {
            CalibrationJob.Progress p = job.next();
            assertNotEquals(CalibrationJob.Phase.RECORD, p.phase(), "fid-fmnist samples its own images: no calibration data");
            if (p.message().startsWith("group-size search: generation")) scores.add(p.message().replaceAll(".*last score ", ""));
        }
        assertFalse(Files.exists(tmp.resolve("cache")));
        assertTrue(scores.size() >= 3, "every genome of the first population evaluated: " + scores);
        for (String sc : scores) assertTrue(Double.parseDouble(sc) > 1, "an FID-FMNIST, not an MSE: " + sc);
        QuantConfig c = job.result();
        assertEquals("fid-fmnist", c.method().options().getString("search_objective"));
        List<LayerOverride> genes = c.overrides().stream().filter(o -> o.pattern().startsWith("blocks.")).toList();
        assertFalse(genes.isEmpty());
        for (LayerOverride o : genes) {
            int g = ((Granularity.PerGroup) o.weight().granularity()).size();
            assertTrue(g == 32 || g == 64 || g == 128 && o.pattern().endsWith("fc2"), o.pattern() + ": " + g + " (fc1 is 64 wide, fc2 128)");
        }
    }

    @Test void modelsThatDoNotMakeFashionMnistImagesAreRefused() throws Exception {
        DiT small = QuantTestSupport.ditSmall();
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> new FidFmnistObjective(small, FmnistMetrics.loadDefault(), 8, SampleBatches.Settings.ddim(2, 1, 0, 4)));
        assertTrue(e.getMessage().contains("[N, 1, 28, 28]") && e.getMessage().contains("output-mse"), e.getMessage());
    }
}
