// SPDX-License-Identifier: BSD-3-Clause
// QEMU's `virt` board with a Cortex-A15 (`-M virt,secure=on -cpu cortex-a15`), in AArch32 Secure SVC mode
// with the MMU and caches off (so device address == physical address):
//  - GICv2: distributor 0x08000000, CPU interface 0x08010000. The firmware is Secure, so every interrupt
//    stays in Group 0, signalled as IRQ (GICC_CTLR.FIQEn = 0).
//  - Console: PL011 UART0 at 0x09000000 (transmit only).
//  - Doorbell: PL011 UART1 at 0x09040000 (present with secure=on), interrupt SPI 8 = id 40. Each byte the
//    host writes to its chardev raises the RX interrupt; the handler drains the FIFO and notes the kick.
//    Each byte the firmware writes is one notification for the host.
//  - Time: the generic timer's physical count (CNTPCT at CNTFRQ); no timer interrupt, no periodic tick.
//  - Idle: WFI. Exit: semihosting SYS_EXIT (QEMU exits with 0 for a normal end, 1 otherwise).
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

constexpr std::uintptr_t kGicd = 0x0800'0000;
constexpr std::uintptr_t kGicc = 0x0801'0000;
constexpr std::uintptr_t kGicdCtlr = kGicd + 0x000;
constexpr std::uintptr_t kGicdIsenabler = kGicd + 0x100;
constexpr std::uintptr_t kGicdIcenabler = kGicd + 0x180;
constexpr std::uintptr_t kGicdIcpendr = kGicd + 0x280;
constexpr std::uintptr_t kGicdIpriorityr = kGicd + 0x400;
constexpr std::uintptr_t kGicdItargetsr = kGicd + 0x800;
constexpr std::uintptr_t kGiccCtlr = kGicc + 0x000;
constexpr std::uintptr_t kGiccPmr = kGicc + 0x004;
constexpr std::uintptr_t kGiccBpr = kGicc + 0x008;
constexpr std::uintptr_t kGiccIar = kGicc + 0x00C;
constexpr std::uintptr_t kGiccEoir = kGicc + 0x010;
constexpr std::uint32_t kSpuriousId = 1020;  // ids 1020..1023 are not interrupts

constexpr std::uintptr_t kUart0 = 0x0900'0000;
constexpr std::uintptr_t kUart1 = 0x0904'0000;
constexpr unsigned kDoorbellIrq = 32 + 8;  // SPI 8
// PL011 registers and bits.
constexpr std::uintptr_t kUartDr = 0x00;
constexpr std::uintptr_t kUartFr = 0x18;
constexpr std::uintptr_t kUartLcrH = 0x2C;
constexpr std::uintptr_t kUartCr = 0x30;
constexpr std::uintptr_t kUartImsc = 0x38;
constexpr std::uintptr_t kUartIcr = 0x44;
constexpr std::uint32_t kFrRxEmpty = 1U << 4;
constexpr std::uint32_t kFrTxFull = 1U << 5;
constexpr std::uint32_t kLcrFifo8N1 = (1U << 4) | (3U << 5);            // FEN, WLEN 8 bits
constexpr std::uint32_t kCrEnable = (1U << 0) | (1U << 8) | (1U << 9);  // UARTEN, TXE, RXE
constexpr std::uint32_t kIntRx = 1U << 4;
constexpr std::uint32_t kIntRxTimeout = 1U << 6;
constexpr std::uint32_t kIntAll = 0x7FF;

// --- CPU state. ---

inline std::uint32_t cpsr() noexcept {
  std::uint32_t v;
  __asm__ __volatile__("mrs %0, cpsr" : "=r"(v));
  return v;
}
constexpr std::uint32_t kCpsrIrqMasked = 1U << 7;

std::uintptr_t irq_save() noexcept {
  const std::uint32_t state = cpsr();
  __asm__ __volatile__("cpsid i" ::: "memory");
  return state & kCpsrIrqMasked;
}

void irq_restore(std::uintptr_t state) noexcept {
  if ((state & kCpsrIrqMasked) == 0) __asm__ __volatile__("cpsie i" ::: "memory");
}

void wait_for_interrupt() noexcept {
  __asm__ __volatile__("dsb\n\twfi" ::: "memory");
}

// --- GIC. ---

void gic_enable(unsigned id) noexcept {
  write32(kGicdIsenabler + 4 * (id / 32), 1U << (id % 32));
}

void gic_disable(unsigned id) noexcept {
  write32(kGicdIcenabler + 4 * (id / 32), 1U << (id % 32));
}

void gic_init() noexcept {
  write32(kGicdCtlr, 0);
  // Priority 0xA0 and CPU 0 for the doorbell; the rest stays disabled (reset values).
  write8(kGicdIpriorityr + kDoorbellIrq, 0xA0);
  write8(kGicdItargetsr + kDoorbellIrq, 0x01);
  write32(kGicdIcpendr + 4 * (kDoorbellIrq / 32), 1U << (kDoorbellIrq % 32));
  write32(kGicdCtlr, 1);  // Group 0 forwarding
  write32(kGiccPmr, 0xF0);
  write32(kGiccBpr, 0);
  write32(kGiccCtlr, 1);  // Group 0 signalled, as IRQ
}

// --- Time. ---

std::uint32_t g_counter_hz = 0;

std::uint64_t counter() noexcept {
  std::uint64_t v;
  __asm__ __volatile__("isb\n\tmrrc p15, 0, %Q0, %R0, c14" : "=r"(v));
  return v;
}

void time_init() noexcept {
  std::uint32_t hz;
  __asm__ __volatile__("mrc p15, 0, %0, c14, c0, 0" : "=r"(hz));
  if (hz == 0) {
    // Nobody set CNTFRQ (firmware's job on real boards): QEMU's counter runs at 62.5 MHz.
    hz = 62'500'000;
    __asm__ __volatile__("mcr p15, 0, %0, c14, c0, 0" ::"r"(hz));
  }
  g_counter_hz = hz;
}

// --- Doorbell. ---

DoorbellMode g_mode = DoorbellMode::kInterrupt;
std::atomic<bool> g_kicked{false};

void uart_drain(std::uintptr_t base) noexcept {
  while ((read32(base + kUartFr) & kFrRxEmpty) == 0) (void)read32(base + kUartDr);
}

void uart_put(std::uintptr_t base, std::uint8_t byte) noexcept {
  while ((read32(base + kUartFr) & kFrTxFull) != 0) {
  }
  write32(base + kUartDr, byte);
}

void uart_init(std::uintptr_t base, bool rx_interrupt) noexcept {
  write32(base + kUartCr, 0);
  write32(base + kUartImsc, 0);
  write32(base + kUartIcr, kIntAll);
  write32(base + kUartLcrH, kLcrFifo8N1);
  write32(base + kUartCr, kCrEnable);
  if (rx_interrupt) write32(base + kUartImsc, kIntRx | kIntRxTimeout);
}

void on_doorbell(unsigned) noexcept {
  // Clear, then drain: QEMU's PL011 raises RX only when its FIFO goes from empty to one byte, so a clear
  // after the drain could erase the interrupt of a byte that arrived in between, and with that byte left in
  // the FIFO no later byte would raise one again.
  write32(kUart1 + kUartIcr, kIntRx | kIntRxTimeout);
  uart_drain(kUart1);
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
  __asm__ __volatile__("cpsid aif" ::: "memory");
  for (;;) wait_for_interrupt();
}

}  // namespace

void init(DoorbellMode mode, metal::baremetal::BoardHooks& hooks) noexcept {
  g_mode = mode;
  time_init();
  gic_init();
  uart_init(kUart0, false);
  hooks.irq_save = irq_save;
  hooks.irq_restore = irq_restore;
  hooks.now_ns = now_ns;
  hooks.irq_enable = gic_enable;
  hooks.irq_disable = gic_disable;
  // Poll mode has no interrupt to wake a WFI: waiting spins (the hook left null).
  hooks.wait_for_event = mode == DoorbellMode::kInterrupt ? wait_for_interrupt : nullptr;
  // The hooks must be in place before the interrupt table is used (irq_enable calls them).
  metal::baremetal::set_board_hooks(hooks);
  uart_init(kUart1, mode == DoorbellMode::kInterrupt);
  if (mode == DoorbellMode::kInterrupt) {
    (void)metal::baremetal::irq_register(kDoorbellIrq, g_doorbell_irq);
    (void)metal::baremetal::irq_enable(kDoorbellIrq);
    // Bytes that came before (the host may kick before the guest runs) sit in the FIFO with their interrupt
    // cleared by uart_init: drain them, so that the next byte raises one, and count them as a kick.
    uart_drain(kUart1);
    g_kicked.store(true, std::memory_order_release);
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
  // interrupt even when it is masked, and the handler runs once the section ends.
  metal::baremetal::CriticalSection section;
  if (!g_kicked.load(std::memory_order_acquire)) wait_for_interrupt();
}

std::uint64_t now_ns() noexcept {
  const std::uint64_t c = counter();
  const std::uint64_t hz = g_counter_hz != 0 ? g_counter_hz : 62'500'000;
  return c / hz * 1'000'000'000 + c % hz * 1'000'000'000 / hz;
}

void console_write(std::string_view text) noexcept {
  for (char c : text) uart_put(kUart0, static_cast<std::uint8_t>(c));
}

[[noreturn]] void exit(int status) noexcept {
  // A second exit (semihosting is off, so the SVC below was taken as a fault): stop here.
  if (g_exiting.exchange(true)) halt();
  // SYS_EXIT (0x18) with an ADP stop reason: ApplicationExit (QEMU exits 0) or RunTimeErrorUnknown (1).
  register std::uint32_t op __asm__("r0") = 0x18;
  register std::uint32_t reason __asm__("r1") = status == 0 ? 0x20026 : 0x20023;
#if defined(__thumb__)
  __asm__ __volatile__("svc 0xab" : "+r"(op) : "r"(reason) : "memory");  // semihosting's Thumb SVC
#else
  __asm__ __volatile__("svc 0x123456" : "+r"(op) : "r"(reason) : "memory");  // its ARM SVC
#endif
  halt();
}

}  // namespace amp::firmware::board

namespace {

using amp::firmware::board::read32;
using amp::firmware::board::write32;

const char* fault_name(std::uint32_t what) noexcept {
  switch (what) {
    case 1:
      return "undefined instruction";
    case 2:
      return "unexpected SVC";
    case 3:
      return "prefetch abort";
    case 4:
      return "data abort";
    case 5:
      return "hypervisor trap";
    case 6:
      return "unexpected FIQ";
    default:
      return "unknown exception";
  }
}

}  // namespace

// Called by start.S.
extern "C" [[noreturn]] void amp_board_start() noexcept {
  amp::firmware::firmware_main();
}

extern "C" void amp_board_irq() noexcept {
  const std::uint32_t iar = read32(amp::firmware::board::kGiccIar);
  const std::uint32_t id = iar & 0x3FF;
  if (id >= amp::firmware::board::kSpuriousId) return;
  amp::metal::baremetal::irq_dispatch(id);
  write32(amp::firmware::board::kGiccEoir, iar);
}

extern "C" [[noreturn]] void amp_board_fault(std::uint32_t what, std::uint32_t lr,
                                             std::uint32_t spsr) noexcept {
  const bool thumb = (spsr & (1U << 5)) != 0;
  std::uint32_t pc = lr;
  std::uint32_t status = 0;
  std::uint32_t address = 0;
  switch (what) {
    case 1:  // undefined instruction: lr is the next instruction
    case 2:
      pc = lr - (thumb ? 2 : 4);
      break;
    case 3:  // prefetch abort: IFSR, IFAR
      pc = lr - 4;
      __asm__ __volatile__("mrc p15, 0, %0, c5, c0, 1" : "=r"(status));
      __asm__ __volatile__("mrc p15, 0, %0, c6, c0, 2" : "=r"(address));
      break;
    case 4:  // data abort: DFSR, DFAR
      pc = lr - 8;
      __asm__ __volatile__("mrc p15, 0, %0, c5, c0, 0" : "=r"(status));
      __asm__ __volatile__("mrc p15, 0, %0, c6, c0, 0" : "=r"(address));
      break;
    default:
      break;
  }
  char line[160];
  const std::size_t n =
      AMP_FORMAT_LINE(line, "fault: %s at pc 0x%08lx (spsr 0x%08lx, fsr 0x%lx, far 0x%08lx)",
                         fault_name(what), static_cast<unsigned long>(pc), static_cast<unsigned long>(spsr),
                         static_cast<unsigned long>(status), static_cast<unsigned long>(address));
  amp::firmware::firmware_fault(std::string_view(line, n < sizeof line ? n : sizeof line - 1));
}
