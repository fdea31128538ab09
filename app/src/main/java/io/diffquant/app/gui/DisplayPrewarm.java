package io.diffquant.app.gui;

import io.diffquant.app.gui.charts.ChartFiles;
import io.diffquant.app.gui.charts.StudioCharts;
import io.diffquant.app.gui.vm.DisplayImages;
import io.diffquant.app.gui.vm.Heatmaps;
import io.diffquant.engine.tensor.Tensor;
import javafx.embed.swing.SwingFXUtils;
import org.jfree.chart.JFreeChart;

import java.awt.image.BufferedImage;
import java.util.List;

/**
 * Warms, on a background thread at start-up, the code the first display of generation results runs: the sample and
 * difference grids, their conversion to JavaFX images and the drawing of a line chart. Without it the first results
 * of a session load and interpret all of that on the FX thread at once; class loading and JIT compilation are shared
 * by all threads, so doing it once here, off the FX thread and while the user
 * looks at the layer table, takes part of it out of the first display. The other part was the results chart drawn
 * three times per update (dataset, marker removal, marker; now one redraw, {@code StudioCharts.batch}). PulseTimingTest,
 * 2026-11-22, fresh JVM each run, load average 4-6: the first generation's worst gap holds the FX thread 35-69 ms
 * (11 runs; 78 ms in the one run before the batching, 103 ms once in session 4), the later one 23-71 ms.
 *
 * <p>It touches nothing the UI shows and draws the chart through Java2D into an image (never through JavaFX text,
 * which must stay on the FX and render threads).
 */
public final class DisplayPrewarm {
    private static Thread thread;   // guarded by the class lock

    private DisplayPrewarm() {}

    /**
     * Starts the warm-up once (a daemon thread at minimum priority); returns its thread. The system property
     * {@code diffquant.studio.prewarm=false} turns it off (the thread then does nothing), to measure what it saves.
     */
    public static synchronized Thread start() {
        if (thread != null) return thread;
        boolean on = !"false".equals(System.getProperty("diffquant.studio.prewarm"));
        Thread t = new Thread(on ? DisplayPrewarm::run : () -> {}, "studio-display-prewarm");
        t.setDaemon(true);
        t.setPriority(Thread.MIN_PRIORITY);
        t.start();
        return thread = t;
    }

    /** The warm-up itself (also callable directly); never throws. */
    public static void run() {
        try {
            for (int round = 0; round < 40; round++) {
                int n = round % 2 == 0 ? 4 : 16;
                Tensor images = Tensor.zeros(n, 1, 28, 28);
                float[] d = images.data();
                for (int i = 0; i < d.length; i++) d[i] = (float) Math.sin(i * 0.01 + round);
                BufferedImage grid = DisplayImages.grid(images);
                BufferedImage heat = Heatmaps.grid(Tensor.zeros(n, 1, 28, 28), 1.0);
                SwingFXUtils.toFXImage(grid, null);
                SwingFXUtils.toFXImage(heat, null);
            }
            JFreeChart chart = StudioCharts.lines(null, "step", "RMS change of x̂₀", false);
            double[] x = {1, 2, 3, 4, 5}, y = {0.5, 0.3, 0.2, 0.1, 0.05};
            StudioCharts.setSeries(chart, List.of(new StudioCharts.Series("FP32", x, y), new StudioCharts.Series("current", x, y)));
            StudioCharts.setDomainMarker(chart, 3);
            ChartFiles.render(chart, 380, 220);
        } catch (Throwable e) {
            System.getLogger(DisplayPrewarm.class.getName()).log(System.Logger.Level.DEBUG, "display warm-up failed", e);
        }
    }
}
