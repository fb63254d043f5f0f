// A tiny single-OS-thread emulator of the CUDA execution model, just enough to run the kernels in
// src_cuda/raster_cuda_kernels.cuh on the CPU (tests on machines without a GPU): every CUDA thread of a
// block is a ucontext fiber; __syncthreads is a block barrier, __shfl_xor_sync / __any_sync are
// warp barriers over a double-buffered exchange slot; __shared__ variables are function statics (one
// block runs at a time). Blocks run one after another. Slow (two context switches per barrier and
// fiber), so only for small scenes. Not a faithful model of memory ordering or of divergence: it
// checks the kernels' arithmetic, indexing, batching and reductions.
#pragma once

#include <ucontext.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <stdexcept>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static

struct uint3 {
  unsigned x = 0, y = 0, z = 0;
};
inline uint3 threadIdx, blockIdx, blockDim, gridDim;

inline int min(int a, int b) { return a < b ? a : b; }

namespace emu {

struct Warp {
  int size = 32, arrived = 0;
  unsigned gen = 0;
  double slot[2][32] = {};
};

struct State {
  int threads = 0, current = 0, remaining = 0;
  std::vector<ucontext_t> ctx;
  std::vector<char> stacks;
  std::vector<uint8_t> done;
  std::vector<Warp> warps;
  ucontext_t main_ctx;
  int block_arrived = 0;
  unsigned block_gen = 0;
  const std::function<void()>* body = nullptr;
};
inline State g;
constexpr size_t kStack = 64 * 1024;

inline void set_thread(int t) {
  g.current = t;
  threadIdx.x = unsigned(t);
}

// Switches to the next unfinished fiber (returns at once if this is the only one).
inline void yield() {
  const int me = g.current;
  int next = me;
  for (int k = 1; k <= g.threads; ++k) {
    const int c = (me + k) % g.threads;
    if (!g.done[c]) {
      next = c;
      break;
    }
  }
  if (next == me) return;
  set_thread(next);
  swapcontext(&g.ctx[me], &g.ctx[next]);
}

inline void fiber_entry() {
  (*g.body)();
  g.done[g.current] = 1;
  if (--g.remaining == 0) setcontext(&g.main_ctx);
  for (int k = 1; k <= g.threads; ++k) {
    const int c = (g.current + k) % g.threads;
    if (!g.done[c]) {
      set_thread(c);
      setcontext(&g.ctx[c]);
    }
  }
  std::abort();  // unreachable
}

inline void sync_block() {
  const unsigned gen = g.block_gen;
  if (++g.block_arrived == g.threads) {
    g.block_arrived = 0;
    ++g.block_gen;
    return;
  }
  while (g.block_gen == gen) yield();
}

inline Warp& my_warp() { return g.warps[g.current / 32]; }

// Publishes v in this lane's slot, waits for the warp, returns the slot parity used.
inline int warp_exchange(double v) {
  Warp& w = my_warp();
  const int parity = int(w.gen & 1u);
  w.slot[parity][g.current % 32] = v;
  const unsigned gen = w.gen;
  if (++w.arrived == w.size) {
    w.arrived = 0;
    ++w.gen;
  } else {
    while (w.gen == gen) yield();
  }
  return parity;
}

// Runs body for every thread of every block of a 1-D grid.
inline void launch(unsigned grid, unsigned block, const std::function<void()>& body) {
  if (block == 0 || block > 1024) throw std::invalid_argument("bad block size");
  g.threads = int(block);
  g.ctx.resize(block);
  g.stacks.resize(size_t(block) * kStack);
  g.done.assign(block, 0);
  g.body = &body;
  blockDim.x = block;
  gridDim.x = grid;
  for (unsigned b = 0; b < grid; ++b) {
    blockIdx.x = b;
    g.warps.assign((block + 31) / 32, Warp{});
    for (unsigned w = 0; w < g.warps.size(); ++w) g.warps[w].size = int(std::min(32u, block - 32 * w));
    std::fill(g.done.begin(), g.done.end(), 0);
    g.remaining = int(block);
    g.block_arrived = 0;
    for (unsigned t = 0; t < block; ++t) {
      getcontext(&g.ctx[t]);
      g.ctx[t].uc_stack.ss_sp = g.stacks.data() + size_t(t) * kStack;
      g.ctx[t].uc_stack.ss_size = kStack;
      g.ctx[t].uc_link = nullptr;
      makecontext(&g.ctx[t], fiber_entry, 0);
    }
    set_thread(0);
    swapcontext(&g.main_ctx, &g.ctx[0]);
  }
}

}  // namespace emu

inline void __syncthreads() { emu::sync_block(); }

inline float __shfl_xor_sync(unsigned, float x, int lane_mask) {
  const int parity = emu::warp_exchange(double(x));
  return float(emu::my_warp().slot[parity][(emu::g.current % 32) ^ lane_mask]);
}

inline double __shfl_xor_sync(unsigned, double x, int lane_mask) {
  const int parity = emu::warp_exchange(x);
  return emu::my_warp().slot[parity][(emu::g.current % 32) ^ lane_mask];
}

inline bool __any_sync(unsigned, bool pred) {
  const int parity = emu::warp_exchange(pred ? 1.0 : 0.0);
  const emu::Warp& w = emu::my_warp();
  for (int l = 0; l < w.size; ++l)
    if (w.slot[parity][l] != 0.0) return true;
  return false;
}
