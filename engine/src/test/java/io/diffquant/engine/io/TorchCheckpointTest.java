package io.diffquant.engine.io;

import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.net.URISyntaxException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.zip.CRC32;
import java.util.zip.ZipEntry;
import java.util.zip.ZipOutputStream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * TorchCheckpoint against files written by torch.save 1.13 (tools/golden/make_torch_ckpt.py) with independently
 * stored expected values, plus hand-built archives for the refusal and corruption paths.
 */
class TorchCheckpointTest {
    @TempDir Path tmp;

    static Path torchResource(String name) {
        try {
            return Path.of(TorchCheckpointTest.class.getResource("/torch/" + name).toURI());
        } catch (URISyntaxException | NullPointerException e) {
            throw new AssertionError("test resource torch/" + name + " missing", e);
        }
    }

    @Test void readsEveryDtypeAndStridedViewExactly() throws IOException {
        try (TorchCheckpoint ck = TorchCheckpoint.open(torchResource("state_dict.pt"));
             SafetensorsReader exp = SafetensorsReader.open(torchResource("state_dict_expected.safetensors"))) {
            assertEquals(List.of("f32", "scalar", "f16", "bf16", "f64", "i64", "i32", "bool", "transposed", "sliced", "row",
                    "expanded", "permuted", "f16_transposed"), ck.names());
            assertEquals("", ck.selected());
            for (String n : ck.names()) {
                Tensor want = exp.readFloat(n);
                Tensor got = ck.readFloat(n);
                assertArrayEquals(want.shape(), got.shape(), n);
                assertArrayEquals(want.data(), got.data(), 0f, n);
            }
            assertEquals(DType.F16, ck.info("f16").dtype());
            assertEquals(DType.BF16, ck.info("bf16").dtype());
            assertEquals(DType.F64, ck.info("f64").dtype());
            assertEquals(DType.I64, ck.info("i64").dtype());
            assertEquals(DType.BOOL, ck.info("bool").dtype());
            assertEquals(0, ck.info("scalar").shape().length);
            assertTrue(ck.info("f32").contiguous());
            assertFalse(ck.info("transposed").contiguous());
            assertFalse(ck.info("sliced").contiguous());
            assertTrue(ck.info("row").contiguous());
            assertArrayEquals(new int[] {2, 4, 5, 3}, ck.info("permuted").shape());
            assertEquals(-3f, ck.readFloat("i64").data()[0]);
            float[] dst = new float[6];
            ck.readInto("transposed", new float[12]);
            assertThrows(CheckpointException.class, () -> ck.readInto("transposed", dst));
            long params = 0;
            for (String n : ck.names()) params += exp.info(n).numel();
            assertEquals(params, ck.parameterCount());
            CheckpointException e = assertThrows(CheckpointException.class, () -> ck.readFloat("nope"));
            assertTrue(e.getMessage().contains("'nope'"), e.getMessage());
        }
    }

    @Test void trainingCheckpointSelectsEmaAndMatchesTheWeights() throws IOException {
        Path golden = Path.of(TorchCheckpointTest.class.getResource("/golden/dit-small/model.safetensors").getPath());
        try (TorchCheckpoint ck = TorchCheckpoint.open(torchResource("training.pt"));
             SafetensorsReader st = SafetensorsReader.open(golden)) {
            assertEquals("ema", ck.selected());
            assertEquals(List.of("model", "ema", "opt", "args", "steps"), ck.topLevelKeys());
            assertEquals(st.names().stream().sorted().toList(), ck.names());
            for (String n : ck.names()) assertArrayEquals(st.readFloat(n).data(), ck.readFloat(n).data(), 0f, n);
            assertTrue(ck.ignored().isEmpty());
        }
        try (TorchCheckpoint m = TorchCheckpoint.open(torchResource("training.pt"), "model")) {
            assertEquals(List.of("w", "b"), m.names());
        }
        try (TorchCheckpoint o = TorchCheckpoint.open(torchResource("training.pt"), "opt")) {
            assertEquals(List.of("state.0.step", "state.0.exp_avg", "state.0.exp_avg_sq"), o.names());
            assertEquals(List.of("param_groups"), o.ignored());
            assertEquals(3f, o.readFloat("state.0.step").data()[0]);
        }
        CheckpointException e = assertThrows(CheckpointException.class, () -> TorchCheckpoint.open(torchResource("training.pt"), "args"));
        assertTrue(e.getMessage().contains("'args'") && e.getMessage().contains("not a dict"), e.getMessage());
        e = assertThrows(CheckpointException.class, () -> TorchCheckpoint.open(torchResource("training.pt"), "emma"));
        assertTrue(e.getMessage().contains("does not exist") && e.getMessage().contains("ema"), e.getMessage());
    }

    @Test void hostilePickleIsRefusedNamingTheGlobal() {
        CheckpointException e = assertThrows(CheckpointException.class, () -> TorchCheckpoint.open(torchResource("hostile.pt")));
        String m = e.getMessage();
        assertTrue(m.contains("hostile.pt") && m.contains("posix.system") && m.contains("GLOBAL"), m);
        e = assertThrows(CheckpointException.class, () -> TorchCheckpoint.open(torchResource("foreign_class.pt")));
        assertTrue(e.getMessage().contains("__main__.Thing"), e.getMessage());
    }

    @Test void truncatedArchivesGiveAClearError() throws IOException {
        byte[] all = Files.readAllBytes(torchResource("state_dict.pt"));
        for (int len : new int[] {0, 10, all.length / 2, all.length - 10}) {
            Path f = tmp.resolve("cut" + len + ".pt");
            Files.write(f, Arrays.copyOf(all, len));
            CheckpointException e = assertThrows(CheckpointException.class, () -> TorchCheckpoint.open(f));
            assertTrue(e.getMessage().startsWith(f.toString()) && (e.getMessage().contains("truncated") || e.getMessage().contains("too short")),
                    e.getMessage());
        }
    }

    @Test void legacyFormatIsNamed() throws IOException {
        Path f = tmp.resolve("legacy.pt");
        Files.write(f, new byte[] {(byte) 0x80, 2, (byte) 0x8a, 10, 0x6c, (byte) 0xfc, (byte) 0x9c, 0x46, (byte) 0xf9, 0x20, 0x6a, (byte) 0xa8, 0x50, 0x19, 0x2e});
        CheckpointException e = assertThrows(CheckpointException.class, () -> TorchCheckpoint.open(f));
        assertTrue(e.getMessage().contains("legacy"), e.getMessage());
    }

    // ------------------------------------------------------------------------------------ hand-built archives

    /** A pickle builder for hand-made data.pkl files (protocol 2 opcodes). */
    private static final class Pkl {
        final ByteArrayOutputStream b = new ByteArrayOutputStream();
        Pkl op(int... bytes) { for (int x : bytes) b.write(x); return this; }
        Pkl str(String s) {
            byte[] u = s.getBytes(StandardCharsets.UTF_8);
            op('X', u.length & 0xFF, (u.length >> 8) & 0xFF, 0, 0);
            b.writeBytes(u);
            return this;
        }
        Pkl global(String module, String name) { op('c'); b.writeBytes((module + "\n" + name + "\n").getBytes(StandardCharsets.UTF_8)); return this; }
        Pkl int1(int v) { return op('K', v); }
        /** _rebuild_tensor_v2(storage key 0 of numel floats, offset, size, stride, False, OrderedDict()). */
        Pkl tensor(int numel, int offset, int[] size, int[] stride) {
            global("torch._utils", "_rebuild_tensor_v2").op('(');
            op('(').str("storage").global("torch", "FloatStorage").str("0").str("cpu").int1(numel).op('t', 'Q');
            int1(offset).op('(');
            for (int s : size) int1(s);
            op('t', '(');
            for (int s : stride) int1(s);
            op('t', 0x89).global("collections", "OrderedDict").op(')', 'R', 't', 'R');
            return this;
        }
        byte[] bytes() { return b.toByteArray(); }
    }

    private Path archive(String name, byte[] pkl, float[] storage, boolean stored) throws IOException {
        Path f = tmp.resolve(name);
        try (ZipOutputStream z = new ZipOutputStream(Files.newOutputStream(f))) {
            put(z, "archive/data.pkl", pkl, stored);
            ByteBuffer bb = ByteBuffer.allocate(4 * storage.length).order(ByteOrder.LITTLE_ENDIAN);
            for (float v : storage) bb.putFloat(v);
            put(z, "archive/data/0", bb.array(), stored);
            put(z, "archive/version", "3\n".getBytes(StandardCharsets.US_ASCII), stored);
        }
        return f;
    }

    private static void put(ZipOutputStream z, String name, byte[] data, boolean stored) throws IOException {
        ZipEntry e = new ZipEntry(name);
        if (stored) {
            e.setMethod(ZipEntry.STORED);
            e.setSize(data.length);
            CRC32 c = new CRC32();
            c.update(data);
            e.setCrc(c.getValue());
        }
        z.putNextEntry(e);
        z.write(data);
        z.closeEntry();
    }

    @Test void handBuiltArchivesStoredAndDeflated() throws IOException {
        byte[] pkl = new Pkl().op(0x80, 2, '}', '(').str("w").tensor(6, 1, new int[] {2, 2}, new int[] {1, 2}).op('u', '.').bytes();
        float[] storage = {0, 1, 2, 3, 4, 5};
        for (boolean stored : new boolean[] {true, false}) {
            try (TorchCheckpoint ck = TorchCheckpoint.open(archive("ok" + stored + ".pt", pkl, storage, stored))) {
                Tensor w = ck.readFloat("w");
                // element [i][j] = storage[1 + i + 2j]
                assertArrayEquals(new float[] {1, 3, 2, 4}, w.data(), 0f);
            }
        }
    }

    @Test void viewOutsideItsStorageIsAnError() throws IOException {
        byte[] pkl = new Pkl().op(0x80, 2, '}', '(').str("w").tensor(4, 2, new int[] {2, 2}, new int[] {2, 1}).op('u', '.').bytes();
        try (TorchCheckpoint ck = TorchCheckpoint.open(archive("oob.pt", pkl, new float[] {0, 1, 2, 3}, true))) {
            CheckpointException e = assertThrows(CheckpointException.class, () -> ck.readFloat("w"));
            assertTrue(e.getMessage().contains("'w'") && e.getMessage().contains("reaches element 5"), e.getMessage());
        }
        // a persistent id that claims more elements than the entry holds
        byte[] big = new Pkl().op(0x80, 2, '}', '(').str("w").tensor(100, 0, new int[] {2}, new int[] {1}).op('u', '.').bytes();
        CheckpointException e = assertThrows(CheckpointException.class,
                () -> TorchCheckpoint.open(archive("short.pt", big, new float[] {0, 1}, true)));
        assertTrue(e.getMessage().contains("storage '0'"), e.getMessage());
    }

    @Test void codeExecutingOpcodesAndGlobalsAreRefused() throws IOException {
        Map<String, byte[]> cases = Map.of(
                "builtins.eval", new Pkl().op(0x80, 2).global("builtins", "eval").str("1+1").op(0x85, 'R', '.').bytes(),
                "INST", new Pkl().op(0x80, 2, '(').op('i').op("os\nsystem\n".chars().toArray()).op('.').bytes(),
                "subprocess.Popen", new Pkl().op(0x80, 4).str("subprocess").str("Popen").op(0x93, '.').bytes(),
                "REDUCE of 'torch.FloatStorage'", new Pkl().op(0x80, 2).global("torch", "FloatStorage").op(')', 'R', '.').bytes(),
                "not a dict", new Pkl().op(0x80, 2, ']', '.').bytes(),
                "without STOP", new Pkl().op(0x80, 2, '}', '(').str("w").bytes());
        for (var c : cases.entrySet()) {
            Path f = archive(c.getKey().replaceAll("[^a-z]", "") + ".pt", c.getValue(), new float[0], true);
            CheckpointException e = assertThrows(CheckpointException.class, () -> TorchCheckpoint.open(f), c.getKey());
            assertTrue(e.getMessage().contains(c.getKey()) && e.getMessage().startsWith(f.toString()), e.getMessage());
        }
    }
}
