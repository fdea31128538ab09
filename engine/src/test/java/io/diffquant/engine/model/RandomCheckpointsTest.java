package io.diffquant.engine.model;

import io.diffquant.engine.analysis.AnalyticFlops;
import io.diffquant.engine.analysis.FlopCounter;
import io.diffquant.engine.io.SafetensorsReader;
import io.diffquant.engine.model.dit.DiT;
import io.diffquant.engine.model.dit.DiTConfig;
import io.diffquant.engine.model.unet.UNet2DConfig;
import io.diffquant.engine.model.vae.AutoencoderKL;
import io.diffquant.engine.model.vae.AutoencoderKLConfig;
import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Random checkpoints with real names (RandomCheckpoints), the closed-form DiT FLOP count against the hook-based
 * FlopCounter, the mapped VAE load, and the "needs more memory" error of a full-size load (a sparse DiT-XL/2 file).
 */
class RandomCheckpointsTest {
    @TempDir Path tmp;

    @Test void analyticDitFlopsEqualTheCountedOnes() {
        for (DiTConfig c : List.of(new DiTConfig(8, 2, 4, 64, 2, 4, 4.0, 0.1, 10, true),
                new DiTConfig(12, 4, 3, 96, 3, 3, 2.5, 0.0, 0, false))) {
            DiT m = new DiT(c);
            RandomCheckpoints.fill(m.stateDict(), 3);
            Tensor x = RandomCheckpoints.random("x", new int[] {2, c.inChannels(), c.inputSize(), c.inputSize()}, 5);
            long counted = FlopCounter.count(m, x, new float[] {10, 500}, c.classConditional() ? new int[] {1, 2} : null);
            assertEquals(counted, AnalyticFlops.dit(c, 2), c.toString());
        }
        // DiT paper, Table 4: DiT-XL/2 at 256 px is 118.6 GFLOPs counted as multiply-adds
        assertEquals(118.6, AnalyticFlops.dit(DiTConfig.named("DiT-XL/2", 32, 1000, true), 1) / 2e9, 0.1);
    }

    @Test void ditFolderHasTheOfficialLayoutAndLoadsMapped() throws Exception {
        DiTConfig c = new DiTConfig(8, 2, 4, 64, 2, 4, 4.0, 0.1, 10, true);
        Path wf = RandomCheckpoints.writeDiT(tmp.resolve("dit"), c, 1);
        Map<String, int[]> layout = DiT.stateDictLayout(c);
        try (SafetensorsReader r = SafetensorsReader.open(wf)) {
            assertEquals(List.copyOf(layout.keySet()), r.names());
            Tensor qkv = r.readFloat("blocks.1.attn.qkv.weight");
            double bound = Math.sqrt(3) / Math.sqrt(64);   // uniform with std 1/sqrt(fan_in)
            double sq = 0;
            for (float v : qkv.data()) {
                assertTrue(Math.abs(v) <= bound + 1e-6);
                sq += v * v;
            }
            assertEquals(1.0 / 64, sq / qkv.size(), 0.1 / 64);
        }
        DiffusionModel m = ModelFolder.load(tmp.resolve("dit")).model();
        try (SafetensorsReader r = SafetensorsReader.open(wf)) {
            for (var e : m.stateDict().entrySet()) assertArrayEquals(r.readFloat(e.getKey()).data(), e.getValue().data(), 0f, e.getKey());
        }
    }

    @Test void compVisFileImportsToTheSameUNetAsTheDiffusersFolder() throws Exception {
        UNet2DConfig c = UNet2DConfig.fromJson("""
                {"block_out_channels": [32, 64], "layers_per_block": 1, "norm_num_groups": 8, "sample_size": 8,
                 "down_block_types": ["DownBlock2D", "AttnDownBlock2D"], "up_block_types": ["AttnUpBlock2D", "UpBlock2D"]}""", "cfg");
        RandomCheckpoints.writeUNet(tmp.resolve("unet"), c, 9);
        Path cv = RandomCheckpoints.writeCompVis(tmp.resolve("cv.safetensors"), c, 9);
        try (SafetensorsReader r = SafetensorsReader.open(cv)) {
            assertTrue(r.contains("temb.dense.0.weight") && r.contains("down.1.attn.0.q.weight"), r.names().toString());
            assertEquals(4, r.info("down.1.attn.0.q.weight").shape().length);
        }
        CheckpointImport.run(new CheckpointImport.Request(cv, tmp.resolve("unet-cv"), CheckpointImport.Kind.COMPVIS, null, 8, 0,
                false, null, null, null, 8));
        Map<String, Tensor> a = ModelFolder.load(tmp.resolve("unet")).model().stateDict();
        Map<String, Tensor> b = ModelFolder.load(tmp.resolve("unet-cv")).model().stateDict();
        assertEquals(a.keySet(), b.keySet());
        for (String k : a.keySet()) assertArrayEquals(a.get(k).data(), b.get(k).data(), 0f, k);
        assertEquals(35_746_307L, new io.diffquant.engine.model.unet.UNet2DModel(RandomCheckpoints.ddpmCifar10()).parameterCount());
    }

    @Test void vaeLoadsMappedAndEqualsTheFile() throws Exception {
        AutoencoderKLConfig c = AutoencoderKLConfig.defaults(List.of(32, 64));
        Path wf = RandomCheckpoints.writeVae(tmp.resolve("vae"), c, 4);
        AutoencoderKL v = AutoencoderKL.load(tmp.resolve("vae"));
        try (SafetensorsReader r = SafetensorsReader.open(wf)) {
            assertEquals(r.names().size(), v.stateDict().size());
            for (var e : v.stateDict().entrySet()) assertArrayEquals(r.readFloat(e.getKey()).data(), e.getValue().data(), 0f, e.getKey());
            assertEquals(1f, r.readFloat("decoder.conv_norm_out.weight").data()[0]);
        }
    }

    /**
     * A full-size DiT-XL/2 folder whose data section is a sparse file (header real, data never written): the load must
     * stop at the heap check with the sizes and the setting to change, before any weight is read or allocated.
     */
    @Test void fullSizeCheckpointBeyondTheHeapGivesAnActionableError() throws Exception {
        long max = Runtime.getRuntime().maxMemory();
        DiTConfig xl = DiTConfig.named("DiT-XL/2", 32, 1000, true);
        int hidden = 1152;
        // widen DiT-XL/2's depth until its FP32 weights exceed this JVM's heap (the real one is 2.5 GiB)
        int depth = (int) Math.min(2000, max / (4L * 24 * hidden * hidden / 2) + 8);
        DiTConfig big = new DiTConfig(xl.inputSize(), xl.patchSize(), xl.inChannels(), hidden, depth, xl.numHeads(), xl.mlpRatio(),
                xl.classDropoutProb(), xl.numClasses(), xl.learnSigma());
        Path dir = tmp.resolve("dit-huge");
        Files.createDirectories(dir);
        Files.writeString(dir.resolve(ModelFolder.CONFIG), big.toJson());
        StringBuilder h = new StringBuilder("{");
        long off = 0, numel = 0;
        for (var e : DiT.stateDictLayout(big).entrySet()) {
            long n = 1;
            for (int d : e.getValue()) n *= d;
            numel += n;
            if (h.length() > 1) h.append(',');
            h.append('"').append(e.getKey()).append("\":{\"dtype\":\"F32\",\"shape\":").append(java.util.Arrays.toString(e.getValue()).replace(" ", ""))
                    .append(",\"data_offsets\":[").append(off).append(',').append(off + 4 * n).append("]}");
            off += 4 * n;
        }
        h.append('}');
        while (h.length() % 8 != 0) h.append(' ');
        byte[] header = h.toString().getBytes(StandardCharsets.UTF_8);
        assertTrue(4 * numel > max, "test model must exceed the heap");
        try (RandomAccessFile f = new RandomAccessFile(dir.resolve(ModelFolder.DIT_WEIGHTS).toFile(), "rw")) {
            f.write(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(header.length).array());
            f.write(header);
            f.setLength(8 + header.length + off);   // sparse: no data on disk
        }
        MemoryBudget.InsufficientMemoryException e = assertThrows(MemoryBudget.InsufficientMemoryException.class, () -> ModelFolder.load(dir));
        String m = e.getMessage();
        assertTrue(m.startsWith("DiT " + dir) && m.contains(String.format(java.util.Locale.ROOT, "needs %.2f GiB of heap", 4.0 * numel / (1L << 30))), m);
        assertTrue(m.contains("DIFFQUANT_HEAP=-Xmx") || m.contains("this machine has only"), m);
        assertTrue(e.needBytes() > 4 * numel);
    }
}
