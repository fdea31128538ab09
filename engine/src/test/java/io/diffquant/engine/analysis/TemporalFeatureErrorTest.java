package io.diffquant.engine.analysis;

import io.diffquant.engine.model.dit.DiT;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class TemporalFeatureErrorTest {

    @Test void identicalConfigurationHasZeroErrorAndUnitCosine() {
        DiT m = AnalysisTestSupport.tinyDiT(1);
        AnalysisSession s = new AnalysisSession(m, AnalysisTestSupport.fast());
        TemporalFeatureError.Result r = TemporalFeatureError.evaluate(s, List.of(Variant.fullPrecision("fp")));
        assertEquals(List.of("blocks.0", "blocks.1", "final_layer"), r.features(), "features named after the consuming block (TemporalInfoBlock)");
        assertEquals(4, r.timesteps().length);
        assertEquals(3, r.labels().length, "3 classes, no guidance: no null class");
        TemporalFeatureError.ConfigError c = r.config("fp");
        for (int i = 0; i < 3; i++) for (int k = 0; k < 4; k++) {
            assertEquals(0.0, c.relativeL2()[i][k], 0.0);
            assertEquals(0.0, c.mse()[i][k], 0.0);
            assertEquals(1.0, c.cosine()[i][k], 1e-12);
        }
    }

    @Test void injectedScaleGivesItsRelativeErrorOnThatFeatureOnly() {
        DiT m = AnalysisTestSupport.tinyDiT(2);
        AnalysisSession s = new AnalysisSession(m, AnalysisTestSupport.fast());
        TemporalFeatureError.ConfigError c = TemporalFeatureError.evaluate(s,
                AnalysisTestSupport.scaled("x1.1", "blocks.1.adaLN_modulation.1", 1.1f));
        FeatureTable fp = s.fpFeatures();
        for (int k = 0; k < 4; k++) {
            // ||(1.1 - 1) e||² / ||e||² = 0.01 (float rounding of 1.1f and of the products: 1e-6 relative)
            assertEquals(0.01, c.relativeL2()[1][k], 1e-6);
            assertEquals(1.0, c.cosine()[1][k], 1e-6);
            assertEquals(0.0, c.relativeL2()[0][k], 0.0);
            assertEquals(0.0, c.relativeL2()[2][k], 0.0);
            // MSE = 0.01 * mean over labels of mean(e²)
            String f = "blocks.1";
            double expect = 0;
            for (int r = 0; r < fp.rows(); r++) {
                double ss = 0;
                for (float v : fp.vector(f, k, r)) ss += (double) v * v;
                expect += 0.01 * ss / fp.dim(f) / fp.rows();
            }
            assertEquals(expect, c.mse()[1][k], expect * 1e-5);
        }
    }

    @Test void lowerBitsGiveLargerErrorThanHigherBits() {
        DiT m = AnalysisTestSupport.tinyDiT(3);
        AnalysisSession s = new AnalysisSession(m, AnalysisTestSupport.fast());
        TemporalFeatureError.Result r = TemporalFeatureError.evaluate(s, List.of(
                Variant.of("w3", AnalysisTestSupport.rtn(m, 3), false), Variant.of("w8", AnalysisTestSupport.rtn(m, 8), false)));
        double w3 = r.config("w3").meanRelativeL2(), w8 = r.config("w8").meanRelativeL2();
        assertTrue(w8 > 0, "8-bit weights still change the features");
        assertTrue(w3 > 20 * w8, "w3 " + w3 + " vs w8 " + w8);
        for (double[] row : r.config("w3").relativeL2()) for (double v : row) assertTrue(v > 0);
        assertTrue(m.layers().all().stream().allMatch(l -> l.hooks().isEmpty()), "variants are detached after the evaluation");
    }

    @Test void fullPrecisionFeaturesAreComputedOnceAcrossEvaluations() {
        DiT m = AnalysisTestSupport.tinyDiT(4);
        AnalysisSession s = new AnalysisSession(m, AnalysisTestSupport.fast());
        AtomicLong calls = AnalysisTestSupport.countCalls(m, "t_embedder.mlp.0");
        Variant a = Variant.of("w4", AnalysisTestSupport.rtn(m, 4), false);
        TemporalFeatureError.evaluate(s, a);
        int steps = s.timesteps().length;
        assertEquals(2L * steps, calls.get(), "first evaluation: FP table and quantized table, one TIB call per timestep each");
        assertEquals(0, s.denoiserCalls(), "the temporal features never run the full denoiser");
        long before = calls.get();
        TemporalFeatureError.evaluate(s, Variant.of("w6", AnalysisTestSupport.rtn(m, 6), false));
        TemporalFeatureError.evaluate(s, a);
        assertEquals(before + 2L * steps, calls.get(), "later evaluations compute only the quantized side");
        assertEquals(3, s.featureTablesComputed() - 1, "one FP table, three quantized ones");
    }

    @Test void applyingOnlyTheTibGivesTheSameFeaturesAsTheWholeConfig() {
        DiT m = AnalysisTestSupport.tinyDiT(16);
        AnalysisSession s = new AnalysisSession(m, AnalysisTestSupport.fast());
        Variant restricted = Variant.of("w4", AnalysisTestSupport.rtn(m, 4), false);
        Variant whole = new Variant("w4-whole", restricted.application()::apply);   // no applyTo: applies every layer
        FeatureTable a = s.features(restricted), b = s.features(whole);
        for (String f : a.features()) assertArrayEquals(b.data(f), a.data(f), 0f, f);
        assertTrue(TemporalFeatureError.compare("w4", s.fpFeatures(), a).meanRelativeL2() > 0);
    }

    @Test void anAttachedQuantizedModelIsParkedOutsideItsEvaluation() throws Exception {
        DiT m = AnalysisTestSupport.tinyDiT(17);
        var config = AnalysisTestSupport.rtn(m, 4);
        var q = io.diffquant.engine.quant.config.QuantConfigs.attach(config, m, false);
        try {
            Variant attached = Variant.of("attached", q);
            AnalysisSession s = new AnalysisSession(m, AnalysisTestSupport.fast());
            TemporalFeatureError.Result r = TemporalFeatureError.evaluate(s, List.of(Variant.fullPrecision("fp"), attached));
            assertEquals(0.0, r.config("fp").meanRelativeL2(), 0.0, "the FP table is computed with the quantization switched off");
            q.detach();
            TemporalFeatureError.ConfigError fromConfig = TemporalFeatureError.evaluate(s, Variant.of("config", config, false));
            assertArrayEquals(fromConfig.relativeL2()[0], r.config("attached").relativeL2()[0], 0.0);
            assertTrue(fromConfig.meanRelativeL2() > 0);
        } finally {
            q.detach();
        }
    }

    @Test void compareRejectsTablesOfAnotherLayout() {
        FeatureTable a = new FeatureTable(List.of("f"), new int[] {9, 0}, null, Map.of("f", new float[] {1, 2, 3, 4}));
        FeatureTable b = new FeatureTable(List.of("f"), new int[] {9, 1}, null, Map.of("f", new float[] {1, 2, 3, 4}));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> TemporalFeatureError.compare("q", a, b));
        assertTrue(e.getMessage().contains("'q'"), e.getMessage());
    }

    @Test void compareOnAHandMadeTable() {
        // one feature of width 2, two timesteps, unconditional
        FeatureTable fp = new FeatureTable(List.of("f"), new int[] {999, 0}, null, Map.of("f", new float[] {3, 4, 1, 0}));
        FeatureTable q = new FeatureTable(List.of("f"), new int[] {999, 0}, null, Map.of("f", new float[] {3, 5, 0, 1}));
        TemporalFeatureError.ConfigError c = TemporalFeatureError.compare("q", fp, q);
        assertEquals(1.0 / 25, c.relativeL2()[0][0], 1e-15);
        assertEquals(0.5, c.mse()[0][0], 1e-15);
        assertEquals((9 + 20) / (5 * Math.sqrt(34)), c.cosine()[0][0], 1e-12);
        assertEquals(2.0, c.relativeL2()[0][1], 1e-15);
        assertEquals(0.0, c.cosine()[0][1], 1e-15);
        assertEquals((1.0 / 25 + 2.0) / 2, c.meanRelativeL2(), 1e-15);
    }
}
