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
 * Every other fault goes to the previous handler the same way (restored,
 * not called), and ours is back in front at the next sample. When the
 * program's handler calls ours (it chains to the handler it displaced), we
 * stand for the default disposition: the access runs again and ends the
 * process, instead of the two handlers passing the fault back and forth. */
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

static void set_default(int sig) {
  struct sigaction dfl;
  memset(&dfl, 0, sizeof(dfl));
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  sigaction(sig, &dfl, NULL);
}

/* Give the signal to the disposition we displaced, by making it the
 * disposition again and returning: the faulting access runs again and meets
 * it, a sent signal is sent again. That handler is never called from ours,
 * so one that chains back to the handler it displaced (ours) cannot make
 * the two call each other without end. The next sample puts ours in front
 * again. */
static void forward(int sig, const siginfo_t* info) {
  bool ignored = !(previous.sa_flags & SA_SIGINFO) && previous.sa_handler == SIG_IGN;
  if (is_ours(&previous) || (ignored && info->si_code > 0)) {
    set_default(sig);  /* an ignored SIGSEGV from a fault would run the access forever */
  } else {
    sigaction(sig, &previous, NULL);
  }
  if (info->si_code <= 0 && !ignored) raise(sig);  /* sent, not a fault: delivered once we return */
}

/* True when the program's handler called ours (it saved ours as the one to
 * chain to): the kernel delivers to the installed disposition, and that is
 * not ours now. */
static bool called_by_another_handler(int sig) {
  struct sigaction current;
  return sigaction(sig, NULL, &current) == 0 && !is_ours(&current);
}

/* Another thread is writing the report: wait for it (up to 2 s), so that
 * this thread's fault does not end the process in the middle of it. */
static void wait_for_report(void) {
  for (int i = 0; i < 200 && atomic_load_explicit(&reporting, memory_order_acquire) &&
                  !atomic_load_explicit(&reported, memory_order_acquire);
       i++) {
    struct timespec pause = {0, 10 * 1000 * 1000};
    nanosleep(&pause, NULL);
  }
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
  bool guarded = info->si_code > 0 && hhi_guarded_describe(info->si_addr, &fault);
  bool chained = called_by_another_handler(sig);
  if (!guarded) {
    wait_for_report();
    /* called through a handler that displaced ours: what it chains to is
     * the default, so that the access runs again and ends the process */
    if (chained) set_default(sig); else forward(sig, info);
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
    /* the report is out: let the fault kill us, through the program's
     * handler if it had one (a core dump, a debugger or that handler see
     * the original fault) */
    if (chained) set_default(sig); else forward(sig, info);
  } else {
    /* a later fault on guarded memory: another thread's report is being
     * written, or the program's handler had its turn and came back
     * (chained to ours, or it returned): the default ends it */
    wait_for_report();
    set_default(sig);
  }
  errno = saved_errno;
}
