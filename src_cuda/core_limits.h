// What the native core refuses to do, and how a caller stops it: the hard size maxima (exported to
// Python as MAX_SIDE / MAX_PIXELS / MAX_GAUSSIANS and checked against splatcodec.limits by the tests),
// the per-call render budget, and the per-call cancellation token.
#pragma once

#include <atomic>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace splat {

// Largest image side, pixel count and Gaussian count the core accepts, whatever the caller's limits.
// The side is bounded by float32 precision: pixel centres x + 0.5 stay exact up to 2^16.
constexpr int64_t kMaxSide = int64_t(1) << 16;
constexpr int64_t kMaxPixels = int64_t(1) << 31;
constexpr int64_t kMaxGaussians = int64_t(1) << 28;

// Columns per work unit when render work is counted: the widest SIMD build (AVX-512) evaluates whole
// 16-column chunks, so counting in 16s bounds every build and makes the verdict machine-independent.
constexpr int kWorkChunk = 16;

// A binning or render request over its budget (thrown before the tile lists are allocated).
struct LimitExceeded : std::runtime_error {
  explicit LimitExceeded(const std::string& what) : std::runtime_error(what) {}
};

// Budget of one bin(): Gaussian-tile entries (12 bytes each) and evaluated pixels counted in
// kWorkChunk-wide chunks (per pass). 0 means unlimited.
struct RenderBudget {
  int64_t max_entries = 0;
  double max_work = 0.0;
};

// Throws LimitExceeded when one binning's entries or work exceed `budget` (before anything that size is
// allocated): the one check of the CPU and CUDA rasterisers. `work` counts evaluated pixels as the
// backend evaluates them (CPU: whole 16-column chunks of each row a Gaussian crosses; CUDA: the whole
// 16x16 tile for every entry, one thread per pixel).
inline void check_render_budget(int64_t entries, int64_t work, const RenderBudget& budget,
                                const char* counted = "counted in 16-column chunks") {
  if (budget.max_entries > 0 && entries > budget.max_entries)
    throw LimitExceeded("rendering needs " + std::to_string(entries) + " Gaussian-tile entries (" +
                        std::to_string(entries * 12 / (1 << 20)) + " MiB), over the limit of " +
                        std::to_string(budget.max_entries));
  if (budget.max_work > 0.0 && double(work) > budget.max_work)
    throw LimitExceeded("rendering would evaluate " + std::to_string(work) +
                        " pixels (" + counted + "), over the limit of " +
                        std::to_string(int64_t(budget.max_work)));
}

// Per-call cancellation: the caller keeps the token, another thread calls cancel(); loops poll it at
// safe points and throw Cancelled. One token per call, so cancelling one call never stops another.
class CancelToken {
 public:
  void cancel() { flag_.store(true, std::memory_order_relaxed); }
  bool cancelled() const { return flag_.load(std::memory_order_relaxed); }

 private:
  std::atomic<bool> flag_{false};
};

struct Cancelled : std::runtime_error {
  Cancelled() : std::runtime_error("cancelled") {}
};

inline bool is_cancelled(const CancelToken* token) { return token != nullptr && token->cancelled(); }
inline void throw_if_cancelled(const CancelToken* token) {
  if (is_cancelled(token)) throw Cancelled();
}

}  // namespace splat
