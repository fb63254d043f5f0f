#include "rdoq_cpu.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "core_limits.h"
#include "gaussian_math.h"

namespace splat {

namespace {

// A Gaussian's footprint as colors.footprints evaluates it: the renderer's Prepared (gaussian_math.h)
// of the Cholesky factor [[a, 0], [c, b]] (a = exp(log a), b = exp(log b), c = sinh(shear) b), in
// float32, with the box widened so that it holds every pixel whose float q is <= kCutoffQ.
using Footprint = Prepared;

struct Box {
  int x0, x1, y0, y1;  // inclusive; x0 > x1 or y0 > y1: empty
};

Box box_of(const Footprint& f) { return Box{f.x0, f.x1, f.y0, f.y1}; }

Box united(const Box& a, const Box& b) {
  if (a.x0 > a.x1 || a.y0 > a.y1) return b;
  if (b.x0 > b.x1 || b.y0 > b.y1) return a;
  return Box{std::min(a.x0, b.x0), std::max(a.x1, b.x1), std::min(a.y0, b.y0), std::max(a.y1, b.y1)};
}

// Pixels k (centre k + 0.5) with the centre in [m - e, m + e], clamped to 0 .. size - 1. A NaN gives the
// whole range: the q test then decides, as in numpy, which has no box.
void pixel_range(double m, double e, int size, int* first, int* last) {
  const double lo = std::ceil(m - e - 0.5), hi = std::floor(m + e - 0.5);
  if (lo != lo || hi != hi) {
    *first = 0;
    *last = size - 1;
    return;
  }
  *first = lo <= 0.0 ? 0 : lo >= size ? size : int(lo);
  *last = hi >= size - 1.0 ? size - 1 : hi < 0.0 ? -1 : int(hi);
}

// The footprint of geometry (x, y, log a, log b, shear). The ellipse q <= 9 lies within |dx| <= 3a,
// |dy| <= 3 sqrt(b^2 + c^2) of the centre; the box is widened by a margin far above the float rounding
// of the centre and of q (~1e-7 relative), so that it holds every pixel numpy's float32 q test admits.
Footprint footprint(double x, double y, double log_a, double log_b, double shear, int width, int height) {
  Footprint f;
  const double b = std::exp(log_b), c = std::sinh(shear) * b;
  f.mx = float(x);
  f.my = float(y);
  f.inv_l11 = float(std::exp(-log_a));
  f.inv_l22 = float(std::exp(-log_b));
  f.l21 = float(c);
  const double ex = double(kCutoffSigma) * std::exp(log_a), ey = double(kCutoffSigma) * std::hypot(b, c);
  pixel_range(x, ex + 1e-4 * (ex + std::fabs(x) + 1.0), width, &f.x0, &f.x1);
  pixel_range(y, ey + 1e-4 * (ey + std::fabs(y) + 1.0), height, &f.y0, &f.y1);
  return f;
}

// exp(-q/2) at pixel centre (px, py), 0 where q > kCutoffQ: colors.footprints in float32, with the
// renderer's arithmetic (gaussian_math.h).
inline float weight_at(const Footprint& f, float px, float py) { return gaussian_weight(mahalanobis(f, px, py).q); }

// Columns per step of the pixel loops (the columns past a box are masked): a fixed count, not the SIMD
// width, so that the order of the sums is the same in every build.
constexpr int kChunk = 8;

// Sums of dw * ec and dw^2 over the pixels of `u`, dw = old_w - the footprint f (old_w and ec are
// images of `width` columns, readable kChunk values past their end).
void move_sums(const Footprint& f, const Box& u, const float* old_w, const double* ec, int width, double* s1,
               double* s2) {
  alignas(64) double a1[kChunk] = {}, a2[kChunk] = {};
  for (int y = u.y0; y <= u.y1; ++y) {
    const float py = float(y) + 0.5f;
    const float* w_row = old_w + int64_t(y) * width;
    const double* ec_row = ec + int64_t(y) * width;
    for (int x = u.x0; x <= u.x1; x += kChunk) {
      const float* w = w_row + x;  // pointers, not w_row[x + j]: GCC would gather
      const double* e = ec_row + x;
      const int count = u.x1 - x;
#pragma omp simd
      for (int j = 0; j < kChunk; ++j) {
        const float dw = w[j] - weight_at(f, float(x + j) + 0.5f, py);
        const double d = j <= count ? double(dw) : 0.0;
        a1[j] += d * e[j];
        a2[j] += d * d;
      }
    }
  }
  *s1 = *s2 = 0.0;
  for (int j = 0; j < kChunk; ++j) {
    *s1 += a1[j];
    *s2 += a2[j];
  }
}

// Weights of footprint f on row y, columns x0 .. x1, into out[0 .. x1 - x0], and zeros up to the end of
// the last chunk (out holds x1 - x0 + kChunk floats).
void weight_row(const Footprint& f, int y, int x0, int x1, float* out) {
  const float py = float(y) + 0.5f;
  for (int x = x0; x <= x1; x += kChunk) {
    float* o = out + (x - x0);
    const int count = x1 - x;
#pragma omp simd
    for (int j = 0; j < kChunk; ++j) {
      const float w = weight_at(f, float(x + j) + 0.5f, py);
      o[j] = j <= count ? w : 0.0f;
    }
  }
}

int64_t morton(int64_t x, int64_t y, int bits) {
  int64_t code = 0;
  for (int k = 0; k < bits; ++k) code |= ((x >> k) & 1) << (2 * k) | ((y >> k) & 1) << (2 * k + 1);
  return code;
}

int bit_length(int64_t v) {  // of v >= 0
  int length = 0;
  for (; v > 0; v >>= 1) ++length;
  return length;
}

// Bits of one Morton gap: its length symbol and the raw bits below the top one (rdoq._Costs.gaps).
inline double gap_bits(int64_t gap, const double* cost) {
  const int length = bit_length(gap);
  return cost[length] + (length ? length - 1 : 0);
}

// Change of a group's gap bits when one copy of `old` in its sorted codes `ordered[0 .. len)` becomes
// `code` (the same sums in the same order as the Python version of tests/rdoq_reference.py).
double gap_delta(const int64_t* ordered, int64_t len, int64_t old, int64_t code, const double* cost) {
  const int64_t k = std::lower_bound(ordered, ordered + len, old) - ordered;
  auto rest = [&](int64_t j) { return ordered[j < k ? j : j + 1]; };  // the codes without that copy
  const int64_t rest_len = len - 1;
  int64_t prev = k ? rest(k - 1) : 0;
  double delta = -gap_bits(old - prev, cost);
  if (k < rest_len) delta += gap_bits(rest(k) - prev, cost) - gap_bits(rest(k) - old, cost);
  int64_t lo = 0, hi = rest_len;  // first j with rest(j) > code
  while (lo < hi) {
    const int64_t mid = (lo + hi) / 2;
    if (rest(mid) <= code) lo = mid + 1; else hi = mid;
  }
  prev = lo ? rest(lo - 1) : 0;
  delta += gap_bits(code - prev, cost);
  if (lo < rest_len) delta += gap_bits(rest(lo) - code, cost) - gap_bits(rest(lo) - prev, cost);
  return delta;
}

// Replaces one copy of `old` by `code` in the sorted `ordered[0 .. len)`, keeping it sorted.
void replace_sorted(int64_t* ordered, int64_t len, int64_t old, int64_t code) {
  int64_t k = std::lower_bound(ordered, ordered + len, old) - ordered;
  ordered[k] = code;
  for (; k > 0 && ordered[k - 1] > ordered[k]; --k) std::swap(ordered[k - 1], ordered[k]);
  for (; k + 1 < len && ordered[k + 1] < ordered[k]; ++k) std::swap(ordered[k + 1], ordered[k]);
}

bool finite_all(const double* v, int64_t count) {
  for (int64_t i = 0; i < count; ++i)
    if (!std::isfinite(v[i])) return false;
  return true;
}

}  // namespace

void check_rdoq_image(const RdoqSweep& a) {
  if (a.channels != 1 && a.channels != 3) throw std::invalid_argument("rdoq: channels must be 1 or 3");
  if (a.width <= 0 || a.height <= 0 || a.width > kMaxSide || a.height > kMaxSide ||
      int64_t(a.width) * a.height > kMaxPixels)
    throw std::invalid_argument("rdoq: image size out of range");
  if (a.n < 0 || a.n > kMaxGaussians) throw std::invalid_argument("rdoq: Gaussian count out of range");
  const int cols = kGeometryFloats + a.channels;
  if (!finite_all(a.lo, cols) || !finite_all(a.step, cols) || !finite_all(a.to_rgb, a.channels * a.channels))
    throw std::invalid_argument("rdoq: lo, step and to_rgb must be finite");
}

void check_rdoq_sweep(const RdoqSweep& a) {
  check_rdoq_image(a);
  if (a.pos_bits < 1 || a.pos_bits > kRdoqMaxPosBits)
    throw std::invalid_argument("rdoq: pos_bits must be in 1.." + std::to_string(kRdoqMaxPosBits));
  if (!(a.lambda >= 0.0) || !std::isfinite(a.lambda))
    throw std::invalid_argument("rdoq: lambda must be finite and >= 0");
  if (!finite_all(a.gap_costs, int64_t(a.groups) * (2 * a.pos_bits + 1)))
    throw std::invalid_argument("rdoq: gap_costs must be finite");
  if (a.groups < 0 || (a.groups == 0 && a.n > 0) || a.bounds[0] != 0 || a.bounds[a.groups] != a.n)
    throw std::invalid_argument("rdoq: group bounds must run from 0 to the Gaussian count");
  for (int g = 0; g < a.groups; ++g)
    if (a.bounds[g + 1] < a.bounds[g]) throw std::invalid_argument("rdoq: group bounds must not decrease");
  const int cols = kGeometryFloats + a.channels;
  const int64_t positions = int64_t(1) << a.pos_bits;
  for (int64_t i = 0; i < a.n; ++i)
    for (int col = 0; col < cols; ++col) {
      const int64_t s = a.symbols[i * cols + col];
      if (s < 0 || s >= (col < 2 ? positions : int64_t(1) << 31))
        throw std::invalid_argument("rdoq: symbols must be in [0, 2^pos_bits) (x, y) and [0, 2^31) (others)");
    }
}

namespace {

// The Gaussians of `a` with C channels (a constant, so that the per-channel loops unroll).
template <int C>
struct Gaussians {
  static constexpr int cols = kGeometryFloats + C;
  const RdoqSweep& a;

  double value(int col, int64_t symbol) const { return a.lo[col] + double(symbol) * a.step[col]; }

  // Gaussian i's footprint with column `col` (< 5) set to `symbol` (col < 0: as it is).
  Footprint footprint_of(int64_t i, int col = -1, int64_t symbol = 0) const {
    double g[kGeometryFloats];
    for (int k = 0; k < kGeometryFloats; ++k) g[k] = value(k, k == col ? symbol : a.symbols[i * cols + k]);
    return footprint(g[0], g[1], g[2], g[3], g[4], a.width, a.height);
  }

  // Gaussian i's colour in RGB.
  void rgb_of(int64_t i, double* rgb) const {
    double stored[C];
    for (int k = 0; k < C; ++k) stored[k] = value(kGeometryFloats + k, a.symbols[i * cols + kGeometryFloats + k]);
    for (int j = 0; j < C; ++j) {
      rgb[j] = 0.0;
      for (int k = 0; k < C; ++k) rgb[j] += a.to_rgb[j * C + k] * stored[k];
    }
  }

  // The target minus the render of all Gaussians (height x width x C).
  std::vector<double> error_image() const {
    const int width = a.width;
    std::vector<double> error(a.target, a.target + int64_t(width) * a.height * C);
    std::vector<float> row(width + kChunk);
    for (int64_t i = 0; i < a.n; ++i) {
      const Footprint f = footprint_of(i);
      double rgb[C];
      rgb_of(i, rgb);
      for (int y = f.y0; y <= f.y1; ++y) {
        weight_row(f, y, f.x0, f.x1, row.data());
        double* e = error.data() + (int64_t(y) * width + f.x0) * C;
        for (int x = 0; x <= f.x1 - f.x0; ++x)
          for (int k = 0; k < C; ++k) e[x * C + k] -= double(row[x]) * rgb[k];
      }
    }
    return error;
  }
};

// rdoq_sweep with C channels.
template <int C>
int64_t sweep(const RdoqSweep& a) {
  constexpr int channels = C, cols = kGeometryFloats + C, moves = 2 * cols;
  const int width = a.width;
  const int64_t pixels = int64_t(width) * a.height;
  const int gap_len = 2 * a.pos_bits + 1;
  const Gaussians<C> gaussians{a};
  std::vector<double> error = gaussians.error_image();
  std::vector<float> row(width + kChunk);  // one row of a footprint
  // Morton codes, sorted within each group.
  std::vector<int64_t> codes(a.n), ordered(a.n), group(a.n);
  for (int64_t i = 0; i < a.n; ++i) codes[i] = morton(a.symbols[i * cols], a.symbols[i * cols + 1], a.pos_bits);
  ordered = codes;
  for (int g = 0; g < a.groups; ++g) {
    std::sort(ordered.begin() + a.bounds[g], ordered.begin() + a.bounds[g + 1]);
    std::fill(group.begin() + a.bounds[g], group.begin() + a.bounds[g + 1], g);
  }

  // The visited Gaussian's weights (zero outside its box) and error . its RGB colour, padded for move_sums.
  std::vector<float> old_w(pixels + kChunk, 0.0f);
  std::vector<double> ec(pixels + kChunk, 0.0);
  double dj[moves];
  Footprint cand[2 * kGeometryFloats];
  int64_t moved = 0;
  for (int64_t i = 0; i < a.n; ++i) {
    int64_t* sym = a.symbols + i * cols;
    const bool* valid = a.valid + i * moves;
    const double* d_rate = a.d_rate + i * moves;
    const Footprint old = gaussians.footprint_of(i);
    double rgb[C], ew[C] = {}, ww = 0.0, cc = 0.0;
    gaussians.rgb_of(i, rgb);
    for (int k = 0; k < channels; ++k) cc += rgb[k] * rgb[k];
    for (int y = old.y0; y <= old.y1; ++y) {
      // Past x1 weight_row writes zeros (into the padding on the last row): old_w is zero there anyway.
      const int64_t start = int64_t(y) * width + old.x0;
      weight_row(old, y, old.x0, old.x1, old_w.data() + start);
      for (int64_t p = start; p <= start + old.x1 - old.x0; ++p) {
        const double w = old_w[p];
        ww += w * w;
        for (int k = 0; k < channels; ++k) ew[k] += error[p * channels + k] * w;
      }
    }
    // Geometry moves: the footprints they would give, and the pixels any of them touches.
    Box reach = box_of(old);
    for (int m = 0; m < 2 * kGeometryFloats; ++m) {
      if (!valid[m]) continue;
      cand[m] = gaussians.footprint_of(i, m / 2, sym[m / 2] + (m % 2 ? 1 : -1));
      reach = united(reach, box_of(cand[m]));
    }
    for (int y = reach.y0; y <= reach.y1; ++y)
      for (int x = reach.x0; x <= reach.x1; ++x) {
        const int64_t p = int64_t(y) * width + x;
        double s = 0.0;
        for (int k = 0; k < channels; ++k) s += error[p * channels + k] * rgb[k];
        ec[p] = s;
      }
    // delta D of every valid move: geometry ||e + dw c||^2 - ||e||^2 with dw = old - new footprint,
    // colours ||e - w dc||^2 - ||e||^2; plus lambda delta R.
    bool nan = false;
    std::fill_n(dj, moves, HUGE_VAL);  // invalid moves: never taken
    for (int m = 0; m < moves; ++m) {
      if (!valid[m]) continue;
      const int col = m / 2, d = m % 2 ? 1 : -1;
      double delta;
      if (col < kGeometryFloats) {
        const Footprint& f = cand[m];
        const Box u = united(box_of(old), box_of(f));
        double s1, s2;
        move_sums(f, u, old_w.data(), ec.data(), width, &s1, &s2);
        delta = 2.0 * s1 + cc * s2;
      } else {
        double dot = 0.0, norm = 0.0;
        for (int k = 0; k < channels; ++k) {
          const double dc = d * a.step[col] * a.to_rgb[k * channels + (col - kGeometryFloats)];
          dot += dc * ew[k];
          norm += dc * dc;
        }
        delta = -2.0 * dot + ww * norm;
      }
      if (col >= 2) {
        delta += a.lambda * d_rate[m];
      } else {  // x, y: the rate is the group's Morton gaps
        const int64_t sx = sym[0] + (col == 0 ? d : 0), sy = sym[1] + (col == 1 ? d : 0);
        if (sx < 0 || sy < 0 || sx >> a.pos_bits || sy >> a.pos_bits) continue;  // off the grid
        const int g = int(group[i]);
        delta += a.lambda * gap_delta(ordered.data() + a.bounds[g], a.bounds[g + 1] - a.bounds[g], codes[i],
                                      morton(sx, sy, a.pos_bits), a.gap_costs + int64_t(g) * gap_len);
      }
      dj[m] = delta;
      nan = nan || delta != delta;
    }
    // The first move of least delta J, if that is negative (numpy's argmin; a NaN, which argmin would
    // pick, means no move).
    int best = -1;
    double best_dj = 0.0;
    for (int m = 0; m < moves && !nan; ++m)
      if (dj[m] < best_dj) {
        best = m;
        best_dj = dj[m];
      }
    if (best >= 0) {
      const int col = best / 2, d = best % 2 ? 1 : -1;
      if (col < kGeometryFloats) {  // the error follows the footprint
        const Footprint& f = cand[best];
        const Box u = united(box_of(old), box_of(f));
        for (int y = u.y0; y <= u.y1; ++y) {
          weight_row(f, y, u.x0, u.x1, row.data());
          for (int x = u.x0; x <= u.x1; ++x) {
            const int64_t p = int64_t(y) * width + x;
            const double w_old = old_w[p], w_new = row[x - u.x0];
            for (int k = 0; k < channels; ++k) error[p * channels + k] += w_old * rgb[k] - w_new * rgb[k];
          }
        }
        sym[col] += d;
        if (col < 2) {
          const int g = int(group[i]);
          const int64_t code = morton(sym[0], sym[1], a.pos_bits);
          replace_sorted(ordered.data() + a.bounds[g], a.bounds[g + 1] - a.bounds[g], codes[i], code);
          codes[i] = code;
        }
      } else {  // the error follows the colour
        double new_rgb[C];
        sym[col] += d;
        gaussians.rgb_of(i, new_rgb);
        for (int y = old.y0; y <= old.y1; ++y)
          for (int x = old.x0; x <= old.x1; ++x) {
            const int64_t p = int64_t(y) * width + x;
            const double w = old_w[p];
            for (int k = 0; k < channels; ++k) error[p * channels + k] += w * rgb[k] - w * new_rgb[k];
          }
      }
      ++moved;
    }
    for (int y = old.y0; y <= old.y1; ++y)
      std::fill_n(old_w.begin() + int64_t(y) * width + old.x0, old.x1 - old.x0 + 1, 0.0f);
  }
  return moved;
}

// rdoq_distortion with C channels.
template <int C>
double distortion(const RdoqSweep& a) {
  double sum = 0.0;
  for (const double e : Gaussians<C>{a}.error_image()) sum += e * e;
  return sum;
}

}  // namespace

double rdoq_distortion(const RdoqSweep& args) {
  check_rdoq_image(args);
  return args.channels == 1 ? distortion<1>(args) : distortion<3>(args);
}

int64_t rdoq_sweep(const RdoqSweep& args) {
  check_rdoq_sweep(args);
  return args.channels == 1 ? sweep<1>(args) : sweep<3>(args);
}

}  // namespace splat
