// libtorch functions tch 0.24 does not bind, for src/shim.rs: autocast per device type with a
// chosen dtype (tch's `autocast` is CUDA-only and leaves CUDA's default, float16) and CUDA graphs
// (at::cuda::CUDAGraph). Every function catches C++ exceptions and returns their message (NULL on
// success; free it with ncood_free_error): an exception must not unwind into Rust.
#include <ATen/autocast_mode.h>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <optional>
#include <string>

#ifdef NCOOD_CUDA
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

static const char *error_of(const std::exception &e) { return strdup(e.what()); }

#define PROTECT(body)                                                                               \
  try {                                                                                             \
    body;                                                                                           \
    return nullptr;                                                                                 \
  } catch (const std::exception &e) {                                                               \
    return error_of(e);                                                                             \
  }

static at::DeviceType device_type(int cuda) { return cuda ? at::kCUDA : at::kCPU; }

extern "C" {

void ncood_free_error(const char *e) { free(const_cast<char *>(e)); }

// Sets autocast on the CPU (cuda = 0) or CUDA (cuda = 1): enabled or not, computing in bfloat16;
// writes the previous state to *was_enabled. Entering the outermost autocast region increments
// libtorch's nesting count; leaving it decrements it and clears the cast cache, as torch.autocast.
const char *ncood_autocast_set(int cuda, bool enabled, bool *was_enabled) {
  PROTECT({
    auto t = device_type(cuda);
    *was_enabled = at::autocast::is_autocast_enabled(t);
    at::autocast::set_autocast_dtype(t, at::kBFloat16);
    at::autocast::set_autocast_enabled(t, enabled);
  })
}

const char *ncood_autocast_nesting(bool enter) {
  PROTECT({
    if (enter) {
      at::autocast::increment_nesting();
    } else if (at::autocast::decrement_nesting() == 0) {
      at::autocast::clear_cache();
    }
  })
}

// Turns autocast off on both device types (fp32 inside an autocast region); returns the previous
// states as bits (1: CPU, 2: CUDA) for ncood_autocast_restore. Cannot throw.
int ncood_autocast_suspend() {
  int was = (at::autocast::is_autocast_enabled(at::kCPU) ? 1 : 0) |
            (at::autocast::is_autocast_enabled(at::kCUDA) ? 2 : 0);
  if (was & 1) at::autocast::set_autocast_enabled(at::kCPU, false);
  if (was & 2) at::autocast::set_autocast_enabled(at::kCUDA, false);
  return was;
}

void ncood_autocast_restore(int was) {
  if (was & 1) at::autocast::set_autocast_enabled(at::kCPU, true);
  if (was & 2) at::autocast::set_autocast_enabled(at::kCUDA, true);
}

bool ncood_cuda_graphs_built() {
#ifdef NCOOD_CUDA
  return true;
#else
  return false;
#endif
}

#ifdef NCOOD_CUDA
// A CUDA graph with the side stream it is captured on (capture cannot use the default stream).
struct ncood_graph {
  at::cuda::CUDAGraph graph;
  c10::cuda::CUDAStream stream;
  std::optional<c10::cuda::CUDAStreamGuard> guard;
  explicit ncood_graph(int device) : stream(c10::cuda::getStreamFromPool(false, device)) {}
};
#else
struct ncood_graph {};
#endif

#ifdef NCOOD_CUDA
#define CUDA_ONLY(body) PROTECT(body)
#else
#define CUDA_ONLY(body)                                                                             \
  return strdup("this ncood was built without the CUDA headers (no nvidia/cu13/include next to "   \
                "the venv's torch): CUDA graphs are unavailable");
#endif

const char *ncood_graph_new(int device, ncood_graph **out) {
  CUDA_ONLY({ *out = new ncood_graph(device); })
}

// Makes the graph's side stream current, after everything queued so far has finished; work
// issued until ncood_graph_leave (warm-up steps, the capture) runs on it.
const char *ncood_graph_enter(ncood_graph *g) {
  CUDA_ONLY({
    c10::cuda::device_synchronize();
    g->guard.emplace(g->stream);
  })
}

// Restores the previous stream once the side stream's work has finished.
const char *ncood_graph_leave(ncood_graph *g) {
  CUDA_ONLY({
    g->stream.synchronize();
    g->guard.reset();
  })
}

const char *ncood_graph_capture_begin(ncood_graph *g) { CUDA_ONLY({ g->graph.capture_begin(); }) }

const char *ncood_graph_capture_end(ncood_graph *g) { CUDA_ONLY({ g->graph.capture_end(); }) }

// Replays the captured work on the current stream.
const char *ncood_graph_replay(ncood_graph *g) { CUDA_ONLY({ g->graph.replay(); }) }

void ncood_graph_free(ncood_graph *g) { delete g; }
}
