package io.diffquant.app.cli;

import io.diffquant.engine.diffusion.SampleBatches;
import io.diffquant.engine.io.SafetensorsReader;
import io.diffquant.engine.metrics.FmnistMetrics;
import io.diffquant.engine.metrics.MetricsTable;
import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.model.ModelFolder;
import io.diffquant.engine.quant.QuantizedModel;
import io.diffquant.engine.quant.config.QuantConfigs;
import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.*;

/** sample --config and eval --config on a tiny random 28x28x1 DiT with a config from 'calibrate --method rtn'. */
class QuantSampleEvalTest {

    static Path rtnConfig(Path tmp, Path model, String bits) {
        Path cfg = tmp.resolve("rtn-" + bits + ".json");
        CliTest.Result r = CliTest.run("calibrate", "-m", model.toString(), "--method", "rtn", "--wbits", bits.substring(1, 2), "--abits",
                bits.substring(3), "--steps", "3", "--samples", "2", "--batch", "2", "--timesteps", "2", "--per-timestep", "2", "--out", cfg.toString());
        assertEquals(0, r.code(), r.err());
        return cfg;
    }

    static Tensor images(Path file) throws Exception {
        try (SafetensorsReader r = SafetensorsReader.open(file)) {
            return r.readFloat("images");
        }
    }

    @Test void sampleWithConfigIsTheFakeQuantizedModel(@TempDir Path tmp) throws Exception {
        Path model = EvalCommandTest.tinyFmnistDiT(tmp);
        Path cfg = rtnConfig(tmp, model, "W4A8");
        Path fp = tmp.resolve("fp.safetensors"), q = tmp.resolve("q.safetensors");
        CliTest.Result r = CliTest.run("sample", "-m", model.toString(), "--steps", "3", "--count", "5", "--batch", "3", "--cfg", "2",
                "--seed", "4", "--out", tmp.resolve("fp.png").toString(), "--tensors", fp.toString());
        assertEquals(0, r.code(), r.err());
        r = CliTest.run("sample", "-m", model.toString(), "--config", cfg.toString(), "--steps", "3", "--count", "5", "--batch", "3",
                "--cfg", "2", "--seed", "4", "--out", tmp.resolve("q.png").toString(), "--tensors", q.toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("quantized by " + cfg + ": rtn, ") && r.out().contains("weights quantized"), r.out());
        try (SafetensorsReader s = SafetensorsReader.open(q)) {
            assertEquals(cfg.toString(), s.metadata().get("quant_config"));
        }

        // independent of the CLI: the engine's config applied in-process, sampled in one batch, gives the same images
        DiffusionModel m = ModelFolder.load(model).model();
        int[] y = {0, 1, 2, 3, 4};
        SampleBatches.Settings s = SampleBatches.Settings.ddim(3, 2, 4, 5);
        Tensor fpDirect = SampleBatches.sample(m, s, 5, y, null);
        QuantizedModel qm = QuantConfigs.apply(m, cfg, false);
        Tensor qDirect = SampleBatches.sample(m, s, 5, y, null);
        qm.detach();
        Tensor fpCli = images(fp), qCli = images(q);
        assertArrayEquals(fpDirect.data(), fpCli.data(), 1e-5f);
        assertArrayEquals(qDirect.data(), qCli.data(), 1e-5f);
        double diff = 0;
        for (int i = 0; i < fpCli.size(); i++) diff = Math.max(diff, Math.abs(fpCli.data()[i] - qCli.data()[i]));
        assertTrue(diff > 1e-3, "W4A8 changes the samples (max |diff| " + diff + ")");
    }

    @Test void evalWithConfigMeasuresTheQuantizedSamples(@TempDir Path tmp) throws Exception {
        Path model = EvalCommandTest.tinyFmnistDiT(tmp);
        Path cfg = rtnConfig(tmp, model, "W8A8");
        Path fp = tmp.resolve("fp.safetensors"), qs = tmp.resolve("q.safetensors"), json = tmp.resolve("q.json");
        assertEquals(0, CliTest.run("sample", "-m", model.toString(), "--steps", "3", "--count", "6", "--seed", "1",
                "--out", tmp.resolve("fp.png").toString(), "--tensors", fp.toString()).code());
        CliTest.Result r = CliTest.run("eval", "-m", model.toString(), "--config", cfg.toString(), "--count", "6", "--steps", "3", "--seed", "1",
                "--reference", fp.toString(), "--tensors", qs.toString(), "--out-json", json.toString());
        assertEquals(0, r.code(), r.err());
        MetricsTable t = MetricsTable.fromJson(Files.readString(json));
        assertTrue(t.info().get("quantization").startsWith(cfg + ": rtn, "), t.info().toString());
        // the table is the metrics of the quantized samples (written by --tensors) against the FP reference
        Tensor q = EvalCommand.clampUnit(images(qs)), ref = EvalCommand.clampUnit(images(fp));
        MetricsTable direct = FmnistMetrics.loadDefault().evaluate(q, new int[] {0, 1, 2, 3, 4, 5}, ref);
        double fid = t.row(MetricsTable.FID_FMNIST).orElseThrow().value();
        assertEquals(direct.row(MetricsTable.FID_FMNIST).orElseThrow().value(), fid, 1e-9 * (1 + fid));
        double psnr = t.row(MetricsTable.PSNR).orElseThrow().value();
        assertEquals(direct.row(MetricsTable.PSNR).orElseThrow().value(), psnr, 1e-9);
        assertTrue(psnr > 20 && psnr < 90, "W8A8 is close to FP but not identical: PSNR " + psnr);
    }

    @Test void aConfigForAnotherModelIsRefusedUnlessForced(@TempDir Path tmp) throws Exception {
        Path model = EvalCommandTest.tinyFmnistDiT(tmp);
        Path cfg = rtnConfig(tmp, model, "W8A8");
        // the same architecture with other weights
        Path other = tmp.resolve("other");
        Files.createDirectories(other);
        DiffusionModel m = ModelFolder.load(model).model();
        for (Tensor t : m.stateDict().values()) for (int i = 0; i < t.size(); i++) t.data()[i] *= 1.01f;
        ModelFolder.save(m, new com.fasterxml.jackson.databind.ObjectMapper().readTree(Files.readString(model.resolve("config.json"))),
                other.resolve("m"), null);
        for (String cmd : new String[] {"sample", "eval"}) {
            CliTest.Result r = CliTest.run(cmd, "-m", other.resolve("m").toString(), "--config", cfg.toString(), "--steps", "2", "--count", "2",
                    cmd.equals("sample") ? "--out" : "--out-json", tmp.resolve(cmd.equals("sample") ? "x.png" : "x.json").toString());
            assertEquals(2, r.code(), cmd + ": " + r.out());
            String e = r.err().strip();
            assertEquals(1, e.lines().count(), "one-line error: " + e);
            assertTrue(e.startsWith("error: " + cfg + ": $.model: refusing to apply this config: the config was calibrated on other weights"), e);
            assertTrue(e.contains("use --force"), e);
        }
        CliTest.Result r = CliTest.run("sample", "-m", other.resolve("m").toString(), "--config", cfg.toString(), "--force", "--steps", "2",
                "--count", "2", "--out", tmp.resolve("x.png").toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("(--force)"), r.out());
        r = CliTest.run("sample", "-m", model.toString(), "--force", "--steps", "2", "--count", "2", "--out", tmp.resolve("x.png").toString());
        assertEquals(2, r.code());
        assertTrue(r.err().contains("--force given without --config"), r.err());
        // a config of a DiT on a UNet: the architecture is named
        r = CliTest.run("sample", "-m", CliTest.GOLDEN.resolve("unet-small").toString(), "--config", cfg.toString(), "--steps", "2", "--count", "2",
                "--out", tmp.resolve("x.png").toString());
        assertEquals(2, r.code());
        assertTrue(r.err().contains("$.model: refusing to apply this config") && r.err().contains("DiT"), r.err());
    }
}
