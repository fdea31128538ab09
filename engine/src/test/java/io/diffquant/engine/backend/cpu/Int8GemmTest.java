package io.diffquant.engine.backend.cpu;

import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** oneDNN's s8 x s8 -> s32 GEMM against the plain-Java integer reference: exact equality. */
class Int8GemmTest {
    @Test void matchesTheIntegerReferenceExactly() {
        assertNull(Int8Gemm.unavailableReason(), "oneDNN's int8 GEMM loads on this machine");
        Random r = new Random(11);
        for (int[] s : new int[][] {{1, 1, 1}, {37, 29, 91}, {64, 48, 384}, {5, 130, 7}}) {
            int m = s[0], n = s[1], k = s[2];
            byte[] a = new byte[m * k], b = new byte[n * k];
            for (int i = 0; i < a.length; i++) a[i] = (byte) (r.nextInt(256) - 128);
            for (int i = 0; i < b.length; i++) b[i] = (byte) (r.nextInt(256) - 128);
            a[0] = -128;
            b[0] = -128;   // the extreme product 16384 must survive the s8s8 -> u8s8 shift oneDNN does internally
            int[] want = new int[m * n], got = new int[m * n];
            Int8Gemm.reference(m, n, k, a, b, want, n);
            Int8Gemm.gemm(m, n, k, a, b, got, n);
            assertArrayEquals(want, got, m + "x" + n + "x" + k);
        }
    }

    @Test void largestSumsStayExact() {
        int m = 2, n = 3, k = 4096;
        byte[] a = new byte[m * k], b = new byte[n * k];
        java.util.Arrays.fill(a, (byte) -128);
        java.util.Arrays.fill(b, (byte) -128);
        int[] c = new int[m * n];
        Int8Gemm.gemm(m, n, k, a, b, c, n);
        for (int v : c) assertEquals(128 * 128 * k, v);
    }

    @Test void honoursTheOutputStrideAndLeavesTheRestAlone() {
        int m = 3, n = 4, k = 5, ldc = 7;
        byte[] a = new byte[m * k], b = new byte[n * k];
        for (int i = 0; i < a.length; i++) a[i] = (byte) (i - 7);
        for (int i = 0; i < b.length; i++) b[i] = (byte) (3 - i);
        int[] c = new int[(m - 1) * ldc + n + 2];
        java.util.Arrays.fill(c, 12345);
        Int8Gemm.gemm(m, n, k, a, b, c, ldc);
        int[] want = new int[m * n];
        Int8Gemm.reference(m, n, k, a, b, want, n);
        for (int i = 0; i < m; i++) for (int j = 0; j < ldc && i * ldc + j < c.length; j++) {
            if (j < n) assertEquals(want[i * n + j], c[i * ldc + j]);
            else assertEquals(12345, c[i * ldc + j], "padding column " + j + " of row " + i + " untouched");
        }
    }

    @Test void refusesArraysThatAreTooSmall() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Int8Gemm.gemm(4, 4, 4, new byte[15], new byte[16], new int[16], 4));
        assertTrue(e.getMessage().contains("too small"), e.getMessage());
    }
}
