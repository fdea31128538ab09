package io.diffquant.engine.quant.calib;

import io.diffquant.engine.diffusion.SampleRequest;
import io.diffquant.engine.diffusion.Sampling;
import io.diffquant.engine.diffusion.SamplingRun;
import io.diffquant.engine.io.JsonException;
import io.diffquant.engine.model.dit.DiT;
import io.diffquant.engine.quant.QuantTestSupport;
import io.diffquant.engine.quant.config.ModelIdentity;
import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Calibration data: recorded x_t equal the sampler's, stored and reopened, resumed, subsets deterministic, streamed in batches. */
class CalibrationSetTest {
    @TempDir Path tmp;

    /** 5 images in runs of 2 (3 files), 6 DDIM steps, classifier-free guidance (the model sees 2 rows per image). */
    static CalibrationSettings settings() {
        return new CalibrationSettings("ddim", 6, 0, "linear", 2.0, 5, 2, 7, TimestepSubset.uniform(3, 4, 11), 3, 4096);
    }

    @Test void recordsWhatTheModelSawAndReopens() throws Exception {
        DiT m = QuantTestSupport.ditSmall();
        ModelIdentity id = ModelIdentity.of(m, "dit-small");
        CalibrationSettings s = settings();
        CalibrationSet set = CalibrationSet.record(m, id, s, tmp.resolve("c"));
        assertTrue(set.complete());
        assertEquals(3, set.files().size());
        assertEquals(10, set.rows(), "5 images x 2 (conditional + null class)");
        int[] spaced = io.diffquant.engine.diffusion.Respacing.spaceTimesteps(1000, s.respacing());
        int[] desc = new int[spaced.length];
        for (int i = 0; i < desc.length; i++) desc[i] = spaced[spaced.length - 1 - i];
        assertEquals(6, desc.length);
        assertArrayEquals(desc, set.timesteps(), "the respaced ORIGINAL timestep values, in sampling order");
        // the second run's inputs, recomputed with the sampler: x_t before every step (doubled for CFG)
        SampleRequest req = s.request(m, 1);
        SamplingRun run = Sampling.start(req);
        List<Tensor> xs = new ArrayList<>();
        while (run.hasNext()) { xs.add(run.current()); run.next(); }
        CalibrationSet re = CalibrationSet.open(tmp.resolve("c"));
        assertEquals(s, re.settings());
        assertEquals(id, re.model());
        TimestepSubset all = TimestepSubset.all();
        int k = 0;
        for (CalibBatch b : re.batches(all, 100)) {
            assertEquals(set.timesteps()[k], (int) b.t());
            assertEquals(10, b.size());
            Tensor xt = xs.get(k);
            // rows 4..7 are run 1: images 2, 3 then their null-class copies
            for (int r = 0; r < 4; r++) {
                int img = r % 2;
                for (int j = 0; j < 256; j++) assertEquals(xt.data()[img * 256 + j], b.x().data()[(4 + r) * 256 + j], 0f, "t " + b.t() + " row " + r);
            }
            assertArrayEquals(new int[] {0, 1, 10, 10, 2, 3, 10, 10, 4, 10}, b.y(), "labels as the model saw them (10 = null class)");
            k++;
        }
        assertEquals(6, k);
    }

    @Test void resumesAtTheFirstMissingRunWithIdenticalFiles() throws Exception {
        DiT m = QuantTestSupport.ditSmall();
        ModelIdentity id = ModelIdentity.of(m, "dit-small");
        Path dir = tmp.resolve("r");
        CalibrationRecorder rec = CalibrationRecorder.start(m, id, settings(), dir);
        int steps = 0;
        while (rec.runsDone() < 2) { rec.next(); steps++; }
        assertEquals(12, steps);
        rec.cancel();
        assertTrue(!rec.hasNext());
        byte[] run1 = Files.readAllBytes(dir.resolve("run-00001.safetensors"));
        CalibrationRecorder again = CalibrationRecorder.start(m, id, settings(), dir);
        assertEquals(2, again.runsDone(), "two runs were complete");
        while (again.hasNext()) again.next();
        CalibrationSet full = again.result();
        assertTrue(full.complete());
        CalibrationSet fresh = CalibrationSet.record(m, id, settings(), tmp.resolve("fresh"));
        for (int i = 0; i < 3; i++) {
            String f = String.format("run-%05d.safetensors", i);
            assertArrayEquals(Files.readAllBytes(tmp.resolve("fresh").resolve(f)), Files.readAllBytes(dir.resolve(f)), f);
        }
        assertArrayEquals(run1, Files.readAllBytes(dir.resolve("run-00001.safetensors")));
        // another recording in the same directory is refused
        CalibrationSettings other = settings().withSampling("ddim", 5, 5, 2, 7);
        JsonException e = assertThrows(JsonException.class, () -> CalibrationRecorder.start(m, id, other, dir));
        assertTrue(e.getMessage().contains("$.settings") && e.getMessage().contains("other settings"), e.getMessage());
        DiT changed = QuantTestSupport.ditSmall();
        changed.layers().get("blocks.0.mlp.fc1").param("bias").data()[0] += 1;
        e = assertThrows(JsonException.class, () -> CalibrationRecorder.start(changed, ModelIdentity.of(changed, "x"), settings(), dir));
        assertTrue(e.getMessage().contains("$.model") && e.getMessage().contains("another model"), e.getMessage());
    }

    @Test void subsetsAreDeterministicAndStreamInBatches() throws Exception {
        int[] ts = new int[50];
        for (int i = 0; i < 50; i++) ts[i] = 999 - 20 * i;
        TimestepSubset u = TimestepSubset.uniform(10, 8, 3);
        List<TimestepSubset.Selection> a = u.select(ts, 64), b = u.select(ts, 64);
        assertEquals(a, b, "same subset, same selection");
        assertEquals(10, a.size());
        for (int i = 0; i < 10; i++) {
            assertEquals(ts[5 * i], a.get(i).t(), "every 5th step (Q-Diffusion's uniform spacing)");
            assertEquals(8, a.get(i).rows().length);
            assertEquals(8, new HashSet<>(java.util.Arrays.stream(a.get(i).rows()).boxed().toList()).size(), "rows without replacement");
        }
        assertNotEquals(a, TimestepSubset.uniform(10, 8, 4).select(ts, 64), "another seed, other rows");
        List<TimestepSubset.Selection> r1 = TimestepSubset.random(7, 0, 5).select(ts, 64), r2 = TimestepSubset.random(7, 0, 5).select(ts, 64);
        assertEquals(r1, r2);
        Set<Integer> picked = new HashSet<>();
        int prev = Integer.MAX_VALUE;
        for (TimestepSubset.Selection s : r1) {
            assertTrue(s.t() < prev, "sampling order");
            prev = s.t();
            picked.add(s.t());
            assertEquals(64, s.rows().length, "0 = all rows");
        }
        assertEquals(7, picked.size());
        assertNotEquals(r1, TimestepSubset.random(7, 0, 6).select(ts, 64));

        DiT m = QuantTestSupport.ditSmall();
        CalibrationSet set = CalibrationSet.record(m, ModelIdentity.of(m, "d"), settings(), tmp.resolve("s"));
        TimestepSubset sub = settings().subset();
        List<TimestepSubset.Selection> sel = set.select(sub);
        assertEquals(3, sel.size());
        int batches = 0;
        List<Integer> rows = new ArrayList<>();
        for (CalibBatch cb : set.batches(sub, 3)) {
            assertTrue(cb.size() <= 3);
            for (int r : cb.rows()) rows.add(r);
            batches++;
        }
        assertEquals(set.batchCount(sub, 3), batches);
        assertEquals(3 * 2, batches, "4 rows per timestep in batches of 3 never mixing timesteps");
        List<Integer> expected = new ArrayList<>();
        for (TimestepSubset.Selection s : sel) for (int r : s.rows()) expected.add(r);
        assertEquals(expected, rows);
        // streamed rows equal the full tensor's rows
        CalibBatch first = set.batches(sub, 3).iterator().next();
        CalibBatch full = set.batches(TimestepSubset.all(), 100).iterator().next();
        assertEquals(full.t(), first.t());
        for (int i = 0; i < first.size(); i++) {
            int r = first.rows()[i];
            for (int j = 0; j < 256; j++) assertEquals(full.x().data()[r * 256 + j], first.x().data()[i * 256 + j], 0f);
            assertEquals(full.y()[r], first.y()[i]);
        }
    }
}
