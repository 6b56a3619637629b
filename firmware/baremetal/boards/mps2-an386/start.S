/* SPDX-License-Identifier: BSD-3-Clause */
/* mps2-an386 start-up (ARMv7-M, Cortex-M4, Thumb only). The host starts the core at amp_reset through
 * QEMU's `-device loader,addr=ENTRY,cpu-num=0` (ENTRY with the Thumb bit), so the hardware's reset fetch
 * from address 0 (the board's private SSRAM1, empty) set neither the stack pointer nor the vector table:
 * amp_reset sets both itself, first thing. The vector table is the image's first bytes.
 *
 * Stacks (in the board's private SSRAM2): exceptions run on MSP (the handler stack), the main loop in Thread
 * mode on PSP (the thread stack, below it, above a guard the MPU makes inaccessible). A main loop that
 * overflows its stack faults on the guard, and the fault handler still has a stack of its own.
 *
 * .data is not copied: the host loads the image where it runs, .data included (its load and run addresses
 * are the same), and every boot is a fresh load (a new QEMU per load). .bss is zeroed, static constructors
 * run, then amp_board_start(). */
    .syntax unified
    .thumb

    .equ SCB_VTOR, 0xE000ED08
    .equ SCB_CCR, 0xE000ED14
    .equ CCR_STKALIGN, (1 << 9)
    .equ CCR_DIV_0_TRP, (1 << 4)
    .equ CONTROL_SPSEL, (1 << 1)

/* 16 system exceptions and the board's 32 interrupts: 192 bytes, so VTOR wants 256-byte alignment. */
    .section .vectors, "a", %progbits
    .balign 256
    .global amp_vectors
amp_vectors:
    .word amp_handler_stack_top  /* 0: initial MSP (used by a boot stub; amp_reset loads it itself) */
    .word amp_reset              /* 1: reset */
    .word amp_fault_entry        /* 2: NMI */
    .word amp_fault_entry        /* 3: HardFault */
    .word amp_fault_entry        /* 4: MemManage */
    .word amp_fault_entry        /* 5: BusFault */
    .word amp_fault_entry        /* 6: UsageFault */
    .word 0, 0, 0, 0             /* 7-10: reserved */
    .word amp_fault_entry        /* 11: SVCall (nothing calls SVC) */
    .word amp_fault_entry        /* 12: DebugMonitor */
    .word 0                      /* 13: reserved */
    .word amp_fault_entry        /* 14: PendSV (nothing pends it) */
    .word amp_fault_entry        /* 15: SysTick (not used: no tick) */
    /* 16+n: external interrupt n. Cortex-M stacks r0-r3, r12, lr, pc and xPSR itself, so the C++ handler
     * is the vector (it reads the interrupt's number from IPSR). */
    .rept 32
    .word amp_board_irq
    .endr
    .size amp_vectors, . - amp_vectors

    .section .text.amp_reset, "ax", %progbits
    .global amp_reset
    .type amp_reset, %function
    .thumb_func
amp_reset:
    cpsid i
    ldr r0, =amp_handler_stack_top
    msr msp, r0
    ldr r0, =SCB_VTOR
    ldr r1, =amp_vectors
    str r1, [r0]
    /* 8-byte aligned stack frames on exception entry (AAPCS for the C++ handlers); a division by zero
     * faults instead of giving 0. */
    ldr r0, =SCB_CCR
    ldr r1, [r0]
    orr r1, r1, #(CCR_STKALIGN | CCR_DIV_0_TRP)
    str r1, [r0]
    dsb
    isb
    /* Thread mode on PSP. */
    ldr r0, =amp_thread_stack_top
    msr psp, r0
    movs r0, #CONTROL_SPSEL
    msr control, r0
    isb

    /* .bss zeroed: word-aligned and whole words (the linker script makes sure). */
    ldr r1, =__bss_start
    ldr r2, =__bss_end
    movs r3, #0
1:  cmp r1, r2
    bhs 2f
    str r3, [r1], #4
    b 1b

    /* Static constructors. */
2:  ldr r4, =__init_array_start
    ldr r5, =__init_array_end
3:  cmp r4, r5
    bhs 4f
    ldr r0, [r4], #4
    blx r0
    b 3b
4:  bl amp_board_start
5:  wfi
    b 5b
    .size amp_reset, . - amp_reset

/* Faults: amp_board_fault(frame, ipsr, exc_return), with frame the stacked r0-r3, r12, lr, pc, xPSR on the
 * stack the exception used (EXC_RETURN bit 2: 0 = MSP, 1 = PSP). Never returns. */
    .section .text.amp_fault_entry, "ax", %progbits
    .type amp_fault_entry, %function
    .thumb_func
amp_fault_entry:
    tst lr, #4
    ite eq
    mrseq r0, msp
    mrsne r0, psp
    mrs r1, ipsr
    mov r2, lr
    bl amp_board_fault
6:  b 6b
    .size amp_fault_entry, . - amp_fault_entry

    .ltorg
