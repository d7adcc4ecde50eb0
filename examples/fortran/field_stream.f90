!> field_stream: a small MPI simulation that streams its field into mofka-py every time step.
!>
!> Each client rank runs an explicit 2-D heat diffusion on an nx x nx grid (zero boundaries,
!> an initial condition that depends on the rank) and, every step, pushes the field (real(8),
!> zero copy) with JSON metadata {"step", "rank", "nx", "ny", "steps", "checksum"} (checksum:
!> the sum of the values) into the topic "field" of an MPI fabric. Rank 0 hosts the fabric.
!>
!>   field_stream [steps [n [storage]]]      (defaults: 10 64 memory://)
!>
!> Run with a Python consumer as rank 0 (one MPI job, two programs; see README.md):
!>   mpiexec -n 1 python read_field.py --steps 10 --n 64 : -n 2 ./field_stream 10 64
!> or alone (rank 0 then hosts the fabric and streams too), e.g. into files read afterwards:
!>   mpiexec -n 2 ./field_stream 10 64 file:///tmp/run1
!>
!> Every rank of the job passes the same fabric options: servers [0], colocated, the storage.
program field_stream
  use, intrinsic :: iso_c_binding
  use mofka_py
  implicit none

  character(len=*), parameter :: topic_name = "field"
  real(c_double), parameter :: alpha = 0.1_c_double  ! diffusion number (stable below 0.25)
  integer :: steps, n, step, i, j
  character(len=256) :: arg, storage
  integer(c_int32_t) :: comm, rank, nranks
  integer(c_int) :: st, is_client
  type(c_ptr) :: mpi_fab, fab, topic, prod
  ! Two fields (double buffering): the one pushed is read by the producer until the flush,
  ! while the next step is computed into the other.
  real(c_double), allocatable, target :: u(:, :), v(:, :)
  character(len=:), allocatable :: meta
  character(len=32) :: checksum_text

  steps = 10
  n = 64
  storage = "memory://"
  if (command_argument_count() >= 1) then
    call get_command_argument(1, arg)
    read (arg, *) steps
  end if
  if (command_argument_count() >= 2) then
    call get_command_argument(2, arg)
    read (arg, *) n
  end if
  if (command_argument_count() >= 3) call get_command_argument(3, storage)

  ! This program has no MPI bindings of its own (the mpich wheel ships no Fortran MPI), so the
  ! C API initialises MPI (with MPI_THREAD_MULTIPLE) and gives MPI_COMM_WORLD's Fortran handle.
  ! A code with `use mpi` (or `use mpi_f08`) calls MPI_Init_thread(MPI_THREAD_MULTIPLE, ...)
  ! itself and passes its own communicator instead: comm = MPI_COMM_WORLD (mpi_f08: its %MPI_VAL).
  call check(mofka_py_mpi_init(comm, rank, nranks), "mofka_py_mpi_init")

  ! Collective over comm: rank 0 hosts the partitions (and is a client too: colocated).
  call check(mofka_py_mpi_fabric_create(comm, mpi_fab, servers=[0_c_int32_t], storage=trim(storage), &
                                        colocated=.true.), "mofka_py_mpi_fabric_create")
  call check(mofka_py_mpi_fabric_is_client(mpi_fab, is_client), "mofka_py_mpi_fabric_is_client")
  if (is_client == 0) error stop "field_stream: this rank is no client (colocated was not given?)"
  call check(mofka_py_mpi_fabric_fabric(mpi_fab, fab), "mofka_py_mpi_fabric_fabric")

  ! No barrier is available here, so every rank creates the topic and ignores that another did
  ! it first (MOFKA_PY_ERR_TOPIC_EXISTS); the consumer does the same.
  st = mofka_py_topic_create(fab, topic_name)
  if (st /= MOFKA_PY_OK .and. st /= MOFKA_PY_ERR_TOPIC_EXISTS) call check(st, "mofka_py_topic_create")
  call check(mofka_py_topic_open(fab, topic_name, topic), "mofka_py_topic_open")
  call check(mofka_py_producer_create_default(topic, prod), "mofka_py_producer_create")

  allocate(u(n, n), v(n, n))
  call initial_field(u, rank)
  v = 0.0_c_double  ! its boundary stays zero

  do step = 0, steps - 1
    write (checksum_text, "(es25.17e3)") sum(u)
    meta = '{"step": ' // itoa(step) // ', "rank": ' // itoa(int(rank)) // ', "nx": ' // itoa(n) // &
           ', "ny": ' // itoa(n) // ', "steps": ' // itoa(steps) // ', "checksum": ' // &
           trim(adjustl(checksum_text)) // '}'
    ! Zero copy: u is read by the producer until the flush below; it is not written before.
    call check(mofka_py_push(prod, meta, u), "mofka_py_push")
    ! The next field goes into v while u is being sent.
    do j = 2, n - 1
      do i = 2, n - 1
        v(i, j) = u(i, j) + alpha * ((u(i - 1, j) + u(i + 1, j) - 2.0_c_double * u(i, j)) + &
                                     (u(i, j - 1) + u(i, j + 1) - 2.0_c_double * u(i, j)))
      end do
    end do
    call check(mofka_py_producer_flush(prod, -1_c_int64_t), "mofka_py_producer_flush")  ! u is free again
    call swap(u, v)
  end do

  call check(mofka_py_producer_release(prod), "mofka_py_producer_release")
  call check(mofka_py_topic_release(topic), "mofka_py_topic_release")
  call check(mofka_py_fabric_release(fab), "mofka_py_fabric_release")
  ! Collective: this rank leaves; the server rank serves until every client left.
  call check(mofka_py_mpi_fabric_release(mpi_fab), "mofka_py_mpi_fabric_release")
  print "(a, i0, a, i0, a, i0, a)", "field_stream: rank ", rank, " pushed ", steps, " fields of ", n * n, " values"
  call check(mofka_py_mpi_finalize(), "mofka_py_mpi_finalize")

contains

  !> Stop with the library's message when a call failed.
  subroutine check(status, what)
    integer(c_int), intent(in) :: status
    character(len=*), intent(in) :: what
    if (status /= MOFKA_PY_OK) then
      write (*, "(a, a, a, a, a, a)") "field_stream: ", what, " failed: ", mofka_py_status_name(status), ": ", &
        mofka_py_error_message()
      error stop 1
    end if
  end subroutine check

  !> The rank's initial condition: (rank + 1) x*(1-x) y*(1-y) with x = (i-1)/(n-1), y = (j-1)/(n-1)
  !> (zero on the boundary; read_field.py computes the same values).
  subroutine initial_field(f, r)
    real(c_double), intent(out) :: f(:, :)
    integer(c_int32_t), intent(in) :: r
    real(c_double) :: x, y
    integer :: i, j, m
    m = size(f, 1)
    do j = 1, size(f, 2)
      do i = 1, m
        x = real(i - 1, c_double) / real(m - 1, c_double)
        y = real(j - 1, c_double) / real(size(f, 2) - 1, c_double)
        f(i, j) = real(r + 1, c_double) * (x * (1.0_c_double - x)) * (y * (1.0_c_double - y))
      end do
    end do
  end subroutine initial_field

  !> Exchange two allocated arrays without copying them.
  subroutine swap(a, b)
    real(c_double), allocatable, intent(inout) :: a(:, :), b(:, :)
    real(c_double), allocatable :: t(:, :)
    call move_alloc(a, t)
    call move_alloc(b, a)
    call move_alloc(t, b)
  end subroutine swap

  !> An integer as text without blanks.
  function itoa(k) result(s)
    integer, intent(in) :: k
    character(len=:), allocatable :: s
    character(len=16) :: buf
    write (buf, "(i0)") k
    s = trim(buf)
  end function itoa

end program field_stream
