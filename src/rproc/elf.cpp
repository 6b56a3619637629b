// ELF loading: see include/amp/rproc/elf.hpp.
