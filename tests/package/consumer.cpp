// C++ program linked statically with hardheap-new-delete.h: new/delete of
// every kind must go to hardheap (hh_heap_contains on the default heap).
#include <hardheap-new-delete.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

struct alignas(64) Wide {
  char bytes[64];
};

int main() {
  hh_heap_t* heap = hh_heap_get_default();
  int* one = new int(42);
  int* many = new int[1000];
  Wide* wide = new Wide;
  Wide* wides = new Wide[3];
  int* nothrow = new (std::nothrow) int(7);
  bool ok = hh_heap_contains(heap, one) && hh_heap_contains(heap, many) && hh_heap_contains(heap, wide) &&
            hh_heap_contains(heap, wides) && hh_heap_contains(heap, nothrow) &&
            reinterpret_cast<uintptr_t>(wide) % 64 == 0 && reinterpret_cast<uintptr_t>(wides) % 64 == 0;
  delete one;
  delete[] many;
  delete wide;
  delete[] wides;
  delete nothrow;
  std::vector<std::string> strings;
  for (int i = 0; i < 10000; i++) strings.push_back(std::string(50, static_cast<char>('a' + i % 26)));
  ok = ok && hh_heap_contains(heap, strings.data());
  bool threw = false;
  try {
    std::vector<char> impossible(static_cast<size_t>(PTRDIFF_MAX) - 16);
  } catch (const std::bad_alloc&) {
    threw = true;
  }
  ok = ok && threw;
  std::printf("consumer_cxx %s\n", ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
