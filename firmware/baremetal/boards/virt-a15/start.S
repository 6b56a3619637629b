/* SPDX-License-Identifier: BSD-3-Clause */
/* virt-a15 start-up (ARMv7-A, AArch32, Secure SVC mode at reset, MMU and caches off): the exception vectors,
 * a stack per mode used, .data copied from its load image, .bss zeroed, static constructors, then
 * amp_board_start(). Exceptions other than IRQ are faults: they go to amp_board_fault() with what was taken,
 * the return address and the SPSR. The exception vectors and handlers are ARM code (SCTLR.TE = 0). */
    .syntax unified
    .arm

/* CPSR mode numbers. */
    .equ MODE_FIQ, 0x11
    .equ MODE_IRQ, 0x12
    .equ MODE_SVC, 0x13
    .equ MODE_ABT, 0x17
    .equ MODE_UND, 0x1B

/* amp_board_fault's first argument: what was taken (board.cpp names them). */
    .equ FAULT_UNDEF, 1
    .equ FAULT_SVC, 2
    .equ FAULT_PABT, 3
    .equ FAULT_DABT, 4
    .equ FAULT_HYP, 5
    .equ FAULT_FIQ, 6

    .section .vectors, "ax", %progbits
    .balign 32
    .global amp_vectors
amp_vectors:
    b _start
    b undef_entry
    b svc_entry
    b pabt_entry
    b dabt_entry
    b hyp_entry
    b irq_entry
    b fiq_entry

    .section .text.amp_start, "ax", %progbits
    .global _start
    .type _start, %function
_start:
    cpsid aif
    /* Vectors at VBAR (SCTLR.V = 0), taken in ARM state (SCTLR.TE = 0). */
    ldr r0, =amp_vectors
    mcr p15, 0, r0, c12, c0, 0
    mrc p15, 0, r0, c1, c0, 0
    bic r0, r0, #(1 << 13)
    bic r0, r0, #(1 << 30)
    mcr p15, 0, r0, c1, c0, 0
    isb

    /* One stack per mode; the fault modes share nothing with the main one. */
    cps #MODE_IRQ
    ldr sp, =amp_irq_stack_top
    cps #MODE_ABT
    ldr sp, =amp_abt_stack_top
    cps #MODE_UND
    ldr sp, =amp_und_stack_top
    cps #MODE_FIQ
    ldr sp, =amp_fiq_stack_top
    cps #MODE_SVC
    ldr sp, =amp_svc_stack_top

    /* .data from its load image (so that a reset without a reload starts afresh), .bss zeroed. Both are
     * word-aligned and whole words (the linker script makes sure). */
    ldr r0, =__data_load
    ldr r1, =__data_start
    ldr r2, =__data_end
1:  cmp r1, r2
    ldrlo r3, [r0], #4
    strlo r3, [r1], #4
    blo 1b
    ldr r1, =__bss_start
    ldr r2, =__bss_end
    mov r3, #0
2:  cmp r1, r2
    strlo r3, [r1], #4
    blo 2b

    /* Static constructors. */
    ldr r4, =__init_array_start
    ldr r5, =__init_array_end
3:  cmp r4, r5
    bhs 4f
    ldr r0, [r4], #4
    blx r0
    b 3b
4:  bl amp_board_start
5:  wfi
    b 5b
    .size _start, . - _start

/* IRQ: handled in IRQ mode on its own stack, interrupts stay masked meanwhile (no nesting). */
irq_entry:
    sub lr, lr, #4
    push {r0-r3, r12, lr}  /* 24 bytes: the stack stays 8-byte aligned */
    bl amp_board_irq
    ldm sp!, {r0-r3, r12, pc}^

/* Faults: r0 = what, r1 = the return address the exception left in lr, r2 = SPSR. Never return. */
undef_entry:
    mov r0, #FAULT_UNDEF
    b fault
svc_entry:
    mov r0, #FAULT_SVC
    b fault
pabt_entry:
    mov r0, #FAULT_PABT
    b fault
dabt_entry:
    mov r0, #FAULT_DABT
    b fault
hyp_entry:
    mov r0, #FAULT_HYP
    b fault
fiq_entry:
    mov r0, #FAULT_FIQ
fault:
    mov r1, lr
    mrs r2, spsr
    bic sp, sp, #7
    bl amp_board_fault
6:  wfi
    b 6b

    .ltorg
