"""A plain PyTorch CPU fitter of splatcodec's image model: the baseline for ``benchmarks.fit_speed``.

It fits the same model as the native core (see ``splatcodec/splats.py``)::

    I(p) = sum_i c_i * exp(-0.5 q_i(p)) * [q_i(p) <= 9],   q = |L^-1 (p - mu)|^2,   p = pixel + 0.5

and is written the way a careful PyTorch user would write it, without heroics and without deliberate
slowness:

* **Per-Gaussian square patches.** Each Gaussian is evaluated only on a (2R+1)^2 patch of pixels
  around its centre, where R = ceil(3 * max(sigma_x, sigma_y)) is its 3-sigma extent along the axes
  (sigma_x = |l11|, sigma_y = sqrt(l21^2 + l22^2)), capped at ``max_radius`` (a Gaussian wider than
  the cap is truncated to its patch — the one place where this baseline may differ from the model).
  To keep everything vectorised yet avoid paying the largest patch for every Gaussian, Gaussians are
  bucketed by R into a ladder of radii (1, 2, ..., 10, then ~20 % steps: 12, 14, 16, 19, 22, ...);
  each bucket is one batched computation. (Power-of-two buckets waste up to 4x the pixels, e.g. a
  sigma = 3 px Gaussian would pay for a 33 x 33 patch instead of 21 x 21: about 3x slower per
  iteration at the grid init on kodim23. Above R = 10 the ~20 % steps bound the number of buckets,
  each of which costs a few dozen op dispatches.)
* **Separable geometry.** z1 = dx / l11 depends on the column only, so it is computed on (B, K) and
  broadcast; only z2 and q live on the (B, K, K) patch grid.
* **Scatter with ``index_add_``** into a flat (H*W + 1, C) image; patch pixels outside the image go to
  the extra "sink" row, which is dropped (cheaper than masking the weights).
* **Loss and optimiser:** MSE against the image in [0, 1], autograd, ``torch.optim.Adam`` with one
  parameter group (and learning rate) for centres, Cholesky factors and colours. float32 throughout.
* **Degenerate Gaussians** (|l11| or |l22| < 1e-6, non-finite) contribute nothing, as in the model;
  they are masked with ``torch.where`` so autograd never sees a division by zero.
* **Initialisation (structured, as in the native fitter):** centres on a uniform grid of
  ``gx x gy`` cells (gx * gy ~= num_gaussians, cells roughly square; the count is exactly
  num_gaussians: the last cells are dropped if the grid has more), isotropic covariance whose
  1-sigma circle is the largest circle in a cell (sigma = min(cell_w, cell_h) / 2), colour = the
  cell's mean colour divided by the summed weight all Gaussians put on the cell centre (neighbours
  overlap, so without it the first render is ~1.6x too bright: 12 dB instead of 25.7 dB on kodim23;
  the native init does the same). For timing comparisons pass ``init_params`` (e.g. the native
  ``_core.initial_gaussians``) so both fitters start from the same Gaussians.
* **Schedule and projection (as in the native fitter's defaults):** with ``iterations`` given, the
  learning rates decay exponentially to ``lr_final_ratio`` times their start value over that many
  steps (``torch.optim.lr_scheduler.ExponentialLR``); after each step l11 and l22 are clamped to at
  least ``min_chol`` pixels (keeps Gaussians from collapsing below a pixel, where they stop
  receiving gradient).
* **Threads:** ``torch.set_num_threads(threads)`` (process-wide; 0 keeps torch's default).

``step()`` does one full iteration (render, loss, backward, Adam update) and returns the loss before
the update; ``psnr()`` renders the current parameters without autograd.
"""
from __future__ import annotations

import math

import numpy as np
import torch

CUTOFF_Q = 9.0
DEGENERATE_EPS = 1e-6


def bucket_radii(max_radius: int) -> list[int]:
    """Patch half-sizes of the buckets: 1, 2, ..., 10, then ~20 % steps up to ``max_radius``."""
    radii = [1]
    while radii[-1] < max_radius:
        radii.append(min(max(radii[-1] + 1, int(radii[-1] * 1.2)), max_radius))
    return radii


def render_flat(xy: torch.Tensor, chol: torch.Tensor, color: torch.Tensor, width: int, height: int,
                radii: list[int]) -> torch.Tensor:
    """(H*W, C) float32 image of the Gaussians, differentiable w.r.t. xy, chol and color.

    ``radii`` are the bucket patch half-sizes (see :func:`bucket_radii`); the last one is the cap.
    """
    channels = color.shape[1]
    ok = (torch.isfinite(xy).all(1) & torch.isfinite(chol).all(1) & torch.isfinite(color).all(1)
          & (chol[:, 0].abs() >= DEGENERATE_EPS) & (chol[:, 2].abs() >= DEGENERATE_EPS)).detach()
    safe_chol = torch.where(ok[:, None], chol, torch.ones_like(chol))
    safe_xy = torch.where(ok[:, None], xy, torch.zeros_like(xy))
    safe_color = torch.where(ok[:, None], color, torch.zeros_like(color))

    with torch.no_grad():  # bucket assignment: first radius >= the 3-sigma extent, capped
        sx = 3.0 * safe_chol[:, 0].abs()
        sy = 3.0 * torch.sqrt(safe_chol[:, 1] ** 2 + safe_chol[:, 2] ** 2)
        extent = torch.ceil(torch.maximum(sx, sy))
        bucket = torch.bucketize(extent, torch.tensor(radii, dtype=extent.dtype)).clamp_(max=len(radii) - 1)
        bucket = torch.where(ok, bucket, torch.full_like(bucket, -1))

    sink = height * width
    out = torch.zeros(sink + 1, channels)
    for b, radius in enumerate(radii):
        idx = torch.nonzero(bucket == b).squeeze(1)
        if idx.numel() == 0:
            continue
        off = torch.arange(-radius, radius + 1)
        x, y = safe_xy[idx, 0], safe_xy[idx, 1]
        l11, l21, l22 = safe_chol[idx, 0], safe_chol[idx, 1], safe_chol[idx, 2]
        with torch.no_grad():  # integer pixel indices of each patch: no gradient
            px = torch.floor(x).long()[:, None] + off          # (B, K) columns
            py = torch.floor(y).long()[:, None] + off          # (B, K) rows
            inside = (((px >= 0) & (px < width))[:, None, :]
                      & ((py >= 0) & (py < height))[:, :, None])
            flat = torch.where(inside, py[:, :, None] * width + px[:, None, :],
                               torch.full_like(inside, sink, dtype=torch.long))
        dx = px.to(torch.float32) + 0.5 - x[:, None]           # (B, K)
        dy = py.to(torch.float32) + 0.5 - y[:, None]           # (B, K)
        z1 = dx / l11[:, None]                                 # depends on the column only
        z2 = (dy[:, :, None] - l21[:, None, None] * z1[:, None, :]) / l22[:, None, None]
        q = z1[:, None, :] ** 2 + z2 ** 2                      # (B, K, K)
        w = torch.exp(-0.5 * q) * (q <= CUTOFF_Q)
        contrib = w[..., None] * safe_color[idx][:, None, None, :]
        out.index_add_(0, flat.reshape(-1), contrib.reshape(-1, channels))
    return out[:sink]


def grid_init(image: np.ndarray, num_gaussians: int) -> np.ndarray:
    """(N, 5 + C) float32 packed Gaussians on a uniform grid (see the module docstring)."""
    height, width, channels = image.shape
    gx = max(1, round(math.sqrt(num_gaussians * width / height)))
    gy = max(1, math.ceil(num_gaussians / gx))
    cell_w, cell_h = width / gx, height / gy
    sigma = 0.5 * min(cell_w, cell_h)
    rows = []
    for j in range(gy):
        y0, y1 = int(round(j * cell_h)), max(int(round((j + 1) * cell_h)), int(round(j * cell_h)) + 1)
        for i in range(gx):
            x0, x1 = int(round(i * cell_w)), max(int(round((i + 1) * cell_w)), int(round(i * cell_w)) + 1)
            mean = image[min(y0, height - 1):y1, min(x0, width - 1):x1].reshape(-1, channels).mean(axis=0)
            rows.append([(i + 0.5) * cell_w, (j + 0.5) * cell_h, sigma, 0.0, sigma, *mean])
    params = np.asarray(rows[:num_gaussians], np.float32)
    # Divide colours by the total weight at each centre, so the first render matches the brightness.
    with torch.no_grad():
        coverage = render_flat(torch.from_numpy(params[:, 0:2]), torch.from_numpy(params[:, 2:5]),
                               torch.ones(len(params), 1), width, height, bucket_radii(32))
    cx = np.clip(params[:, 0].astype(int), 0, width - 1)
    cy = np.clip(params[:, 1].astype(int), 0, height - 1)
    cover = np.maximum(coverage[cy * width + cx, 0].numpy(), 1.0)
    params[:, 5:] /= cover[:, None]
    return params


class TorchFitter:
    """Fits Gaussians to one image with PyTorch autograd + Adam on the CPU."""

    def __init__(self, image: np.ndarray, num_gaussians: int, lr_xy: float = 0.1,
                 lr_chol: float = 0.05, lr_color: float = 0.01, threads: int = 0,
                 iterations: int | None = None, lr_final_ratio: float = 0.1, min_chol: float = 0.3,
                 max_radius: int = 32, init_params: np.ndarray | None = None) -> None:
        """
        Args:
            image: H x W (grayscale) or H x W x C float array in [0, 1] (C = 1 or 3); a uint8 array
                is scaled by 1/255.
            num_gaussians: number of Gaussians N (ignored when ``init_params`` is given).
            lr_xy, lr_chol, lr_color: Adam learning rates of the three parameter groups (pixels,
                pixels, image units); defaults are the native fitter's.
            threads: torch intra-op threads (0: leave torch's default).
            iterations: planned number of steps, for the exponential learning-rate decay to
                ``lr_final_ratio``; None keeps the learning rates constant.
            min_chol: l11 and l22 are clamped to at least this after each step (0 disables).
            max_radius: cap on a patch's half-size R in pixels.
            init_params: (N, 5 + C) packed Gaussians to start from instead of the grid init.
        """
        image = np.asarray(image)
        if image.dtype == np.uint8:
            image = image.astype(np.float32) / 255.0
        if image.ndim == 2:
            image = image[..., None]
        if image.ndim != 3 or image.shape[2] not in (1, 3) or min(image.shape[:2]) < 1:
            raise ValueError(f"image must be HxW or HxWxC with C in (1, 3), got {image.shape}")
        if threads:
            torch.set_num_threads(int(threads))
        self.height, self.width, self.channels = image.shape
        self.radii = bucket_radii(int(max_radius))
        self.min_chol = float(min_chol)
        self.target = torch.from_numpy(np.ascontiguousarray(image, np.float32)).reshape(-1, self.channels)
        if init_params is None:
            if num_gaussians < 1:
                raise ValueError("num_gaussians must be positive")
            init_params = grid_init(image.astype(np.float64), num_gaussians)
        packed = torch.from_numpy(np.array(init_params, np.float32, copy=True))
        if packed.ndim != 2 or packed.shape[1] != 5 + self.channels:
            raise ValueError(f"init_params must be (N, {5 + self.channels}), got {tuple(packed.shape)}")
        self.xy = torch.nn.Parameter(packed[:, 0:2].clone())
        self.chol = torch.nn.Parameter(packed[:, 2:5].clone())
        self.color = torch.nn.Parameter(packed[:, 5:].clone())
        self.optimizer = torch.optim.Adam([
            {"params": [self.xy], "lr": lr_xy},
            {"params": [self.chol], "lr": lr_chol},
            {"params": [self.color], "lr": lr_color},
        ])
        self.scheduler = None
        if iterations is not None and iterations > 1:
            gamma = math.exp(math.log(lr_final_ratio) / (iterations - 1))
            self.scheduler = torch.optim.lr_scheduler.ExponentialLR(self.optimizer, gamma)

    def render(self) -> torch.Tensor:
        """(H*W, C) float32 image of the current parameters (differentiable)."""
        return render_flat(self.xy, self.chol, self.color, self.width, self.height, self.radii)

    def step(self) -> float:
        """One iteration: render, MSE loss, backward, Adam update. Returns the loss before the update."""
        self.optimizer.zero_grad(set_to_none=True)
        loss = torch.mean((self.render() - self.target) ** 2)
        loss.backward()
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        if self.min_chol > 0.0:
            with torch.no_grad():
                self.chol[:, 0].clamp_(min=self.min_chol)
                self.chol[:, 2].clamp_(min=self.min_chol)
        return float(loss.detach())

    @torch.no_grad()
    def psnr(self) -> float:
        """PSNR in dB of the current parameters' render against the image (data range 1)."""
        mse = float(torch.mean((self.render() - self.target) ** 2))
        return float("inf") if mse == 0.0 else 10.0 * math.log10(1.0 / mse)

    def params(self) -> np.ndarray:
        """(N, 5 + C) float32 packed parameters ``[x, y, l11, l21, l22, colour...]``."""
        with torch.no_grad():
            return torch.cat([self.xy, self.chol, self.color], dim=1).numpy().copy()

    def rendered_image(self) -> np.ndarray:
        """(H, W, C) float32 render of the current parameters."""
        with torch.no_grad():
            return self.render().reshape(self.height, self.width, self.channels).numpy().copy()


def _main() -> None:
    """Quick manual check: fit a Kodak image for a few iterations and print loss / PSNR / timing."""
    import argparse
    import time

    from PIL import Image

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image")
    parser.add_argument("--gaussians", type=int, default=10000)
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--native-init", action="store_true",
                        help="start from splatcodec._core.initial_gaussians (grid) instead of grid_init")
    args = parser.parse_args()
    image = np.asarray(Image.open(args.image).convert("RGB"), np.float32) / 255.0
    init = None
    if args.native_init:
        from splatcodec import _core
        config = _core.FitConfig()
        config.num_gaussians = args.gaussians
        config.init = _core.InitMode.grid
        init = _core.initial_gaussians(image, config)
    fitter = TorchFitter(image, args.gaussians, threads=args.threads, iterations=args.iterations,
                         init_params=init)
    print(f"init PSNR {fitter.psnr():.2f} dB, {torch.get_num_threads()} threads")
    start = time.perf_counter()
    for it in range(1, args.iterations + 1):
        loss = fitter.step()
        if it % 10 == 0 or it == args.iterations:
            elapsed = time.perf_counter() - start
            print(f"iter {it:4d}  PSNR(before step) {10 * math.log10(1 / loss):6.2f} dB  "
                  f"{1e3 * elapsed / it:.1f} ms/iter")
    print(f"final PSNR {fitter.psnr():.2f} dB")


if __name__ == "__main__":
    _main()
