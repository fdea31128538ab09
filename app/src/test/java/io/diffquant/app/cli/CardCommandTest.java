package io.diffquant.app.cli;

import io.diffquant.engine.card.ModelCardJob;
import io.diffquant.engine.card.ReproductionSample;
import io.diffquant.engine.io.Json;
import io.diffquant.engine.io.JsonView;
import io.diffquant.engine.model.ModelFolder;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.*;

/** The card command on a tiny random 28x28x1 DiT: the folder it writes, progress and timings, --bench-only, --rerender, errors. */
class CardCommandTest {

    @Test void cardWritesTheFolderAndBenchOnlyAndRerenderUpdateIt(@TempDir Path tmp) throws Exception {
        Path model = EvalCommandTest.tinyFmnistDiT(tmp);
        Path out = tmp.resolve("cards").resolve("tiny-dit");
        CliTest.Result r = CliTest.run("card", "--model", model.toString(), "--out", out.toString(), "--count", "20", "--steps", "2",
                "--batch", "10", "--cfg", "2", "--repro-count", "4", "--repro-steps", "2", "--bench-count", "0", "--no-real-data", "--threads", "1");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().startsWith("card written: " + out), r.out());
        assertTrue(r.err().contains("evaluation: 20 images, 2 DDIM steps, CFG 2") && r.err().contains("timings (wall / CPU seconds)"), r.err());
        for (String f : new String[] {ModelCardJob.CARD, ModelCardJob.METRICS, ModelCardJob.GRID, ReproductionSample.FILE, ModelFolder.CONFIG,
                ModelFolder.DIT_WEIGHTS}) assertTrue(Files.isRegularFile(out.resolve(f)), f);
        JsonView rec = Json.read(out.resolve(ModelCardJob.METRICS));
        assertEquals("tiny-dit-fmnist", rec.requireString("name"), "the model folder's name");
        assertEquals(2.0, rec.get("sampling").requireDouble("cfg"));
        assertFalse(rec.has("cfg_sweep"), "--cfg skips the sweep");
        assertFalse(rec.has("benchmark"));
        assertFalse(rec.has("real_data"));

        CliTest.Result b = CliTest.run("card", "--out", out.toString(), "--bench-only", "--bench-count", "3", "--bench-steps", "2");
        assertEquals(0, b.code(), b.err());
        JsonView bm = Json.read(out.resolve(ModelCardJob.METRICS)).get("benchmark");
        assertEquals(3, bm.requireInt("images"));
        assertEquals(6, bm.requireInt("denoiser_rows_per_step"), "CFG doubles the rows");
        assertTrue(bm.requireDouble("wall_seconds") > 0);
        assertTrue(Files.readString(out.resolve(ModelCardJob.CARD)).contains("## Sampling speed"));

        CliTest.Result rr = CliTest.run("card", "--out", out.toString(), "--rerender", "--training-note", "a note for the card");
        assertEquals(0, rr.code(), rr.err());
        assertTrue(Files.readString(out.resolve(ModelCardJob.CARD)).contains("a note for the card"));
        assertEquals("a note for the card", Json.read(out.resolve(ModelCardJob.METRICS)).requireString("training_note"));
    }

    @Test void clearErrors(@TempDir Path tmp) throws Exception {
        CliTest.Result noModel = CliTest.run("card", "--out", tmp.resolve("x").toString());
        assertEquals(2, noModel.code());
        assertTrue(noModel.err().contains("--model"), noModel.err());
        CliTest.Result notACard = CliTest.run("card", "--out", tmp.toString(), "--bench-only");
        assertEquals(2, notACard.code());
        assertTrue(notACard.err().contains("metrics.json") && notACard.err().contains("not a model card folder"), notACard.err());
        Path model = EvalCommandTest.tinyFmnistDiT(tmp);
        CliTest.Result same = CliTest.run("card", "--model", model.toString(), "--out", model.toString(), "--count", "10");
        assertEquals(2, same.code());
        assertTrue(same.err().contains("must not be"), same.err());
    }
}
