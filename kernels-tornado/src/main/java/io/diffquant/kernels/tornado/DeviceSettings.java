package io.diffquant.kernels.tornado;

/**
 * How the kernels run under TornadoVM: tuned (KernelContext) or loop kernels, blocks chained on the device or with a host
 * round trip of the hidden tokens, and the OpenCL compiler flags. TornadoVM compiles OpenCL with
 * {@code -cl-mad-enable -cl-fast-relaxed-math} by default; {@link #EXACT_FLAGS} drops both so that division and
 * round-half-to-even behave as IEEE 754 says and activation codes equal the engine's.
 */
public record DeviceSettings(boolean tuned, boolean chained, String compilerFlags) {
    /** OpenCL flags without fast relaxed math (warnings off as in TornadoVM's default). */
    public static final String EXACT_FLAGS = "-w";

    public DeviceSettings {
        if (compilerFlags == null) throw new IllegalArgumentException("compiler flags are null (use DeviceSettings.EXACT_FLAGS)");
    }

    /** Tuned kernels, chained blocks, exact flags. */
    public static DeviceSettings defaults() { return new DeviceSettings(true, true, EXACT_FLAGS); }

    public DeviceSettings withTuned(boolean t) { return new DeviceSettings(t, chained, compilerFlags); }
    public DeviceSettings withChained(boolean c) { return new DeviceSettings(tuned, c, compilerFlags); }
}
