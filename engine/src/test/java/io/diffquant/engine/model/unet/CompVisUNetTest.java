package io.diffquant.engine.model.unet;

import io.diffquant.engine.testing.Golden;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.diffquant.engine.io.SafetensorsReader;
import io.diffquant.engine.io.TorchCheckpoint;
import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The CompVis/DDIM UNet layout against PyTorch: golden/compvis-small (tools/golden/make_golden_compvis.py, an own
 * re-implementation of ermongroup/ddim models/diffusion.py, saved with torch.save) mapped onto UNet2DModel, and the
 * full CIFAR-10 key list mapped onto google/ddpm-cifar10-32's.
 */
class CompVisUNetTest {
    static final ObjectMapper JSON = new ObjectMapper();

    static Map<String, int[]> shapes(TorchCheckpoint ck) throws Exception {
        Map<String, int[]> s = new LinkedHashMap<>();
        for (String n : ck.names()) s.put(n, ck.info(n).shape());
        return s;
    }

    @Test void smallGoldenModelMatchesPyTorchThroughTheMapping() throws Exception {
        Path dir = Golden.resourceDir("golden/compvis-small");
        JsonNode c = JSON.readTree(dir.resolve("config.json").toFile());
        List<Integer> mult = new ArrayList<>(), attn = new ArrayList<>();
        c.get("ch_mult").forEach(v -> mult.add(v.asInt()));
        c.get("attn_resolutions").forEach(v -> attn.add(v.asInt()));
        UNet2DConfig cfg = CompVisUNet.config(c.get("ch").asInt(), mult, c.get("num_res_blocks").asInt(), attn,
                c.get("resolution").asInt(), c.get("in_channels").asInt(), c.get("out_ch").asInt(), c.get("groups").asInt());
        assertEquals(List.of("DownBlock2D", "AttnDownBlock2D", "DownBlock2D"), cfg.downBlockTypes());
        assertEquals(List.of("UpBlock2D", "AttnUpBlock2D", "UpBlock2D"), cfg.upBlockTypes());
        try (TorchCheckpoint ck = TorchCheckpoint.open(dir.resolve("model.pt"))) {
            assertTrue(CompVisUNet.isCompVis(ck.names()));
            assertEquals(cfg, CompVisUNet.inferConfig(shapes(ck), 16, c.get("groups").asInt()));
            Map<String, Tensor> compVis = ck.toStateDict();
            Map<String, Tensor> mapped = CompVisUNet.toDiffusers(compVis);
            UNet2DModel m = new UNet2DModel(cfg);
            m.loadWeights(mapped, "compvis-small/model.pt");
            // the reversed up levels: CompVis up.0 (full resolution) is diffusers' last up block
            assertSame(compVis.get("up.0.block.2.conv1.weight"), mapped.get("up_blocks.2.resnets.2.conv1.weight"));
            assertSame(compVis.get("up.2.block.0.nin_shortcut.weight"), mapped.get("up_blocks.0.resnets.0.conv_shortcut.weight"));
            assertArrayEquals(new int[] {16, 16}, mapped.get("down_blocks.1.attentions.1.to_q.weight").shape());
            try (SafetensorsReader io = SafetensorsReader.open(dir.resolve("io.safetensors"))) {
                Tensor x = io.readFloat("x"), want = io.readFloat("out");
                float[] t = Golden.floats(io.readLongs("t"));
                for (boolean fast : new boolean[] {true, false}) {
                    m.setFastPaths(fast);
                    double err = Golden.maxAbsDiff(want, m.forward(x, t, null));
                    assertTrue(err <= UNetGoldenTest.TOL, "compvis-small " + (fast ? "fused" : "explicit") + ": max |out - torch| = " + err);
                    System.out.printf("compvis-small %s: max |out - torch| = %.2e (tolerance %.0e)%n", fast ? "fused" : "explicit", err, UNetGoldenTest.TOL);
                }
            }
            // export back: the CompVis names, shapes and values of the original file
            Map<String, Tensor> back = CompVisUNet.toCompVis(m.stateDict());
            assertEquals(new java.util.TreeSet<>(compVis.keySet()), new java.util.TreeSet<>(back.keySet()));
            for (var e : compVis.entrySet()) {
                Tensor b = back.get(e.getKey());
                assertArrayEquals(e.getValue().shape(), b.shape(), e.getKey());
                assertArrayEquals(e.getValue().data(), b.data(), 0f, e.getKey());
            }
        }
    }

    @Test void fullCifar10KeysMapOntoDiffusersDdpmCifar10() throws Exception {
        Path keys = Golden.resourceDir("golden/keys");
        JsonNode cv = JSON.readTree(keys.resolve("ddpm-cifar10-compvis.json").toFile());
        JsonNode df = JSON.readTree(keys.resolve("ddpm-cifar10.json").toFile());
        Map<String, int[]> compVis = new LinkedHashMap<>(), diffusers = new LinkedHashMap<>();
        cv.get("keys").fields().forEachRemaining(e -> compVis.put(e.getKey(), ints(e.getValue())));
        df.get("keys").fields().forEachRemaining(e -> diffusers.put(e.getKey(), ints(e.getValue())));
        assertEquals(328, compVis.size());
        Map<String, int[]> mapped = CompVisUNet.toDiffusersShapes(compVis);
        assertEquals(new java.util.TreeSet<>(diffusers.keySet()), new java.util.TreeSet<>(mapped.keySet()));
        for (var e : diffusers.entrySet()) assertArrayEquals(e.getValue(), mapped.get(e.getKey()), e.getKey());
        UNet2DConfig hub = UNet2DConfig.fromJson(UNet2DConfigTest.resource("ddpm-cifar10-32-config.json"));
        assertEquals(hub, CompVisUNet.cifar10());
        assertEquals(hub, CompVisUNet.inferConfig(compVis, 32, 32));
        // DataParallel prefix
        Map<String, int[]> wrapped = new LinkedHashMap<>();
        compVis.forEach((k, v) -> wrapped.put("module." + k, v));
        assertEquals(mapped.keySet(), CompVisUNet.toDiffusersShapes(wrapped).keySet());
        for (String d : diffusers.keySet()) assertEquals(d, CompVisUNet.toDiffusers(CompVisUNet.toCompVis(d, 4), 4));
    }

    @Test void foreignNamesAreRejectedByName() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> CompVisUNet.toDiffusers("down.0.block.0.foo.weight", 2));
        assertTrue(e.getMessage().contains("down.0.block.0.foo.weight"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> CompVisUNet.toDiffusers("up.5.block.0.conv1.weight", 2));
        assertTrue(e.getMessage().contains("level 5"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> CompVisUNet.toCompVis("class_embedding.weight", 2));
        assertTrue(e.getMessage().contains("class_embedding.weight"), e.getMessage());
        assertFalse(CompVisUNet.isCompVis(List.of("conv_in.weight", "time_embedding.linear_1.weight")));
        assertThrows(IllegalArgumentException.class, () -> CompVisUNet.config(128, List.of(2, 2), 2, List.of(), 32, 3, 3));
    }

    static int[] ints(JsonNode a) {
        int[] r = new int[a.size()];
        for (int i = 0; i < r.length; i++) r[i] = a.get(i).asInt();
        return r;
    }
}
