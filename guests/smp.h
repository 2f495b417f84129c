/* smp.h: what smp.c shares with the entry code of the two smp guests. */
#ifndef SMP_H
#define SMP_H

#define MAX_CPUS 64   /* also in smp-entry64.S and ap-trampoline.S */

extern int cpu_count;

__attribute__((noreturn)) void cpu_main(int cpu);
void smp_main(int cpu, int ncpus);

#endif
