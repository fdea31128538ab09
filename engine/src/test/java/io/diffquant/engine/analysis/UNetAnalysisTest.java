package io.diffquant.engine.analysis;

import io.diffquant.engine.model.unet.UNet2DModel;
import io.diffquant.engine.quant.QuantTestSupport;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The analyses on the golden unet-small (diffusers UNet2DModel, unconditional): the same code paths as on a DiT. */
class UNetAnalysisTest {

    @Test void temporalErrorTrajectoryAndPerturbationSitesOnAUNet() throws Exception {
        UNet2DModel u = QuantTestSupport.unetSmall();
        AnalysisSession s = new AnalysisSession(u, new AnalysisSettings("ddim", 3, 0.0, "linear", 1.0, 1, 2, 2));
        assertNull(s.featureLabels(), "unconditional");
        Variant w4 = Variant.of("w4", AnalysisTestSupport.rtn(u, 4), false);
        TemporalFeatureError.Result r = TemporalFeatureError.evaluate(s, List.of(Variant.fullPrecision("fp"), w4));
        assertEquals(s.tib().features().size(), r.features().size());
        assertTrue(r.features().getFirst().startsWith("down_blocks.0.resnets."), r.features().toString());
        assertEquals(0.0, r.config("fp").meanRelativeL2(), 0.0);
        assertTrue(r.config("w4").meanRelativeL2() > 0);
        TrajectoryDeviation.Result t = TrajectoryDeviation.evaluate(s, List.of(Variant.fullPrecision("fp"), w4));
        assertEquals(0.0, t.config("fp").finalL2(), 0.0);
        assertTrue(t.config("w4").finalL2() > 0);
        List<String> sites = PerturbationSensitivity.nonTemporalSites(u);
        assertEquals(s.tib().features().size(), sites.size(), "one conv2 per ResNet block, as many as time projections");
        assertTrue(sites.stream().allMatch(x -> x.endsWith(".conv2")));
        assertTrue(u.layers().all().stream().allMatch(l -> l.hooks().isEmpty()));
    }
}
