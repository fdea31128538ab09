package io.diffquant.app.gui.view;

import java.util.Locale;

/** Number formatting shared by the views. */
final class Formatting {
    private Formatting() {}

    /** 1,234,567 -> "1.23 M". */
    static String count(long n) {
        if (n >= 1_000_000_000L) return String.format(Locale.ROOT, "%.2f G", n / 1e9);
        if (n >= 1_000_000L) return String.format(Locale.ROOT, "%.2f M", n / 1e6);
        if (n >= 10_000L) return String.format(Locale.ROOT, "%.1f k", n / 1e3);
        return Long.toString(n);
    }

    /** Bytes in KiB/MiB. */
    static String bytes(double b) {
        if (b >= 1 << 30) return String.format(Locale.ROOT, "%.2f GiB", b / (1 << 30));
        if (b >= 1 << 20) return String.format(Locale.ROOT, "%.2f MiB", b / (1 << 20));
        return String.format(Locale.ROOT, "%.1f KiB", b / 1024);
    }

    /** Whether a node is in a scene with every ancestor visible (a tab's content is hidden by its tab pane's wrapper). */
    static boolean showing(javafx.scene.Node n) {
        if (n.getScene() == null) return false;
        for (javafx.scene.Node p = n; p != null; p = p.getParent()) if (!p.isVisible()) return false;
        return true;
    }

    /** Bits with two decimals; "" for NaN. */
    static String bits(double v) { return Double.isNaN(v) ? "" : String.format(Locale.ROOT, "%.2f", v); }
}
