// Small CUDA helpers shared by the CUDA rasteriser and fitter: error checking that throws, RAII streams
// and grow-only stream-ordered device buffers. Host-only code: includable from .cpp and .cu files.
#pragma once

#include <cuda_runtime_api.h>

#include <atomic>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <utility>

namespace splat {

[[noreturn]] inline void throw_cuda_error(cudaError_t err, const char* what, const char* file, int line) {
  (void)cudaGetLastError();  // clear a sticky-free error so later calls are not blamed for it
  throw std::runtime_error(std::string("CUDA error: ") + cudaGetErrorName(err) + " (" +
                           cudaGetErrorString(err) + ") in " + what + " at " + file + ":" +
                           std::to_string(line));
}

#define SPLAT_CUDA_CHECK(expr)                                                        \
  do {                                                                                \
    const cudaError_t splat_err_ = (expr);                                            \
    if (splat_err_ != cudaSuccess) ::splat::throw_cuda_error(splat_err_, #expr, __FILE__, __LINE__); \
  } while (0)

// Checks the launch of the kernel just enqueued (configuration errors; execution errors surface at the
// next synchronising call).
#define SPLAT_CUDA_CHECK_LAUNCH() SPLAT_CUDA_CHECK(cudaPeekAtLastError())

// A non-blocking stream owned by the object.
class CudaStream {
 public:
  CudaStream() { SPLAT_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking)); }
  ~CudaStream() {
    if (stream_) cudaStreamDestroy(stream_);
  }
  CudaStream(const CudaStream&) = delete;
  CudaStream& operator=(const CudaStream&) = delete;
  cudaStream_t get() const { return stream_; }
  void synchronize() const { SPLAT_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

 private:
  cudaStream_t stream_ = nullptr;
};

// Whether the current device supports stream-ordered allocation (cudaMallocAsync); cached per device.
inline bool memory_pools_supported() {
  static std::atomic<int> cached[64];  // 0: unknown, 1: yes, 2: no (static storage: zeroed)
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess || device < 0 || device >= 64) return false;
  if (cached[device] == 0) {
    int value = 0;
    const bool ok = cudaDeviceGetAttribute(&value, cudaDevAttrMemoryPoolsSupported, device) == cudaSuccess;
    cached[device] = ok && value ? 1 : 2;  // threads racing here all store the same value
  }
  return cached[device] == 1;
}

// Device array of T, allocated on a stream (cudaMallocAsync; plain cudaMalloc where memory pools are not
// supported), that only grows: a fitting loop reallocates only when what it holds grows past the
// capacity (by 1.5x, to amortise). Contents are not preserved across a growth; callers refill after
// reserve(). The stream must outlive the buffer (declare the stream first).
template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  ~DeviceBuffer() { release(); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void set_stream(cudaStream_t stream) { stream_ = stream; }

  T* reserve(size_t count) {
    if (count <= capacity_) return ptr_;
    release();
    size_t want = capacity_ + capacity_ / 2;
    if (want < count) want = count;
    pooled_ = memory_pools_supported();
    void* p = nullptr;
    cudaError_t err = allocate(&p, want * sizeof(T));
    if (err == cudaErrorMemoryAllocation && want > count) {  // retry without the headroom
      (void)cudaGetLastError();
      want = count;
      err = allocate(&p, want * sizeof(T));
    }
    if (err == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();
      throw std::runtime_error("out of GPU memory allocating " + std::to_string(count * sizeof(T)) +
                               " bytes");
    }
    SPLAT_CUDA_CHECK(err);
    ptr_ = static_cast<T*>(p);
    capacity_ = want;
    return ptr_;
  }

  T* data() const { return ptr_; }
  size_t capacity() const { return capacity_; }

  void release() noexcept {
    if (ptr_) {
      if (pooled_)
        cudaFreeAsync(ptr_, stream_);
      else
        cudaFree(ptr_);  // synchronises the device: only on GPUs without memory pools
    }
    ptr_ = nullptr;
    capacity_ = 0;
  }

 private:
  cudaError_t allocate(void** p, size_t bytes) {
    return pooled_ ? cudaMallocAsync(p, bytes, stream_) : cudaMalloc(p, bytes);
  }

  bool pooled_ = true;
  T* ptr_ = nullptr;
  size_t capacity_ = 0;
  cudaStream_t stream_ = nullptr;
};

}  // namespace splat
