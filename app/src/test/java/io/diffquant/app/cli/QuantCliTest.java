package io.diffquant.app.cli;

import io.diffquant.engine.quant.config.QuantConfig;
import io.diffquant.engine.quant.config.QuantConfigCodec;
import io.diffquant.engine.quant.export.QuantizedCheckpoint;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;

import static io.diffquant.app.cli.CliTest.GOLDEN;
import static io.diffquant.app.cli.CliTest.run;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** calibrate and quantize on the golden models. */
class QuantCliTest {
    @Test void calibrateThenQuantize(@TempDir Path tmp) throws Exception {
        Path cfg = tmp.resolve("dit-w4a8.json");
        CliTest.Result r = run("calibrate", "-m", GOLDEN.resolve("dit-small").toString(), "--method", "rtn", "--wbits", "4", "--abits", "8",
                "--override", "final_layer=off", "--override", "blocks.*.mlp.fc1=w:int4-sym/group32", "--steps", "4", "--samples", "2",
                "--batch", "2", "--timesteps", "2", "--per-timestep", "2", "--out", cfg.toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("rtn calibrated"), r.out());
        QuantConfig c = QuantConfigCodec.read(cfg);
        assertEquals("rtn", c.method().preset());
        assertEquals(4, c.method().options().getInt("w_bits"));
        assertEquals(4, c.calibration().steps());
        assertEquals("blocks.*.mlp.fc1", c.overrides().getLast().pattern());
        assertTrue(Files.isRegularFile(tmp.resolve("dit-w4a8.calib").resolve("calibration.json")));
        Path ckpt = tmp.resolve("dit-w4a8.safetensors");
        r = run("quantize", "-m", GOLDEN.resolve("dit-small").toString(), "--config", cfg.toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("checkpoint -> "), r.out());
        QuantizedCheckpoint.Loaded l = QuantizedCheckpoint.load(ckpt);
        assertEquals("DiT", l.model().architecture());
        // the config refuses another model
        r = run("quantize", "-m", GOLDEN.resolve("unet-small").toString(), "--config", cfg.toString());
        assertEquals(2, r.code());
        assertTrue(r.err().contains("$.model") && r.err().contains("--force"), r.err());
    }

    @Test void badOverridesAndOptionsAreOneLineErrors(@TempDir Path tmp) {
        CliTest.Result r = run("calibrate", "-m", GOLDEN.resolve("unet-small").toString(), "--method", "fp4dit", "--override", "decoder.*=off",
                "--out", tmp.resolve("x.json").toString());
        assertEquals(2, r.code());
        assertTrue(r.err().startsWith("error: --override #1 'decoder.*=off': pattern 'decoder.*' matches no quantizable layer"), r.err());
        r = run("calibrate", "-m", GOLDEN.resolve("unet-small").toString(), "--method", "fp4dit", "--override", "conv_in=w:int9",
                "--out", tmp.resolve("x.json").toString());
        assertEquals(2, r.code());
        assertTrue(r.err().contains("--override #1") && r.err().contains("int9"), r.err());
        r = run("calibrate", "-m", GOLDEN.resolve("unet-small").toString(), "--method", "q-dit", "--option", "groupsize=64",
                "--out", tmp.resolve("x.json").toString());
        assertEquals(2, r.code());
        assertTrue(r.err().contains("unknown option \"groupsize\" for preset \"q-dit\""), r.err());
        r = run("calibrate", "--help");
        assertEquals(0, r.code());
        assertTrue(r.out().contains("--override") && r.out().contains("--method"), r.out());
        r = run("calibrate", "--list-options", "-m", "x");
        assertEquals(0, r.code());
        assertTrue(r.out().contains("fp4dit: ") && r.out().contains("group_size (int, default 128)"), r.out());
    }

    @Test void dynamicMethodsNeedNoCalibrationData(@TempDir Path tmp) throws Exception {
        Path cfg = tmp.resolve("u.json");
        // fp4dit with round-to-nearest weights (its default, brecq reconstruction, needs data)
        CliTest.Result r = run("calibrate", "-m", GOLDEN.resolve("unet-small").toString(), "--method", "fp4dit", "--option", "reconstruction=none",
                "--out", cfg.toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(!Files.exists(tmp.resolve("u.calib")), "no calibration data recorded");
        assertEquals(null, QuantConfigCodec.read(cfg).calibration());
    }
}
