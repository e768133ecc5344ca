! mpi-pingpong.f90 - the Fortran counterpart of mpi-pingpong.c for tests/system/test-runtime-loader.sh
! (mpif.h bindings): N iterations (first argument, default 100) of a ping-pong between ranks 0 and 1 and
! an allreduce, a barrier every 10; with "multiple" as second argument it starts with mpi_init_thread
! asking for MPI_THREAD_MULTIPLE. Rank 0 prints each rank's own counts and the result on stdout.
program pingpong
  implicit none
  include 'mpif.h'
  integer :: ierr, rank, nranks, i, iters, r, provided
  character(len=16) :: initname
  integer :: counts(6), allcounts(6, 64)
  double precision :: buf(100), x, total, s
  character(len=32) :: arg
  integer :: status(MPI_STATUS_SIZE)

  iters = 100
  if (command_argument_count() >= 1) then
    call get_command_argument(1, arg)
    read (arg, *) iters
  end if
  counts = 0
  total = 0
  initname = 'MPI_Init'
  arg = ''
  if (command_argument_count() >= 2) call get_command_argument(2, arg)
  counts(1) = counts(1) + 1
  if (arg == 'multiple') then
    initname = 'MPI_Init_thread'
    call mpi_init_thread(MPI_THREAD_MULTIPLE, provided, ierr)
  else
    call mpi_init(ierr)
  end if
  call mpi_comm_rank(MPI_COMM_WORLD, rank, ierr)
  call mpi_comm_size(MPI_COMM_WORLD, nranks, ierr)
  do i = 1, iters
    buf = rank + i
    if (rank == 0) then
      counts(2) = counts(2) + 1
      call mpi_send(buf, 100, MPI_DOUBLE_PRECISION, 1, 1, MPI_COMM_WORLD, ierr)
      counts(3) = counts(3) + 1
      call mpi_recv(buf, 100, MPI_DOUBLE_PRECISION, 1, 2, MPI_COMM_WORLD, status, ierr)
    else if (rank == 1) then
      counts(3) = counts(3) + 1
      call mpi_recv(buf, 100, MPI_DOUBLE_PRECISION, 0, 1, MPI_COMM_WORLD, status, ierr)
      counts(2) = counts(2) + 1
      call mpi_send(buf, 100, MPI_DOUBLE_PRECISION, 0, 2, MPI_COMM_WORLD, ierr)
    end if
    x = buf(1)
    counts(4) = counts(4) + 1
    call mpi_allreduce(x, s, 1, MPI_DOUBLE_PRECISION, MPI_SUM, MPI_COMM_WORLD, ierr)
    total = total + s
    if (mod(i, 10) == 0) then
      counts(5) = counts(5) + 1
      call mpi_barrier(MPI_COMM_WORLD, ierr)
    end if
  end do
  counts(6) = counts(6) + 1
  call mpi_gather(counts, 6, MPI_INTEGER, allcounts, 6, MPI_INTEGER, 0, MPI_COMM_WORLD, ierr)
  if (rank == 0) then
    do r = 1, nranks
      write (*, '(A,I0,A,A,A,I0,A,I0,A,I0,A,I0,A,I0,A,I0)') 'counts rank ', r - 1, ': ', trim(initname), ' ', &
        allcounts(1, r), &
        ' MPI_Send ', allcounts(2, r), ' MPI_Recv ', allcounts(3, r), ' MPI_Allreduce ', allcounts(4, r), &
        ' MPI_Barrier ', allcounts(5, r), ' MPI_Gather ', allcounts(6, r)
    end do
    write (*, '(A,F0.1)') 'result: ', total
  end if
  call mpi_finalize(ierr)
end program pingpong
