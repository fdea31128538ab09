package io.diffquant.engine.model;

import static io.diffquant.engine.testing.Golden.*;
import io.diffquant.engine.io.CheckpointException;
import io.diffquant.engine.io.DType;
import io.diffquant.engine.io.SafetensorsReader;
import io.diffquant.engine.model.CheckpointImport.Kind;
import io.diffquant.engine.model.CheckpointImport.Request;
import io.diffquant.engine.model.unet.CompVisUNet;
import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** .pt -> model folder conversions, checked by loading the folder and comparing with the PyTorch golden outputs. */
class CheckpointImportTest {
    @TempDir Path tmp;

    static Path res(String name) throws Exception {
        return Path.of(CheckpointImportTest.class.getClassLoader().getResource(name).toURI());
    }


    @Test void ditTrainingCheckpointBecomesAFolderThatMatchesPyTorch() throws Exception {
        Path out = tmp.resolve("dit");
        CheckpointImport.Result r = CheckpointImport.run(new Request(res("torch/training.pt"), out, Kind.DIT, null, 0, 0, true,
                null, res("golden/dit-small/config.json"), DType.F32, 0));
        assertEquals("ema", r.selected());
        DiffusionModel m = ModelFolder.load(out).model();
        assertEquals(r.parameters(), m.parameterCount());
        try (SafetensorsReader io = SafetensorsReader.open(res("golden/dit-small/io.safetensors"))) {
            long[] t = io.readLongs("t"), y = io.readLongs("y");
            float[] tf = new float[t.length];
            int[] yi = new int[y.length];
            for (int i = 0; i < t.length; i++) { tf[i] = t[i]; yi[i] = (int) y[i]; }
            double err = maxAbsDiff(io.readFloat("out"), m.forward(io.readFloat("x"), tf, yi));
            assertTrue(err <= 1e-4, "imported dit-small vs PyTorch: " + err);
        }
        try (SafetensorsReader w = SafetensorsReader.open(out.resolve(ModelFolder.DIT_WEIGHTS))) {
            assertEquals("ema", w.metadata().get("selected"));
            assertEquals("training.pt", w.metadata().get("source"));
        }
        // BF16 output: values are the BF16 roundings
        Path outBf = tmp.resolve("dit-bf16");
        CheckpointImport.run(new Request(res("torch/training.pt"), outBf, Kind.DIT, null, 0, 0, true, null,
                res("golden/dit-small/config.json"), DType.BF16, 0));
        assertEquals("BF16", ModelFolder.load(outBf).dtypes().get("blocks.0.mlp.fc1.weight"));
    }

    @Test void compVisCheckpointBecomesADiffusersFolder() throws Exception {
        Path out = tmp.resolve("compvis");
        CheckpointImport.Result r = CheckpointImport.run(new Request(res("golden/compvis-small/model.pt"), out, Kind.COMPVIS, null,
                16, 0, false, null, null, null, 4));
        assertEquals(268, r.tensors());
        DiffusionModel m = ModelFolder.load(out).model();
        try (SafetensorsReader io = SafetensorsReader.open(res("golden/compvis-small/io.safetensors"))) {
            long[] t = io.readLongs("t");
            float[] tf = {t[0], t[1], t[2]};
            double err = maxAbsDiff(io.readFloat("out"), m.forward(io.readFloat("x"), tf, null));
            assertTrue(err <= 1e-4, "imported compvis-small vs PyTorch: " + err);
        }
        // and back to CompVis names for export
        Map<String, Tensor> back = CompVisUNet.toCompVis(m.stateDict());
        assertTrue(back.containsKey("up.0.upsample.conv.weight") == false && back.containsKey("up.1.upsample.conv.weight"));
    }

    @Test void diffusersBinWithDeprecatedAttentionNamesBecomesAVaeFolder() throws Exception {
        Path out = tmp.resolve("vae");
        CheckpointImport.Result r = CheckpointImport.run(new Request(res("torch/vae_small.bin"), out, Kind.VAE, null, 0, 0, false,
                null, res("golden/vae-small/config.json"), DType.F32, 0));
        io.diffquant.engine.model.vae.AutoencoderKL vae = io.diffquant.engine.model.vae.AutoencoderKL.load(out);
        assertEquals(r.parameters(), vae.parameterCount());
        try (SafetensorsReader g = SafetensorsReader.open(res("golden/vae-small/diffusion_pytorch_model.safetensors"))) {
            assertEquals(g.names().size(), vae.stateDict().size());
            for (String n : g.names()) assertArrayEquals(g.readFloat(n).data(), vae.stateDict().get(n).data(), 0f, n);
        }
        CheckpointException e = assertThrows(CheckpointException.class, () -> CheckpointImport.run(new Request(res("torch/vae_small.bin"),
                tmp.resolve("u"), Kind.UNET, null, 0, 0, false, null, res("golden/unet-small/config.json"), DType.F32, 0)));
        assertTrue(e.getMessage().contains("does not match the config") && e.getMessage().contains("decoder."), e.getMessage());
    }

    @Test void mismatchesAreReportedByName() throws Exception {
        CheckpointException e = assertThrows(CheckpointException.class, () -> CheckpointImport.run(new Request(
                res("torch/state_dict.pt"), tmp.resolve("x"), Kind.DIT, "DiT-S/2", 256, 1000, true, null, null, null, 0)));
        assertTrue(e.getMessage().contains("missing") && e.getMessage().contains("x_embedder.proj.weight")
                && e.getMessage().contains("unexpected"), e.getMessage());
        assertFalse(java.nio.file.Files.exists(tmp.resolve("x")), "nothing is written for a checkpoint that does not match");
        e = assertThrows(CheckpointException.class, () -> CheckpointImport.run(new Request(
                res("torch/training.pt"), tmp.resolve("y"), Kind.DIT, "DiT-S/2", 256, 1000, true, null, null, null, 0)));
        assertTrue(e.getMessage().contains("'ema'") && e.getMessage().contains("missing 100 tensors [blocks.2."), e.getMessage());
        e = assertThrows(CheckpointException.class, () -> CheckpointImport.run(new Request(
                res("torch/training.pt"), tmp.resolve("z"), Kind.COMPVIS, null, 32, 0, false, null, null, null, 0)));
        assertTrue(e.getMessage().contains("CompVis"), e.getMessage());
    }
}
