// The per-Gaussian loop of rate-distortion optimised quantization (splatcodec/codec/rdoq.py): one
// Gauss-Seidel sweep over the Gaussians of a quantized image, each taking the best of its one-step
// symbol moves if that lowers D + lambda R. The rate model stays in Python (the file's tables and
// contexts have their one home there): the caller passes the rate change of every attribute move,
// computed at the start of the sweep (exact, since a Gaussian's row cost only changes by its own
// move), and the bits of the Morton gap lengths; this code evaluates the distortion changes and the
// position moves' gap changes, which depend on the moves accepted earlier in the sweep.
#pragma once

#include <cstdint>

namespace splat {

// Arguments of rdoq_sweep. M = 2 (5 + channels) moves per Gaussian, move m = column m / 2 one symbol
// down (m even) or up (m odd); columns x, y, log a, log b, shear, colours.
struct RdoqSweep {
  const double* target = nullptr;   // height x width x channels, image units / 255
  int width = 0, height = 0, channels = 0;
  int64_t n = 0;                    // Gaussians
  int64_t* symbols = nullptr;       // n x (5 + channels), updated in place
  const double* lo = nullptr;       // 5 + channels: the value of symbol 0 of each column
  const double* step = nullptr;     // 5 + channels: the value change of one symbol step
  const double* to_rgb = nullptr;   // channels x channels, row-major: RGB = to_rgb * stored colour
  const double* d_rate = nullptr;   // n x M: bits change of each attribute move (x, y moves: unused)
  const bool* valid = nullptr;      // n x M: the move's symbol is on the grid
  const double* gap_costs = nullptr;  // groups x (2 pos_bits + 1): bits of a gap's length symbol
  const int64_t* bounds = nullptr;  // groups + 1: group g is Gaussians bounds[g] .. bounds[g + 1] - 1
  int groups = 0;
  int pos_bits = 0;                 // bits of x and y (Morton codes have 2 pos_bits)
  double lambda = 0.0;
};

// Largest pos_bits rdoq_sweep accepts (Morton codes must fit an int64).
constexpr int kRdoqMaxPosBits = 30;

// Check the values of `args` (sizes are the caller's to check) that rdoq_distortion (the image, the
// symbols and their grid) and rdoq_sweep (all) read: throw std::invalid_argument.
void check_rdoq_image(const RdoqSweep& args);
void check_rdoq_sweep(const RdoqSweep& args);

// D: the sum of squares of the target minus the render of the Gaussians (reads target, the sizes,
// symbols, lo, step and to_rgb). Calls check_rdoq_image.
double rdoq_distortion(const RdoqSweep& args);

// One sweep: renders the target's error from the symbols, then visits Gaussians 0 .. n-1 in order;
// each takes its move of least delta J = delta D + lambda delta R (first on ties) if delta J < 0,
// and the error image follows. Returns the number of Gaussians moved. Calls check_rdoq_sweep.
int64_t rdoq_sweep(const RdoqSweep& args);

}  // namespace splat
