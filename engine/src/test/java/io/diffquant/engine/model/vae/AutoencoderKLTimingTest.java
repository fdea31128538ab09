package io.diffquant.engine.model.vae;

import io.diffquant.engine.diffusion.SeededNoise;
import io.diffquant.engine.model.Layer;
import io.diffquant.engine.model.LayerKind;
import io.diffquant.engine.tensor.Parallel;
import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledIfSystemProperty;

import java.lang.management.ManagementFactory;
import java.util.Arrays;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Timing of the full-size stabilityai/sd-vae-ft-ema decoder (random weights): one 32x32x4 latent to a 256x256x3
 * image, and the encoder on the same image (opt-in: -Ddiffquant.bench=true; skipped otherwise because the shared
 * build machine makes timings noisy). Prints ms per call to the surefire output file.
 */
@Tag("perf")
@EnabledIfSystemProperty(named = "diffquant.bench", matches = "true", disabledReason = "timing run: pass -Ddiffquant.bench=true")
class AutoencoderKLTimingTest {

    /** Weights ~ N(0, 1/fan_in) (norm weights 1, biases 0.01 N(0, 1)) so activations stay O(1) through the network. */
    static AutoencoderKL randomSdVae() {
        AutoencoderKL vae = new AutoencoderKL(AutoencoderKLConfig.stableDiffusion());
        SeededNoise noise = new SeededNoise(42);
        long k = 0;
        for (Layer l : vae.layers().all()) {
            for (Map.Entry<String, Tensor> e : l.params().entrySet()) {
                Tensor cur = e.getValue();
                if (l.kind() == LayerKind.NORM && e.getKey().equals("weight")) continue;
                Tensor r = noise.normal(7, k++, 0, cur.shape());
                float s = e.getKey().equals("bias") ? 0.01f : (float) (1.0 / Math.sqrt(cur.size() / (double) cur.dim(0)));
                for (int i = 0; i < r.size(); i++) r.data()[i] *= s;
                l.setParam(e.getKey(), r);
            }
        }
        return vae;
    }

    @Test
    void decode32x32LatentTo256x256() {
        AutoencoderKL vae = randomSdVae();
        Tensor z = new SeededNoise(1).normal(0, 0, -1, 1, 4, 32, 32);
        Tensor img = vae.decode(z);   // warm-up
        assertArrayEquals(new int[] {1, 3, 256, 256}, img.shape());
        assertTrue(img.allFinite());
        int n = 3;
        double[] ms = new double[n], cpu = new double[n];
        for (int i = 0; i < n; i++) {
            long c0 = cpuNanos(), t0 = System.nanoTime();
            vae.decode(z);
            ms[i] = (System.nanoTime() - t0) / 1e6;
            cpu[i] = (cpuNanos() - c0) / 1e6;
        }
        Arrays.sort(ms);
        Arrays.sort(cpu);
        Tensor x = img;
        vae.moments(x);   // warm-up
        long t0 = System.nanoTime();
        vae.moments(x);
        double enc = (System.nanoTime() - t0) / 1e6;
        System.out.printf("sd-vae-ft-ema decode [1,4,32,32] -> [1,3,256,256]: median %.0f ms (min %.0f, max %.0f) over %d runs,"
                + " process CPU time median %.0f ms; encode [1,3,256,256]: %.0f ms; %d threads; load average %.1f%n",
                ms[n / 2], ms[0], ms[n - 1], n, cpu[n / 2], enc, Parallel.threads(),
                ManagementFactory.getOperatingSystemMXBean().getSystemLoadAverage());
    }

    /** CPU time of the whole process (all threads), for timings on a shared machine. */
    private static long cpuNanos() {
        return ((com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean()).getProcessCpuTime();
    }
}
