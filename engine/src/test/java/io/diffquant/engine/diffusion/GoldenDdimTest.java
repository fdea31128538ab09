package io.diffquant.engine.diffusion;

import io.diffquant.engine.io.SafetensorsReader;
import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.model.ModelFolder;
import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * End to end against PyTorch: a model folder loaded by {@link ModelFolder}, sampled with DDIM ("ddim10", eta 0,
 * CFG 4 on all channels for the DiT) from the golden noise (tools/golden/make_golden.py). Every step within
 * 1e-3 absolute + 1e-5 relative (the trajectories reach |x| ~ 250 with random weights), the final sample within 1e-3.
 */
class GoldenDdimTest {
    @ParameterizedTest
    @ValueSource(strings = {"dit-small", "unet-small", "unet-small-cls"})
    void ddim10MatchesPyTorch(String name) throws Exception {
        Path dir = Path.of(getClass().getClassLoader().getResource("golden/" + name).toURI());
        DiffusionModel m = ModelFolder.load(dir).model();
        try (SafetensorsReader r = SafetensorsReader.open(dir.resolve("ddim.safetensors"))) {
            Tensor noise = r.readFloat("noise");
            int n = noise.dim(0);
            SampleRequest.Builder b = SampleRequest.forModel(m, n).respacing("ddim10").ddim(0).initialNoise(noise);
            if (r.contains("y")) b.labels(r.readInts("y"));
            if (r.metadata().containsKey("cfg_scale")) b.cfg(Double.parseDouble(r.metadata().get("cfg_scale")), GuidanceMode.ALL_CHANNELS);
            SamplingResult res = Sampling.runToEnd(b.build(), true);
            double worstStep = 0;
            for (int k = 0; k < 10; k++) {
                Tensor exp = r.readFloat("xt_" + k), got = res.trajectory().get(k);
                assertArrayEquals(exp.shape(), got.shape());
                for (int i = 0; i < exp.size(); i++) {
                    double err = Math.abs(exp.data()[i] - got.data()[i]);
                    worstStep = Math.max(worstStep, err / (1e-3 + 1e-5 * Math.abs(exp.data()[i])));
                }
            }
            assertTrue(worstStep <= 1.0, name + ": a DDIM step is off by " + worstStep + " x its tolerance");
            Tensor fin = r.readFloat("samples");
            double maxErr = 0;
            for (int i = 0; i < fin.size(); i++) maxErr = Math.max(maxErr, Math.abs(fin.data()[i] - res.samples().data()[i]));
            assertTrue(maxErr <= 1e-3, name + ": final DDIM sample max abs error " + maxErr + " > 1e-3");
        }
    }
}
