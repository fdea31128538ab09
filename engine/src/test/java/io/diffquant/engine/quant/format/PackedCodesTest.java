package io.diffquant.engine.quant.format;

import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.*;

/** Dense little-endian bit packing of 1..8-bit codes. */
class PackedCodesTest {

    @Test void documentedBitOrder() {
        assertArrayEquals(new byte[] {0x21, 0x03}, PackedCodes.pack(new int[] {1, 2, 3}, 4).bytes());
        // 2-bit: 1 | 2<<2 | 3<<4 | 0<<6 = 0x39, then 1
        assertArrayEquals(new byte[] {0x39, 0x01}, PackedCodes.pack(new int[] {1, 2, 3, 0, 1}, 2).bytes());
        // 3-bit 7, 1, 5: bits 0-2 = 111, bits 3-5 = 100 (LSB first), bits 6-8 = 101 -> 0b01001111, 0b00000001
        assertArrayEquals(new byte[] {0x4F, 0x01}, PackedCodes.pack(new int[] {7, 1, 5}, 3).bytes());
        // 6-bit 0x3F, 0x01: byte0 = 0x3F | (0x01 & 0x3) << 6 = 0x7F, byte1 = 0x01 >> 2 = 0
        assertArrayEquals(new byte[] {0x7F, 0x00}, PackedCodes.pack(new int[] {0x3F, 0x01}, 6).bytes());
        assertArrayEquals(new byte[] {(byte) 0xAB, 0x12}, PackedCodes.pack(new int[] {0xAB, 0x12}, 8).bytes());
    }

    @Test void roundTripEveryWidthAndLength() {
        SplittableRandom rnd = new SplittableRandom(1);
        for (int bits = 1; bits <= 8; bits++) {
            for (int n = 0; n <= 67; n++) {
                byte[] codes = new byte[n];
                for (int i = 0; i < n; i++) codes[i] = (byte) rnd.nextInt(1 << bits);
                PackedCodes p = PackedCodes.pack(codes, bits);
                assertEquals((n * bits + 7) / 8, p.byteLength(), "bytes for " + n + " x " + bits);
                assertArrayEquals(codes, p.unpack(), n + " x " + bits + " bits");
                for (int i = 0; i < n; i++) assertEquals(codes[i] & 0xFF, p.get(i));
                PackedCodes w = PackedCodes.wrap(p.bytes(), bits, n);
                assertEquals(p, w);
                if (n * bits % 8 != 0) {
                    int last = p.bytes()[p.byteLength() - 1] & 0xFF;
                    assertEquals(0, last >>> (n * bits % 8), "unused high bits are zero");
                }
            }
        }
    }

    @Test void badInput() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> PackedCodes.pack(new int[] {0, 16}, 4));
        assertTrue(e.getMessage().contains("index 1"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> PackedCodes.pack(new byte[] {(byte) 0x80}, 7));
        assertThrows(IllegalArgumentException.class, () -> PackedCodes.pack(new int[] {1}, 9));
        assertThrows(IllegalArgumentException.class, () -> PackedCodes.wrap(new byte[3], 4, 7));
        assertThrows(IndexOutOfBoundsException.class, () -> PackedCodes.pack(new int[] {1, 2}, 4).get(2));
    }
}
