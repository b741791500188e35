/* hardheap: C++ operator new and delete routed to hardheap, for programs
 * that link the static library. Include this header in exactly ONE C++
 * source file of the program (it defines the replaceable operators, which
 * must exist once). Under LD_PRELOAD it is not needed: the C++ runtime's
 * operators call malloc/free, which hardheap replaces.
 *
 * The throwing forms follow the standard: on failure they call the
 * installed new_handler and retry, and throw std::bad_alloc when there is
 * none. Sized deletes go to hh_free_sized, so the secure build checks the
 * size. */
#ifndef HARDHEAP_NEW_DELETE_H
#define HARDHEAP_NEW_DELETE_H

#if defined(__cplusplus)
#include <cstddef>
#include <new>

#include "hardheap.h"

namespace hardheap_detail {
inline void* new_or_handler(std::size_t size, std::size_t alignment) {
  for (;;) {
    void* p = alignment == 0 ? hh_malloc(size) : hh_malloc_aligned(size, alignment);
    if (p != nullptr) return p;
    std::new_handler handler = std::get_new_handler();
    if (handler == nullptr) throw std::bad_alloc();
    handler();
  }
}
inline void* new_nothrow(std::size_t size, std::size_t alignment) noexcept {
  try {
    return new_or_handler(size, alignment);
  } catch (...) {
    return nullptr;
  }
}
}  // namespace hardheap_detail

void* operator new(std::size_t size) { return hardheap_detail::new_or_handler(size, 0); }
void* operator new[](std::size_t size) { return hardheap_detail::new_or_handler(size, 0); }
void* operator new(std::size_t size, const std::nothrow_t&) noexcept { return hardheap_detail::new_nothrow(size, 0); }
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept { return hardheap_detail::new_nothrow(size, 0); }
void operator delete(void* p) noexcept { hh_free(p); }
void operator delete[](void* p) noexcept { hh_free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { hh_free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { hh_free(p); }
#if defined(__cpp_sized_deallocation)
void operator delete(void* p, std::size_t size) noexcept { hh_free_sized(p, size); }
void operator delete[](void* p, std::size_t size) noexcept { hh_free_sized(p, size); }
#endif

#if defined(__cpp_aligned_new)
void* operator new(std::size_t size, std::align_val_t al) {
  return hardheap_detail::new_or_handler(size, static_cast<std::size_t>(al));
}
void* operator new[](std::size_t size, std::align_val_t al) {
  return hardheap_detail::new_or_handler(size, static_cast<std::size_t>(al));
}
void* operator new(std::size_t size, std::align_val_t al, const std::nothrow_t&) noexcept {
  return hardheap_detail::new_nothrow(size, static_cast<std::size_t>(al));
}
void* operator new[](std::size_t size, std::align_val_t al, const std::nothrow_t&) noexcept {
  return hardheap_detail::new_nothrow(size, static_cast<std::size_t>(al));
}
void operator delete(void* p, std::align_val_t) noexcept { hh_free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { hh_free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { hh_free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { hh_free(p); }
void operator delete(void* p, std::size_t size, std::align_val_t al) noexcept {
  hh_free_aligned_sized(p, static_cast<std::size_t>(al), size);
}
void operator delete[](void* p, std::size_t size, std::align_val_t al) noexcept {
  hh_free_aligned_sized(p, static_cast<std::size_t>(al), size);
}
#endif

#endif /* __cplusplus */
#endif /* HARDHEAP_NEW_DELETE_H */
