package io.diffquant.engine.model.dit;

import static io.diffquant.engine.testing.Golden.maxAbsDiff;
import io.diffquant.engine.testing.Golden;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.diffquant.engine.io.SafetensorsReader;
import io.diffquant.engine.model.Layer;
import io.diffquant.engine.model.LayerKind;
import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

import static io.diffquant.engine.model.dit.DiTTestSupport.*;
import static org.junit.jupiter.api.Assertions.*;

/** Module tree, state_dict names/shapes, tags and the position embedding of the DiT. */
class DiTStructureTest {

    /**
     * DiT-XL/2 against the key list the golden tool took from facebookresearch/DiT (keys/dit-xl-2.json). The
     * 2.7 GB model itself is not built here (too heavy for a unit test on a shared machine): its layout is, and
     * {@link #modelStateDictEqualsTheLayout} ties the layout to real models of many configs.
     */
    @Test void ditXl2StateDictEqualsTheOfficialCheckpointLayout() throws Exception {
        JsonNode ref = new ObjectMapper().readTree(Golden.resourceDir("golden/keys").resolve("dit-xl-2.json").toFile());
        DiTConfig cfg = DiTConfig.named("DiT-XL/2", 32, 1000, true);
        Map<String, int[]> shapes = DiT.stateDictLayout(cfg);
        long params = 0;
        for (int[] s : shapes.values()) params += Tensor.numel(s);
        assertEquals(292, shapes.size());
        assertEquals(ref.get("num_tensors").asInt(), shapes.size());
        assertEquals(675_129_632L, params);
        assertEquals(ref.get("num_parameters").asLong(), params);
        List<String> refNames = new ArrayList<>();
        ref.get("keys").fieldNames().forEachRemaining(refNames::add);
        assertEquals(refNames, new ArrayList<>(shapes.keySet()), "names, in the official state_dict order");
        for (String k : refNames) {
            int[] s = new int[ref.get("keys").get(k).size()];
            for (int i = 0; i < s.length; i++) s[i] = ref.get("keys").get(k).get(i).asInt();
            assertArrayEquals(s, shapes.get(k), k);
        }
        assertArrayEquals(new int[] {6912, 1152}, shapes.get("blocks.27.adaLN_modulation.1.weight"));
        assertArrayEquals(new int[] {1152, 4, 2, 2}, shapes.get("x_embedder.proj.weight"));
        assertArrayEquals(new int[] {1, 256, 1152}, shapes.get("pos_embed"));
        assertArrayEquals(new int[] {1001, 1152}, shapes.get("y_embedder.embedding_table.weight"));
        assertArrayEquals(new int[] {32, 1152}, shapes.get("final_layer.linear.weight"));
        assertArrayEquals(new int[] {3456, 1152}, shapes.get("blocks.0.attn.qkv.weight"));
        assertArrayEquals(new int[] {1152, 4608}, shapes.get("blocks.13.mlp.fc2.weight"));
        assertArrayEquals(new int[] {1152, 256}, shapes.get("t_embedder.mlp.0.weight"));
    }

    @Test void modelStateDictEqualsTheLayout() {
        List<DiTConfig> cfgs = new ArrayList<>(List.of(
                new DiTConfig(8, 2, 4, 32, 3, 4, 4.0, 0.1, 10, true),
                new DiTConfig(12, 4, 3, 24, 2, 3, 2.5, 0.0, 7, false),
                new DiTConfig(8, 1, 1, 16, 1, 2, 1.0, 0.3, 0, true),
                DiTConfig.named("DiT-S/8", 32, 1000, true)));     // the real S/8: 12 blocks, 33 M parameters
        for (DiTConfig cfg : cfgs) {
            Map<String, int[]> layout = DiT.stateDictLayout(cfg);
            Map<String, Tensor> sd = new DiT(cfg).stateDict();
            assertEquals(new ArrayList<>(layout.keySet()), new ArrayList<>(sd.keySet()), cfg.toString());
            for (var e : sd.entrySet()) assertArrayEquals(layout.get(e.getKey()), e.getValue().shape(), e.getKey());
        }
    }

    @Test void layerRegistryHasEveryModuleWithKindsAndTags() {
        DiT m = new DiT(new DiTConfig(8, 2, 4, 32, 3, 4, 4.0, 0.1, 10, true));
        Set<String> temporal = new TreeSet<>(), expectTemporal = new TreeSet<>(List.of("t_embedder.mlp.0",
                "t_embedder.mlp.2", "y_embedder.embedding_table", "final_layer.adaLN_modulation.1"));
        for (int i = 0; i < 3; i++) expectTemporal.add("blocks." + i + ".adaLN_modulation.1");
        for (Layer l : m.layers().all()) {
            if ("true".equals(l.tags().get(DiT.TAG_TEMPORAL))) temporal.add(l.name());
            String block = l.tags().get(DiT.TAG_BLOCK);
            if (l.name().startsWith("blocks.")) {
                String prefix = l.name().substring(0, l.name().indexOf('.', 7));
                assertEquals(prefix, block, l.name());
            } else {
                assertNull(block, l.name());
            }
        }
        assertEquals(expectTemporal, temporal);
        String[] blockLayers = {"norm1", "attn.qkv", "attn.q", "attn.k", "attn.v", "attn.softmax", "attn.proj", "norm2",
                "mlp.fc1", "mlp.fc2", "adaLN_modulation.1"};
        LayerKind[] kinds = {LayerKind.NORM, LayerKind.LINEAR, LayerKind.ACTIVATION, LayerKind.ACTIVATION, LayerKind.ACTIVATION,
                LayerKind.ACTIVATION, LayerKind.LINEAR, LayerKind.NORM, LayerKind.LINEAR, LayerKind.LINEAR, LayerKind.LINEAR};
        for (int i = 0; i < 3; i++) for (int j = 0; j < blockLayers.length; j++)
            assertEquals(kinds[j], m.layers().get("blocks." + i + "." + blockLayers[j]).kind());
        assertEquals(LayerKind.CONV2D, m.layers().get("x_embedder.proj").kind());
        assertEquals(LayerKind.EMBEDDING, m.layers().get("y_embedder.embedding_table").kind());
        assertEquals(LayerKind.NORM, m.layers().get("final_layer.norm_final").kind());
        assertEquals(3 + 1 + 3 * 11 + 3, m.layers().size());
        assertEquals(2 + 3 * 5 + 2, m.layers().ofKind(LayerKind.LINEAR).size());
        assertEquals(List.of("blocks.0.attn.softmax", "blocks.1.attn.softmax", "blocks.2.attn.softmax"),
                m.layers().match("blocks.*.attn.softmax").stream().map(Layer::name).toList());
        assertEquals("DiT", m.architecture());
        assertEquals(8, m.outChannels());
        assertEquals(8, m.sampleSize());
    }

    @Test void unconditionalAndNoDropoutLayouts() {
        DiT unc = new DiT(new DiTConfig(8, 2, 4, 32, 1, 4, 4.0, 0.1, 0, false));
        assertFalse(unc.stateDict().keySet().stream().anyMatch(k -> k.startsWith("y_embedder")));
        assertArrayEquals(new int[] {16, 32}, unc.stateDict().get("final_layer.linear.weight").shape());   // 2*2*4
        DiT noDrop = new DiT(new DiTConfig(8, 2, 4, 32, 1, 4, 4.0, 0.0, 10, true));
        assertArrayEquals(new int[] {10, 32}, noDrop.stateDict().get("y_embedder.embedding_table.weight").shape());
    }

    /** get_2d_sincos_pos_embed written out like the numpy code (meshgrid with w first), in double. */
    static double[][] numpyStylePosEmbed(int embedDim, int gridSize) {
        double[][][] grid = new double[2][gridSize][gridSize];          // np.meshgrid(grid_w, grid_h)
        for (int a = 0; a < gridSize; a++) for (int b = 0; b < gridSize; b++) { grid[0][a][b] = b; grid[1][a][b] = a; }
        double[][] embH = oneD(embedDim / 2, grid[0]), embW = oneD(embedDim / 2, grid[1]);
        double[][] out = new double[gridSize * gridSize][];
        for (int m = 0; m < out.length; m++) {
            out[m] = new double[embedDim];
            System.arraycopy(embH[m], 0, out[m], 0, embedDim / 2);
            System.arraycopy(embW[m], 0, out[m], embedDim / 2, embedDim / 2);
        }
        return out;
    }

    private static double[][] oneD(int embedDim, double[][] pos2) {
        double[] omega = new double[embedDim / 2];
        for (int i = 0; i < omega.length; i++) omega[i] = 1.0 / Math.pow(10000, i / (embedDim / 2.0));
        double[] pos = Arrays.stream(pos2).flatMapToDouble(Arrays::stream).toArray();
        double[][] emb = new double[pos.length][embedDim];
        for (int m = 0; m < pos.length; m++) for (int d = 0; d < omega.length; d++) {
            emb[m][d] = Math.sin(pos[m] * omega[d]);
            emb[m][omega.length + d] = Math.cos(pos[m] * omega[d]);
        }
        return emb;
    }

    @Test void posEmbedIsTheOfficialSinCosTable() throws Exception {
        for (int[] dg : new int[][] {{1152, 16}, {384, 4}, {64, 4}, {8, 3}}) {
            Tensor pe = new DiT(new DiTConfig(dg[1] * 2, 2, 4, dg[0], 1, 4, 4.0, 0.1, 0, true)).posEmbed();
            assertArrayEquals(new int[] {1, dg[1] * dg[1], dg[0]}, pe.shape());
            double[][] ref = numpyStylePosEmbed(dg[0], dg[1]);
            double err = 0;
            for (int m = 0; m < ref.length; m++) for (int d = 0; d < dg[0]; d++)
                err = Math.max(err, Math.abs(ref[m][d] - pe.data()[m * dg[0] + d]));
            assertTrue(err < 1e-7, "pos_embed " + Arrays.toString(dg) + ": max error " + err);
        }
        // and bit-identical to the table the numpy code produced for the golden checkpoint
        Path dir = Golden.resourceDir("golden/dit-small");
        DiT small = new DiT(DiTConfig.fromJson(dir.resolve("config.json")));
        try (SafetensorsReader r = SafetensorsReader.open(dir.resolve("model.safetensors"))) {
            assertArrayEquals(r.readFloat("pos_embed").data(), small.posEmbed().data(), 1e-7f);
        }
    }

    @Test void loadWeightsIsStrictAndNamesTheProblem() {
        DiT m = new DiT(new DiTConfig(8, 2, 4, 32, 1, 4, 4.0, 0.1, 10, true));
        Map<String, Tensor> sd = randomStateDict(m, 1, 0.1);
        Map<String, Tensor> missing = new LinkedHashMap<>(sd);
        missing.remove("blocks.0.mlp.fc1.bias");
        String e1 = assertThrows(IllegalArgumentException.class, () -> m.loadWeights(missing, "ckpt.safetensors")).getMessage();
        assertTrue(e1.contains("ckpt.safetensors") && e1.contains("blocks.0.mlp.fc1.bias"), e1);
        Map<String, Tensor> wrong = new LinkedHashMap<>(sd);
        wrong.put("final_layer.linear.weight", Tensor.zeros(16, 32));
        String e2 = assertThrows(IllegalArgumentException.class, () -> m.loadWeights(wrong, "ckpt.safetensors")).getMessage();
        assertTrue(e2.contains("final_layer.linear.weight") && e2.contains("[32, 32]"), e2);
        Map<String, Tensor> extra = new LinkedHashMap<>(sd);
        extra.put("blocks.1.attn.qkv.weight", Tensor.zeros(96, 32));
        String e3 = assertThrows(IllegalArgumentException.class, () -> m.loadWeights(extra, "ckpt.safetensors")).getMessage();
        assertTrue(e3.contains("unexpected") && e3.contains("blocks.1.attn.qkv.weight"), e3);
        m.loadWeights(sd, "ok");
        assertSame(sd.get("blocks.0.attn.qkv.weight"), m.stateDict().get("blocks.0.attn.qkv.weight"));
        assertSame(sd.get("pos_embed"), m.posEmbed());
    }
}
