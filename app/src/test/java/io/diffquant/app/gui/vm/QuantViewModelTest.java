package io.diffquant.app.gui.vm;

import io.diffquant.engine.model.dit.DiT;
import io.diffquant.engine.quant.preset.Presets;
import io.diffquant.engine.quant.spec.LayerOverride;
import io.diffquant.engine.quant.spec.PointSpec;
import io.diffquant.engine.quant.spec.QuantPlan;
import io.diffquant.engine.quant.spec.QuantPoint;
import io.diffquant.engine.quant.preset.Preset;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Presets applied to the table, the table as overrides on a preset's plan, undo of the method, spec conversion. */
class QuantViewModelTest {
    @TempDir Path tmp;
    private DiT model;
    private LayerTableViewModel layers;
    private QuantViewModel quant;

    @BeforeEach void setUp() {
        model = TinyModels.dit(1);
        layers = new LayerTableViewModel();
        layers.setModel(model);
        quant = new QuantViewModel(layers, tmp);
        quant.setContext(TinyModels.context(model));
    }

    /** The plan CalibrationJob resolves for a target: preset defaults, preset overrides, then the target's overrides. */
    private QuantPlan resolved(QuantViewModel.Target t) {
        Preset p = Presets.byName(t.method().preset());
        Preset.Plan plan = p.plan(model, t.method().resolvedOptions());
        List<LayerOverride> all = new ArrayList<>(plan.overrides());
        all.addAll(t.overrides());
        return QuantPlan.resolve(model, plan.defaults(), all);
    }

    private void assertTableIs(QuantPlan plan) {
        for (QuantPoint p : plan.points()) {
            LayerRow r = layers.row(p.name());
            assertEquals(SpecBridge.key(plan.spec(p.name())), SpecBridge.key(SpecBridge.toPointSpec(r.spec(), r.weightQuantizable())), p.name());
        }
    }

    @Test void everyPresetAppliesAsOneEditAndNeedsNoOverrides() {
        for (String name : Presets.names()) {
            MethodChoice m = new MethodChoice(name, Map.of("w_bits", 4, "a_bits", 8));
            if (Presets.byName(name).options().stream().anyMatch(o -> o.name().equals("group_size"))) m = m.withOption("group_size", 16);
            quant.applyPreset(m);
            assertEquals(m, layers.method());
            QuantViewModel.Target t = quant.currentTarget();
            assertEquals(List.of(), t.overrides(), name + ": the table is exactly the preset's plan");
            assertTrue(t.quantizes(), name);
            assertTableIs(quant.planFor(m));
        }
        assertEquals(Presets.names().size(), layers.history().undoSize());
    }

    @Test void tableEditsBecomeOverridesThatReproduceTheTable() {
        MethodChoice qdit = new MethodChoice("q-dit", Map.of("group_size", 16));
        quant.applyPreset(qdit);
        // three different kinds of edits: weight format, a layer turned off, a probe's activation
        layers.setWeightFormat(List.of(layers.row("blocks.0.mlp.fc1")), "int8-asym");
        layers.setEnabled(List.of(layers.row("blocks.1.attn.proj")), false);
        layers.setActivationFormat(List.of(layers.row("blocks.0.attn.softmax")), "int8-asym");
        layers.setActivationGranularity(List.of(layers.row("blocks.0.attn.softmax")), "tensor");
        layers.setActivationMode(List.of(layers.row("blocks.0.attn.softmax")), "per_timestep");
        QuantViewModel.Target t = quant.currentTarget();
        assertEquals(List.of("blocks.0.attn.softmax", "blocks.0.mlp.fc1", "blocks.1.attn.proj"),
                t.overrides().stream().map(LayerOverride::pattern).sorted().toList());
        assertTableIs(resolved(t));
        PointSpec proj = resolved(t).spec("blocks.1.attn.proj");
        assertFalse(proj.enabled(), "the disabled layer is full precision in the config");
        assertEquals("int8-asym/group16/minmax", resolved(t).spec("blocks.0.mlp.fc1").weight().describe(io.diffquant.engine.quant.spec.TensorSpec.Role.WEIGHT));
        assertNotEquals(t.key(), quant.baselineTarget().key());
    }

    @Test void undoRestoresTheMethodWithTheSpecs() {
        quant.applyPreset(MethodChoice.of("rtn"));
        quant.applyPreset(new MethodChoice("fp4dit", Map.of("reconstruction", "none")));
        assertEquals("fp4dit", layers.method().preset());
        assertTrue(layers.undo());
        assertEquals(MethodChoice.of("rtn"), layers.method());
        assertTableIs(quant.planFor(MethodChoice.of("rtn")));
        assertTrue(layers.undo());
        assertEquals(MethodChoice.DEFAULT, layers.method());
        assertEquals(0, layers.quantizedLayersProperty().get(), "back to the loaded (FP32) table");
        assertTrue(layers.redo());
        assertTrue(layers.redo());
        assertEquals("fp4dit", layers.method().preset());
    }

    @Test void anFp32TableOnRtnIsAllOffAndQuantizesNothing() {
        QuantViewModel.Target t = quant.currentTarget();
        assertFalse(t.quantizes());
        QuantPlan p = resolved(t);
        assertTrue(p.specs().values().stream().noneMatch(PointSpec::enabled), "every point off");
    }

    @Test void badPresetOptionsNameTheOption() {
        var e = assertThrows(IllegalArgumentException.class, () -> quant.applyPreset(new MethodChoice("rtn", Map.of("wbits", 4))));
        assertTrue(e.getMessage().contains("wbits"), e.getMessage());
        assertEquals(0, layers.history().undoSize(), "nothing changed");
    }

    @Test void specConversionRoundTripsEveryPresetSpec() {
        for (String name : Presets.names()) {
            MethodChoice m = MethodChoice.of(name);
            if (Presets.byName(name).options().stream().anyMatch(o -> o.name().equals("group_size"))) m = m.withOption("group_size", 16);
            QuantPlan plan = quant.planFor(m);
            for (QuantPoint p : plan.points()) {
                PointSpec s = plan.spec(p.name());
                LayerQuantSpec table = SpecBridge.fromPointSpec(s);
                assertEquals(SpecBridge.key(s), SpecBridge.key(SpecBridge.toPointSpec(table, p.hasWeight())), name + " " + p.name());
                assertEquals(table, layers.row(p.name()).validate(table), "canonical names: " + p.name());
            }
        }
    }

    @Test void activationGranularityPerTokenSwitchesToDynamic() {
        LayerRow fc2 = layers.row("blocks.0.mlp.fc2");
        layers.setActivationFormat(List.of(fc2), "int8-asym");
        assertEquals("static", fc2.spec().activationMode());
        layers.setActivationGranularity(List.of(fc2), "token");
        assertEquals("dynamic", fc2.spec().activationMode());
        var e = assertThrows(IllegalArgumentException.class, () -> layers.setActivationMode(List.of(fc2), "static"));
        assertTrue(e.getMessage().contains("blocks.0.mlp.fc2") && e.getMessage().contains("dynamic"), e.getMessage());
    }

    @Test void diffOfAPresetListsChangedLayersAndTheMethod() {
        SpecDiff d = quant.previewPreset(new MethodChoice("q-dit", Map.of("group_size", 16)));
        long blockLinears = layers.rows().stream().filter(r -> r.name().startsWith("blocks.") && r.weightQuantizable()).count();
        assertTrue(d.methodChanges());
        // q-dit quantizes the linear layers of the blocks only (weights and their inputs): every other row keeps FP32
        assertEquals(blockLinears, d.changes().size(), d.toMarkdown());
        for (SpecDiff.Change c : d.changes()) {
            assertEquals("off", c.weightBefore());
            assertTrue(c.weightAfter().startsWith("int4-asym/group16"), c.weightAfter());
        }
    }
}
