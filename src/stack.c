/* hardheap: call stacks for the reports of guarded blocks.
 *
 * A sampled guarded block records where it was allocated and freed
 * (return addresses only: cheap, and they stay valid); a report prints
 * them as module + offset, which addr2line or llvm-symbolizer turns into
 * lines without anything loaded into the crashing process.
 *
 * glibc's backtrace() loads the unwinder (libgcc_s) on its first call,
 * which allocates; hhi_stack_init calls it once early so that later calls,
 * from inside malloc or from the fault handler, do not. Printing uses
 * dladdr, which neither allocates nor uses stdio. */
#include "internal.h"

#include <dlfcn.h>
#include <execinfo.h>
#include <link.h>

static _Atomic(bool) stack_ready;
static uintptr_t own_module_base;  /* load address of the module holding hardheap */
static bool own_module_is_program; /* hardheap is linked into the program itself */

static int first_module(struct dl_phdr_info* info, size_t size, void* arg) {
  (void)size;
  *(uintptr_t*)arg = (uintptr_t)info->dlpi_addr;
  return 1;  /* the program is listed first */
}

void hhi_stack_init(void) {
  if (atomic_load_explicit(&stack_ready, memory_order_acquire)) return;
  void* warm[2];
  (void)backtrace(warm, 2);
  Dl_info own;
  if (dladdr((void*)&hhi_stack_init, &own) != 0) own_module_base = (uintptr_t)own.dli_fbase;
  uintptr_t program_base = 0;
  (void)dl_iterate_phdr(first_module, &program_base);
  Dl_info program;
  /* the program's load address as dladdr reports it, for comparison */
  own_module_is_program = own_module_base == 0 || dladdr((void*)program_base, &program) == 0 ||
                          (uintptr_t)program.dli_fbase == own_module_base;
  atomic_store_explicit(&stack_ready, true, memory_order_release);
}

bool hhi_stack_ready(void) {
  return atomic_load_explicit(&stack_ready, memory_order_acquire);
}

int hhi_stack_capture(void** frames, int max) {
  if (!atomic_load_explicit(&stack_ready, memory_order_acquire)) hhi_stack_init();
  void* buf[HH_GUARDED_STACK_DEPTH + 1];
  if (max > HH_GUARDED_STACK_DEPTH) max = HH_GUARDED_STACK_DEPTH;
  int n = backtrace(buf, max + 1);
  if (n <= 1) return 0;
  /* without this function's own frame; hardheap's other frames are left
   * out when printed (telling them apart costs a dladdr per frame) */
  memcpy(frames, buf + 1, (size_t)(n - 1) * sizeof(void*));
  return n - 1;
}

/* Leading frames of count inside hardheap: they say nothing about the
 * program. When hardheap is linked into the program they cannot be told
 * apart and are kept (addr2line names them). */
static int own_leading_frames(void* const* frames, int count) {
  if (own_module_is_program) return 0;
  int skip = 0;
  while (skip < count - 1) {
    Dl_info info;
    if (dladdr(frames[skip], &info) == 0 || (uintptr_t)info.dli_fbase != own_module_base) break;
    skip++;
  }
  return skip;
}

int hhi_stack_capture_from(void** frames, int max, const void* pc) {
  void* buf[64];
  int n = backtrace(buf, 64);
  /* through the signal frame the unwinder reports the faulting pc itself */
  int start = 0;
  while (start < n && buf[start] != pc) start++;
  if (start == n) {
    frames[0] = (void*)pc;
    return 1;
  }
  int kept = n - start < max ? n - start : max;
  for (int i = 0; i < kept; i++) frames[i] = buf[start + i];
  return kept;
}

void hhi_stack_print(void* const* all_frames, int all_count) {
  int skip = own_leading_frames(all_frames, all_count);
  void* const* frames = all_frames + skip;
  int count = all_count - skip;
  for (int i = 0; i < count; i++) {
    Dl_info info;
    uintptr_t pc = (uintptr_t)frames[i];
    if (dladdr(frames[i], &info) == 0 || info.dli_fname == NULL) {
      hhi_print_error("    #%d 0x%zx\n", i, (size_t)pc);
      continue;
    }
    const char* module = info.dli_fname[0] != 0 ? info.dli_fname : "(program)";
    size_t module_offset = (size_t)(pc - (uintptr_t)info.dli_fbase);
    if (info.dli_sname != NULL && info.dli_saddr != NULL) {
      hhi_print_error("    #%d 0x%zx in %s+0x%zx (%s+0x%zx)\n", i, (size_t)pc, info.dli_sname,
                      (size_t)(pc - (uintptr_t)info.dli_saddr), module, module_offset);
    } else {
      hhi_print_error("    #%d 0x%zx (%s+0x%zx)\n", i, (size_t)pc, module, module_offset);
    }
  }
  if (count == 0) hhi_print_error("    (no frames)\n");
}
