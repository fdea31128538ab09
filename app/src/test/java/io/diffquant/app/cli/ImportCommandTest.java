package io.diffquant.app.cli;

import io.diffquant.engine.io.SafetensorsReader;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;

import static io.diffquant.app.cli.CliTest.GOLDEN;
import static io.diffquant.app.cli.CliTest.run;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code import}, {@code inspect}'s heap report and {@code sample --vae}, end to end on the golden files. */
class ImportCommandTest {
    static final Path TORCH = Path.of("../engine/src/test/resources/torch").toAbsolutePath().normalize();

    @Test void importCompVisThenInspectAndForward(@TempDir Path tmp) throws Exception {
        Path out = tmp.resolve("ddpm");
        CliTest.Result r = run("import", "--kind", "compvis", "--image-size", "16", "--groups", "4",
                GOLDEN.resolve("compvis-small/model.pt").toString(), out.toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("268 tensors"), r.out());
        assertTrue(Files.isRegularFile(out.resolve("diffusion_pytorch_model.safetensors")));
        r = run("inspect", "--model", out.toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("up_blocks.2.resnets.2.conv1") && r.out().matches("(?s).*peak heap while loading \\d+\\.\\d MiB.*"), r.out());
        Path fwd = tmp.resolve("fwd.safetensors");
        r = run("forward", "--model", out.toString(), "--inputs", GOLDEN.resolve("compvis-small/io.safetensors").toString(), "--out", fwd.toString());
        assertEquals(0, r.code(), r.err());
        try (SafetensorsReader got = SafetensorsReader.open(fwd); SafetensorsReader exp = SafetensorsReader.open(GOLDEN.resolve("compvis-small/io.safetensors"))) {
            float[] o = got.readFloat("out").data(), e = exp.readFloat("out").data();
            for (int i = 0; i < e.length; i++) assertEquals(e[i], o[i], 1e-4, "element " + i);
        }
    }

    @Test void listAndRefusals(@TempDir Path tmp) {
        CliTest.Result r = run("import", "--list", TORCH.resolve("training.pt").toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("state_dict 'ema'") && r.out().contains("blocks.0.attn.qkv.weight"), r.out());
        r = run("import", "--kind", "dit", "--name", "DiT-XL/2", "--image-size", "256", TORCH.resolve("hostile.pt").toString(),
                tmp.resolve("x").toString());
        assertEquals(2, r.code());
        assertTrue(r.err().contains("posix.system"), r.err());
        r = run("import", "--kind", "nope", TORCH.resolve("training.pt").toString(), tmp.resolve("y").toString());
        assertEquals(2, r.code());
        assertTrue(r.err().contains("--kind"), r.err());
    }

    @Test void sampleWithVaeDecodesToRgb(@TempDir Path tmp) throws Exception {
        Path st = tmp.resolve("s.safetensors");
        CliTest.Result r = run("sample", "--model", GOLDEN.resolve("dit-small").toString(), "--vae", GOLDEN.resolve("vae-small").toString(),
                "--steps", "4", "--count", "2", "--classes", "3,7", "--cfg", "4", "--out", tmp.resolve("g.png").toString(), "--tensors", st.toString());
        assertEquals(0, r.code(), r.err());
        try (SafetensorsReader s = SafetensorsReader.open(st)) {
            assertArrayEquals(new int[] {2, 3, 32, 32}, s.readFloat("images").shape());
        }
    }
}
