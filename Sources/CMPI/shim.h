// Open MPI's predefined handles (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, …) are macros over the addresses of library
// symbols, which Swift cannot import; these inline functions return them. Only what cofi's data-parallel training
// uses (target Cluster, built with the MPI trait).
#ifndef COFI_CMPI_SHIM_H
#define COFI_CMPI_SHIM_H
#include <mpi.h>

static inline MPI_Comm cofi_mpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Datatype cofi_mpi_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype cofi_mpi_double(void) { return MPI_DOUBLE; }
static inline MPI_Datatype cofi_mpi_byte(void) { return MPI_BYTE; }
static inline MPI_Op cofi_mpi_sum(void) { return MPI_SUM; }
static inline MPI_Request cofi_mpi_request_null(void) { return MPI_REQUEST_NULL; }
static inline void *cofi_mpi_in_place(void) { return MPI_IN_PLACE; }
static inline MPI_Status *cofi_mpi_status_ignore(void) { return MPI_STATUS_IGNORE; }
static inline int cofi_mpi_thread_funneled(void) { return MPI_THREAD_FUNNELED; }
static inline int cofi_mpi_max_processor_name(void) { return MPI_MAX_PROCESSOR_NAME; }

#endif
