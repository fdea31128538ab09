package io.diffquant.app.gui.vm;

import io.diffquant.engine.diffusion.SampleRequest;
import io.diffquant.engine.diffusion.Sampling;
import io.diffquant.engine.diffusion.SamplingRun;
import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.awt.image.BufferedImage;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Generation panel logic without the toolkit: label parsing, request building, frame collection and cancel. */
class GenerationViewModelTest {

    @Test void labelsCycleRepeatAndValidate() {
        assertArrayEquals(new int[] {0, 1, 2, 0, 1}, GenerationViewModel.parseLabels("", 5, 3));
        assertArrayEquals(new int[] {7, 7, 7}, GenerationViewModel.parseLabels(" 7 ", 3, 10));
        assertArrayEquals(new int[] {1, 4, 1, 4, 1}, GenerationViewModel.parseLabels("1, 4", 5, 10));
        assertArrayEquals(new int[] {2, 3, 5}, GenerationViewModel.parseLabels("2 3,5", 3, 10));
        IllegalArgumentException range = assertThrows(IllegalArgumentException.class, () -> GenerationViewModel.parseLabels("3,10", 2, 10));
        assertTrue(range.getMessage().contains("class 10") && range.getMessage().contains("0..9"), range.getMessage());
        IllegalArgumentException text = assertThrows(IllegalArgumentException.class, () -> GenerationViewModel.parseLabels("1,x", 2, 10));
        assertTrue(text.getMessage().contains("'x'"), text.getMessage());
        assertThrows(IllegalArgumentException.class, () -> GenerationViewModel.parseLabels("1", 2, 0));
    }

    @Test void requestCarriesThePanelSettings() {
        GenerationViewModel vm = new GenerationViewModel();
        assertThrows(IllegalStateException.class, vm::buildRequest);
        vm.setModel(new StubModel(4, 8, 10, true));
        assertTrue(vm.classConditionalProperty().get());
        assertEquals(1.5, vm.cfgScaleProperty().get(), 0.0);   // a class-conditional model starts with guidance
        vm.imageCountProperty().set(3);
        vm.stepsProperty().set(7);
        vm.seedProperty().set(42);
        vm.labelsProperty().set("9");
        SampleRequest r = vm.buildRequest();
        assertArrayEquals(new int[] {3, 4, 8, 8}, r.shape());
        assertEquals(42, r.seed());
        assertEquals("ddim7", r.respacing());
        assertArrayEquals(new int[] {9, 9, 9}, r.labels());
        assertTrue(r.learnSigma());
        assertEquals(1.5, r.guidance().scale(), 0.0);
        assertEquals(10, r.guidance().nullClass());
        assertEquals(0.0, r.eta(), 0.0);

        vm.cfgScaleProperty().set(1.0);
        assertNull(vm.buildRequest().guidance());
        vm.stepsProperty().set(0);
        assertTrue(assertThrows(IllegalArgumentException.class, vm::buildRequest).getMessage().startsWith("steps"));
        vm.stepsProperty().set(5);
        vm.imageCountProperty().set(GenerationViewModel.MAX_IMAGES + 1);
        assertTrue(assertThrows(IllegalArgumentException.class, vm::buildRequest).getMessage().startsWith("images"));

        GenerationViewModel u = new GenerationViewModel();
        u.setModel(new StubModel(3, 4, 0, false));
        u.labelsProperty().set("not used");
        SampleRequest ur = u.buildRequest();
        assertNull(ur.labels());
        assertNull(ur.guidance());
        assertFalse(u.classConditionalProperty().get());
    }

    @Test void framesPerStepWithGridGeometryAndChange() {
        StubModel m = new StubModel(1, 4, 0, false);
        SampleRequest req = SampleRequest.forModel(m, 3).respacing("ddim5").seed(3).build();
        List<GenerationResult> seen = new ArrayList<>();
        GenerationResult r = SamplingFrames.collect(Sampling.start(req), "FP32", () -> false, seen::add);
        assertEquals(5, r.stepsDone());
        assertTrue(r.complete());
        assertEquals(5, seen.size());
        for (int k = 0; k < 5; k++) assertEquals(k + 1, seen.get(k).stepsDone());
        BufferedImage g = r.predX0Grids().getFirst();
        assertEquals(2 * (4 + 1) + 1, g.getWidth());   // 3 images: 2 columns x 2 rows of 4 px with 1 px borders
        assertEquals(2 * (4 + 1) + 1, g.getHeight());
        assertEquals(3, DisplayImages.columnsFor(9));
        assertEquals(4, DisplayImages.columnsFor(10));
        assertEquals(1, DisplayImages.columnsFor(1));
        assertEquals(5, r.timesteps().length);
        for (int k = 1; k < 5; k++) assertTrue(r.timesteps()[k] < r.timesteps()[k - 1], "timesteps descend");
        assertEquals(5, m.calls);   // one model call per step
        // the final grid is x after the last step: the same pixels as a grid of the independently sampled tensor
        BufferedImage expected = DisplayImages.grid(Sampling.runToEnd(req, false).samples());
        assertImagesEqual(expected, r.finalGrid());
    }

    @Test void cancelBetweenStepsKeepsTheFramesSoFar() {
        StubModel m = new StubModel(1, 4, 0, false);
        SamplingRun run = Sampling.start(SampleRequest.forModel(m, 2).respacing("ddim10").build());
        int[] count = {0};
        GenerationResult r = SamplingFrames.collect(run, "FP32", () -> count[0] >= 3, s -> count[0]++);
        assertEquals(3, r.stepsDone());
        assertFalse(r.complete());
        assertTrue(run.isCancelled());
        assertEquals(3, m.calls);
        assertEquals(10, r.totalSteps());
    }

    @Test void framesAreThinnedToTheBudgetKeepingTheLastStep() {
        StubModel m = new StubModel(1, 4, 0, false);
        // 2 images of 4x4 in a 2x1 grid: 11 x 6 pixels; x̂_0 + x_t grids = 2 * 4 * 66 = 528 bytes per step, plus the
        // x̂_0 and x_t tensors 2 * 4 * 32 = 256 bytes: 784 bytes per step.
        // 10 steps = 7840 bytes; a budget of 2000 bytes gives a stride of ceil(7840 / 2000) = 4: steps 0, 4, 8 and the last, 9.
        SamplingRun run = Sampling.start(SampleRequest.forModel(m, 2).respacing("ddim10").build());
        GenerationResult r = SamplingFrames.collect(run, "FP32", 2000, () -> false, null);
        assertEquals(10, r.stepsDone());
        assertEquals(10, r.predX0Change().length);
        assertArrayEquals(new int[] {0, 4, 8, 9}, r.frameSteps());
        assertEquals(4, r.predX0Grids().size());
        assertEquals(4, r.predX0Frames().size());
        assertEquals(r.timesteps()[8], r.frameTimestep(2));
        // a budget of 4000 bytes: stride 2 -> 0, 2, 4, 6, 8 and the last step 9
        GenerationResult r2 = SamplingFrames.collect(Sampling.start(SampleRequest.forModel(m, 2).respacing("ddim10").build()),
                "FP32", 4000, () -> false, null);
        assertArrayEquals(new int[] {0, 2, 4, 6, 8, 9}, r2.frameSteps());
        assertImagesEqual(r.finalGrid(), r2.finalGrid());
        // the default budget keeps every step
        GenerationResult all = SamplingFrames.collect(Sampling.start(SampleRequest.forModel(m, 2).respacing("ddim10").build()),
                "FP32", () -> false, null);
        assertArrayEquals(new int[] {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, all.frameSteps());
        assertThrows(IllegalArgumentException.class, () -> new SamplingFrames("x", 3, 0));
    }

    @Test void rmsDiffAndFrameSelection() {
        Tensor a = Tensor.of(new float[] {3, 4}, 1, 1, 1, 2);
        Tensor b = Tensor.of(new float[] {1, 1}, 1, 1, 1, 2);
        assertEquals(Math.sqrt(12.5), SamplingFrames.rmsDiff(a, null), 1e-12);
        assertEquals(Math.sqrt((4 + 9) / 2.0), SamplingFrames.rmsDiff(a, b), 1e-12);

        StubModel m = new StubModel(1, 4, 0, false);
        GenerationResult r = SamplingFrames.collect(Sampling.start(SampleRequest.forModel(m, 1).respacing("ddim4").build()),
                "FP32", () -> false, null);
        assertSame(r.predX0Grids().get(2), GenerationViewModel.frame(r, 2, true));
        assertSame(r.xtGrids().get(3), GenerationViewModel.frame(r, 99, false));   // clamped
        assertSame(r.xtGrids().get(0), GenerationViewModel.frame(r, -5, false));
        assertNull(GenerationViewModel.frame(null, 0, true));

        GenerationViewModel vm = new GenerationViewModel();
        vm.fpResultProperty().set(r);
        assertEquals(3, vm.selectedFrameProperty().get());                 // follows the newest step
        assertSame(r.predX0Grids().get(3), vm.fpFrameBinding().get());
        vm.selectedFrameProperty().set(1);
        vm.showPredX0Property().set(false);
        assertSame(r.xtGrids().get(1), vm.fpFrameBinding().get());
        assertNull(vm.baselineFrameBinding().get());
    }

    @Test void latentChannelsShownAsRgb() {
        float[] d = new float[2 * 4];
        for (int i = 0; i < d.length; i++) d[i] = i;
        Tensor t = Tensor.of(d, 2, 4, 1, 1);   // 2 images, 4 channels, 1x1
        Tensor s = DisplayImages.displayChannels(t);
        assertArrayEquals(new int[] {2, 3, 1, 1}, s.shape());
        assertArrayEquals(new float[] {0, 1, 2, 4, 5, 6}, s.data());
        Tensor two = DisplayImages.displayChannels(Tensor.of(new float[] {1, 2}, 1, 2, 1, 1));
        assertArrayEquals(new float[] {1}, two.data());
        Tensor one = Tensor.zeros(1, 1, 2, 2);
        assertSame(one, DisplayImages.displayChannels(one));
    }

    static void assertImagesEqual(BufferedImage a, BufferedImage b) {
        assertEquals(a.getWidth(), b.getWidth());
        assertEquals(a.getHeight(), b.getHeight());
        for (int y = 0; y < a.getHeight(); y++) for (int x = 0; x < a.getWidth(); x++)
            assertEquals(a.getRGB(x, y), b.getRGB(x, y), "pixel " + x + "," + y);
    }
}
