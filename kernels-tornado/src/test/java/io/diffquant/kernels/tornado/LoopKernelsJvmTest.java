package io.diffquant.kernels.tornado;

import io.diffquant.engine.quant.format.FpFormat;
import io.diffquant.engine.quant.format.Granularity;
import io.diffquant.engine.quant.format.IntFormat;
import io.diffquant.engine.quant.format.OcpFp8;
import io.diffquant.engine.quant.format.QuantizedTensor;
import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The kernel suite on the plain JVM (the loop kernels called as Java methods, no TornadoVM runtime), plus host-side checks. */
class LoopKernelsJvmTest extends KernelContract {
    private final KernelRunner jvm = new KernelRunner.Jvm();

    @Override KernelRunner runner() { return jvm; }

    @Test
    void levelRoundsHalfToEvenOnTheExactQuotient() {
        assertEquals(2, LoopKernels.level(2.5f, 1f, -127, 127));
        assertEquals(4, LoopKernels.level(3.5f, 1f, -127, 127));
        assertEquals(-2, LoopKernels.level(-2.5f, 1f, -127, 127));
        assertEquals(127, LoopKernels.level(1e9f, 1f, -127, 127));
        assertEquals(-128, LoopKernels.level(-1e9f, 1f, -128, 127));
        assertEquals(0, LoopKernels.level(5f, 0f, -127, 127));
        // x / d rounds to a half-integer in float while the exact quotient is not one: the exact quotient decides
        float d = 0.1f, below = 0.35f, above = Math.nextUp(0.45f);
        assertTrue(below / d == 3.5f && (double) below / d < 3.5, "0.35f / 0.1f must be a float tie above the exact quotient");
        assertTrue(above / d == 4.5f && (double) above / d > 4.5, "nextUp(0.45f) / 0.1f must be a float tie below the exact quotient");
        assertEquals(3, LoopKernels.level(below, d, -127, 127));
        assertEquals(5, LoopKernels.level(above, d, -127, 127));
        assertEquals(-3, LoopKernels.level(-below, d, -127, 127));
    }

    @Test
    void unsupportedCombinationsNameTheLayer() {
        SplittableRandom r = new SplittableRandom(9);
        Tensor w = Refs.randn(r, 1f, 8, 32);
        QuantizedTensor w8 = Refs.quantizeWeight(w, IntFormat.symmetric(8), Granularity.CHANNEL);
        UnsupportedOperationException e = assertThrows(UnsupportedOperationException.class,
                () -> PackedLinear.quantized("blocks.3.mlp.fc1", w8, null, PackedLinear.ActMode.NONE, null, 0f));
        assertTrue(e.getMessage().contains("blocks.3.mlp.fc1"), e.getMessage());
        e = assertThrows(UnsupportedOperationException.class,
                () -> PackedLinear.quantized("blocks.0.attn.qkv", w8, null, PackedLinear.ActMode.DYNAMIC_TOKEN, IntFormat.asymmetric(8), 0f));
        assertTrue(e.getMessage().contains("blocks.0.attn.qkv") && e.getMessage().contains("int8-asym"), e.getMessage());
        QuantizedTensor fp8 = Refs.quantizeWeight(w, OcpFp8.E4M3, Granularity.CHANNEL);
        e = assertThrows(UnsupportedOperationException.class,
                () -> PackedLinear.quantized("final_layer.linear", fp8, null, PackedLinear.ActMode.NONE, null, 0f));
        assertTrue(e.getMessage().contains("final_layer.linear") && e.getMessage().contains("ocp-fp8-e4m3"), e.getMessage());
        QuantizedTensor fp4 = Refs.quantizeWeight(w, FpFormat.of(2, 1), Granularity.CHANNEL);
        e = assertThrows(UnsupportedOperationException.class,
                () -> PackedLinear.quantized("x", fp4, null, PackedLinear.ActMode.DYNAMIC_TOKEN, IntFormat.symmetric(8), 0f));
        assertTrue(e.getMessage().contains("FP4 weights"), e.getMessage());
    }

    @Test
    void packedW4IsAtMostASixthOfFp32() {
        SplittableRandom r = new SplittableRandom(10);
        Tensor w = Refs.randn(r, 1f, 384, 384);
        PackedLinear w4 = PackedLinear.quantized("l", Refs.quantizeWeight(w, IntFormat.symmetric(4), Granularity.group(64)), null,
                PackedLinear.ActMode.DYNAMIC_TOKEN, IntFormat.symmetric(8), 0f);
        PackedLinear w8 = PackedLinear.quantized("l", Refs.quantizeWeight(w, IntFormat.symmetric(8), Granularity.CHANNEL), null,
                PackedLinear.ActMode.DYNAMIC_TOKEN, IntFormat.symmetric(8), 0f);
        // W4 group 64: 0.5 byte per weight + a 4-byte step per 64 weights = 0.5625 B vs 4 B
        assertEquals(384 * 384 / 2 + 4 * 384 * 6, w4.weightBytes());
        assertTrue(w4.weightBytes() * 6 <= w4.fp32Bytes(), w4.weightBytes() + " vs " + w4.fp32Bytes());
        assertEquals(384 * 384 + 4 * 384, w8.weightBytes());
    }
}
