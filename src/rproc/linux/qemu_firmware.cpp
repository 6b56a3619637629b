// SPDX-License-Identifier: BSD-3-Clause
#include "amp/rproc/linux/qemu_firmware.hpp"

#include <array>
#include <cstring>

#include "amp/rpmsg/wire.hpp"
#include "amp/rproc/linux/vdev_host.hpp"

namespace amp::rproc {

using metal::hex;
using metal::sys_fail;
using metal::SysResult;

QemuBoard QemuBoard::virt_a15() {
  return QemuBoard{.name = "virt-a15",
                   .binary = "qemu-system-arm",
                   .package = "qemu-system-arm",
                   .machine = "virt,secure=on",
                   .cpu = "cortex-a15",
                   .elf_machine = elf::kMachineArm,
                   .elf_class = 32,
                   .ram_base = 0x4000'0000,
                   .ram_size = std::size_t{64} << 20,
                   .reserved = std::size_t{1} << 20};
}

QemuBoard QemuBoard::mps2_an386() {
  return QemuBoard{.name = "mps2-an386",
                   .binary = "qemu-system-arm",
                   .package = "qemu-system-arm",
                   .machine = "mps2-an386",
                   .cpu = "cortex-m4",
                   .elf_machine = elf::kMachineArm,
                   .elf_class = 32,
                   .ram_base = 0x2100'0000,
                   .ram_size = std::size_t{16} << 20,
                   .reserved = 0};
}

std::optional<QemuBoard> QemuBoard::named(std::string_view name) {
  if (name == "virt-a15") return virt_a15();
  if (name == "mps2-an386") return mps2_an386();
  return std::nullopt;
}

const char* QemuBoard::known_names() noexcept {
  return "virt-a15 or mps2-an386";
}

namespace {

/// The entries the host needs, and whether the table has what it must.
struct TableFinder final : ResourceVisitor {
  explicit TableFinder(const metal::IoRegion& table) : table_(table) {}

  Status on_carveout(std::uint32_t, const Carveout& c) noexcept override {
    if (c.name.view() == kRpmsgPoolCarveout && !pool) pool = c;
    return Status::kOk;
  }
  Status on_trace(std::uint32_t index, const Trace& t) noexcept override {
    const bool preferred = t.name.view() == kAmpTraceName;
    if (!trace || (preferred && trace->name.view() != kAmpTraceName))
      trace = TraceBuffer{index, t.da, t.len, t.name};
    return Status::kOk;
  }
  Status on_vdev(std::uint32_t, const Vdev& v, metal::IoRegion) noexcept override {
    if (v.id == rpmsg::kVirtioIdRpmsg && v.num_vrings >= 2) rpmsg = true;
    return Status::kOk;
  }
  Status on_vendor(std::uint32_t, std::uint32_t type, metal::IoRegion body) noexcept override {
    if (type != kRscVendorDoorbell || doorbell_offset) return Status::kOk;
    doorbell_size = body.size();
    const auto* at = body.bytes().data();
    doorbell_offset = static_cast<std::size_t>(at - table_.bytes().data());
    return Status::kOk;
  }

  const metal::IoRegion& table_;
  std::optional<Carveout> pool;
  std::optional<TraceBuffer> trace;
  bool rpmsg = false;
  std::optional<std::size_t> doorbell_offset;
  std::size_t doorbell_size = 0;
};

std::string range(metal::DeviceAddress da, std::uint64_t len) {
  return hex(da) + ".." + hex(da + (len == 0 ? 0 : len - 1));
}

}  // namespace

SysResult<QemuFirmware> check_qemu_firmware(const QemuBoard& board, std::span<const std::byte> file,
                                            bool poll) {
  const std::string on = "the " + board.name + " board";
  auto image = ElfImage::parse(file);
  if (!image) {
    const ElfError e = image.error();
    if (e == ElfError::kNotLittleEndian) {
      return sys_fail(Status::kNotSupported,
                      "firmware: a big-endian image; " + on + " (" + board.cpu + ") runs little-endian code");
    }
    if (e == ElfError::kWrongType) {
      return sys_fail(Status::kNotSupported,
                      "firmware: not an executable (ET_EXEC) image; " + on + " runs a statically linked one");
    }
    return sys_fail(to_status(e), std::string("firmware: ") + to_string(e));
  }
  if (image->machine() != board.elf_machine) {
    return sys_fail(Status::kNotSupported,
                    std::string("firmware: built for ") + elf::machine_name(image->machine()).c_str() + "; " +
                        on + " (" + board.cpu + ") runs " + elf::machine_name(board.elf_machine).c_str());
  }

  if (image->elf_class() != board.elf_class) {
    return sys_fail(Status::kNotSupported, "firmware: a " + std::to_string(image->elf_class()) +
                                               "-bit ELF image; " + on + " runs " +
                                               std::to_string(board.elf_class) + "-bit " +
                                               elf::machine_name(board.elf_machine).c_str() + " code");
  }
  // --- Every segment inside guest RAM, above QEMU's part of it. ---
  const metal::DeviceAddress usable = board.ram_base + board.reserved;
  const std::uint64_t usable_size = board.ram_size - board.reserved;
  std::string ram_text = "guest RAM's " + range(usable, usable_size);
  if (board.reserved != 0)
    ram_text += " (" + range(board.ram_base, board.reserved) + " is QEMU's device tree)";
  const std::array<MemoryRange, 1> ranges{MemoryRange{usable, usable_size}};
  std::uint32_t bad = 0;
  if (auto fits = check_fits(*image, ranges, {.machine = board.elf_machine}, &bad); !fits) {
    if (fits.error() == ElfError::kSegmentOutsideMemory) {
      auto ph = image->program_header(bad);
      std::string where;
      if (ph) where = " (" + range(ph->segment.da, ph->segment.memsz) + ")";
      return sys_fail(Status::kOutOfRange,
                      "firmware: segment " + std::to_string(bad) + where + " is outside " + ram_text);
    }
    return sys_fail(to_status(fits.error()), std::string("firmware: ") + to_string(fits.error()));
  }
  if (image->entry() < usable || image->entry() >= usable + usable_size) {
    return sys_fail(Status::kOutOfRange,
                    "firmware: its entry point " + hex(image->entry()) + " is outside " + ram_text);
  }

  // --- The resource table: in a loaded segment, so that the firmware sees what the host writes there. ---
  auto rsc = image->resource_table();
  if (!rsc) {
    return sys_fail(to_status(rsc.error()),
                    std::string("firmware: ") + to_string(rsc.error()) +
                        " (a firmware for QEMU declares its rpmsg vdev and the vdev0buffer carveout there)");
  }
  if (rsc->data.empty()) {
    return sys_fail(
        Status::kNotFound,
        "firmware: its .resource_table section is empty (a firmware for QEMU declares its rpmsg vdev "
        "and the vdev0buffer carveout there)");
  }
  bool in_segment = false;
  for (const ElfSegment& s : image->segments()) {
    if (rsc->da >= s.da && rsc->da - s.da <= s.data.size() &&
        s.data.size() - (rsc->da - s.da) >= rsc->data.size())
      in_segment = true;
  }
  if (!in_segment) {
    return sys_fail(Status::kOutOfRange, "firmware: its .resource_table (" +
                                             range(rsc->da, rsc->data.size()) +
                                             ") is not inside a loaded segment's bytes");
  }
  if (rsc->da % 4 != 0)
    return sys_fail(Status::kMalformed,
                    "firmware: its .resource_table at " + hex(rsc->da) + " is not 4-byte aligned");

  QemuFirmware fw;
  fw.entry = image->entry();
  fw.table_da = rsc->da;
  fw.table.assign(rsc->data.begin(), rsc->data.end());
  // Parsed in an aligned copy (the file's bytes need not be).
  std::vector<std::uint64_t> aligned((fw.table.size() + 7) / 8);
  std::memcpy(aligned.data(), fw.table.data(), fw.table.size());
  const metal::IoRegion view(std::span(reinterpret_cast<std::byte*>(aligned.data()), fw.table.size()),
                             rsc->da);
  auto table = ResourceTable::parse(view);
  if (!table)
    return sys_fail(table.error().status, "firmware: bad resource table: " + describe(table.error()));
  TableFinder found(view);
  if (auto walk = table->for_each(found); !walk)
    return sys_fail(walk.error().status, "firmware: bad resource table: " + describe(walk.error()));
  if (!found.rpmsg)
    return sys_fail(Status::kNotFound, "firmware: its resource table has no rpmsg vdev with two vrings");
  if (!found.pool) {
    return sys_fail(Status::kNotFound, std::string("firmware: its resource table has no carveout named ") +
                                           kRpmsgPoolCarveout +
                                           ": the host takes it for the vrings and the rpmsg buffers");
  }
  const Carveout& pool = *found.pool;
  if (pool.da == kRscAddrAny || pool.len == 0) {
    return sys_fail(Status::kInvalidArgument, std::string("firmware: the ") + kRpmsgPoolCarveout +
                                                  " carveout needs a fixed address and a size");
  }
  if (pool.da < usable || pool.da - usable > usable_size || usable_size - (pool.da - usable) < pool.len) {
    return sys_fail(Status::kOutOfRange, std::string("firmware: the ") + kRpmsgPoolCarveout + " carveout (" +
                                             range(pool.da, pool.len) + ") is outside " + ram_text);
  }
  for (const ElfSegment& s : image->segments()) {
    if (s.memsz != 0 && s.da < pool.da + std::uint64_t{pool.len} && pool.da < s.da + s.memsz) {
      return sys_fail(Status::kInvalidArgument, std::string("firmware: the ") + kRpmsgPoolCarveout +
                                                    " carveout (" + range(pool.da, pool.len) +
                                                    ") overlaps a segment of the image (" +
                                                    range(s.da, s.memsz) + ")");
    }
  }
  fw.pool_da = pool.da;
  fw.pool_size = pool.len;
  fw.trace = found.trace;
  fw.log_dictionary = LogDictionary::of(*image);
  if (found.doorbell_offset) {
    if (found.doorbell_size < 8) {
      return sys_fail(Status::kMalformed, "firmware: its amp doorbell entry (type 128) holds " +
                                              std::to_string(found.doorbell_size) +
                                              " bytes, not {u32 mode; u32 state}");
    }
    fw.doorbell_mode_offset = found.doorbell_offset;
    fw.watchdog = found.doorbell_size >= kDoorbellBodyWithWatchdog;
  } else if (poll) {
    return sys_fail(
        Status::kNotFound,
        "firmware: its resource table has no amp doorbell entry (vendor type 128), so it cannot be told "
        "to poll");
  }
  return fw;
}

}  // namespace amp::rproc
