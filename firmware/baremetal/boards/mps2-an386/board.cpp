// SPDX-License-Identifier: BSD-3-Clause
// QEMU's `mps2-an386` board (ARM MPS2 with the AN386 FPGA image: a Cortex-M4 at 25 MHz), in privileged
// Thread mode on the process stack, handlers on the main stack (start.S):
//  - NVIC with the board's 32 interrupts; the system handlers for MemManage, BusFault and UsageFault are
//    enabled, so that each fault is named by its own handler rather than escalated.
//  - MPU: one no-access region under the thread stack (a guard: an overflow faults instead of running into
//    whatever is below), the default memory map for the rest.
//  - Console: CMSDK APB UART0 at 0x40004000 (transmit only).
//  - Doorbell: CMSDK APB UART1 at 0x40005000, RX interrupt on IRQ 2 (exception 18). Each byte the host
//    writes to its chardev raises the RX interrupt (the UART holds one byte); the handler takes it and notes
//    the kick. Each byte the firmware writes is one notification for the host.
//  - Time: CMSDK APB timer 0 (0x40000000, IRQ 8) free-running over 32 bits at 25 MHz; its only interrupt is
//    the wrap, once every 2^32 / 25 MHz = 172 s, which extends the count to 64 bits. No periodic tick
//    (SysTick stays off).
//  - Idle: WFI. Exit: semihosting SYS_EXIT through `bkpt 0xab` (QEMU exits with 0 for a normal end, 1
//    otherwise).
#include <atomic>
#include <cstdint>
#include <string_view>

#include "amp/metal/baremetal/irq.hpp"
#include "amp/metal/log.hpp"
#include "board.hpp"

namespace amp::firmware::board {

namespace {

// --- Memory-mapped registers. ---

inline void write32(std::uintptr_t addr, std::uint32_t v) noexcept {
  *reinterpret_cast<volatile std::uint32_t*>(addr) = v;
}
inline std::uint32_t read32(std::uintptr_t addr) noexcept {
  return *reinterpret_cast<volatile std::uint32_t*>(addr);
}
inline void write8(std::uintptr_t addr, std::uint8_t v) noexcept {
  *reinterpret_cast<volatile std::uint8_t*>(addr) = v;
}

// System control space.
constexpr std::uintptr_t kNvicIser = 0xE000'E100;
constexpr std::uintptr_t kNvicIcer = 0xE000'E180;
constexpr std::uintptr_t kNvicIcpr = 0xE000'E280;
constexpr std::uintptr_t kNvicIpr = 0xE000'E400;  // a byte per interrupt
constexpr std::uintptr_t kScbShcsr = 0xE000'ED24;
constexpr std::uintptr_t kScbCfsr = 0xE000'ED28;
constexpr std::uintptr_t kScbHfsr = 0xE000'ED2C;
constexpr std::uintptr_t kScbMmfar = 0xE000'ED34;
constexpr std::uintptr_t kScbBfar = 0xE000'ED38;
constexpr std::uintptr_t kMpuCtrl = 0xE000'ED94;
constexpr std::uintptr_t kMpuRnr = 0xE000'ED98;
constexpr std::uintptr_t kMpuRbar = 0xE000'ED9C;
constexpr std::uintptr_t kMpuRasr = 0xE000'EDA0;
constexpr std::uint32_t kShcsrFaultsEnabled = (1U << 16) | (1U << 17) | (1U << 18);  // MEM, BUS, USG
constexpr std::uint32_t kMpuCtrlEnable = 1U << 0;
constexpr std::uint32_t kMpuCtrlPrivDefault = 1U << 2;  // the default map where no region applies
constexpr unsigned kNumIrqs = 32;
constexpr std::uint8_t kIrqPriority = 0x80;

constexpr std::uintptr_t kUart0 = 0x4000'4000;
constexpr std::uintptr_t kUart1 = 0x4000'5000;
constexpr unsigned kDoorbellIrq = 2;  // UART1 RX
// CMSDK APB UART registers and bits.
constexpr std::uintptr_t kUartData = 0x00;
constexpr std::uintptr_t kUartState = 0x04;
constexpr std::uintptr_t kUartCtrl = 0x08;
constexpr std::uintptr_t kUartIntClear = 0x0C;
constexpr std::uintptr_t kUartBaudDiv = 0x10;
constexpr std::uint32_t kStateTxFull = 1U << 0;
constexpr std::uint32_t kStateRxFull = 1U << 1;
constexpr std::uint32_t kCtrlTx = 1U << 0;
constexpr std::uint32_t kCtrlRx = 1U << 1;
constexpr std::uint32_t kCtrlRxInterrupt = 1U << 3;
constexpr std::uint32_t kIntRx = 1U << 1;
constexpr std::uint32_t kIntAll = 0xF;
constexpr std::uint32_t kBaudDiv = 16;  // the smallest the UART accepts (QEMU ignores the UART below it)

constexpr std::uintptr_t kTimer0 = 0x4000'0000;
constexpr unsigned kTimerIrq = 8;
constexpr std::uintptr_t kTimerCtrl = 0x00;
constexpr std::uintptr_t kTimerValue = 0x04;
constexpr std::uintptr_t kTimerReload = 0x08;
constexpr std::uintptr_t kTimerIntClear = 0x0C;  // INTSTATUS when read
constexpr std::uint32_t kTimerEnable = 1U << 0;
constexpr std::uint32_t kTimerIrqEnable = 1U << 3;  // also what makes the wrap set INTSTATUS
constexpr std::uint64_t kTimerHz = 25'000'000;

// --- CPU state. ---

std::uintptr_t irq_save() noexcept {
  std::uint32_t primask;
  __asm__ __volatile__("mrs %0, primask\n\tcpsid i" : "=r"(primask)::"memory");
  return primask & 1U;
}

void irq_restore(std::uintptr_t state) noexcept {
  // The ISB: an interrupt that is pending is taken here, not some instructions later.
  if ((state & 1U) == 0) __asm__ __volatile__("cpsie i\n\tisb" ::: "memory");
}

void wait_for_interrupt() noexcept {
  __asm__ __volatile__("dsb\n\twfi" ::: "memory");
}

void barrier() noexcept {
  __asm__ __volatile__("dsb\n\tisb" ::: "memory");
}

// --- NVIC, system handlers, MPU. ---

void nvic_enable(unsigned irq) noexcept {
  if (irq < kNumIrqs) write32(kNvicIser + 4 * (irq / 32), 1U << (irq % 32));
}

void nvic_disable(unsigned irq) noexcept {
  if (irq < kNumIrqs) {
    write32(kNvicIcer + 4 * (irq / 32), 1U << (irq % 32));
    barrier();  // no interrupt of it is taken once this returns
  }
}

void nvic_init() noexcept {
  for (unsigned i = 0; i < kNumIrqs; i += 32) {
    write32(kNvicIcer + 4 * (i / 32), ~0U);
    write32(kNvicIcpr + 4 * (i / 32), ~0U);
  }
  for (unsigned i = 0; i < kNumIrqs; ++i) write8(kNvicIpr + i, kIrqPriority);
  // The configurable faults at their reset priority 0, above every interrupt.
  write32(kScbShcsr, read32(kScbShcsr) | kShcsrFaultsEnabled);
  barrier();
}

extern "C" char amp_stack_guard[];  // the linker script's: 1 KiB, aligned, under the thread stack

void mpu_init() noexcept {
  // Region 0: the guard, no access, never executed.
  constexpr std::uint32_t kSize1K = 9;  // 2^(9 + 1) bytes
  constexpr std::uint32_t kXn = 1U << 28;
  constexpr std::uint32_t kApNone = 0U << 24;
  write32(kMpuRnr, 0);
  write32(kMpuRbar, static_cast<std::uint32_t>(reinterpret_cast<std::uintptr_t>(amp_stack_guard)));
  write32(kMpuRasr, kXn | kApNone | (kSize1K << 1) | 1U);
  // Enabled, the default map elsewhere for privileged code, off in HardFault and NMI (HFNMIENA = 0).
  write32(kMpuCtrl, kMpuCtrlEnable | kMpuCtrlPrivDefault);
  barrier();
}

// --- Time. ---

// Wraps of the 32-bit count, advanced by the wrap interrupt.
std::atomic<std::uint32_t> g_timer_wraps{0};

void on_timer_wrap(unsigned) noexcept {
  write32(kTimer0 + kTimerIntClear, 1);
  g_timer_wraps.fetch_add(1, std::memory_order_relaxed);
}
class TimerIrq final : public metal::baremetal::IrqHandler {
 public:
  void handle_irq(unsigned vector) noexcept override { on_timer_wrap(vector); }
};
constinit TimerIrq g_timer_irq;

void time_init() noexcept {
  write32(kTimer0 + kTimerCtrl, 0);
  write32(kTimer0 + kTimerReload, ~0U);  // also loads the count
  write32(kTimer0 + kTimerIntClear, 1);
  write32(kTimer0 + kTimerCtrl, kTimerEnable | kTimerIrqEnable);
}

/// 25 MHz ticks since time_init, over 64 bits.
std::uint64_t ticks() noexcept {
  const std::uintptr_t state = irq_save();
  std::uint32_t wraps = g_timer_wraps.load(std::memory_order_relaxed);
  std::uint32_t value = read32(kTimer0 + kTimerValue);
  // A wrap whose interrupt has not run yet (masked here, or this is a higher-priority context): count it,
  // and take a value read after it.
  if ((read32(kTimer0 + kTimerIntClear) & 1U) != 0) {
    ++wraps;
    value = read32(kTimer0 + kTimerValue);
  }
  irq_restore(state);
  // It counts down from 0xFFFFFFFF: a period of 2^32 ticks.
  return (std::uint64_t{wraps} << 32) | (0xFFFF'FFFFU - value);
}

// --- Doorbell. ---

DoorbellMode g_mode = DoorbellMode::kInterrupt;
std::atomic<bool> g_kicked{false};

void uart_put(std::uintptr_t base, std::uint8_t byte) noexcept {
  while ((read32(base + kUartState) & kStateTxFull) != 0) {
  }
  write32(base + kUartData, byte);
}

void uart_init(std::uintptr_t base, std::uint32_t ctrl) noexcept {
  write32(base + kUartCtrl, 0);
  write32(base + kUartIntClear, kIntAll);
  write32(base + kUartBaudDiv, kBaudDiv);
  write32(base + kUartCtrl, ctrl);
}

void on_doorbell(unsigned) noexcept {
  // Clear, then take the byte: a byte that arrives once the buffer is empty again raises the interrupt anew.
  // The other order could clear a new byte's interrupt with the byte left in the buffer, and a full buffer
  // takes no further byte: the doorbell would be silent for good.
  write32(kUart1 + kUartIntClear, kIntRx);
  while ((read32(kUart1 + kUartState) & kStateRxFull) != 0) (void)read32(kUart1 + kUartData);
  g_kicked.store(true, std::memory_order_release);
}
class DoorbellIrq final : public metal::baremetal::IrqHandler {
 public:
  void handle_irq(unsigned vector) noexcept override { on_doorbell(vector); }
};
constinit DoorbellIrq g_doorbell_irq;

// --- Exit. ---

std::atomic<bool> g_exiting{false};

[[noreturn]] void halt() noexcept {
  __asm__ __volatile__("cpsid i" ::: "memory");
  for (;;) wait_for_interrupt();
}

}  // namespace

void init(DoorbellMode mode, metal::baremetal::BoardHooks& hooks) noexcept {
  g_mode = mode;
  nvic_init();
  mpu_init();
  time_init();
  uart_init(kUart0, kCtrlTx);
  hooks.irq_save = irq_save;
  hooks.irq_restore = irq_restore;
  hooks.now_ns = now_ns;
  hooks.irq_enable = nvic_enable;
  hooks.irq_disable = nvic_disable;
  // Poll mode has no interrupt to wake a WFI: waiting spins (the hook left null).
  hooks.wait_for_event = mode == DoorbellMode::kInterrupt ? wait_for_interrupt : nullptr;
  // The hooks must be in place before the interrupt table is used (irq_enable calls them).
  metal::baremetal::set_board_hooks(hooks);
  (void)metal::baremetal::irq_register(kTimerIrq, g_timer_irq);
  (void)metal::baremetal::irq_enable(kTimerIrq);
  if (mode == DoorbellMode::kInterrupt) {
    uart_init(kUart1, kCtrlTx | kCtrlRx | kCtrlRxInterrupt);
    (void)metal::baremetal::irq_register(kDoorbellIrq, g_doorbell_irq);
    (void)metal::baremetal::irq_enable(kDoorbellIrq);
    // QEMU's UART does not look at its chardev again when RX is enabled, only when DATA is read: without
    // this read a byte the host sent before (or the first one after) could stay in the socket for good. A
    // byte that came before is taken by it too, and counted as a kick.
    (void)read32(kUart1 + kUartData);
    g_kicked.store(true, std::memory_order_release);
  } else {
    uart_init(kUart1, kCtrlTx);  // no doorbell: the line stays quiet
  }
  __asm__ __volatile__("cpsie i" ::: "memory");
}

void doorbell_kick(std::uint8_t value) noexcept {
  uart_put(kUart1, value);
}

bool doorbell_take() noexcept {
  return g_kicked.exchange(false, std::memory_order_acq_rel);
}

void idle() noexcept {
  // Masked while looking, so that a kick between the look and the WFI is not lost: WFI wakes on a pending
  // interrupt even when PRIMASK masks it, and the handler runs once the section ends.
  metal::baremetal::CriticalSection section;
  if (!g_kicked.load(std::memory_order_acquire)) wait_for_interrupt();
}

std::uint64_t now_ns() noexcept {
  const std::uint64_t t = ticks();
  return t / kTimerHz * 1'000'000'000 + t % kTimerHz * 1'000'000'000 / kTimerHz;
}

void console_write(std::string_view text) noexcept {
  for (char c : text) uart_put(kUart0, static_cast<std::uint8_t>(c));
}

[[noreturn]] void exit(int status) noexcept {
  // A second exit (semihosting is off, so the BKPT below was taken as a fault): stop here.
  if (g_exiting.exchange(true)) halt();
  // SYS_EXIT (0x18) with an ADP stop reason: ApplicationExit (QEMU exits 0) or RunTimeErrorUnknown (1).
  register std::uint32_t op __asm__("r0") = 0x18;
  register std::uint32_t reason __asm__("r1") = status == 0 ? 0x20026 : 0x20023;
  __asm__ __volatile__("bkpt 0xab" : "+r"(op) : "r"(reason) : "memory");
  halt();
}

}  // namespace amp::firmware::board

namespace {

using amp::firmware::board::read32;

// Configurable Fault Status Register bits (MemManage 0-7, BusFault 8-15, UsageFault 16-31).
constexpr std::uint32_t kCfsrMmarValid = 1U << 7;
constexpr std::uint32_t kCfsrBfarValid = 1U << 15;
// Faults on the exception entry's or return's stacking: the frame is not there to read.
constexpr std::uint32_t kCfsrStackingFaults = (1U << 3) | (1U << 4) | (1U << 11) | (1U << 12);

/// What went wrong, from the exception number and the fault status registers.
const char* fault_name(std::uint32_t exception, std::uint32_t cfsr, std::uint32_t hfsr) noexcept {
  struct Bit {
    std::uint32_t mask;
    const char* name;
  };
  static constexpr Bit kCauses[] = {
      {1U << 16, "undefined instruction"},
      {1U << 17, "invalid state (an ARM-state branch?)"},
      {1U << 18, "invalid exception return"},
      {1U << 19, "no coprocessor"},
      {1U << 24, "unaligned access"},
      {1U << 25, "division by zero"},
      {1U << 4, "stack overflow or MPU fault while stacking"},
      {1U << 3, "MPU fault while unstacking"},
      {1U << 1, "MPU data access violation"},
      {1U << 0, "MPU instruction access violation"},
      {1U << 12, "bus fault while stacking"},
      {1U << 11, "bus fault while unstacking"},
      {1U << 9, "precise bus fault"},
      {1U << 10, "imprecise bus fault"},
      {1U << 8, "instruction bus fault"},
  };
  switch (exception) {
    case 2:
      return "unexpected NMI";
    case 3:
    case 4:
    case 5:
    case 6:
      for (const Bit& b : kCauses) {
        if ((cfsr & b.mask) != 0) return b.name;
      }
      if ((hfsr & (1U << 1)) != 0) return "bus fault reading the vector table";
      return exception == 3 ? "hard fault" : "fault without a cause";
    case 11:
      return "unexpected SVC";
    case 12:
      return "unexpected debug monitor exception";
    case 14:
      return "unexpected PendSV";
    case 15:
      return "unexpected SysTick";
    default:
      return "unknown exception";
  }
}

}  // namespace

// Called by start.S.
extern "C" [[noreturn]] void amp_board_start() noexcept {
  amp::firmware::firmware_main();
}

// Every external interrupt's vector: the interrupt's number is IPSR's exception number less 16.
extern "C" void amp_board_irq() noexcept {
  std::uint32_t ipsr;
  __asm__ __volatile__("mrs %0, ipsr" : "=r"(ipsr));
  amp::metal::baremetal::irq_dispatch((ipsr & 0x1FF) - 16);
}

// `frame`: r0-r3, r12, lr, pc, xPSR as the exception stacked them (unless the stacking itself faulted).
extern "C" [[noreturn]] void amp_board_fault(const std::uint32_t* frame, std::uint32_t ipsr,
                                             std::uint32_t exc_return) noexcept {
  const std::uint32_t exception = ipsr & 0x1FF;
  const std::uint32_t cfsr = read32(amp::firmware::board::kScbCfsr);
  const std::uint32_t hfsr = read32(amp::firmware::board::kScbHfsr);
  std::uint32_t address = 0;
  if ((cfsr & kCfsrMmarValid) != 0) {
    address = read32(amp::firmware::board::kScbMmfar);
  } else if ((cfsr & kCfsrBfarValid) != 0) {
    address = read32(amp::firmware::board::kScbBfar);
  }
  const bool framed = (cfsr & kCfsrStackingFaults) == 0;
  const std::uint32_t pc = framed ? frame[6] : 0;
  const std::uint32_t xpsr = framed ? frame[7] : 0;
  char line[200];
  const std::size_t n =
      AMP_FORMAT_LINE(line,
                         "fault: %s at pc 0x%08lx (exception %lu in %s mode, xpsr 0x%08lx, "
                         "cfsr 0x%08lx, hfsr 0x%08lx, address 0x%08lx)",
                         fault_name(exception, cfsr, hfsr), static_cast<unsigned long>(pc),
                         static_cast<unsigned long>(exception), (exc_return & 4U) != 0 ? "thread" : "handler",
                         static_cast<unsigned long>(xpsr), static_cast<unsigned long>(cfsr),
                         static_cast<unsigned long>(hfsr), static_cast<unsigned long>(address));
  amp::firmware::firmware_fault(std::string_view(line, n < sizeof line ? n : sizeof line - 1));
}
