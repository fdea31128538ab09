package io.diffquant.engine.quant.format;

import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** OCP MX v1.0 and NVFP4 blocks against hand-computed cases. */
class BlockFormatTest {

    private static Tensor row(int len, float... head) {
        float[] d = new float[len];
        System.arraycopy(head, 0, d, 0, head.length);
        return Tensor.of(d, 1, len);
    }

    private static float[] fq(BlockFormat f, Tensor x) {
        return Quantizer.dynamic(f, f.granularity(), Layout.ACTIVATION).fakeQuant(x).data();
    }

    private static void assertPrefix(float[] want, float[] got, int from) {
        for (int i = 0; i < want.length; i++) assertEquals(want[i], got[from + i], "element " + (from + i));
    }

    @Test void mxfp4() {
        // block 0: amax 5 -> X = 2^(floor(log2 5) - 2) = 1; E2M1 RNE: 5 -> 4 (tie 4|6, even), -2.6 -> -3, 0.3 -> 0.5,
        // 1.25 -> 1 (tie 1|1.5), 0.1 -> 0, 3.5 -> 4 (tie 3|4)
        // block 1: amax 0.3 -> X = 2^(-2 - 2) = 1/16; 0.3*16 = 4.8 -> 4 -> 0.25; 0.1*16 = 1.6 -> 1.5 -> 0.09375;
        // -0.05*16 = -0.8 -> -1 -> -0.0625
        float[] d = new float[64];
        float[] b0 = {5f, -2.6f, 0.3f, 1.25f, 0.1f, 3.5f};
        float[] b1 = {0.3f, 0.1f, -0.05f};
        System.arraycopy(b0, 0, d, 0, b0.length);
        System.arraycopy(b1, 0, d, 32, b1.length);
        Tensor x = Tensor.of(d, 2, 32);
        Quantizer q = Quantizer.dynamic(BlockFormat.MXFP4, Granularity.block(32), Layout.ACTIVATION);
        float[] y = q.fakeQuant(x).data();
        assertPrefix(new float[] {4f, -3f, 0.5f, 1f, 0f, 4f, 0f}, y, 0);
        assertPrefix(new float[] {0.25f, 0.09375f, -0.0625f, 0f}, y, 32);
        QuantizedTensor qt = q.quantize(x);
        assertEquals(127, BlockFormat.MXFP4.scaleCode(qt.params(), 0));
        assertEquals(123, BlockFormat.MXFP4.scaleCode(qt.params(), 1));
        assertEquals(0b0110, qt.codes()[0] & 0xFF);       // +4: exp 3, mant 0
        assertEquals(0b1101, qt.codes()[1] & 0xFF);       // -3: sign, exp 2, mant 1
        assertArrayEquals(y, qt.dequantize().data());
        assertEquals(4.25, BlockFormat.MXFP4.averageBits(new int[] {2, 32}, Layout.ACTIVATION, Granularity.block(32)));
    }

    @Test void allZeroBlockAndScaleClamp() {
        Quantizer q = Quantizer.dynamic(BlockFormat.MXFP4, Granularity.block(32), Layout.ACTIVATION);
        QuantizedTensor qt = q.quantize(row(32));
        assertEquals(0, BlockFormat.MXFP4.scaleCode(qt.params(), 0), "all-zero block: smallest E8M0 scale 2^-127");
        assertEquals(0f, qt.dequantize().data()[0]);
        // amax 2^-130 -> exponent -132 clamps to -127: the element 2^-130 / 2^-127 = 1/8 rounds to 0 in E2M1
        float tiny = (float) Math.scalb(1.0, -130);
        assertEquals(0f, fq(BlockFormat.MXFP4, row(32, tiny))[0]);
        assertEquals(-127, BlockFormat.MXFP4.sharedExponent(tiny));
        assertEquals(125, BlockFormat.MXFP4.sharedExponent(Float.MAX_VALUE), "floor(log2 FLT_MAX) = 127, minus emax 2");
    }

    @Test void mxint8() {
        // amax 3 -> X = 2^(1 - 0) = 2; codes round(x / 2 * 64): 3 -> 96, -1.01 -> -32.32 -> -32, 0.01 -> 0.32 -> 0
        assertPrefix(new float[] {3f, -1f, 0f}, fq(BlockFormat.MXINT8, row(32, 3f, -1.01f, 0.01f)), 0);
        // amax 3.99 -> X = 2, 3.99 / 2 * 64 = 127.68 saturates at 127 -> 127 / 32
        assertPrefix(new float[] {3.96875f, -3.96875f}, fq(BlockFormat.MXINT8, row(32, 3.99f, -3.99f)), 0);
        QuantizedTensor qt = Quantizer.dynamic(BlockFormat.MXINT8, Granularity.block(32), Layout.ACTIVATION).quantize(row(32, 3f, -1.01f));
        assertEquals(96, qt.codes()[0]);
        assertEquals(-32, qt.codes()[1], "two's complement int8");
        assertEquals(128, BlockFormat.MXINT8.scaleCode(qt.params(), 0));
        assertEquals(255, BlockFormat.MXINT8.grid(qt.params(), 0).length);
    }

    @Test void mxfp8AndMxfp6() {
        // E4M3, emax 8: amax 1000 -> X = 2^(9 - 8) = 2; 1000 / 2 = 500 saturates to 448 -> 896; 3.3 / 2 = 1.65 -> 1.625 -> 3.25
        assertPrefix(new float[] {896f, 3.25f}, fq(BlockFormat.MXFP8_E4M3, row(32, 1000f, 3.3f)), 0);
        // E5M2, emax 15: amax 1000 -> X = 2^(9 - 15) = 1/64; 1000 * 64 = 64000 -> [32768, 65536) step 8192 -> 65536
        // saturates to 57344 -> 896; 3.3 * 64 = 211.2 -> [128, 256) step 32 -> 224 -> 3.5
        assertPrefix(new float[] {896f, 3.5f}, fq(BlockFormat.MXFP8_E5M2, row(32, 1000f, 3.3f)), 0);
        // E3M2, emax 4: amax 20 -> X = 1; 20 exact; 13 is the tie 12|14 -> 12 (even mantissa)
        assertPrefix(new float[] {20f, 12f, -12f}, fq(BlockFormat.MXFP6_E3M2, row(32, 20f, 13f, -13f)), 0);
        // E2M3, emax 2: amax 7 -> X = 1; 7 exact; 2.3 -> 2.25
        assertPrefix(new float[] {7f, 2.25f}, fq(BlockFormat.MXFP6_E2M3, row(32, 7f, 2.3f)), 0);
        assertEquals(6.0, BlockFormat.MXFP4.elementMax());
        assertEquals(7.5, BlockFormat.MXFP6_E2M3.elementMax());
        assertEquals(28.0, BlockFormat.MXFP6_E3M2.elementMax());
        assertEquals(448.0, BlockFormat.MXFP8_E4M3.elementMax());
        assertEquals(57344.0, BlockFormat.MXFP8_E5M2.elementMax());
        int[] emax = {2, 2, 4, 8, 15, 0, 2};
        for (int i = 0; i < emax.length; i++) assertEquals(emax[i], BlockFormat.ALL.get(i).elementEmax(), BlockFormat.ALL.get(i).id());
    }

    @Test void nvfp4() {
        // tensor amax 2688 -> tensor scale 2688 / (448 * 6) = 1
        // block 0 (amax 12): scale E4M3(12 / 6) = 2; 12 -> 6*2, 5/2 = 2.5 -> 2 (tie) -> 4, -3.1/2 = -1.55 -> -1.5 -> -3, 0.6/2 = 0.3 -> 0.5 -> 1
        // block 1 (amax 7): 7/6 = 1.1667 -> E4M3 1.125; 7/1.125 = 6.22 -> 6 -> 6.75; 2/1.125 = 1.78 -> 2 -> 2.25
        // block 2 (amax 2688): 2688/6 = 448 -> 448; 2688/448 = 6; -100/448 = -0.22 -> -0
        float[] d = new float[48];
        d[0] = 12f; d[1] = 5f; d[2] = -3.1f; d[3] = 0.6f;
        d[16] = 7f; d[17] = 2f;
        d[32] = 2688f; d[33] = -100f;
        Tensor x = Tensor.of(d, 1, 48);
        Quantizer q = Quantizer.dynamic(BlockFormat.NVFP4, Granularity.block(16), Layout.ACTIVATION);
        float[] y = q.fakeQuant(x).data();
        assertPrefix(new float[] {12f, 4f, -3f, 1f, 0f}, y, 0);
        assertPrefix(new float[] {6.75f, 2.25f, 0f}, y, 16);
        assertPrefix(new float[] {2688f, -0f}, y, 32);   // -100/448 = -0.22 -> -0 (sign kept)
        QuantizedTensor qt = q.quantize(x);
        assertEquals(1f, qt.params().tensorScale());
        assertArrayEquals(new float[] {2f, 1.125f, 448f}, qt.params().scales());
        assertEquals(0x40, BlockFormat.NVFP4.scaleCode(qt.params(), 0));
        assertEquals(0x39, BlockFormat.NVFP4.scaleCode(qt.params(), 1));
        assertEquals(0x7E, BlockFormat.NVFP4.scaleCode(qt.params(), 2));
        assertArrayEquals(y, qt.dequantize().data());
        assertEquals(4.5 + 32.0 / 48, BlockFormat.NVFP4.averageBits(new int[] {1, 48}, Layout.ACTIVATION, Granularity.block(16)), 1e-12);
    }

    @Test void nvfp4TensorScaleIsFp32AndBlocksRoundToE4M3() {
        // tensor amax 1 -> tensor scale fl32(1/2688); block with amax 0.01: 0.01/6/ts = 4.48 -> E4M3 4.5
        float[] d = new float[32];
        d[0] = 1f;
        d[16] = 0.01f;
        d[17] = 0.004f;
        Tensor x = Tensor.of(d, 2, 16);
        QuantizedTensor qt = Quantizer.dynamic(BlockFormat.NVFP4, Granularity.block(16), Layout.ACTIVATION).quantize(x);
        float ts = (float) (1.0 / 2688);
        assertEquals(ts, qt.params().tensorScale());
        assertEquals(4.5f, qt.params().scale(1));
        // element 0.004 / (4.5 * ts) = 2.389 -> 2 -> 2 * 4.5 * ts
        assertEquals((float) (2 * 4.5 * ts), qt.dequantize().data()[17]);
        assertEquals((float) (6 * 4.5 * ts), qt.dequantize().data()[16], "0.01/(4.5 ts) = 6.0 -> 6");
    }

    @Test void granularityMustMatchTheBlockSize() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Quantizer.dynamic(BlockFormat.MXFP4, Granularity.group(128), Layout.WEIGHT));
        assertTrue(e.getMessage().contains("block32") && e.getMessage().contains("group128"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> BlockFormat.NVFP4.checkGranularity(Granularity.block(32)));
        assertThrows(IllegalArgumentException.class, () -> BlockFormat.MXFP4.checkParams(QuantParams.of(3f)));
        assertThrows(IllegalArgumentException.class, () -> BlockFormat.NVFP4.checkParams(QuantParams.of(1.1f)));
    }
}
