package io.diffquant.engine.model;

import io.diffquant.engine.io.DType;
import io.diffquant.engine.io.MappedTensors;
import io.diffquant.engine.io.SafetensorsException;
import io.diffquant.engine.io.SafetensorsReader;
import io.diffquant.engine.io.TensorInfo;
import io.diffquant.engine.tensor.Tensor;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;

/**
 * Loads a memory-mapped safetensors file into a model's own parameter arrays, tensor by tensor, so the heap never holds
 * a second copy of the weights (the strict checks of {@link StateDicts#load}: names and shapes from the header, finite
 * values scanned on the mapping, all before the first parameter is written, so a bad file leaves the model unchanged).
 */
public final class MappedWeights {
    private MappedWeights() {}

    /** FP32 bytes of all tensors in the file's header (what loading them as engine tensors costs). */
    public static long float32Bytes(SafetensorsReader r) throws SafetensorsException {
        long n = 0;
        for (String name : r.names()) n += r.info(name).numel();
        return 4 * n;
    }

    /**
     * Copies every tensor of {@code r} into the tensor of the same name in {@code live} (a model's
     * {@code stateDict()}: its parameter and buffer tensors themselves).
     *
     * @param architecture what the config describes, for messages
     */
    public static void loadInPlace(Map<String, Tensor> live, SafetensorsReader r, String architecture) throws SafetensorsException {
        String source = r.file().toString();
        List<String> missing = new ArrayList<>();
        for (String k : live.keySet()) if (!r.contains(k)) missing.add(k);
        TreeSet<String> unexpected = new TreeSet<>();
        for (String k : r.names()) if (!live.containsKey(k)) unexpected.add(k);
        if (!missing.isEmpty() || !unexpected.isEmpty()) throw new IllegalArgumentException(source + ": state_dict does not match the "
                + architecture + " config" + (missing.isEmpty() ? "" : "; missing " + missing.size() + " tensors " + head(missing))
                + (unexpected.isEmpty() ? "" : "; unexpected " + unexpected.size() + " tensors " + head(new ArrayList<>(unexpected))));
        for (var e : live.entrySet()) {
            TensorInfo t = r.info(e.getKey());
            int[] want = e.getValue().shape();
            if (!Arrays.equals(toLong(want), t.shape())) throw new IllegalArgumentException(source + ": tensor '" + e.getKey()
                    + "' has shape " + Arrays.toString(t.shape()) + ", the config needs " + Arrays.toString(want));
            if (!t.dtype().isFloatingPoint() && t.dtype() != DType.I64 && t.dtype() != DType.I32) throw new IllegalArgumentException(
                    source + ": tensor '" + e.getKey() + "' has dtype " + t.dtype() + ", expected a floating-point weight");
        }
        for (String k : live.keySet()) {
            TensorInfo t = r.info(k);
            if (!MappedTensors.allFinite(r.segment(k), t.dtype(), 0, t.numel()))
                throw new IllegalArgumentException(source + ": tensor '" + k + "' contains NaN or infinite values");
        }
        for (var e : live.entrySet()) {
            TensorInfo t = r.info(e.getKey());
            MemorySegment seg = r.segment(e.getKey());
            float[] dst = e.getValue().data();
            MappedTensors.copyToFloat(seg, t.dtype(), 0, dst.length, dst, 0);
        }
    }

    private static long[] toLong(int[] s) {
        long[] r = new long[s.length];
        for (int i = 0; i < s.length; i++) r[i] = s[i];
        return r;
    }

    private static String head(List<String> names) {
        return names.size() <= 6 ? names.toString() : names.subList(0, 6) + " ...";
    }
}
