// Per-Gaussian and per-pixel math of the 2DGS model, shared by the C++ (CPU) and CUDA kernels so the
// CPU tests also cover the GPU arithmetic.
//
// Model: I(p) = sum_i c_i * exp(-q_i(p) / 2),  q = (p - mu)^T (L L^T)^-1 (p - mu),
//        L = [[l11, 0], [l21, l22]],  pixel centres at integer + 0.5,  q > kCutoffQ contributes 0.
// With z = L^-1 (p - mu):  z1 = dx / l11,  z2 = (dy - l21 z1) / l22,  q = z1^2 + z2^2.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define SPLAT_HD __host__ __device__ __forceinline__
#else
#define SPLAT_HD inline
#endif

namespace splat {

constexpr int kTileSize = 16;
constexpr int kTilePixels = kTileSize * kTileSize;
constexpr int kMaxChannels = 3;
constexpr int kGeometryFloats = 5;               // x, y, l11, l21, l22
constexpr float kCutoffSigma = 3.0f;             // also splatcodec.splats.CUTOFF_SIGMA
constexpr float kCutoffQ = kCutoffSigma * kCutoffSigma;
constexpr float kMinCholDiag = 1e-6f;            // |l11| or |l22| below this: degenerate, skipped

// exp(x) for x in [-kCutoffQ/2 - 1, 0]: 2^(x log2 e) split into integer and fraction, degree-5 minimax-style
// polynomial for 2^f (max relative error ~1e-7, float rounding level). Branch-free, so it vectorises on the
// CPU, and it is the same code on the GPU, so both backends agree to rounding.
SPLAT_HD float exp_neg_bounded(float x) {
  x = x < -6.0f ? -6.0f : x;
  const float t = x * 1.44269504088896341f;      // log2(e)
  // floor(t) for t in [-9, 0] by truncating t + 16: float-to-int truncation vectorises on every x86-64
  // (floorf needs SSE4.1), and t + 16 > 0 makes truncation equal floor.
  const int32_t n = static_cast<int32_t>(t + 16.0f) - 16;
  const float f = t - static_cast<float>(n);     // in [0, 1) up to rounding
  float p = 1.8670309884587645e-3f;
  p = p * f + 9.017238410825553e-3f;
  p = p * f + 5.5799767077003286e-2f;
  p = p * f + 2.4016448867009993e-1f;
  p = p * f + 6.931513088958443e-1f;
  p = p * f + 1.0f;
  // Scale by 2^n through the exponent bits (n in [-9, 0], so no overflow or denormals).
#if defined(__CUDA_ARCH__)
  return __int_as_float(__float_as_int(p) + n * (1 << 23));
#else
  int32_t bits;
  std::memcpy(&bits, &p, sizeof bits);
  bits += n * (1 << 23);
  std::memcpy(&p, &bits, sizeof p);
  return p;
#endif
}

// A Gaussian prepared for rasterisation: centre, the entries of L^-1 and its pixel bounding box.
struct Prepared {
  float mx, my;      // centre
  float inv_l11;     // 1 / l11
  float l21;         // l21
  float inv_l22;     // 1 / l22
  int x0, x1, y0, y1;  // inclusive pixel range touched (x0 > x1: touches nothing)
};

SPLAT_HD bool finite_f(float v) { return v == v && v - v == 0.0f; }  // false for NaN and +-Inf

// Prepares one Gaussian from its packed row [x, y, l11, l21, l22, colour...]. Degenerate Gaussians
// (non-finite parameters, vanishing diagonal of L) and those entirely outside the width x height image
// get an empty box. The box is computed in double and clamped to the image, so arbitrarily wide or far
// Gaussians that still reach the image are kept, and no float-to-int conversion can overflow.
SPLAT_HD Prepared prepare_gaussian(const float* g, int channels, int width, int height) {
  Prepared p;
  p.mx = g[0];
  p.my = g[1];
  p.x0 = 0; p.x1 = -1; p.y0 = 0; p.y1 = -1;
  p.inv_l11 = 0.0f; p.l21 = 0.0f; p.inv_l22 = 0.0f;
  bool finite = true;
  for (int k = 0; k < kGeometryFloats + channels; ++k) finite = finite && finite_f(g[k]);
  const float l11 = g[2], l21 = g[3], l22 = g[4];
  if (!finite || fabsf(l11) < kMinCholDiag || fabsf(l22) < kMinCholDiag) return p;
  // Exact half-extents of the ellipse q <= kCutoffQ: kCutoffSigma * sqrt(Sigma_xx), sqrt(Sigma_yy).
  const double ex = double(kCutoffSigma) * fabs(double(l11));
  const double ey = double(kCutoffSigma) * sqrt(double(l21) * l21 + double(l22) * l22);
  // Pixel j is inside when its centre j + 0.5 lies within [m - e, m + e].
  const double fx0 = ceil(double(p.mx) - ex - 0.5), fx1 = floor(double(p.mx) + ex - 0.5);
  const double fy0 = ceil(double(p.my) - ey - 0.5), fy1 = floor(double(p.my) + ey - 0.5);
  if (fx1 < 0.0 || fy1 < 0.0 || fx0 > width - 1.0 || fy0 > height - 1.0) return p;
  p.inv_l11 = 1.0f / l11;
  p.l21 = l21;
  p.inv_l22 = 1.0f / l22;
  p.x0 = fx0 < 0.0 ? 0 : static_cast<int>(fx0);
  p.y0 = fy0 < 0.0 ? 0 : static_cast<int>(fy0);
  p.x1 = fx1 > width - 1.0 ? width - 1 : static_cast<int>(fx1);
  p.y1 = fy1 > height - 1.0 ? height - 1 : static_cast<int>(fy1);
  return p;
}

// Rows [*row0, *row1] (clipped to the given range on entry) that can hold a pixel of the Gaussian whose
// centre column lies in [xa, xb] (pixel-centre coordinates): the y-extent of the ellipse cut to that
// vertical strip. A Gaussian's box is the whole ellipse's extent; within one tile's columns an
// elongated or off-centre ellipse often covers only some of the box's rows, and the rasterisers skip
// the others (on 224x224 fits about a quarter of the evaluated pixels). The span is conservative: it
// is that of q <= kRowSpanQ (above kCutoffQ by far more than the float error of q whenever
// |l21| <= kRowSpanMaxShear |l22|; otherwise the rows are left as they are), so every pixel whose
// float q passes the cutoff stays inside and renders do not change by a bit.
constexpr double kRowSpanQ = 9.05;
constexpr float kRowSpanMaxShear = 500.0f;

SPLAT_HD void strip_row_span(const Prepared& g, double xa, double xb, int* row0, int* row1) {
  if (!(fabsf(g.l21 * g.inv_l22) <= kRowSpanMaxShear)) return;
  const double inv_l11 = g.inv_l11, l21 = g.l21, l22 = fabs(1.0 / double(g.inv_l22));
  double zlo = (xa - g.mx) * inv_l11, zhi = (xb - g.mx) * inv_l11;
  if (zlo > zhi) { const double t = zlo; zlo = zhi; zhi = t; }
  const double r = sqrt(kRowSpanQ);
  zlo = zlo < -r ? -r : zlo;
  zhi = zhi > r ? r : zhi;
  if (zlo > zhi) { *row1 = *row0 - 1; return; }  // the strip misses the ellipse
  // dy = l21 z1 + l22 z2 with z1^2 + z2^2 <= r^2: at z1 the rows span l21 z1 -+ |l22| sqrt(r^2 - z1^2),
  // whose top is highest at z1 = r l21 / |(l21, l22)| and bottom lowest at minus that (clamped to the strip).
  const double peak = r * l21 / sqrt(l21 * l21 + l22 * l22);
  const double zt = peak < zlo ? zlo : (peak > zhi ? zhi : peak);
  const double zb = -peak < zlo ? zlo : (-peak > zhi ? zhi : -peak);
  const double top = g.my + l21 * zt + l22 * sqrt(fmax(r * r - zt * zt, 0.0));
  const double bottom = g.my + l21 * zb - l22 * sqrt(fmax(r * r - zb * zb, 0.0));
  // Row j is in when its centre j + 0.5 lies in [bottom, top] (a thousandth of a pixel to spare).
  const double first = ceil(bottom - 0.5 - 1e-3), last = floor(top - 0.5 + 1e-3);
  if (first > *row0) *row0 = first > *row1 ? *row1 + 1 : static_cast<int>(first);
  if (last < *row1) *row1 = last < *row0 ? *row0 - 1 : static_cast<int>(last);
}

// Mahalanobis terms of pixel (px, py) (pixel centre coordinates).
struct Mahalanobis {
  float z1, z2, q;
};

SPLAT_HD Mahalanobis mahalanobis(const Prepared& g, float px, float py) {
  Mahalanobis m;
  m.z1 = (px - g.mx) * g.inv_l11;
  m.z2 = ((py - g.my) - g.l21 * m.z1) * g.inv_l22;
  m.q = m.z1 * m.z1 + m.z2 * m.z2;
  return m;
}

// Weight of a pixel with Mahalanobis q: exp(-q/2) inside the cutoff, 0 outside.
SPLAT_HD float gaussian_weight(float q) {
  const float w = exp_neg_bounded(-0.5f * q);
  return q <= kCutoffQ ? w : 0.0f;
}

// Per-Gaussian sums accumulated over the pixels of its footprint in the backward pass. With
// gq = dLoss/dq = -w/2 * sum_k g_k c_k at a pixel, and e = gq (z1 - l21 z2 / l22):
//   dL/dx = -2 S_x / l11,   dL/dl11 = -2 S_11 / l11,   S_x = sum e,  S_11 = sum e z1
//   dL/dy = -2 S_y / l22,   dL/dl21 = -2 S_21 / l22,   dL/dl22 = -2 S_22 / l22,
//   S_y = sum gq z2,  S_21 = sum gq z2 z1,  S_22 = sum gq z2^2;   dL/dc_k = sum g_k w.
struct GradSums {
  float sx, s11, sy, s21, s22;
};

// Turns the sums into gradients of the 5 geometry parameters [x, y, l11, l21, l22].
SPLAT_HD void geometry_gradient(const Prepared& g, const GradSums& s, float* out) {
  out[0] = -2.0f * s.sx * g.inv_l11;
  out[1] = -2.0f * s.sy * g.inv_l22;
  out[2] = -2.0f * s.s11 * g.inv_l11;
  out[3] = -2.0f * s.s21 * g.inv_l22;
  out[4] = -2.0f * s.s22 * g.inv_l22;
}

// BT.709 luma of |colour|, the pruning score (grayscale: |c|).
SPLAT_HD float luma_of_abs(const float* c, int channels) {
  if (channels == 1) return fabsf(c[0]);
  return 0.2126f * fabsf(c[0]) + 0.7152f * fabsf(c[1]) + 0.0722f * fabsf(c[2]);
}

// A rendered value as a uint8 sample: numpy's float32 clip(nan_to_num(v * 255 + 0.5), 0, 255).astype(uint8)
// (splatcodec.render.to_uint8). Each step is rounded to float on its own (the double product of a float
// and 255 is exact), so no FMA contraction can change a value, on the CPU or the GPU: decoded bytes stay
// those of the numpy conversion.
SPLAT_HD uint8_t to_u8(float v) {
  const float scaled = float(double(v) * 255.0);
  const float t = float(double(scaled) + 0.5);
  if (!(t > 0.0f)) return 0;  // NaN and negatives
  if (t >= 255.0f) return 255;
  return static_cast<uint8_t>(t);
}

// Writes a rendered value to a float image as is, or to a uint8 image converted by to_u8.
SPLAT_HD void store_pixel(float* out, float v) { *out = v; }
SPLAT_HD void store_pixel(uint8_t* out, float v) { *out = to_u8(v); }

}  // namespace splat
