// C shim for gdbvmm: <linux/kvm.h>, ioctl request numbers (function-like macros Swift cannot
// import) exported as constants, and the no-op signal handler that kicks vCPUs out of KVM_RUN.
// No logic lives here beyond what Swift cannot express.
#ifndef CKVM_H
#define CKVM_H

#include <linux/kvm.h>
#include <stdint.h>
#include <sys/eventfd.h>

// ioctl(2) is variadic, which Swift cannot call: one wrapper for pointer arguments,
// one for integer arguments.
int ckvm_ioctl_ptr(int fd, unsigned long request, void *arg);
int ckvm_ioctl_int(int fd, unsigned long request, unsigned long arg);

// System ioctls.
extern const unsigned long CKVM_GET_API_VERSION;
extern const unsigned long CKVM_CREATE_VM;
extern const unsigned long CKVM_CHECK_EXTENSION;
extern const unsigned long CKVM_GET_VCPU_MMAP_SIZE;
extern const unsigned long CKVM_GET_SUPPORTED_CPUID;
// VM ioctls.
extern const unsigned long CKVM_CREATE_VCPU;
extern const unsigned long CKVM_SET_USER_MEMORY_REGION;
extern const unsigned long CKVM_SET_TSS_ADDR;
extern const unsigned long CKVM_SET_IDENTITY_MAP_ADDR;
extern const unsigned long CKVM_CREATE_IRQCHIP;
extern const unsigned long CKVM_CREATE_PIT2;
extern const unsigned long CKVM_IRQ_LINE;
extern const unsigned long CKVM_KVMCLOCK_CTRL;
// vCPU ioctls.
extern const unsigned long CKVM_RUN;
extern const unsigned long CKVM_GET_REGS;
extern const unsigned long CKVM_SET_REGS;
extern const unsigned long CKVM_GET_SREGS;
extern const unsigned long CKVM_SET_SREGS;
extern const unsigned long CKVM_GET_FPU;
extern const unsigned long CKVM_GET_XSAVE;
extern const unsigned long CKVM_SET_XSAVE;
extern const unsigned long CKVM_GET_XSAVE2;
extern const unsigned long CKVM_SET_FPU;
extern const unsigned long CKVM_GET_MSRS;
extern const unsigned long CKVM_SET_MSRS;
extern const unsigned long CKVM_SET_CPUID2;
extern const unsigned long CKVM_GET_CPUID2;
extern const unsigned long CKVM_SET_GUEST_DEBUG;
extern const unsigned long CKVM_GET_DEBUGREGS;
extern const unsigned long CKVM_SET_DEBUGREGS;
extern const unsigned long CKVM_GET_MP_STATE;
extern const unsigned long CKVM_SET_MP_STATE;
extern const unsigned long CKVM_GET_VCPU_EVENTS;
extern const unsigned long CKVM_SET_VCPU_EVENTS;
extern const unsigned long CKVM_TRANSLATE;
extern const unsigned long CKVM_GET_LAPIC;
extern const unsigned long CKVM_SET_LAPIC;

// Installs a handler that does nothing for `signo` (without SA_RESTART), so that a
// pthread_kill of a vCPU thread makes KVM_RUN return EINTR. Returns 0 or -1 with errno.
int ckvm_install_kick_handler(int signo);
// Unblocks every signal in the calling thread. A process spawned by a thread that blocks
// signals (a Dispatch worker, say) inherits that mask; a blocked kick would never arrive.
int ckvm_unblock_all_signals(void);
// SIGRTMIN is a function call in glibc, not a constant.
int ckvm_kick_signal(void);

// kvm_run.immediate_exit, set from any thread (the kick) and cleared by the vCPU thread once
// KVM_RUN returned EINTR. Sequentially consistent, so the store is visible before the signal
// that follows it (Linux commit 460df4c1 describes the race a bare flag has).
void ckvm_set_immediate_exit(struct kvm_run *run, uint8_t value);

// kvm_cpuid2 ends in a flexible array: allocate and free it here.
struct kvm_cpuid2 *ckvm_cpuid2_alloc(uint32_t nent);
// kvm_msrs likewise.
struct kvm_msrs *ckvm_msrs_alloc(uint32_t nmsrs);

#endif
