package io.diffquant.engine.temporal;

import io.diffquant.engine.io.JsonException;
import io.diffquant.engine.model.dit.DiT;
import io.diffquant.engine.quant.CalibratedParams;
import io.diffquant.engine.quant.QuantizedModel;
import io.diffquant.engine.quant.config.ModelIdentity;
import io.diffquant.engine.quant.config.QuantConfig;
import io.diffquant.engine.quant.config.QuantConfigCodec;
import io.diffquant.engine.quant.config.QuantConfigs;
import io.diffquant.engine.quant.config.TemporalSection;
import io.diffquant.engine.quant.format.IntFormat;
import io.diffquant.engine.quant.format.RangeEstimator;
import io.diffquant.engine.quant.spec.PointSpec;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Disturbance-aware selection picks the lower error per (feature, timestep); the map and the cache round-trip through a config. */
class SelectionConfigTest {
    @TempDir Path tmp;
    static final float[] GRID = {999, 750, 500, 250, 1};

    /** fp + noise of relative size amp[i][t] (same noise direction for every label). */
    static TemporalFeatures noisy(TemporalFeatures fp, double[][] amp, long seed) {
        Random r = new Random(seed);
        float[][] d = new float[fp.featureCount()][];
        int ny = fp.labelCount();
        for (int i = 0; i < d.length; i++) {
            d[i] = fp.raw(i).clone();
            int w = fp.width(i);
            for (int t = 0; t < fp.timestepCount(); t++) for (int y = 0; y < ny; y++) {
                int off = fp.offset(i, t, y);
                for (int j = 0; j < w; j++) d[i][off + j] += (float) (amp[i][t] * Math.abs(d[i][off + j]) * (r.nextBoolean() ? 1 : -1));
            }
        }
        return TemporalFeatures.of(fp.tib(), fp.timesteps(), fp.labels(), d);
    }

    static double relL2(TemporalFeatures fp, TemporalFeatures q, int i, int t) {
        double s = 0;
        for (int y = 0; y < fp.labelCount(); y++) {
            float[] a = fp.get(i, t, y), b = q.get(i, t, y);
            double num = 0, den = 0;
            for (int j = 0; j < a.length; j++) { num += ((double) b[j] - a[j]) * ((double) b[j] - a[j]); den += (double) a[j] * a[j]; }
            s += num / den;
        }
        return s / fp.labelCount();
    }

    @Test void selectionPicksTheLowerErrorPerFeatureAndTimestep() {
        DiT m = TemporalTestSupport.dit(TemporalTestSupport.DIT, 61);
        TemporalFeatures fp = TemporalFeatures.compute(m, GRID, null);
        double[][] a = new double[3][5], b = new double[3][5];
        for (int i = 0; i < 3; i++) for (int t = 0; t < 5; t++) {
            a[i][t] = 0.01 * (1 + (i + t) % 3);
            b[i][t] = 0.01 * (1 + (2 * i + t) % 3) + 0.001;
        }
        TemporalFeatures tibBased = noisy(fp, a, 1), cached = noisy(fp, b, 2);
        DisturbanceSelection.Result r = DisturbanceSelection.select(fp, tibBased, cached, TemporalErrors.Metric.REL_L2);
        int cacheCount = 0;
        for (int i = 0; i < 3; i++) for (int t = 0; t < 5; t++) {
            double ea = relL2(fp, tibBased, i, t), eb = relL2(fp, cached, i, t);
            assertEquals(eb < ea, r.useCache()[i][t], "feature " + i + " t " + t);
            assertEquals(Math.min(ea, eb), r.selected()[i][t], 1e-12);
            if (r.useCache()[i][t]) cacheCount++;
        }
        assertTrue(cacheCount > 0 && cacheCount < 15, "both strategies are chosen somewhere: " + cacheCount);
        assertEquals(cacheCount, r.cachedEntries());
        assertTrue(r.meanSelected() <= Math.min(r.tib().mean(TemporalErrors.Metric.REL_L2), r.cache().mean(TemporalErrors.Metric.REL_L2)));
        // cosine: higher is better
        DisturbanceSelection.Result c = DisturbanceSelection.select(fp, tibBased, cached, TemporalErrors.Metric.COSINE);
        for (int i = 0; i < 3; i++) for (int t = 0; t < 5; t++)
            assertEquals(c.cache().value(TemporalErrors.Metric.COSINE, i, t) > c.tib().value(TemporalErrors.Metric.COSINE, i, t), c.useCache()[i][t]);
    }

    static QuantConfig config(DiT m, TemporalSection s) {
        return new QuantConfig(ModelIdentity.of(m, "tiny"), null, null, PointSpec.FP, List.of(),
                CalibratedParams.EMPTY, null, null, s);
    }

    @Test void selectionMapAndCacheRoundTripThroughTheConfig() throws Exception {
        DiT m = TemporalTestSupport.dit(TemporalTestSupport.DIT, 62);
        TemporalInfoBlock tib = TemporalInfoBlock.of(m);
        TemporalFeatures fp = TemporalFeatures.compute(m, GRID, null);
        FeatureCache cache = FeatureCache.build(fp, IntFormat.asymmetric(6), FeatureCache.CacheGranularity.CHUNK, new RangeEstimator.LpSearch(2, 80, 0.01));
        boolean[][] map = {{true, false, true, false, true}, {false, false, false, false, false}, {true, true, true, true, false}};
        TemporalSection s = TemporalRuntime.section(tib, true, true, "all", true, true, GRID, tib.labels(), cache, map);
        QuantConfig c = config(m, s);
        Path f1 = tmp.resolve("c.json"), f2 = tmp.resolve("d.json");
        QuantConfigCodec.write(c, f1);
        assertTrue(Files.isRegularFile(tmp.resolve("c.temporal.safetensors")));
        QuantConfig back = QuantConfigCodec.read(f1);
        assertEquals(s, back.temporal(), "exact round trip of switches, timesteps, labels, features, cache and map");
        assertArrayEquals(map[2], back.temporal().selectionMap()[2]);
        assertEquals(cache.bytes(), back.temporal().cached().bytes());
        QuantConfigCodec.write(back, f2);
        assertEquals(Files.readString(f1).replace("c.temporal", "X"), Files.readString(f2).replace("d.temporal", "X"), "byte-identical JSON");
        assertArrayEquals(Files.readAllBytes(tmp.resolve("c.temporal.safetensors")), Files.readAllBytes(tmp.resolve("d.temporal.safetensors")));
        String json = Files.readString(f1);
        assertTrue(json.contains("\"fsc_scope\": \"all\"") && json.contains("\"selection_map\""), json.substring(0, Math.min(400, json.length())));

        // applying the config attaches the cache hooks with the map; detaching removes them
        QuantizedModel q = QuantConfigs.attach(back, m, false);
        TemporalFeatures seen = TemporalFeatures.computeQuantized(q, GRID, null);
        TemporalFeatures deq = cache.dequantized();
        for (int i = 0; i < 3; i++) for (int t = 0; t < 5; t++)
            assertArrayEquals((map[i][t] ? deq : fp).get(i, t, 4), seen.get(i, t, 4), 0f, "feature " + i + " t " + t);
        q.detach();
        for (String l : tib.layers()) assertTrue(m.layers().get(l).hooks().isEmpty(), l);

        // a TIB-only section (no cache) round-trips too and attaches nothing
        TemporalSection plain = TemporalRuntime.section(tib, true, false, "tib", false, false, GRID, tib.labels(), null, null);
        QuantConfigCodec.write(config(m, plain), tmp.resolve("p.json"));
        assertFalse(Files.exists(tmp.resolve("p.temporal.safetensors")));
        QuantConfig pb = QuantConfigCodec.read(tmp.resolve("p.json"));
        assertEquals(plain, pb.temporal());
        assertNull(pb.temporal().cached());
        assertEquals(plain, QuantConfigCodec.parse(QuantConfigCodec.toJson(config(m, plain)), "text").temporal());
    }

    @Test void badTemporalSectionsNameTheJsonPath() throws Exception {
        DiT m = TemporalTestSupport.dit(TemporalTestSupport.DIT, 63);
        TemporalInfoBlock tib = TemporalInfoBlock.of(m);
        FeatureCache cache = FeatureCache.build(TemporalFeatures.compute(m, GRID, null), IntFormat.asymmetric(8), FeatureCache.CacheGranularity.TENSOR,
                new RangeEstimator.LpSearch(2, 80, 0.01));
        boolean[][] map = new boolean[3][5];
        Path f = tmp.resolve("c.json");
        QuantConfigCodec.write(config(m, TemporalRuntime.section(tib, true, true, "tib", true, true, GRID, tib.labels(), cache, map)), f);
        String good = Files.readString(f);
        String[][] cases = {
                {"\"version\": 1,\n    \"tiar\"", "\"version\": 2,\n    \"tiar\"", "$.temporal.version: unsupported temporal section version 2"},
                {"\"fsc_scope\": \"tib\"", "\"fsc_scope\": \"some\"", "$.temporal.fsc_scope: expected \"tib\" or \"all\""},
                {"\"blocks.0\": [\"tib\", \"tib\", \"tib\", \"tib\", \"tib\"]",
                        "\"blocks.0\": [\"tib\", \"tib\", \"maybe\", \"tib\", \"tib\"]",
                        "$.temporal.selection_map['blocks.0'][2]: expected \"cache\" or \"tib\", got \"maybe\""},
                {"\"width\": 64", "\"width\": 0", "$.temporal.features[2].width: must be >= 1"},
                {"\"tiar\": true", "\"tiar\": true, \"colour\": 1", "$.temporal.colour: unknown field"},
        };
        for (String[] c : cases) {
            assertTrue(good.contains(c[0]), "test text not found: " + c[0]);
            Files.writeString(f, good.replace(c[0], c[1]));
            JsonException e = assertThrows(JsonException.class, () -> QuantConfigCodec.read(f));
            assertTrue(e.getMessage().contains(c[2]), e.getMessage());
        }
        // the sidecar is checked by hash
        Files.writeString(f, good);
        Files.write(tmp.resolve("c.temporal.safetensors"), new byte[] {1}, java.nio.file.StandardOpenOption.APPEND);
        JsonException e = assertThrows(JsonException.class, () -> QuantConfigCodec.read(f));
        assertTrue(e.getMessage().contains("$.temporal.cached_features.file.sha256"), e.getMessage());
        // parsing text cannot reach the sidecar
        e = assertThrows(JsonException.class, () -> QuantConfigCodec.parse(good, "text.json"));
        assertTrue(e.getMessage().contains("$.temporal.cached_features.file"), e.getMessage());
        // a config for another structure is refused when applied
        DiT other = TemporalTestSupport.dit(TemporalTestSupport.DIT_UNCOND, 64);
        QuantConfig cfg = config(m, TemporalRuntime.section(tib, true, true, "tib", true, false, GRID, tib.labels(), cache, null));
        JsonException e2 = assertThrows(JsonException.class, () -> QuantConfigs.attach(cfg.withSource("cfg.json"), other, true));
        assertTrue(e2.getMessage().contains("$.temporal"), e2.getMessage());
    }
}
