package io.diffquant.engine.quant.format;

import java.util.Arrays;

/**
 * Codes of 1..8 bits packed densely into bytes, little-endian bit order: code i occupies bits
 * [i·b, i·b + b) of the stream, and stream bit k is bit (k mod 8) of byte k / 8 (least significant bit first);
 * a code's own bit j is stream bit i·b + j. So 4-bit codes put code 2i in the low nibble of byte i, and 2-bit
 * codes fill each byte from its low bits up. Unused high bits of the last byte are 0. Immutable.
 */
public final class PackedCodes {
    private final int bits;
    private final int length;
    private final byte[] data;

    private PackedCodes(int bits, int length, byte[] data) {
        this.bits = bits;
        this.length = length;
        this.data = data;
    }

    /** Bytes needed for n codes of b bits. */
    public static int byteLength(int n, int bits) { return (int) (((long) n * bits + 7) >>> 3); }

    private static void checkBits(int bits) {
        if (bits < 1 || bits > 8) throw new IllegalArgumentException("code width must be 1..8 bits, got " + bits);
    }

    /** Packs codes given as unsigned bytes (each must be below 2^bits). */
    public static PackedCodes pack(byte[] codes, int bits) {
        checkBits(bits);
        byte[] out = new byte[byteLength(codes.length, bits)];
        int limit = 1 << bits;
        long acc = 0;
        int nbits = 0, k = 0;
        for (int i = 0; i < codes.length; i++) {
            int c = codes[i] & 0xFF;
            if (c >= limit) throw new IllegalArgumentException("code " + c + " at index " + i + " does not fit in " + bits + " bits");
            acc |= (long) c << nbits;
            nbits += bits;
            if (nbits >= 8) {
                out[k++] = (byte) acc;
                acc >>>= 8;
                nbits -= 8;
            }
        }
        if (nbits > 0) out[k] = (byte) acc;
        return new PackedCodes(bits, codes.length, out);
    }

    /** Packs codes given as ints in [0, 2^bits). */
    public static PackedCodes pack(int[] codes, int bits) {
        checkBits(bits);
        byte[] b = new byte[codes.length];
        for (int i = 0; i < codes.length; i++) {
            int c = codes[i];
            if (c < 0 || c >= (1 << bits)) throw new IllegalArgumentException("code " + c + " at index " + i + " does not fit in " + bits + " bits");
            b[i] = (byte) c;
        }
        return pack(b, bits);
    }

    /** Wraps packed bytes read from storage (copied); the byte count must match length and bits. */
    public static PackedCodes wrap(byte[] packed, int bits, int length) {
        checkBits(bits);
        if (length < 0 || packed.length != byteLength(length, bits)) throw new IllegalArgumentException(
                length + " codes of " + bits + " bits need " + byteLength(Math.max(length, 0), bits) + " bytes, got " + packed.length);
        return new PackedCodes(bits, length, packed.clone());
    }

    public int bits() { return bits; }
    /** Number of codes. */
    public int length() { return length; }
    public int byteLength() { return data.length; }
    /** Copy of the packed bytes. */
    public byte[] bytes() { return data.clone(); }

    /** Code i. */
    public int get(int i) {
        if (i < 0 || i >= length) throw new IndexOutOfBoundsException("code " + i + " of " + length);
        long bit = (long) i * bits;
        int b = (int) (bit >>> 3), sh = (int) (bit & 7);
        int v = data[b] & 0xFF;
        if (sh + bits > 8) v |= (data[b + 1] & 0xFF) << 8;
        return (v >>> sh) & ((1 << bits) - 1);
    }

    /** All codes as unsigned bytes. */
    public byte[] unpack() {
        byte[] out = new byte[length];
        int mask = (1 << bits) - 1;
        long acc = 0;
        int nbits = 0, k = 0;
        for (int i = 0; i < length; i++) {
            while (nbits < bits) {
                acc |= (long) (data[k++] & 0xFF) << nbits;
                nbits += 8;
            }
            out[i] = (byte) (acc & mask);
            acc >>>= bits;
            nbits -= bits;
        }
        return out;
    }

    @Override public boolean equals(Object o) {
        return o instanceof PackedCodes p && p.bits == bits && p.length == length && Arrays.equals(p.data, data);
    }
    @Override public int hashCode() { return (31 * bits + length) * 31 + Arrays.hashCode(data); }
    @Override public String toString() { return "PackedCodes[" + length + " x " + bits + " bits, " + data.length + " bytes]"; }
}
