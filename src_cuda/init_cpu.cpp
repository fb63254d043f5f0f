// Initial Gaussians: uniform grid ("structured"), content-adaptive kd-split, or random.
#include <algorithm>
#include <cmath>
#include <queue>
#include <vector>

#include "fit_cpu.h"
#include "gaussian_math.h"
#include "raster_cpu.h"

namespace splat {

namespace {

// Axis-aligned pixel rectangle [x0, x1) x [y0, y1).
struct Cell {
  int x0, y0, x1, y1;
  double score;
  bool operator<(const Cell& o) const { return score < o.score; }
};

// Summed-area tables of the image and of its square, for O(1) cell means and squared errors.
class IntegralImage {
 public:
  IntegralImage(const float* image, int width, int height, int channels)
      : w_(width), h_(height), c_(channels),
        sum_(size_t(width + 1) * (height + 1) * channels, 0.0),
        sq_(size_t(width + 1) * (height + 1), 0.0) {
    for (int y = 0; y < h_; ++y)
      for (int x = 0; x < w_; ++x) {
        double sq = 0.0;
        for (int c = 0; c < c_; ++c) {
          const double v = image[(size_t(y) * w_ + x) * c_ + c];
          sum_[at(x + 1, y + 1) * c_ + c] = v + sum_[at(x, y + 1) * c_ + c] + sum_[at(x + 1, y) * c_ + c] -
                                            sum_[at(x, y) * c_ + c];
          sq += v * v;
        }
        sq_[at(x + 1, y + 1)] = sq + sq_[at(x, y + 1)] + sq_[at(x + 1, y)] - sq_[at(x, y)];
      }
  }
  double sum(const Cell& r, int c) const {
    return sum_[at(r.x1, r.y1) * c_ + c] - sum_[at(r.x0, r.y1) * c_ + c] - sum_[at(r.x1, r.y0) * c_ + c] +
           sum_[at(r.x0, r.y0) * c_ + c];
  }
  // Sum over channels of the squared deviation from the cell mean.
  double squared_error(const Cell& r) const {
    const double area = double(r.x1 - r.x0) * (r.y1 - r.y0);
    double sq = sq_[at(r.x1, r.y1)] - sq_[at(r.x0, r.y1)] - sq_[at(r.x1, r.y0)] + sq_[at(r.x0, r.y0)];
    for (int c = 0; c < c_; ++c) {
      const double s = sum(r, c);
      sq -= s * s / area;
    }
    return std::max(sq, 0.0);
  }

 private:
  size_t at(int x, int y) const { return size_t(y) * (w_ + 1) + x; }
  int w_, h_, c_;
  std::vector<double> sum_, sq_;
};

// Small, portable, seeded generator (splitmix64): identical streams on every platform.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform() { return double(next() >> 11) * (1.0 / 9007199254740992.0); }

 private:
  uint64_t state_;
};

// One Gaussian per cell: centred, axis-aligned with sigma = init_scale * half the cell's sides, colour
// = the cell mean (rescaled below).
void push_cell_gaussian(const Cell& r, const IntegralImage& integral, int channels, float scale,
                        std::vector<float>& out) {
  const double area = double(r.x1 - r.x0) * (r.y1 - r.y0);
  out.push_back(0.5f * (r.x0 + r.x1));
  out.push_back(0.5f * (r.y0 + r.y1));
  out.push_back(std::max(0.5f, scale * 0.5f * (r.x1 - r.x0)));
  out.push_back(0.0f);
  out.push_back(std::max(0.5f, scale * 0.5f * (r.y1 - r.y0)));
  for (int c = 0; c < channels; ++c) out.push_back(float(integral.sum(r, c) / area));
}

// Uniform grid of exactly n cells: `rows` rows, the first (n % rows) of which hold one cell more.
std::vector<Cell> grid_cells(int64_t n, int width, int height) {
  int rows = std::max<int64_t>(1, std::llround(std::sqrt(double(n) * height / width)));
  rows = int(std::min<int64_t>({rows, n, int64_t(height)}));
  std::vector<Cell> cells;
  cells.reserve(n);
  const int64_t base = n / rows, extra = n % rows;
  for (int r = 0; r < rows; ++r) {
    const int64_t cols = base + (r < extra ? 1 : 0);
    const int y0 = int(int64_t(r) * height / rows), y1 = int(int64_t(r + 1) * height / rows);
    for (int64_t c = 0; c < cols; ++c) {
      const int x0 = int(c * width / cols), x1 = int((c + 1) * width / cols);
      cells.push_back(Cell{x0, y0, std::max(x1, x0 + 1), std::max(y1, y0 + 1), 0.0});
    }
  }
  return cells;
}

// Content-adaptive cells: repeatedly halve (along its longer side) the cell whose score is largest,
// score = squared error of the cell around its mean + uniformity * area * mean pixel variance, so detail
// attracts small cells and flat regions keep large ones.
std::vector<Cell> adaptive_cells(int64_t n, int width, int height, const IntegralImage& integral,
                                 double uniformity) {
  const Cell whole{0, 0, width, height, 0.0};
  const double variance_per_pixel = integral.squared_error(whole) / (double(width) * height);
  auto score = [&](Cell c) {
    const double area = double(c.x1 - c.x0) * (c.y1 - c.y0);
    c.score = area <= 1.0 ? -1.0 : integral.squared_error(c) + uniformity * area * variance_per_pixel;
    return c;
  };
  std::priority_queue<Cell> heap;
  heap.push(score(whole));
  std::vector<Cell> done;
  while (int64_t(heap.size() + done.size()) < n && !heap.empty()) {
    const Cell c = heap.top();
    heap.pop();
    if (c.score < 0.0) {  // a single pixel cannot be split
      done.push_back(c);
      continue;
    }
    Cell a = c, b = c;
    if (c.x1 - c.x0 >= c.y1 - c.y0) {
      a.x1 = b.x0 = (c.x0 + c.x1) / 2;
    } else {
      a.y1 = b.y0 = (c.y0 + c.y1) / 2;
    }
    heap.push(score(a));
    heap.push(score(b));
  }
  while (!heap.empty()) {
    done.push_back(heap.top());
    heap.pop();
  }
  // Deterministic raster order (the heap's order depends on ties).
  std::sort(done.begin(), done.end(), [](const Cell& p, const Cell& q) {
    return p.y0 != q.y0 ? p.y0 < q.y0 : p.x0 < q.x0;
  });
  return done;
}

}  // namespace

std::vector<float> initial_gaussians(const float* image, int width, int height, int channels,
                                     const FitConfig& config) {
  const int stride = kGeometryFloats + channels;
  const int64_t n = config.num_gaussians;
  IntegralImage integral(image, width, height, channels);
  std::vector<float> params;
  params.reserve(n * stride);
  if (config.init == InitMode::kRandom) {
    // Random centres, isotropic with the grid's sigma, colour of the pixel under the centre.
    Rng rng(config.seed);
    const float sigma = std::max(0.5f, config.init_scale * 0.5f * float(std::sqrt(double(width) * height / n)));
    for (int64_t i = 0; i < n; ++i) {
      const float x = float(rng.uniform() * width), y = float(rng.uniform() * height);
      const int px = std::min(int(x), width - 1), py = std::min(int(y), height - 1);
      params.insert(params.end(), {x, y, sigma, 0.0f, sigma});
      for (int c = 0; c < channels; ++c) params.push_back(image[(size_t(py) * width + px) * channels + c]);
    }
  } else {
    const std::vector<Cell> cells = config.init == InitMode::kGrid
                                        ? grid_cells(n, width, height)
                                        : adaptive_cells(n, width, height, integral, config.adaptive_uniformity);
    for (const Cell& c : cells) push_cell_gaussian(c, integral, channels, config.init_scale, params);
  }
  // Gaussians overlap, so the sum at a centre exceeds its own colour: divide each colour by the total
  // weight all Gaussians put on its centre, so the first render is about as bright as the image.
  const int64_t count = int64_t(params.size()) / stride;
  std::vector<float> unit(count * (kGeometryFloats + 1));
  for (int64_t i = 0; i < count; ++i) {
    std::copy_n(&params[i * stride], kGeometryFloats, &unit[i * (kGeometryFloats + 1)]);
    unit[i * (kGeometryFloats + 1) + kGeometryFloats] = 1.0f;
  }
  CpuRasterizer raster;
  raster.bin(unit.data(), count, 1, width, height, config.threads);
  std::vector<float> coverage(size_t(width) * height);
  raster.forward(coverage.data());
  for (int64_t i = 0; i < count; ++i) {
    const int px = std::clamp(int(params[i * stride]), 0, width - 1);
    const int py = std::clamp(int(params[i * stride + 1]), 0, height - 1);
    const float cover = std::max(coverage[size_t(py) * width + px], 1.0f);
    for (int c = 0; c < channels; ++c) params[i * stride + kGeometryFloats + c] /= cover;
  }
  return params;
}

}  // namespace splat
