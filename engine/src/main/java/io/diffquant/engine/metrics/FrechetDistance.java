package io.diffquant.engine.metrics;

/**
 * Fréchet distance between two Gaussians (Dowson and Landau 1982; FID of Heusel et al. 2017, as in
 * mseitzer/pytorch-fid {@code calculate_frechet_distance}), ALGORITHMS.md §9:
 * ||μ1 - μ2||² + Tr(Σ1) + Tr(Σ2) - 2 Tr((Σ1 Σ2)^½).
 *
 * <p>Unlike pytorch-fid, which takes scipy's general {@code sqrtm} of the non-symmetric product Σ1 Σ2 (and adds
 * 1e-6 to the diagonals when it turns out singular), Tr((Σ1 Σ2)^½) is computed as Σ sqrt(λ_i) over the
 * eigenvalues of the symmetric PSD matrix Σ1^½ Σ2 Σ1^½, which has the same eigenvalues as Σ1 Σ2; this needs no
 * regularisation and stays accurate for rank-deficient covariances (eigenvalues below the rounding level
 * n · eps · max|λ| count as 0, see {@link Linalg#noiseFloor}).
 */
public final class FrechetDistance {
    private FrechetDistance() {}

    public static double compute(GaussianStats a, GaussianStats b) {
        if (a.dimension() != b.dimension()) throw new IllegalArgumentException(
                "Fréchet distance: feature dimensions differ: " + a.dimension() + " vs " + b.dimension());
        return compute(a.meanView(), a.covarianceView(), b.meanView(), b.covarianceView());
    }

    /**
     * @param mu1    mean of the first Gaussian, length d
     * @param sigma1 covariance of the first Gaussian, d x d, symmetric PSD
     * @param mu2    mean of the second Gaussian, length d
     * @param sigma2 covariance of the second Gaussian, d x d, symmetric PSD
     * @return the squared Fréchet (2-Wasserstein) distance, clamped at 0 against rounding
     * @throws IllegalArgumentException on mismatched dimensions, non-finite values, asymmetric or non-PSD covariances
     */
    public static double compute(double[] mu1, double[][] sigma1, double[] mu2, double[][] sigma2) {
        if (mu1 == null || mu2 == null) throw new IllegalArgumentException("Fréchet distance: mean vector is null");
        int d = mu1.length;
        if (d == 0) throw new IllegalArgumentException("Fréchet distance: empty mean vector mu1");
        if (mu2.length != d) throw new IllegalArgumentException(
                "Fréchet distance: mu1 has " + d + " entries but mu2 has " + mu2.length);
        int n1 = Linalg.requireSymmetric("Fréchet distance sigma1", sigma1, Linalg.SYMMETRY_TOLERANCE);
        int n2 = Linalg.requireSymmetric("Fréchet distance sigma2", sigma2, Linalg.SYMMETRY_TOLERANCE);
        if (n1 != d || n2 != d) throw new IllegalArgumentException("Fréchet distance: means have " + d
                + " entries but sigma1 is " + n1 + " x " + n1 + " and sigma2 is " + n2 + " x " + n2);
        double meanTerm = 0;
        for (int i = 0; i < d; i++) {
            if (!Double.isFinite(mu1[i]) || !Double.isFinite(mu2[i])) throw new IllegalArgumentException(
                    "Fréchet distance: non-finite mean entry at index " + i + " (mu1 " + mu1[i] + ", mu2 " + mu2[i] + ")");
            double diff = mu1[i] - mu2[i];
            meanTerm += diff * diff;
        }
        double covTerm = Linalg.trace(sigma1) + Linalg.trace(sigma2) - 2.0 * traceSqrtProduct(sigma1, sigma2);
        return Math.max(0.0, meanTerm + covTerm);
    }

    /**
     * Tr((Σ1 Σ2)^½) = Σ sqrt(λ_i(Σ1^½ Σ2 Σ1^½)) for symmetric PSD Σ1, Σ2. Symmetric in its arguments up to
     * rounding.
     */
    public static double traceSqrtProduct(double[][] sigma1, double[][] sigma2) {
        double[][] root1 = Linalg.sqrtPsd("Fréchet distance sigma1", sigma1);
        Linalg.requirePsd("Fréchet distance sigma2", sigma2);
        double[][] s2 = Linalg.copy(sigma2);
        Linalg.symmetrizeInPlace(s2);
        double[][] m = Linalg.multiply(Linalg.multiply(root1, s2), root1);
        Linalg.symmetrizeInPlace(m);
        // Both factors are PSD, so negative eigenvalues of m are rounding: they count as 0, as do the positive ones
        // below the rounding level (see Linalg.noiseFloor).
        return Linalg.sumSqrtAboveNoise(Linalg.eigvalsh(m));
    }
}
