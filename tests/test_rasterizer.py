"""CPU-core specifics of the rasteriser (``splatcodec._core.render`` / ``render_backward``): thread counts
and bad input. The forward/gradient suite that holds every backend (this core's ISA builds included) to
the float64 reference is tests/test_backends.py; its tolerances are in tests/backends.py.
"""
from __future__ import annotations

import numpy as np
import pytest

try:
    from backends import GRAD_ATOL, GRAD_RTOL, check_backend, cpu_module, grad_like, module_backend
    from reference import gradient_scale, random_scene
except ImportError:  # tests/ imported as a package
    from tests.backends import GRAD_ATOL, GRAD_RTOL, check_backend, cpu_module, grad_like, module_backend
    from tests.reference import gradient_scale, random_scene

_core = cpu_module("baseline")  # skips (fails under SPLATCODEC_REQUIRE_NATIVE) without the extension


# ---------------------------------------------------------------------------------------- threads
def test_threads_deterministic_and_consistent() -> None:
    width, height = 70, 45  # 5 x 3 tiles, the last ones partial
    params = random_scene(21, 250, width, height, 3, sigma_range=(0.5, 12.0))
    g = grad_like(width, height, 3, seed=5)
    results = {}
    for threads in (1, 2, 3):
        core = module_backend(f"cpu-baseline, {threads} threads", _core, threads)
        img_a, img_b = core.render(params, width, height), core.render(params, width, height)
        np.testing.assert_array_equal(img_a, img_b, err_msg=f"render not deterministic at {threads} threads")
        grad_a, grad_b = core.backward(params, width, height, g), core.backward(params, width, height, g)
        np.testing.assert_array_equal(grad_a, grad_b, err_msg=f"backward not deterministic at {threads} threads")
        results[threads] = (img_a, grad_a)
        if threads == 2:
            check_backend(core, params, width, height, grad_image=g)
    all_threads = module_backend("cpu-baseline", _core)
    img0, grad0 = all_threads.render(params, width, height), all_threads.backward(params, width, height, g)
    scale = gradient_scale(params, width, height, g)
    for img, grad in list(results.values()) + [(img0, grad0)]:
        # Different thread counts may sum in a different order: equal up to float32 rounding.
        np.testing.assert_allclose(img, results[1][0], atol=1e-6, rtol=1e-6)
        assert np.all(np.abs(grad - results[1][1]) <= GRAD_ATOL + 2 * GRAD_RTOL * scale)


# ------------------------------------------------------------------------------------ bad inputs
@pytest.mark.parametrize("make", [
    lambda: (np.zeros(8, np.float32), 8, 8),                   # 1-D params
    lambda: (np.zeros((3, 7), np.float32), 8, 8),              # C = 2
    lambda: (np.zeros((3, 5), np.float32), 8, 8),              # no colour
    lambda: (np.zeros((3, 8), np.float32), 0, 8),              # empty image
    lambda: (np.zeros((3, 8), np.float32), 8, -1),             # negative size
])
def test_bad_render_inputs_raise_value_error(make) -> None:
    params, width, height = make()
    with pytest.raises(ValueError):
        _core.render(params, width, height)


def test_bad_grad_image_raises_value_error() -> None:
    params = np.zeros((2, 8), np.float32)
    params[:, 2] = params[:, 4] = 1.0
    for shape in [(8, 9, 3), (9, 8, 3), (9, 9, 1), (9, 9)]:
        with pytest.raises(ValueError):
            _core.render_backward(params, 9, 9, np.zeros(shape, np.float32))
