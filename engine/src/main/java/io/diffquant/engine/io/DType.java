package io.diffquant.engine.io;

/**
 * Element types of the safetensors format (huggingface/safetensors, {@code Dtype} in safetensors/src/tensor.rs),
 * with the header spelling and the size in bytes of one element.
 */
public enum DType {
    F64(8, true),
    F32(4, true),
    F16(2, true),
    BF16(2, true),
    I64(8, false),
    I32(4, false),
    I16(2, false),
    I8(1, false),
    U8(1, false),
    BOOL(1, false);

    private final int byteSize;
    private final boolean floating;

    DType(int byteSize, boolean floating) {
        this.byteSize = byteSize;
        this.floating = floating;
    }

    /** Bytes per element. */
    public int byteSize() { return byteSize; }

    /** True for F64, F32, F16, BF16. */
    public boolean isFloatingPoint() { return floating; }

    /** True for the integer types (I64, I32, I16, I8, U8) and BOOL (read as 0/1). */
    public boolean isInteger() { return !floating; }

    /** The spelling used in safetensors headers ("F32", "BF16", ...). */
    public String headerName() { return name(); }

    /** The dtype for a header spelling, or null if this reader does not know it. Case-sensitive, as the format is. */
    public static DType fromHeaderName(String s) {
        if (s == null) return null;
        for (DType d : values()) if (d.name().equals(s)) return d;
        return null;
    }

    /** The supported header spellings, for error messages. */
    public static String supportedNames() {
        StringBuilder sb = new StringBuilder();
        for (DType d : values()) {
            if (!sb.isEmpty()) sb.append(", ");
            sb.append(d.name());
        }
        return sb.toString();
    }
}
