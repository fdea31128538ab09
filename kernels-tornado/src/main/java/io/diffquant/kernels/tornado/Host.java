package io.diffquant.kernels.tornado;

import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.Int8Array;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/** Bulk copies between Java arrays and TornadoVM's off-heap arrays (one MemorySegment copy instead of per-element set/get). */
public final class Host {
    private Host() {}

    /** A new FloatArray holding a copy of v. */
    public static FloatArray floats(float[] v) {
        FloatArray a = new FloatArray(Math.max(v.length, 1));
        put(v, a);
        return a;
    }

    /** A new Int8Array holding a copy of v. */
    public static Int8Array bytes(byte[] v) {
        Int8Array a = new Int8Array(Math.max(v.length, 1));
        MemorySegment.copy(v, 0, a.getSegment(), ValueLayout.JAVA_BYTE, 0, v.length);
        return a;
    }

    /** Copies v into the first v.length elements of a. */
    public static void put(float[] v, FloatArray a) {
        if (a.getSize() < v.length) throw new IllegalArgumentException("device array holds " + a.getSize() + " floats, " + v.length + " given");
        MemorySegment.copy(v, 0, a.getSegment(), ValueLayout.JAVA_FLOAT, 0, v.length);
    }

    /** Copies the first out.length elements of a into out. */
    public static void get(FloatArray a, float[] out) {
        if (a.getSize() < out.length) throw new IllegalArgumentException("device array holds " + a.getSize() + " floats, " + out.length + " wanted");
        MemorySegment.copy(a.getSegment(), ValueLayout.JAVA_FLOAT, 0, out, 0, out.length);
    }

    /** The first n elements of a. */
    public static float[] get(FloatArray a, int n) {
        float[] out = new float[n];
        get(a, out);
        return out;
    }

    /** The first n elements of a. */
    public static byte[] get(Int8Array a, int n) {
        byte[] out = new byte[n];
        MemorySegment.copy(a.getSegment(), ValueLayout.JAVA_BYTE, 0, out, 0, n);
        return out;
    }
}
