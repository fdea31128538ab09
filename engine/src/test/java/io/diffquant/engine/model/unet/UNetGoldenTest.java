package io.diffquant.engine.model.unet;

import static io.diffquant.engine.testing.Golden.*;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.diffquant.engine.diffusion.SampleRequest;
import io.diffquant.engine.diffusion.Sampling;
import io.diffquant.engine.diffusion.SamplingResult;
import io.diffquant.engine.io.SafetensorsReader;
import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.Test;

import java.net.URISyntaxException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * PyTorch parity on golden/unet-small and golden/unet-small-cls (tools/golden/make_golden.py: a re-implementation
 * of diffusers UNet2DModel with random weights, checked bit-identical against the diffusers code), plus the full
 * google/ddpm-cifar10-32 key list (golden/keys/ddpm-cifar10.json).
 */
class UNetGoldenTest {
    /** Per-call tolerance of the brief; the DDIM run accumulates 10 calls (README: PyTorch itself drifts ~7e-5). */
    static final double TOL = 1e-4, DDIM_TOL = 5e-4;


    static UNet2DModel load(Path dir) throws Exception {
        UNet2DModel m = new UNet2DModel(UNet2DConfig.fromJson(dir.resolve("config.json")));
        try (SafetensorsReader r = SafetensorsReader.open(dir.resolve("diffusion_pytorch_model.safetensors"))) {
            m.loadWeights(r.readAllFloat(), r.file().toString());
        }
        return m;
    }




    /**
     * unet-options (tools/golden/unet_options_golden.py, an independent re-implementation, not the bit-verified one):
     * fourier time embedding, "timestep" class embedding, resnet down/upsamplers, center_input_sample,
     * mid_block_scale_factor 2, attn_norm_num_groups, time_embedding_dim, scale_shift, head dim not dividing channels.
     */
    @ParameterizedTest
    @ValueSource(strings = {"unet-small", "unet-small-cls", "unet-options"})
    void forwardMatchesPyTorch(String name) throws Exception {
        Path dir = resourceDir("golden/" + name);
        UNet2DModel m = load(dir);
        try (SafetensorsReader io = SafetensorsReader.open(dir.resolve("io.safetensors"))) {
            Tensor x = io.readFloat("x"), want = io.readFloat("out");
            float[] t = io.readFloat("t").data();
            int[] y = io.contains("y") ? ints(io.readLongs("y")) : null;
            assertEquals(!name.equals("unet-small"), y != null);
            for (boolean fast : new boolean[] {true, false}) {
                m.setFastPaths(fast);
                double err = maxAbsDiff(want, m.forward(x, t, y));
                assertTrue(err <= TOL, name + (fast ? " fused" : " explicit") + ": max |out - torch| = " + err);
                System.out.println(name + (fast ? " fused" : " explicit") + " forward: max abs error vs PyTorch = " + err);
            }
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"unet-small", "unet-small-cls"})
    void ddim10TrajectoryMatchesPyTorch(String name) throws Exception {
        Path dir = resourceDir("golden/" + name);
        UNet2DModel m = load(dir);
        try (SafetensorsReader r = SafetensorsReader.open(dir.resolve("ddim.safetensors"))) {
            Tensor noise = r.readFloat("noise");
            SampleRequest.Builder b = SampleRequest.forModel(m, noise.dim(0)).respacing("ddim10").ddim(0.0)
                    .clipDenoised(false).initialNoise(noise);
            if (r.contains("y")) b.labels(ints(r.readLongs("y")));
            SamplingResult res = Sampling.runToEnd(b.build());
            assertEquals(10, res.trajectory().size());
            double worst = 0;
            for (int k = 0; k < 10; k++) worst = Math.max(worst, maxAbsDiff(r.readFloat("xt_" + k), res.trajectory().get(k)));
            double err = maxAbsDiff(r.readFloat("samples"), res.samples());
            assertTrue(err <= DDIM_TOL && worst <= DDIM_TOL, name + " DDIM: samples error " + err + ", worst step " + worst);
            System.out.println(name + " ddim10: max abs error of samples = " + err + ", worst step = " + worst);
        }
    }

    @Test void ddpmCifar10KeyListMatchesDiffusers() throws Exception {
        JsonNode keys = new ObjectMapper().readTree(resourceDir("golden/keys").resolve("ddpm-cifar10.json").toFile());
        UNet2DConfig cfg = UNet2DConfig.fromJson(keys.get("config").toString(), "ddpm-cifar10.json config");
        assertEquals(UNet2DConfig.fromJson(UNet2DConfigTest.resource("ddpm-cifar10-32-config.json")), cfg);
        Map<String, Tensor> sd = new UNet2DModel(cfg).stateDict();
        Map<String, List<Integer>> want = new LinkedHashMap<>();
        keys.get("keys").fields().forEachRemaining(e -> {
            List<Integer> s = new ArrayList<>();
            e.getValue().forEach(d -> s.add(d.asInt()));
            want.put(e.getKey(), s);
        });
        assertEquals(keys.get("num_tensors").asInt(), want.size());
        assertEquals(want.keySet(), sd.keySet());
        for (var e : want.entrySet())
            assertEquals(e.getValue(), Arrays.stream(sd.get(e.getKey()).shape()).boxed().toList(), e.getKey());
        long params = sd.values().stream().mapToLong(Tensor::size).sum();
        assertEquals(keys.get("num_parameters").asLong(), params);
    }
}
