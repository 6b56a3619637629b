// Resource tables: see include/amp/rproc/resource_table.hpp.
