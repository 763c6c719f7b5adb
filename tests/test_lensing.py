"""Lensing operator: adjoint, Kaiser–Squires inverse, E/B separation, smoothing, input checks."""
import numpy as np
import pytest
import tensorflow as tf
from astropy import units as u

from core.physics.geometry import MapGeometry
from core.physics.lensing import LensingOperator, gaussian_smooth


@pytest.fixture(scope="module")
def geom():
    return MapGeometry(64, 0.5 * u.arcmin)


def test_geometry_ell_grid(geom):
    assert geom.ell[0, 0] == 0
    np.testing.assert_allclose(geom.ell[0, 1], geom.ell_fundamental, rtol=1e-12)
    np.testing.assert_allclose(geom.ell.max(), np.sqrt(2) * geom.ell_nyquist, rtol=1e-12)
    assert MapGeometry(32, 30 * u.arcsec).pixel_size_arcmin == pytest.approx(0.5)


@pytest.mark.parametrize("bad", [7, 9, 0, -4, 2.5, True])
def test_geometry_rejects_bad_sizes(bad):
    with pytest.raises(ValueError, match="npix|odd"):
        MapGeometry(bad, 1.0)


def test_geometry_rejects_bad_pixel_size():
    with pytest.raises(ValueError, match="pixel_size"):
        MapGeometry(16, -1.0)
    with pytest.raises(ValueError, match="angle"):
        MapGeometry(16, 1.0 * u.m)


def test_adjoint_identity(geom):
    rng = np.random.default_rng(0)
    op = LensingOperator(geom)
    kappa = rng.normal(size=(3, 64, 64)).astype(np.float32)
    gamma = rng.normal(size=(3, 2, 64, 64)).astype(np.float32)
    lhs = tf.reduce_sum(op.forward(kappa) * gamma, axis=[-3, -2, -1]).numpy()
    rhs = tf.reduce_sum(kappa * op.adjoint(gamma), axis=[-2, -1]).numpy()
    scale = np.sqrt(np.sum(kappa**2, axis=(-2, -1)) * np.sum(gamma**2, axis=(-3, -2, -1)))
    # float32 round-off of an FFT pair over 4096 pixels: a few ulp times the norm product
    np.testing.assert_array_less(np.abs(lhs - rhs) / scale, 1e-6)


def test_kaiser_squires_inverts_forward_on_zero_mean_maps(geom):
    rng = np.random.default_rng(1)
    op = LensingOperator(geom)
    kappa = rng.normal(size=(2, 64, 64)).astype(np.float32)
    kappa -= kappa.mean(axis=(-2, -1), keepdims=True)
    k_e, k_b = op.kaiser_squires(op.forward(kappa))
    np.testing.assert_allclose(k_e.numpy(), kappa, atol=1e-5)
    np.testing.assert_allclose(k_b.numpy(), 0.0, atol=1e-5)
    # the adjoint equals the E mode of KS
    np.testing.assert_allclose(op.adjoint(op.forward(kappa)).numpy(), kappa, atol=1e-5)


def test_pure_b_mode_has_no_e(geom):
    """A shear field rotated by 45 degrees (γ → iγ) is pure B: KS puts it all in κ_B."""
    rng = np.random.default_rng(2)
    op = LensingOperator(geom)
    kappa = rng.normal(size=(64, 64)).astype(np.float32)
    kappa -= kappa.mean()
    g = op.forward(kappa).numpy()
    rotated = np.stack([-g[1], g[0]])
    k_e, k_b = op.kaiser_squires(rotated)
    np.testing.assert_allclose(k_e.numpy(), 0.0, atol=1e-5)
    np.testing.assert_allclose(k_b.numpy(), kappa, atol=1e-5)


def test_point_mass_shear_is_tangential():
    """Around a positive mass peak the shear is tangential: γ_t = -Re(γ e^{-2iφ}) > 0."""
    geom = MapGeometry(64, 1.0)
    yy, xx = np.mgrid[:64, :64] - 32.0
    kappa = np.exp(-(xx**2 + yy**2) / (2 * 2.0**2)).astype(np.float32)
    g = LensingOperator(geom).forward(kappa).numpy()
    phi = np.arctan2(yy, xx)
    gamma_t = -(g[0] * np.cos(2 * phi) + g[1] * np.sin(2 * phi))
    ring = (np.hypot(xx, yy) > 4) & (np.hypot(xx, yy) < 12)
    assert (gamma_t[ring] > 0).mean() > 0.98


def test_gaussian_smooth_preserves_mean_and_matches_width(geom):
    delta = np.zeros((64, 64), np.float32)
    delta[32, 32] = 1.0
    sm = gaussian_smooth(delta, geom, sigma_arcmin=1.5).numpy()  # 3 pixels
    assert sm.sum() == pytest.approx(1.0, rel=1e-5)
    x = np.arange(64) - 32.0
    var_x = np.sum(sm.sum(axis=0) * x**2)
    assert var_x == pytest.approx(9.0, rel=1e-3)
    fw = gaussian_smooth(delta, geom, fwhm_arcmin=1.5 * 2.3548200450309493).numpy()
    np.testing.assert_allclose(fw, sm, atol=1e-6)


def test_shape_errors(geom):
    op = LensingOperator(geom)
    with pytest.raises(ValueError, match="kappa has shape"):
        op.forward(np.zeros((32, 32), np.float32))
    with pytest.raises(ValueError, match="shear has shape"):
        op.adjoint(np.zeros((3, 64, 64), np.float32))
    with pytest.raises(ValueError, match="exactly one"):
        gaussian_smooth(np.zeros((64, 64)), geom)


def test_to_complex64_keeps_values_and_differentiates_without_casts():
    """``x + 0i`` for real input of any float type, complex input keeps its imaginary part, and the gradient through
    it is the plain real one (``tf.complex``, no complex→float cast in the backward pass)."""
    from core.physics.geometry import to_complex64

    real = np.array([[1.5, -2.0]], np.float64)
    out = to_complex64(real)
    assert out.dtype == tf.complex64 and np.array_equal(out.numpy(), real.astype(np.complex64))
    z = np.array([1 + 2j, -3j], np.complex128)
    assert np.array_equal(to_complex64(z).numpy(), z.astype(np.complex64))
    x = tf.constant([0.5, 2.0])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.reduce_sum(tf.math.real(to_complex64(x) * tf.constant([2 + 1j, -1 + 0j], tf.complex64)))
    assert np.allclose(tape.gradient(y, x).numpy(), [2.0, -1.0])
    graph = tf.function(lambda v: tf.gradients(tf.math.real(to_complex64(v)), v)[0]).get_concrete_function(
        tf.TensorSpec([2], tf.float32)).graph
    assert not [op for op in graph.get_operations() if op.type == "Cast" and op.inputs[0].dtype.is_complex]
