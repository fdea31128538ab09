package io.diffquant.app.gui;

import java.lang.reflect.Field;
import java.lang.reflect.Method;

/**
 * Works around a race in JavaFX's Linux text shaping (seen with JavaFX 25.0.2) that crashed the studio's JVM.
 *
 * <p>JavaFX lays out text on two threads: the FX application thread (labels, tables) and the render thread (text drawn
 * on a {@code Canvas}, which is how JFreeChart's JavaFX viewer draws every axis label). Both take a glyph layout from
 * {@code com.sun.javafx.text.GlyphLayoutManager}, which hands out one shared reusable instance when it is free and a
 * fresh one otherwise. {@code PangoGlyphLayout.dispose()} marks the shared instance free <em>before</em> it frees its
 * cached UTF-8 strings and clears their map, so the other thread can take the instance and use strings that are being
 * freed, or a map that is being cleared. The result is heap corruption: glibc aborts ({@code malloc(): unaligned
 * fastbin chunk detected}, exit 134) or a SIGSEGV in {@code pango_itemize}. A stand-alone program that redraws 200
 * canvas strings and 60 labels per pulse crashed 4 out of 4 times within seconds; with this guard it ran 3 out of 3
 * times for 30 s (about 800 frames each).
 *
 * <p>The guard takes the shared instance once and never gives it back, so every layout after that gets its own
 * instance, which nobody else can reach. It costs one small object per text layout. If a JavaFX version no longer has
 * the manager (or its package is not open to us) the guard logs one line and does nothing.
 */
public final class FxTextLayoutGuard {
    private static final System.Logger LOG = System.getLogger(FxTextLayoutGuard.class.getName());
    private static Object held;
    private static String state = "not installed";

    private FxTextLayoutGuard() {}

    /** Takes JavaFX's shared glyph layout for good; idempotent and thread-safe. Returns whether the guard holds it. */
    public static synchronized boolean install() {
        if (held != null) return true;
        try {
            Class<?> manager = Class.forName("com.sun.javafx.text.GlyphLayoutManager");
            Field reusableField = manager.getDeclaredField("REUSABLE_INSTANCE");
            reusableField.setAccessible(true);
            Object reusable = reusableField.get(null);
            Method getInstance = manager.getMethod("getInstance");
            for (int attempt = 0; attempt < 1000; attempt++) {
                Object layout = getInstance.invoke(null);
                if (layout == reusable) {
                    held = layout;
                    state = "holding JavaFX's shared glyph layout";
                    return true;
                }
                // the shared instance is in use on another thread right now: give this fresh one back and retry
                layout.getClass().getMethod("dispose").invoke(layout);
                Thread.sleep(1);
            }
            state = "the shared glyph layout stayed busy";
        } catch (ReflectiveOperationException | RuntimeException e) {
            state = "unavailable (" + e + ")";
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            state = "interrupted";
        }
        LOG.log(System.Logger.Level.WARNING, "JavaFX text layout guard not installed: " + state
                + "; concurrent text layout may crash on Linux (JavaFX PangoGlyphLayout race)");
        return false;
    }

    /** Whether the guard holds JavaFX's shared glyph layout. */
    public static synchronized boolean installed() { return held != null; }

    /** A line for diagnostics. */
    public static synchronized String state() { return state; }
}
