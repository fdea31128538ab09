package io.diffquant.app.gui.charts;

import io.diffquant.engine.io.AtomicFiles;
import org.jfree.chart.JFreeChart;
import org.jfree.svg.SVGGraphics2D;

import java.awt.Graphics2D;
import java.awt.RenderingHints;
import java.awt.geom.Rectangle2D;
import java.awt.image.BufferedImage;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/** Writes charts as PNG (Java2D) and SVG (JFreeSVG's SVGGraphics2D), atomically (temp file + rename). */
public final class ChartFiles {
    private ChartFiles() {}

    /** Renders a chart to an image of the given size. */
    public static BufferedImage render(JFreeChart chart, int width, int height) {
        BufferedImage img = new BufferedImage(width, height, BufferedImage.TYPE_INT_RGB);
        Graphics2D g = img.createGraphics();
        try {
            g.setRenderingHint(RenderingHints.KEY_ANTIALIASING, RenderingHints.VALUE_ANTIALIAS_ON);
            g.setRenderingHint(RenderingHints.KEY_TEXT_ANTIALIASING, RenderingHints.VALUE_TEXT_ANTIALIAS_ON);
            chart.draw(g, new Rectangle2D.Double(0, 0, width, height));
        } finally {
            g.dispose();
        }
        return img;
    }

    public static void writePng(JFreeChart chart, int width, int height, Path file) throws IOException {
        ByteArrayOutputStream bos = new ByteArrayOutputStream();
        if (!javax.imageio.ImageIO.write(render(chart, width, height), "png", bos)) throw new IOException("no PNG writer for " + file);
        write(file, bos.toByteArray());
    }

    /** The SVG document of a chart. */
    public static String svg(JFreeChart chart, int width, int height) {
        SVGGraphics2D g = new SVGGraphics2D(width, height);
        chart.draw(g, new Rectangle2D.Double(0, 0, width, height));
        return g.getSVGDocument();
    }

    public static void writeSvg(JFreeChart chart, int width, int height, Path file) throws IOException {
        write(file, svg(chart, width, height).getBytes(StandardCharsets.UTF_8));
    }

    private static void write(Path file, byte[] bytes) throws IOException {
        Path dir = file.toAbsolutePath().getParent();
        if (dir != null) Files.createDirectories(dir);
        AtomicFiles.writeBytes(file, bytes);
    }
}
