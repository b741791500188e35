/* hardheap: the SIGSEGV handler that reports faults on guarded samples.
 *
 * Installed in front of whatever handler the program has, when sampling is
 * on: at start, and again at every sample if the program has replaced it
 * since (a runtime that installs its own crash handler later would
 * otherwise hide the report). A fault on an address of a guarded segment
 * is reported (the kind, the distance, the access's stack, the block's
 * allocation and free) and then left to kill the process: the previous
 * disposition is restored and the access runs again, so a core dump, a
 * debugger or the program's own handler see the original fault; with
 * ABORT_ON_MISUSE the report ends in abort() like every other misuse.
 * Every other fault goes to the previous handler untouched. */
#include "internal.h"

#include <signal.h>
#include <time.h>
#include <ucontext.h>

static void on_fault(int sig, siginfo_t* info, void* context);

static struct sigaction previous;       /* the disposition ours displaced */
static _Atomic(bool) arm_lock;          /* serialises installs */
static _Atomic(bool) reporting;         /* one report per process: the first fault wins */
static _Atomic(bool) reported;          /* ... and it has been written */

static bool is_ours(const struct sigaction* action) {
  return (action->sa_flags & SA_SIGINFO) != 0 && action->sa_sigaction == on_fault;
}

void hhi_guarded_fault_arm(void) {
  if (!hhi_guarded_enabled()) return;
  struct sigaction current;
  if (sigaction(SIGSEGV, NULL, &current) != 0 || is_ours(&current)) return;
  if (atomic_exchange_explicit(&arm_lock, true, memory_order_acquire)) return;  /* another thread is at it */
  struct sigaction ours;
  memset(&ours, 0, sizeof(ours));
  ours.sa_sigaction = on_fault;
  /* SA_ONSTACK: a program that handles stack overflows on an alternate
   * stack keeps doing so through us */
  ours.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&ours.sa_mask);
  struct sigaction displaced;
  if (sigaction(SIGSEGV, &ours, &displaced) == 0 && !is_ours(&displaced)) previous = displaced;
  atomic_store_explicit(&arm_lock, false, memory_order_release);
}

/* Give the signal to the disposition we displaced. Returning re-runs the
 * faulting access, which then meets that disposition. */
static void forward(int sig, siginfo_t* info, void* context) {
  if ((previous.sa_flags & SA_SIGINFO) != 0 && previous.sa_sigaction != NULL) {
    previous.sa_sigaction(sig, info, context);
    return;
  }
  if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN && previous.sa_handler != NULL) {
    previous.sa_handler(sig);
    return;
  }
  /* default (an ignored SIGSEGV from a fault would loop: default too) */
  struct sigaction dfl;
  memset(&dfl, 0, sizeof(dfl));
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  sigaction(sig, &dfl, NULL);
  if (info->si_code <= 0) raise(sig);  /* sent, not a fault: re-running nothing would lose it */
}

static hh_op_t access_kind(const void* context, const void** pc) {
  const ucontext_t* uc = context;
  *pc = NULL;
#if defined(__x86_64__)
  *pc = (const void*)uc->uc_mcontext.gregs[REG_RIP];
  return (uc->uc_mcontext.gregs[REG_ERR] & 2) != 0 ? HH_OP_WRITE : HH_OP_READ;
#elif defined(__aarch64__)
  *pc = (const void*)uc->uc_mcontext.pc;
  return HH_OP_ACCESS;
#else
  (void)uc;
  return HH_OP_ACCESS;
#endif
}

static void on_fault(int sig, siginfo_t* info, void* context) {
  int saved_errno = errno;
  hh_guarded_fault_t fault;
  if (info->si_code <= 0 || !hhi_guarded_describe(info->si_addr, &fault)) {
    forward(sig, info, context);
    errno = saved_errno;
    return;
  }
  if (!atomic_exchange_explicit(&reporting, true, memory_order_acq_rel)) {
    const void* pc;
    hh_op_t op = access_kind(context, &pc);
    void* stack[HH_GUARDED_STACK_DEPTH];
    int depth = hhi_stack_capture_from(stack, HH_GUARDED_STACK_DEPTH, pc);
    const hh_guarded_slot_t* slot = fault.slot;
    hhi_guarded_report_fault(op,
                             (hh_misuse_info_t){.kind = (hh_misuse_t)fault.kind,
                                                .pointer = info->si_addr,
                                                .block = slot != NULL ? slot->block : NULL,
                                                .segment = hhi_ptr_segment(info->si_addr),
                                                .size_class = slot != NULL ? slot->requested : 0,
                                                .requested_size = slot != NULL ? slot->requested : 0,
                                                .offset = fault.offset},
                             slot, stack, depth);
    atomic_store_explicit(&reported, true, memory_order_release);
  } else {
    /* another thread is reporting: do not kill the process under it */
    for (int i = 0; i < 200 && !atomic_load_explicit(&reported, memory_order_acquire); i++) {
      struct timespec pause = {0, 10 * 1000 * 1000};
      nanosleep(&pause, NULL);
    }
  }
  /* the first report is out (or being written): let the fault kill us */
  struct sigaction restore = previous;
  if (is_ours(&restore) || (!(restore.sa_flags & SA_SIGINFO) && restore.sa_handler == SIG_IGN)) {
    memset(&restore, 0, sizeof(restore));
    restore.sa_handler = SIG_DFL;
  }
  sigaction(SIGSEGV, &restore, NULL);
  errno = saved_errno;
}
