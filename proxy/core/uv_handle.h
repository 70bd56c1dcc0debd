// Move-only owner of one libuv handle. The handle's memory is freed in its close callback,
// so the owner may be destroyed at any time: callbacks that arrive later find data == nullptr.
#pragma once

#include <uv.h>

#include <utility>

namespace gatehouse {

template <typename T>
class UvHandle {
 public:
  UvHandle() = default;
  UvHandle(const UvHandle&) = delete;
  UvHandle& operator=(const UvHandle&) = delete;
  UvHandle(UvHandle&& other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
  UvHandle& operator=(UvHandle&& other) noexcept {
    if (this != &other) {
      reset();
      handle_ = std::exchange(other.handle_, nullptr);
    }
    return *this;
  }
  ~UvHandle() { reset(); }

  // Runs init(T*) on fresh memory (e.g. uv_tcp_init). Returns libuv's error code; on failure
  // nothing is held. `owner` becomes handle->data for the callbacks.
  template <typename Init>
  int init(void* owner, Init&& init) {
    reset();
    T* fresh = new T{};  // the one allocation libuv handles need; freed in onClosed
    int rc = std::forward<Init>(init)(fresh);
    if (rc != 0) {
      delete fresh;  // never initialised, so never closed
      return rc;
    }
    fresh->data = owner;
    handle_ = fresh;
    return 0;
  }

  // Closes the handle; no callback reaches the owner afterwards.
  void reset() {
    if (handle_ == nullptr) return;
    handle_->data = nullptr;
    auto* base = reinterpret_cast<uv_handle_t*>(std::exchange(handle_, nullptr));
    if (!uv_is_closing(base)) uv_close(base, onClosed);
  }

  T* get() const { return handle_; }
  T* operator->() const { return handle_; }
  explicit operator bool() const { return handle_ != nullptr; }
  uv_handle_t* base() const { return reinterpret_cast<uv_handle_t*>(handle_); }
  uv_stream_t* stream() const { return reinterpret_cast<uv_stream_t*>(handle_); }

 private:
  static void onClosed(uv_handle_t* h) { delete reinterpret_cast<T*>(h); }

  T* handle_ = nullptr;
};

// The owner stored in a handle's data, or nullptr once the owner has let go.
template <typename Owner, typename H>
Owner* ownerOf(H* handle) {
  return static_cast<Owner*>(handle->data);
}

}  // namespace gatehouse
