package io.diffquant.engine.quant.format;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** Format names, parsing and bit accounting. */
class NumberFormatTest {

    @Test void everyNameParsesBackToItself() {
        for (String n : NumberFormat.allNames()) {
            NumberFormat f = NumberFormat.parse(n);
            assertEquals(n, f.id());
            assertEquals(f, NumberFormat.parse(f.id().toUpperCase()));
        }
        String[] required = {"int8-asym", "uint4", "int4-sym", "int4-asym", "int4-sym-full", "fp4-e2m1", "fp6-e3m2", "fp8-e4m3",
                "ufp4-e3m1", "ocp-fp8-e4m3", "ocp-fp8-e5m2", "mxfp4", "mxfp6-e2m3", "mxfp6-e3m2", "mxfp8-e4m3", "mxfp8-e5m2", "mxint8", "nvfp4"};
        for (String n : required) assertEquals(n, NumberFormat.parse(n).id());
        assertEquals(IntFormat.asymmetric(8), NumberFormat.parse("int8"), "int<b> is int<b>-asym");
        assertSame(BlockFormat.NVFP4, NumberFormat.parse(" NVFP4 "));
        assertInstanceOf(FpFormat.class, NumberFormat.parse("fp8-e4m3"));
        assertInstanceOf(OcpFp8.class, NumberFormat.parse("ocp-fp8-e4m3"));
    }

    @Test void unknownNamesListTheValidOnes() {
        for (String bad : new String[] {"fp5-e2m1", "int9", "int1-sym", "fp9-e4m4", "mxfp5", "e2m1", "", "fp1-e0m0"}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> NumberFormat.parse(bad), bad);
            assertTrue(e.getMessage().contains("'" + bad + "'"), e.getMessage());
            assertTrue(e.getMessage().contains("valid names") && e.getMessage().contains("nvfp4")
                    && e.getMessage().contains("fp<n>-e<E>m<M>") && e.getMessage().contains("int<b>-asym"), e.getMessage());
        }
        assertThrows(IllegalArgumentException.class, () -> NumberFormat.parse(null));
        assertEquals(Granularity.group(128), Granularity.parse("group128"));
        for (Granularity g : new Granularity[] {Granularity.TENSOR, Granularity.CHANNEL, Granularity.TOKEN,
                Granularity.group(64), Granularity.head(6), Granularity.block(32)}) assertEquals(g, Granularity.parse(g.id()));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Granularity.parse("rows"));
        assertTrue(e.getMessage().contains("group<g>"));
    }

    @Test void averageBitsCountScalesAndZeroPoints() {
        int[] w = {1152, 1152};
        // INT4 asymmetric, groups of 128: 4 + (32 + 4) / 128
        assertEquals(4 + 36.0 / 128, IntFormat.asymmetric(4).averageBits(w, Layout.WEIGHT, Granularity.group(128)), 1e-12);
        assertEquals(4 + 36.0 / 128, IntFormat.asymmetric(4).averageBits(1152 * 1152, Granularity.group(128)), 1e-12);
        // FP4 per output channel: one FP32 maxval per row of 1152
        assertEquals(4 + 32.0 / 1152, FpFormat.of(2, 1).averageBits(w, Layout.WEIGHT, Granularity.CHANNEL), 1e-12);
        assertEquals(8 + 32.0 / (1152 * 1152), IntFormat.symmetric(8).averageBits(1152 * 1152, Granularity.TENSOR), 1e-15);
        assertEquals(8.25, BlockFormat.MXFP8_E4M3.averageBits(1024, Granularity.block(32)), 1e-12);
        // conv weight [8, 4, 3, 3] in groups of 12 along in*kh*kw = 36: 3 groups per output channel
        assertEquals(4 + 24.0 * 36 / 288, IntFormat.asymmetric(4).averageBits(new int[] {8, 4, 3, 3}, Layout.WEIGHT, Granularity.group(12)), 1e-12);
        assertThrows(IllegalArgumentException.class, () -> IntFormat.asymmetric(4).averageBits(100, Granularity.CHANNEL));
    }
}
