package io.diffquant.app.gui.vm;

import io.diffquant.engine.model.LayerKind;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The layer table's view model without the JavaFX toolkit: filters, atomic bulk edits, undo/redo, bit arithmetic. */
class LayerTableViewModelTest {
    private LayerTableViewModel vm;
    private LayerRow qkv, proj, fc1, tEmb, norm, probe, conv, emb;

    @BeforeEach void setUp() {
        qkv = row("blocks.0.attn.qkv", LayerKind.LINEAR, new int[] {192, 64}, 192 * 64 + 192, Map.of("block", "0"));
        proj = row("blocks.0.attn.proj", LayerKind.LINEAR, new int[] {64, 64}, 64 * 64 + 64, Map.of("block", "0"));
        fc1 = row("blocks.1.mlp.fc1", LayerKind.LINEAR, new int[] {256, 64}, 256 * 64 + 256, Map.of("block", "1"));
        tEmb = row("t_embedder.mlp.0", LayerKind.LINEAR, new int[] {64, 256}, 64 * 256 + 64, Map.of("temporal", "true"));
        norm = row("blocks.0.norm1", LayerKind.NORM, new int[] {64}, 128, Map.of("block", "0"));
        probe = row("blocks.0.attn.softmax", LayerKind.ACTIVATION, null, 0, Map.of("block", "0"));
        conv = row("x_embedder.proj", LayerKind.CONV2D, new int[] {64, 4, 2, 2}, 64 * 16 + 64, Map.of());
        emb = row("y_embedder.embedding_table", LayerKind.EMBEDDING, new int[] {11, 64}, 11 * 64, Map.of());
        vm = new LayerTableViewModel();
        vm.setRows(List.of(conv, tEmb, emb, qkv, proj, norm, probe, fc1), 100_000);
    }

    private static LayerRow row(String name, LayerKind k, int[] shape, long params, Map<String, String> tags) {
        return new LayerRow(name, k, shape, params, tags);
    }

    @Test void globSubstringKindAndTemporalFilters() {
        vm.nameFilterProperty().set("blocks.*.attn.*");
        assertEquals(List.of(qkv, proj, probe), List.copyOf(vm.visibleRows()));
        vm.nameFilterProperty().set("blocks.?.mlp.*");
        assertEquals(List.of(fc1), List.copyOf(vm.visibleRows()));
        vm.nameFilterProperty().set("ATTN");          // no wildcard: case-insensitive substring
        assertEquals(List.of(qkv, proj, probe), List.copyOf(vm.visibleRows()));
        vm.kindFilterProperty().set(LayerKind.LINEAR);
        assertEquals(List.of(qkv, proj), List.copyOf(vm.visibleRows()));
        vm.nameFilterProperty().set("");
        assertEquals(List.of(tEmb, qkv, proj, fc1), List.copyOf(vm.visibleRows()));
        vm.temporalOnlyProperty().set(true);
        assertEquals(List.of(tEmb), List.copyOf(vm.visibleRows()));
        vm.kindFilterProperty().set(null);
        vm.temporalOnlyProperty().set(false);
        assertEquals(8, vm.visibleRows().size());
        vm.nameFilterProperty().set("blocks.0.*");   // glob must match the whole name
        assertEquals(List.of(qkv, proj, norm, probe), List.copyOf(vm.visibleRows()));
    }

    @Test void bulkWeightFormatSkipsRowsWithoutQuantizableWeight() {
        int n = vm.setWeightFormat(List.of(qkv, proj, norm, probe, emb, conv), "INT4-sym");
        assertEquals(3, n);                                   // qkv, proj, conv
        assertEquals("int4-sym", qkv.spec().weightFormat());  // canonical spelling
        assertEquals("int4-sym", conv.spec().weightFormat());
        assertEquals(LayerQuantSpec.DEFAULT, norm.spec());
        assertEquals(LayerQuantSpec.DEFAULT, probe.spec());
        assertEquals(LayerQuantSpec.DEFAULT, emb.spec());
        assertEquals(4, qkv.weightBits());
        assertEquals(0, probe.weightBits());

        int a = vm.setActivationFormat(List.of(probe, qkv, norm), "ufp4-e3m1");
        assertEquals(2, a);
        assertEquals("ufp4-e3m1", probe.spec().activationFormat());
        assertEquals(4, probe.activationBits());
        assertEquals(LayerQuantSpec.DEFAULT, norm.spec());
    }

    @Test void blockFormatsBringTheirBlockGranularityAndLeavingResetsIt() {
        vm.setWeightFormat(List.of(proj), "mxfp4");
        assertEquals("block32", proj.spec().weightGranularity());
        vm.setWeightFormat(List.of(proj), "nvfp4");
        assertEquals("block16", proj.spec().weightGranularity());
        vm.setWeightFormat(List.of(proj), "int8-asym");
        assertEquals("channel", proj.spec().weightGranularity());
    }

    @Test void invalidBulkEditChangesNothingAndNamesTheProblem() {
        vm.setWeightFormat(List.of(qkv), "int4-asym");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> vm.setWeightFormat(List.of(qkv, proj), "int9"));
        assertTrue(e.getMessage().contains("int9"), e.getMessage());
        assertTrue(e.getMessage().contains("2 to 8 bits"), e.getMessage());
        // head3 does not divide proj's 64 columns ... but qkv's 64 neither: the first bad layer is named, nothing changes
        IllegalArgumentException g = assertThrows(IllegalArgumentException.class,
                () -> vm.setWeightGranularity(List.of(qkv, proj), "head3"));
        assertTrue(g.getMessage().startsWith("layer 'blocks.0.attn.qkv'"), g.getMessage());
        assertEquals("channel", qkv.spec().weightGranularity());
        // mxfp4 with a non-block granularity: rejected for the layer, nothing changed
        vm.setWeightFormat(List.of(proj), "mxfp4");
        IllegalArgumentException b = assertThrows(IllegalArgumentException.class,
                () -> vm.setWeightGranularity(List.of(qkv, proj), "channel"));
        assertTrue(b.getMessage().contains("blocks.0.attn.proj"), b.getMessage());
        assertEquals("block32", proj.spec().weightGranularity());
        assertEquals(2, vm.history().undoSize());   // the rejected edits left no history
        assertThrows(IllegalArgumentException.class, () -> vm.setWeightGranularity(List.of(qkv), "bogus"));
    }

    @Test void undoRedoRestoresExactSpecs() {
        Map<String, LayerQuantSpec> start = vm.specs();
        assertFalse(vm.history().canUndoProperty().get());
        vm.setWeightFormat(List.of(qkv, proj, fc1), "int4-asym");
        Map<String, LayerQuantSpec> afterFirst = vm.specs();
        vm.setWeightGranularity(List.of(qkv), "group32");
        vm.setEnabled(List.of(proj), false);
        Map<String, LayerQuantSpec> afterThird = vm.specs();
        assertEquals(3, vm.history().undoSize());
        assertEquals("Undo disable (blocks.0.attn.proj)", vm.history().undoTextProperty().get());

        assertTrue(vm.undo());
        assertTrue(vm.undo());
        assertEquals(afterFirst, vm.specs());
        assertTrue(vm.history().canRedoProperty().get());
        assertEquals("Redo weight granularity group32 (blocks.0.attn.qkv)", vm.history().redoTextProperty().get());
        assertTrue(vm.redo());
        assertTrue(vm.redo());
        assertEquals(afterThird, vm.specs());
        assertFalse(vm.redo());

        assertTrue(vm.undo());
        vm.setActivationFormat(List.of(probe), "int8-asym");   // a new edit drops the redo side
        assertFalse(vm.history().canRedoProperty().get());
        while (vm.undo()) { }
        assertEquals(start, vm.specs());
        assertEquals(32.0, vm.averageWeightBits(), 0.0);
    }

    @Test void noOpEditLeavesNoHistory() {
        assertEquals(0, vm.setWeightFormat(List.of(qkv), "fp32"));
        assertEquals(0, vm.setWeightFormat(List.of(norm, probe), "int4"));
        assertEquals(0, vm.setEnabled(List.of(norm, emb), false));   // nothing to quantize there
        assertEquals(0, vm.history().undoSize());
    }

    @Test void averageBitsFollowAlgorithmsSection3() {
        // int4-sym per channel on [64, 64]: 4 bits per element + one FP32 scale per row -> (4*4096 + 32*64)/4096 = 4.5
        vm.setWeightFormat(List.of(proj), "int4-sym");
        assertEquals(4.5, proj.averageBits(), 1e-12);
        // int4 asymmetric adds a 4-bit zero point per group: (4*4096 + 36*64)/4096 = 4.5625
        vm.setWeightFormat(List.of(proj), "int4-asym");
        assertEquals(4.5625, proj.averageBits(), 1e-12);
        // groups of 32 on [64, 64]: 128 groups -> (4*4096 + 36*128)/4096 = 5.125
        vm.setWeightGranularity(List.of(proj), "group32");
        assertEquals(5.125, proj.averageBits(), 1e-12);
        // MXFP4: 4 bits + one E8M0 scale per 32 -> 4.25 ; NVFP4: 4 + 8/16 + 32/4096 (tensor scale)
        vm.setWeightFormat(List.of(proj), "mxfp4");
        assertEquals(4.25, proj.averageBits(), 1e-12);
        vm.setWeightFormat(List.of(proj), "nvfp4");
        assertEquals(4.5 + 32.0 / 4096, proj.averageBits(), 1e-12);
        // conv [64, 4, 2, 2] per channel: rows 64, cols 16 -> (8*1024 + 32*64)/1024 = 10 with int8-sym
        vm.setWeightFormat(List.of(conv), "int8-sym");
        assertEquals(10.0, conv.averageBits(), 1e-12);
        // disabled: float again
        vm.setEnabled(List.of(conv), false);
        assertEquals(32.0, conv.averageBits(), 0.0);
        assertEquals(32, conv.weightBits());
        assertTrue(Double.isNaN(norm.averageBits()));
        assertTrue(Double.isNaN(probe.averageBits()));
    }

    @Test void modelTotalsWeightByElements() {
        long wElems = 64 * 16 + 64 * 256 + 192 * 64 + 64 * 64 + 256 * 64;   // conv, tEmb, qkv, proj, fc1
        assertEquals(wElems, vm.quantizableWeightElementsProperty().get());
        assertEquals(32.0, vm.averageWeightBits(), 0.0);
        assertEquals(100_000 * 4.0, vm.modelSizeBytesProperty().get(), 1e-9);
        assertEquals(0, vm.quantizedLayersProperty().get());

        vm.setWeightFormat(List.of(proj), "int4-sym");       // 4.5 bits on 4096 elements
        double expectedAvg = (4.5 * 4096 + 32.0 * (wElems - 4096)) / wElems;
        assertEquals(expectedAvg, vm.averageWeightBits(), 1e-12);
        assertEquals((4.5 * 4096 + 32.0 * (100_000 - 4096)) / 8, vm.modelSizeBytesProperty().get(), 1e-9);
        assertEquals(1, vm.quantizedLayersProperty().get());

        vm.setActivationFormat(List.of(probe), "int8-asym");  // activations do not change the weight bits
        assertEquals(expectedAvg, vm.averageWeightBits(), 1e-12);
        assertEquals(2, vm.quantizedLayersProperty().get());
        assertEquals(100_000, vm.totalParametersProperty().get());
    }

    @Test void setRowsClearsHistoryAndRejectsDuplicates() {
        vm.setWeightFormat(List.of(qkv), "int4");
        vm.setRows(List.of(row("a", LayerKind.LINEAR, new int[] {2, 2}, 4, Map.of())), 4);
        assertEquals(0, vm.history().undoSize());
        assertEquals(1, vm.rows().size());
        assertThrows(IllegalArgumentException.class, () -> vm.setRows(List.of(
                row("a", LayerKind.LINEAR, new int[] {2, 2}, 4, Map.of()), row("a", LayerKind.NORM, new int[] {2}, 2, Map.of())), 6));
        IllegalArgumentException foreign = assertThrows(IllegalArgumentException.class, () -> vm.setWeightFormat(List.of(qkv), "int4"));
        assertTrue(foreign.getMessage().contains("blocks.0.attn.qkv"));
    }

    @Test void editHistoryDropsOldestBeyondLimit() {
        EditHistory h = new EditHistory(2);
        for (int i = 0; i < 3; i++) h.push(new EditHistory.Edit("e" + i, Map.of(), Map.of()));
        assertEquals(2, h.undoSize());
        assertEquals("e2", h.undo().description());
        assertEquals("e1", h.undo().description());
        assertEquals(null, h.undo());
        assertThrows(IllegalArgumentException.class, () -> new EditHistory(0));
    }
}
