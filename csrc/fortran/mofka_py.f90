!> @file mofka_py.f90
!> @brief The Fortran 2008 module `mofka_py`: the C ABI of mofka-py (mofka_py/mofka_py.h,
!>        libmofka_py_c) through iso_c_binding, plus helpers taking Fortran strings and arrays.
!>
!> Build a program with `gfortran sim.f90 $(mofka-py capi --cflags --fortran-libs)`: the include
!> directory holds mofka_py.mod, the libraries are libmofka_py_fortran and libmofka_py_c.
!>
!> Conventions (the same as the C API):
!> - every function returns a status of kind c_int: MOFKA_PY_OK (0) or a MOFKA_PY_ERR_* code
!>   (mofka_py_error_message() then gives this thread's message, mofka_py_status_name() the
!>   Python class of the error, e.g. "TopicNotFound");
!> - objects are opaque handles of type(c_ptr); a released or never created handle gives
!>   MOFKA_PY_ERR_INVALID_ARGUMENT, never a crash; release every handle you create;
!> - option structures are set up by their *_init function (it fills struct_size, which the
!>   library checks); zero fields take the defaults;
!> - unsigned C integers (uint32_t, uint64_t) are signed Fortran integers of the same size.
!>
!> The calls taking a name (mofka_py_connect, mofka_py_connect_ex, mofka_py_topic_create,
!> mofka_py_topic_open, mofka_py_topic_exists, mofka_py_fabric_delete_topic) are generic: pass a
!> Fortran character string (the module appends the NUL) or a NUL-terminated character(kind=c_char)
!> array as C does.
!>
!> @code
!>   use mofka_py
!>   type(c_ptr) :: fab, topic, prod
!>   real(c_double), target :: field(64, 64)
!>   if (mofka_py_connect("file:///scratch/run1", fab) /= MOFKA_PY_OK) then
!>     print *, mofka_py_error_message(); stop 1
!>   end if
!>   st = mofka_py_topic_create(fab, "field")            ! MOFKA_PY_ERR_TOPIC_EXISTS if it exists
!>   st = mofka_py_topic_open(fab, "field", topic)
!>   st = mofka_py_producer_create_default(topic, prod)
!>   st = mofka_py_push(prod, '{"step": 1}', field)      ! zero copy: field stays unchanged ...
!>   st = mofka_py_producer_flush(prod, -1_c_int64_t)    ! ... until the flush returned
!>   st = mofka_py_producer_release(prod); st = mofka_py_topic_release(topic)
!>   st = mofka_py_fabric_release(fab)
!> @endcode
module mofka_py
  use, intrinsic :: iso_c_binding
  implicit none

  ! ------------------------------------------------------------------ constants

  !> Version of the C interface this module was written for (mofka_py_abi_version() gives the library's).
  integer(c_int), parameter :: MOFKA_PY_C_ABI_VERSION = 1

  !> Status codes; every error code names the Python class of the same error.
  integer(c_int), parameter :: MOFKA_PY_OK = 0
  integer(c_int), parameter :: MOFKA_PY_ERR_GENERIC = 1                !< mofka_py.Error
  integer(c_int), parameter :: MOFKA_PY_ERR_INVALID_ARGUMENT = 2       !< also: a bad handle, a NULL, a wrong struct_size
  integer(c_int), parameter :: MOFKA_PY_ERR_TOPIC_NOT_FOUND = 3
  integer(c_int), parameter :: MOFKA_PY_ERR_TOPIC_EXISTS = 4
  integer(c_int), parameter :: MOFKA_PY_ERR_TIMEOUT = 5                !< also: no event arrived in time (pull)
  integer(c_int), parameter :: MOFKA_PY_ERR_CONNECTION = 6
  integer(c_int), parameter :: MOFKA_PY_ERR_AUTH = 7
  integer(c_int), parameter :: MOFKA_PY_ERR_CORRUPTION = 8
  integer(c_int), parameter :: MOFKA_PY_ERR_CLOSED = 9
  integer(c_int), parameter :: MOFKA_PY_ERR_FABRIC_LOCKED = 10
  integer(c_int), parameter :: MOFKA_PY_ERR_NOT_A_FABRIC = 11
  integer(c_int), parameter :: MOFKA_PY_ERR_EVENT_TOO_LARGE = 12
  integer(c_int), parameter :: MOFKA_PY_ERR_BUFFER_FULL = 13
  integer(c_int), parameter :: MOFKA_PY_ERR_GROUP_ACTIVE = 14
  integer(c_int), parameter :: MOFKA_PY_ERR_OFFSET_OUT_OF_RANGE = 15
  integer(c_int), parameter :: MOFKA_PY_ERR_COMMIT_FAILED = 16
  integer(c_int), parameter :: MOFKA_PY_ERR_STORAGE = 17
  integer(c_int), parameter :: MOFKA_PY_ERR_OUT_OF_SEQUENCE = 18
  integer(c_int), parameter :: MOFKA_PY_ERR_NOT_LEADER = 19
  integer(c_int), parameter :: MOFKA_PY_ERR_NOT_ENOUGH_REPLICAS = 20
  !> Not an error: mofka_py_consumer_pull() found the topic complete and every partition read.
  integer(c_int), parameter :: MOFKA_PY_END = 100

  !> mofka_py_consumer_options_t%start
  integer(c_int), parameter :: MOFKA_PY_START_COMMITTED = 0  !< the group's committed offset, else the earliest
  integer(c_int), parameter :: MOFKA_PY_START_EARLIEST = 1
  integer(c_int), parameter :: MOFKA_PY_START_LATEST = 2
  integer(c_int), parameter :: MOFKA_PY_START_OFFSET = 3     !< start_offset

  !> mofka_py_consumer_options_t%data
  integer(c_int), parameter :: MOFKA_PY_DATA_FULL = 0
  integer(c_int), parameter :: MOFKA_PY_DATA_NONE = 1        !< metadata only: data is never read

  !> mofka_py_topic_config_t%sync
  integer(c_int), parameter :: MOFKA_PY_SYNC_DEFAULT = 0
  integer(c_int), parameter :: MOFKA_PY_SYNC_NONE = 1
  integer(c_int), parameter :: MOFKA_PY_SYNC_BATCH = 2
  integer(c_int), parameter :: MOFKA_PY_SYNC_INTERVAL = 3

  !> mofka_py_producer_push_ex() flags: fail with MOFKA_PY_ERR_BUFFER_FULL instead of waiting for memory.
  integer(c_int), parameter :: MOFKA_PY_PUSH_NONBLOCK = 1

  ! ------------------------------------------------------------------ structures

  !> How to open a fabric (mofka_py_connect_ex()). Set up with mofka_py_connect_options_init().
  type, bind(c) :: mofka_py_connect_options_t
    integer(c_size_t) :: struct_size            !< set by mofka_py_connect_options_init()
    type(c_ptr) :: token                        !< tcp://: NUL-terminated shared secret (c_null_ptr: none)
    integer(c_int64_t) :: connect_timeout_ms    !< tcp://: connecting and logging in (0: 5000)
    integer(c_int64_t) :: request_timeout_ms    !< tcp://: a request without a reply fails (0: 30000)
    integer(c_int64_t) :: reconnect_timeout_ms  !< tcp://: a lost connection is retried this long (0: 300000)
    integer(c_int32_t) :: repair                !< embedded: truncate corrupted logs at open instead of failing
    integer(c_int32_t) :: reserved
  end type mofka_py_connect_options_t

  !> Settings of a new topic (mofka_py_topic_create()). Set up with mofka_py_topic_config_init().
  type, bind(c) :: mofka_py_topic_config_t
    integer(c_size_t) :: struct_size            !< set by mofka_py_topic_config_init()
    integer(c_int32_t) :: partitions            !< uint32_t; 0: 1
    integer(c_int32_t) :: replication           !< uint32_t; copies in a cluster (0: 1)
    integer(c_int32_t) :: min_insync            !< uint32_t; 0: min(2, replication)
    integer(c_int32_t) :: sync                  !< MOFKA_PY_SYNC_*
    integer(c_int64_t) :: segment_bytes         !< uint64_t
    integer(c_int64_t) :: retention_bytes       !< uint64_t; 0: no size limit (or the fabric's default)
    integer(c_int64_t) :: retention_ms          !< 0: no age limit (or the fabric's default)
    integer(c_int64_t) :: sync_interval_ms
    integer(c_int64_t) :: max_event_bytes       !< uint64_t
  end type mofka_py_topic_config_t

  !> Producer settings (mofka_py_producer_create()). Set up with mofka_py_producer_options_init().
  type, bind(c) :: mofka_py_producer_options_t
    integer(c_size_t) :: struct_size            !< set by mofka_py_producer_options_init()
    integer(c_int64_t) :: batch_size            !< uint64_t; seal a batch at this many events (0: 16384)
    integer(c_int64_t) :: batch_bytes           !< uint64_t; ... or at this many bytes (0: 4 MiB)
    real(c_double) :: linger_ms                 !< ... or when its first event is this old (0: 1 ms; < 0: 0 ms)
    integer(c_int64_t) :: max_pending_bytes     !< uint64_t; pushed, not yet stored: push waits past this
    integer(c_int32_t) :: round_robin           !< 1: event i to partition i mod N
    integer(c_int32_t) :: reserved
  end type mofka_py_producer_options_t

  !> Consumer settings (mofka_py_consumer_create()). Set up with mofka_py_consumer_options_init().
  type, bind(c) :: mofka_py_consumer_options_t
    integer(c_size_t) :: struct_size            !< set by mofka_py_consumer_options_init()
    type(c_ptr) :: group                        !< NUL-terminated group name (c_null_ptr: none, no commits)
    type(c_ptr) :: member_id                    !< NUL-terminated stable member id (c_null_ptr: a new one)
    integer(c_int32_t) :: start                 !< MOFKA_PY_START_*
    integer(c_int32_t) :: data                  !< MOFKA_PY_DATA_*
    integer(c_int64_t) :: start_offset          !< uint64_t; for MOFKA_PY_START_OFFSET
    type(c_ptr) :: partitions                   !< const uint32_t*: without a group, read only these (NULL: all)
    integer(c_size_t) :: num_partitions
    integer(c_int64_t) :: prefetch_bytes        !< uint64_t; fetched, not yet pulled (0: 64 MiB)
    integer(c_int64_t) :: auto_commit_ms        !< commit acknowledged offsets this often (0: 1000; < 0: never)
  end type mofka_py_consumer_options_t

  !> One pulled event (set up with mofka_py_event_init()). The pointers stay valid until
  !> mofka_py_event_release().
  type, bind(c) :: mofka_py_event_t
    integer(c_size_t) :: struct_size            !< set by the caller (mofka_py_event_init())
    integer(c_int32_t) :: partition             !< uint32_t
    integer(c_int32_t) :: epoch                 !< uint32_t; which ownership of the partition delivered it
    integer(c_int64_t) :: offset                !< uint64_t
    type(c_ptr) :: metadata                     !< JSON text, not NUL-terminated
    integer(c_size_t) :: metadata_size
    type(c_ptr) :: data
    integer(c_size_t) :: data_size
    integer(c_int64_t) :: timestamp_us          !< when its batch was sealed (microseconds since the epoch)
    type(c_ptr) :: internal                     !< keeps the bytes alive; c_null_ptr once released
  end type mofka_py_event_t

  !> One piece of an event's data (mofka_py_producer_push_ex()).
  type, bind(c) :: mofka_py_buffer_t
    type(c_ptr) :: data
    integer(c_size_t) :: size
  end type mofka_py_buffer_t

  !> Settings of an MPI fabric (mofka_py_mpi_fabric_create_f()); every rank passes the same.
  !> Set up with mofka_py_mpi_options_init(); mofka_py_mpi_fabric_create() fills it from Fortran values.
  type, bind(c) :: mofka_py_mpi_options_t
    integer(c_size_t) :: struct_size            !< set by mofka_py_mpi_options_init()
    type(c_ptr) :: servers                      !< const int32_t*: ranks hosting partitions (NULL: rank 0)
    integer(c_size_t) :: num_servers
    type(c_ptr) :: storage                      !< NUL-terminated "memory://" (NULL) or "file:///dir"
    integer(c_int32_t) :: colocated             !< server ranks are clients too
    integer(c_int32_t) :: reserved
    integer(c_int64_t) :: request_timeout_ms    !< 0: 60000
  end type mofka_py_mpi_options_t

  ! ------------------------------------------------------------------ the C functions
  ! Arguments: a C handle is type(c_ptr), value; an output handle or number is intent(out);
  ! a `const T*` structure is passed by reference (use the *_init function for the defaults).

  interface
    !> The library's ABI version (MOFKA_PY_C_ABI_VERSION it was built with).
    function mofka_py_abi_version() bind(c, name="mofka_py_abi_version")
      import :: c_int
      integer(c_int) :: mofka_py_abi_version
    end function

    !> The mofka-py release as a C string (see mofka_py_version_string()) and its numbers.
    function mofka_py_version(major, minor, patch) bind(c, name="mofka_py_version")
      import :: c_int, c_ptr
      integer(c_int), intent(out) :: major, minor, patch
      type(c_ptr) :: mofka_py_version
    end function

    !> The Python class name of a status as a C string (see mofka_py_status_name()).
    function mofka_py_error_name(status) bind(c, name="mofka_py_error_name")
      import :: c_int, c_ptr
      integer(c_int), value :: status
      type(c_ptr) :: mofka_py_error_name
    end function

    !> This thread's last error message as a C string (see mofka_py_error_message()).
    function mofka_py_last_error() bind(c, name="mofka_py_last_error")
      import :: c_ptr
      type(c_ptr) :: mofka_py_last_error
    end function

    !> The status of this thread's last call (MOFKA_PY_OK after a success).
    function mofka_py_last_status() bind(c, name="mofka_py_last_status")
      import :: c_int
      integer(c_int) :: mofka_py_last_status
    end function

    !> Fill @p options with the defaults (and struct_size).
    function mofka_py_connect_options_init(options) bind(c, name="mofka_py_connect_options_init")
      import :: c_int, mofka_py_connect_options_t
      type(mofka_py_connect_options_t), intent(out) :: options
      integer(c_int) :: mofka_py_connect_options_init
    end function

    !> The fabric's topic names, each followed by a newline, NUL-terminated, into @p buffer of
    !> @p size bytes; @p needed gets the bytes required (see mofka_py_fabric_topic_names()).
    function mofka_py_fabric_topics(fabric, buffer, size, needed) bind(c, name="mofka_py_fabric_topics")
      import :: c_int, c_ptr, c_char, c_size_t
      type(c_ptr), value :: fabric
      character(kind=c_char), intent(out) :: buffer(*)
      integer(c_size_t), value :: size
      integer(c_size_t), intent(out) :: needed
      integer(c_int) :: mofka_py_fabric_topics
    end function

    !> Close the fabric (embedded: its broker and files).
    function mofka_py_fabric_close(fabric) bind(c, name="mofka_py_fabric_close")
      import :: c_int, c_ptr
      type(c_ptr), value :: fabric
      integer(c_int) :: mofka_py_fabric_close
    end function

    !> Close (if not closed) and free the handle.
    function mofka_py_fabric_release(fabric) bind(c, name="mofka_py_fabric_release")
      import :: c_int, c_ptr
      type(c_ptr), value :: fabric
      integer(c_int) :: mofka_py_fabric_release
    end function

    !> Fill @p config with the defaults (and struct_size).
    function mofka_py_topic_config_init(config) bind(c, name="mofka_py_topic_config_init")
      import :: c_int, mofka_py_topic_config_t
      type(mofka_py_topic_config_t), intent(out) :: config
      integer(c_int) :: mofka_py_topic_config_init
    end function

    !> The topic's number of partitions.
    function mofka_py_topic_partitions(topic, partitions) bind(c, name="mofka_py_topic_partitions")
      import :: c_int, c_ptr, c_int32_t
      type(c_ptr), value :: topic
      integer(c_int32_t), intent(out) :: partitions
      integer(c_int) :: mofka_py_topic_partitions
    end function

    !> The end offset (next offset to be written) of one partition.
    function mofka_py_topic_end_offset(topic, partition, offset) bind(c, name="mofka_py_topic_end_offset")
      import :: c_int, c_ptr, c_int32_t, c_int64_t
      type(c_ptr), value :: topic
      integer(c_int32_t), value :: partition
      integer(c_int64_t), intent(out) :: offset
      integer(c_int) :: mofka_py_topic_end_offset
    end function

    !> Declare the topic finished: consumers stop (MOFKA_PY_END) after its last event.
    function mofka_py_topic_mark_complete(topic) bind(c, name="mofka_py_topic_mark_complete")
      import :: c_int, c_ptr
      type(c_ptr), value :: topic
      integer(c_int) :: mofka_py_topic_mark_complete
    end function

    !> Free the handle (the topic itself stays).
    function mofka_py_topic_release(topic) bind(c, name="mofka_py_topic_release")
      import :: c_int, c_ptr
      type(c_ptr), value :: topic
      integer(c_int) :: mofka_py_topic_release
    end function

    !> Fill @p options with the defaults (and struct_size).
    function mofka_py_producer_options_init(options) bind(c, name="mofka_py_producer_options_init")
      import :: c_int, mofka_py_producer_options_t
      type(mofka_py_producer_options_t), intent(out) :: options
      integer(c_int) :: mofka_py_producer_options_init
    end function

    !> A producer of @p topic (mofka_py_producer_create_default(): the default options).
    function mofka_py_producer_create(topic, options, producer) bind(c, name="mofka_py_producer_create")
      import :: c_int, c_ptr, mofka_py_producer_options_t
      type(c_ptr), value :: topic
      type(mofka_py_producer_options_t), intent(in) :: options
      type(c_ptr), intent(out) :: producer
      integer(c_int) :: mofka_py_producer_create
    end function

    !> Queue one event: @p metadata_size bytes of JSON and @p data_size bytes at @p data (may be
    !> c_null_ptr/0). @p partition: a partition or -1. @p future: c_null_ptr (errors surface at
    !> flush) or c_loc(a type(c_ptr), target variable) that receives a future to wait on and release.
    !> Data over 16 KiB is read from @p data later: keep it unchanged until the flush (see mofka_py_push()).
    function mofka_py_producer_push(producer, metadata, metadata_size, data, data_size, partition, future) &
        bind(c, name="mofka_py_producer_push")
      import :: c_int, c_ptr, c_char, c_size_t, c_int64_t
      type(c_ptr), value :: producer
      character(kind=c_char), intent(in) :: metadata(*)
      integer(c_size_t), value :: metadata_size
      type(c_ptr), value :: data
      integer(c_size_t), value :: data_size
      integer(c_int64_t), value :: partition
      type(c_ptr), value :: future
      integer(c_int) :: mofka_py_producer_push
    end function

    !> The general push: data in @p num_pieces pieces (mofka_py_buffer_t), an optional key (c_null_ptr/0),
    !> flags (MOFKA_PY_PUSH_*), and a callback (c_funloc of a bind(c) subroutine taking a type(c_ptr),
    !> value; c_null_funptr: none) run once the producer no longer reads the pieces.
    function mofka_py_producer_push_ex(producer, metadata, metadata_size, pieces, num_pieces, partition, &
                                       key, key_size, flags, release, release_context, future) &
        bind(c, name="mofka_py_producer_push_ex")
      import :: c_int, c_ptr, c_char, c_size_t, c_int64_t, c_int32_t, c_funptr, mofka_py_buffer_t
      type(c_ptr), value :: producer
      character(kind=c_char), intent(in) :: metadata(*)
      integer(c_size_t), value :: metadata_size
      type(mofka_py_buffer_t), intent(in) :: pieces(*)
      integer(c_size_t), value :: num_pieces
      integer(c_int64_t), value :: partition
      type(c_ptr), value :: key
      integer(c_size_t), value :: key_size
      integer(c_int32_t), value :: flags
      type(c_funptr), value :: release
      type(c_ptr), value :: release_context
      type(c_ptr), value :: future
      integer(c_int) :: mofka_py_producer_push_ex
    end function

    !> Send everything queued and wait until it is stored (@p timeout_ms < 0: no limit).
    function mofka_py_producer_flush(producer, timeout_ms) bind(c, name="mofka_py_producer_flush")
      import :: c_int, c_ptr, c_int64_t
      type(c_ptr), value :: producer
      integer(c_int64_t), value :: timeout_ms
      integer(c_int) :: mofka_py_producer_flush
    end function

    !> Flush and stop (@p timeout_ms < 0: no limit); later pushes give MOFKA_PY_ERR_CLOSED.
    function mofka_py_producer_close(producer, timeout_ms) bind(c, name="mofka_py_producer_close")
      import :: c_int, c_ptr, c_int64_t
      type(c_ptr), value :: producer
      integer(c_int64_t), value :: timeout_ms
      integer(c_int) :: mofka_py_producer_close
    end function

    !> Close (if not closed, waiting without limit) and free the handle.
    function mofka_py_producer_release(producer) bind(c, name="mofka_py_producer_release")
      import :: c_int, c_ptr
      type(c_ptr), value :: producer
      integer(c_int) :: mofka_py_producer_release
    end function

    !> Whether the event is stored or failed (1 or 0 into @p done); never waits.
    function mofka_py_future_test(future, done) bind(c, name="mofka_py_future_test")
      import :: c_int, c_ptr
      type(c_ptr), value :: future
      integer(c_int), intent(out) :: done
      integer(c_int) :: mofka_py_future_test
    end function

    !> Wait up to @p timeout_ms (< 0: no limit): MOFKA_PY_OK with where the event was stored, the
    !> event's error, or MOFKA_PY_ERR_TIMEOUT.
    function mofka_py_future_wait(future, timeout_ms, partition, offset) bind(c, name="mofka_py_future_wait")
      import :: c_int, c_ptr, c_int64_t, c_int32_t
      type(c_ptr), value :: future
      integer(c_int64_t), value :: timeout_ms
      integer(c_int32_t), intent(out) :: partition
      integer(c_int64_t), intent(out) :: offset
      integer(c_int) :: mofka_py_future_wait
    end function

    !> Free the future (the event is stored or not regardless).
    function mofka_py_future_release(future) bind(c, name="mofka_py_future_release")
      import :: c_int, c_ptr
      type(c_ptr), value :: future
      integer(c_int) :: mofka_py_future_release
    end function

    !> Fill @p options with the defaults (and struct_size).
    function mofka_py_consumer_options_init(options) bind(c, name="mofka_py_consumer_options_init")
      import :: c_int, mofka_py_consumer_options_t
      type(mofka_py_consumer_options_t), intent(out) :: options
      integer(c_int) :: mofka_py_consumer_options_init
    end function

    !> A consumer of @p topic (mofka_py_consumer_create_default(): all partitions, no group, from the earliest).
    function mofka_py_consumer_create(topic, options, consumer) bind(c, name="mofka_py_consumer_create")
      import :: c_int, c_ptr, mofka_py_consumer_options_t
      type(c_ptr), value :: topic
      type(mofka_py_consumer_options_t), intent(in) :: options
      type(c_ptr), intent(out) :: consumer
      integer(c_int) :: mofka_py_consumer_create
    end function

    !> The next event into @p event (set up by mofka_py_event_init()): MOFKA_PY_OK, MOFKA_PY_END
    !> (topic complete, all read) or MOFKA_PY_ERR_TIMEOUT after @p timeout_ms (< 0: no limit).
    !> Release every event it fills with mofka_py_event_release().
    function mofka_py_consumer_pull(consumer, timeout_ms, event) bind(c, name="mofka_py_consumer_pull")
      import :: c_int, c_ptr, c_int64_t, mofka_py_event_t
      type(c_ptr), value :: consumer
      integer(c_int64_t), value :: timeout_ms
      type(mofka_py_event_t), intent(inout) :: event
      integer(c_int) :: mofka_py_consumer_pull
    end function

    !> Mark @p event and everything before it in its partition processed (a group commits these).
    function mofka_py_consumer_ack(consumer, event) bind(c, name="mofka_py_consumer_ack")
      import :: c_int, c_ptr, mofka_py_event_t
      type(c_ptr), value :: consumer
      type(mofka_py_event_t), intent(in) :: event
      integer(c_int) :: mofka_py_consumer_ack
    end function

    !> Store the acknowledged positions durably now (needs a group).
    function mofka_py_consumer_commit(consumer) bind(c, name="mofka_py_consumer_commit")
      import :: c_int, c_ptr
      type(c_ptr), value :: consumer
      integer(c_int) :: mofka_py_consumer_commit
    end function

    !> Commit (in a group), leave the group and stop prefetching.
    function mofka_py_consumer_close(consumer) bind(c, name="mofka_py_consumer_close")
      import :: c_int, c_ptr
      type(c_ptr), value :: consumer
      integer(c_int) :: mofka_py_consumer_close
    end function

    !> Close (if not closed) and free the handle. Events pulled before stay valid until released.
    function mofka_py_consumer_release(consumer) bind(c, name="mofka_py_consumer_release")
      import :: c_int, c_ptr
      type(c_ptr), value :: consumer
      integer(c_int) :: mofka_py_consumer_release
    end function

    !> Let go of a pulled event's bytes; its pointers are cleared. Releasing twice is allowed.
    function mofka_py_event_release(event) bind(c, name="mofka_py_event_release")
      import :: c_int, mofka_py_event_t
      type(mofka_py_event_t), intent(inout) :: event
      integer(c_int) :: mofka_py_event_release
    end function

    !> Fill @p options with the defaults (and struct_size).
    function mofka_py_mpi_options_init(options) bind(c, name="mofka_py_mpi_options_init")
      import :: c_int, mofka_py_mpi_options_t
      type(mofka_py_mpi_options_t), intent(out) :: options
      integer(c_int) :: mofka_py_mpi_options_init
    end function

    !> Collective over the communicator @p comm (an integer Fortran communicator such as
    !> MPI_COMM_WORLD of `use mpi`, or the one mofka_py_mpi_init() gives): server ranks start
    !> serving, client ranks connect. MPI must be initialised with MPI_THREAD_MULTIPLE.
    !> mofka_py_mpi_fabric_create() takes the options as Fortran values.
    function mofka_py_mpi_fabric_create_f(comm, options, mpi_fabric) bind(c, name="mofka_py_mpi_fabric_create_f")
      import :: c_int, c_ptr, c_int32_t, mofka_py_mpi_options_t
      integer(c_int32_t), value :: comm
      type(mofka_py_mpi_options_t), intent(in) :: options
      type(c_ptr), intent(out) :: mpi_fabric
      integer(c_int) :: mofka_py_mpi_fabric_create_f
    end function

    !> Whether this rank hosts partitions (1 or 0).
    function mofka_py_mpi_fabric_is_server(mpi_fabric, is_server) bind(c, name="mofka_py_mpi_fabric_is_server")
      import :: c_int, c_ptr
      type(c_ptr), value :: mpi_fabric
      integer(c_int), intent(out) :: is_server
      integer(c_int) :: mofka_py_mpi_fabric_is_server
    end function

    !> Whether this rank may use the fabric (1 or 0).
    function mofka_py_mpi_fabric_is_client(mpi_fabric, is_client) bind(c, name="mofka_py_mpi_fabric_is_client")
      import :: c_int, c_ptr
      type(c_ptr), value :: mpi_fabric
      integer(c_int), intent(out) :: is_client
      integer(c_int) :: mofka_py_mpi_fabric_is_client
    end function

    !> The fabric of a client rank (a new handle to release; mofka_py_mpi_fabric_close() closes it).
    function mofka_py_mpi_fabric_fabric(mpi_fabric, fabric) bind(c, name="mofka_py_mpi_fabric_fabric")
      import :: c_int, c_ptr
      type(c_ptr), value :: mpi_fabric
      type(c_ptr), intent(out) :: fabric
      integer(c_int) :: mofka_py_mpi_fabric_fabric
    end function

    !> Collective: clients leave, servers serve until every client left, then stop.
    function mofka_py_mpi_fabric_close(mpi_fabric) bind(c, name="mofka_py_mpi_fabric_close")
      import :: c_int, c_ptr
      type(c_ptr), value :: mpi_fabric
      integer(c_int) :: mofka_py_mpi_fabric_close
    end function

    !> Close (if not closed; collective then) and free the handle.
    function mofka_py_mpi_fabric_release(mpi_fabric) bind(c, name="mofka_py_mpi_fabric_release")
      import :: c_int, c_ptr
      type(c_ptr), value :: mpi_fabric
      integer(c_int) :: mofka_py_mpi_fabric_release
    end function

    !> For programs without MPI bindings of their own: initialise MPI with MPI_THREAD_MULTIPLE
    !> if it is not yet, and give MPI_COMM_WORLD's Fortran handle, this rank and the size.
    function mofka_py_mpi_init(comm_world, rank, size) bind(c, name="mofka_py_mpi_init")
      import :: c_int, c_int32_t
      integer(c_int32_t), intent(out) :: comm_world, rank, size
      integer(c_int) :: mofka_py_mpi_init
    end function

    !> MPI_Finalize, if mofka_py_mpi_init() initialised MPI (otherwise nothing).
    function mofka_py_mpi_finalize() bind(c, name="mofka_py_mpi_finalize")
      import :: c_int
      integer(c_int) :: mofka_py_mpi_finalize
    end function
  end interface

  ! The calls taking a name: the C function (a NUL-terminated character(kind=c_char) array) and
  ! the Fortran-string version under one generic name.

  !> Open a fabric: "memory://", "file:///dir" or "tcp://host:port[,host:port...]".
  interface mofka_py_connect
    function mofka_py_connect_c(url, fabric) bind(c, name="mofka_py_connect")
      import :: c_int, c_ptr, c_char
      character(kind=c_char), intent(in) :: url(*)
      type(c_ptr), intent(out) :: fabric
      integer(c_int) :: mofka_py_connect_c
    end function
    module procedure mofka_py_connect_str
  end interface mofka_py_connect

  !> mofka_py_connect() with options (the Fortran-string version: options optional).
  interface mofka_py_connect_ex
    function mofka_py_connect_ex_c(url, options, fabric) bind(c, name="mofka_py_connect_ex")
      import :: c_int, c_ptr, c_char, mofka_py_connect_options_t
      character(kind=c_char), intent(in) :: url(*)
      type(mofka_py_connect_options_t), intent(in) :: options
      type(c_ptr), intent(out) :: fabric
      integer(c_int) :: mofka_py_connect_ex_c
    end function
    module procedure mofka_py_connect_ex_str
  end interface mofka_py_connect_ex

  !> Delete a topic, its events and its groups' offsets (force /= 0: even with live group members).
  interface mofka_py_fabric_delete_topic
    function mofka_py_fabric_delete_topic_c(fabric, name, force) bind(c, name="mofka_py_fabric_delete_topic")
      import :: c_int, c_ptr, c_char
      type(c_ptr), value :: fabric
      character(kind=c_char), intent(in) :: name(*)
      integer(c_int), value :: force
      integer(c_int) :: mofka_py_fabric_delete_topic_c
    end function
    module procedure mofka_py_fabric_delete_topic_str
  end interface mofka_py_fabric_delete_topic

  !> Create a topic; MOFKA_PY_ERR_TOPIC_EXISTS if it exists (the Fortran-string version: config optional).
  interface mofka_py_topic_create
    function mofka_py_topic_create_c(fabric, name, config) bind(c, name="mofka_py_topic_create")
      import :: c_int, c_ptr, c_char, mofka_py_topic_config_t
      type(c_ptr), value :: fabric
      character(kind=c_char), intent(in) :: name(*)
      type(mofka_py_topic_config_t), intent(in) :: config
      integer(c_int) :: mofka_py_topic_create_c
    end function
    module procedure mofka_py_topic_create_str
  end interface mofka_py_topic_create

  !> Open an existing topic; MOFKA_PY_ERR_TOPIC_NOT_FOUND if there is none.
  interface mofka_py_topic_open
    function mofka_py_topic_open_c(fabric, name, topic) bind(c, name="mofka_py_topic_open")
      import :: c_int, c_ptr, c_char
      type(c_ptr), value :: fabric
      character(kind=c_char), intent(in) :: name(*)
      type(c_ptr), intent(out) :: topic
      integer(c_int) :: mofka_py_topic_open_c
    end function
    module procedure mofka_py_topic_open_str
  end interface mofka_py_topic_open

  !> Whether a topic of that name exists (1 or 0 into @p exists; the Fortran-string version: a logical).
  interface mofka_py_topic_exists
    function mofka_py_topic_exists_c(fabric, name, exists) bind(c, name="mofka_py_topic_exists")
      import :: c_int, c_ptr, c_char
      type(c_ptr), value :: fabric
      character(kind=c_char), intent(in) :: name(*)
      integer(c_int), intent(out) :: exists
      integer(c_int) :: mofka_py_topic_exists_c
    end function
    module procedure mofka_py_topic_exists_str
  end interface mofka_py_topic_exists

  !> Push one event with JSON metadata given as a Fortran string and the data of a contiguous
  !> real(c_double) array of rank 1, 2 or 3 (or none), without copying it (zero copy).
  !>
  !> The producer reads data over 16 KiB from the array itself when it sends the batch, so the
  !> array must have the TARGET attribute, must not be a temporary (pass the array, not an
  !> expression or a non-contiguous section), and must stay unchanged (and allocated) until
  !> mofka_py_producer_flush() returned (or the event's future is done). Keep two arrays
  !> (double buffering) or flush before overwriting one.
  !> Optional: partition (default -1: the producer chooses), future (receives a future to
  !> mofka_py_future_wait() and mofka_py_future_release(); absent: errors surface at flush).
  interface mofka_py_push
    module procedure mofka_py_push_meta, mofka_py_push_r1, mofka_py_push_r2, mofka_py_push_r3
  end interface mofka_py_push

  private :: push_bytes

contains

  ! ------------------------------------------------------------------ strings

  !> A NUL-terminated copy of @p s for C (trailing blanks kept; trim() it first if needed).
  !> To store its address in a structure (options%group = c_loc(saved)), keep the result in a
  !> character(kind=c_char, len=:), allocatable, target variable that outlives the call.
  function mofka_py_cstring(s) result(c)
    character(len=*), intent(in) :: s
    character(kind=c_char, len=:), allocatable :: c
    c = s // c_null_char
  end function mofka_py_cstring

  !> A Fortran copy of the NUL-terminated C string at @p p ("" for c_null_ptr).
  function mofka_py_fstring(p) result(s)
    type(c_ptr), intent(in) :: p
    character(len=:), allocatable :: s
    interface
      function c_strlen(str) bind(c, name="strlen")
        import :: c_ptr, c_size_t
        type(c_ptr), value :: str
        integer(c_size_t) :: c_strlen
      end function
    end interface
    if (.not. c_associated(p)) then
      s = ""
      return
    end if
    s = mofka_py_fstring_n(p, c_strlen(p))
  end function mofka_py_fstring

  !> A Fortran copy of @p n bytes of text at @p p (e.g. an event's metadata, not NUL-terminated).
  function mofka_py_fstring_n(p, n) result(s)
    type(c_ptr), intent(in) :: p
    integer(c_size_t), intent(in) :: n
    character(len=:), allocatable :: s
    character(kind=c_char), pointer :: chars(:)
    integer :: i
    allocate(character(len=n) :: s)
    if (n == 0 .or. .not. c_associated(p)) then
      s = ""
      return
    end if
    call c_f_pointer(p, chars, [n])
    do i = 1, int(n)
      s(i:i) = chars(i)
    end do
  end function mofka_py_fstring_n

  !> The message of this thread's last failed call ("" if none failed; a later success keeps it:
  !> check the status first, or mofka_py_last_status()).
  function mofka_py_error_message() result(s)
    character(len=:), allocatable :: s
    s = mofka_py_fstring(mofka_py_last_error())
  end function mofka_py_error_message

  !> The Python class name of a status ("InvalidArgument"), "OK", "End" or "Unknown".
  function mofka_py_status_name(status) result(s)
    integer(c_int), intent(in) :: status
    character(len=:), allocatable :: s
    s = mofka_py_fstring(mofka_py_error_name(status))
  end function mofka_py_status_name

  !> The mofka-py release of the library, e.g. "0.1.0".
  function mofka_py_version_string() result(s)
    character(len=:), allocatable :: s
    integer(c_int) :: major, minor, patch
    s = mofka_py_fstring(mofka_py_version(major, minor, patch))
  end function mofka_py_version_string

  ! ------------------------------------------------------------------ option set-up

  !> Fill @p options with the defaults (struct_size set): mofka_py_connect_options_init() as a subroutine.
  subroutine mofka_py_connect_options_default(options)
    type(mofka_py_connect_options_t), intent(out) :: options
    integer(c_int) :: st
    st = mofka_py_connect_options_init(options)
  end subroutine mofka_py_connect_options_default

  !> Fill @p config with the defaults (struct_size set): mofka_py_topic_config_init() as a subroutine.
  subroutine mofka_py_topic_config_default(config)
    type(mofka_py_topic_config_t), intent(out) :: config
    integer(c_int) :: st
    st = mofka_py_topic_config_init(config)
  end subroutine mofka_py_topic_config_default

  !> Fill @p options with the defaults (struct_size set): mofka_py_producer_options_init() as a subroutine.
  subroutine mofka_py_producer_options_default(options)
    type(mofka_py_producer_options_t), intent(out) :: options
    integer(c_int) :: st
    st = mofka_py_producer_options_init(options)
  end subroutine mofka_py_producer_options_default

  !> Fill @p options with the defaults (struct_size set): mofka_py_consumer_options_init() as a subroutine.
  subroutine mofka_py_consumer_options_default(options)
    type(mofka_py_consumer_options_t), intent(out) :: options
    integer(c_int) :: st
    st = mofka_py_consumer_options_init(options)
  end subroutine mofka_py_consumer_options_default

  !> Fill @p options with the defaults (struct_size set): mofka_py_mpi_options_init() as a subroutine.
  subroutine mofka_py_mpi_options_default(options)
    type(mofka_py_mpi_options_t), intent(out) :: options
    integer(c_int) :: st
    st = mofka_py_mpi_options_init(options)
  end subroutine mofka_py_mpi_options_default

  !> Make @p event ready for mofka_py_consumer_pull(): struct_size set, every pointer null.
  !> (The C API has no init function for events: the caller sets struct_size.)
  subroutine mofka_py_event_init(event)
    type(mofka_py_event_t), intent(out) :: event
    event%struct_size = c_sizeof(event)
    event%partition = 0
    event%epoch = 0
    event%offset = 0
    event%metadata = c_null_ptr
    event%metadata_size = 0
    event%data = c_null_ptr
    event%data_size = 0
    event%timestamp_us = 0
    event%internal = c_null_ptr
  end subroutine mofka_py_event_init

  ! ------------------------------------------------------------------ fabrics and topics

  !> mofka_py_connect() with a Fortran string.
  function mofka_py_connect_str(url, fabric) result(st)
    character(len=*), intent(in) :: url
    type(c_ptr), intent(out) :: fabric
    integer(c_int) :: st
    st = mofka_py_connect_c(url // c_null_char, fabric)
  end function mofka_py_connect_str

  !> mofka_py_connect_ex() with a Fortran string; @p options absent: the defaults.
  function mofka_py_connect_ex_str(url, fabric, options) result(st)
    character(len=*), intent(in) :: url
    type(c_ptr), intent(out) :: fabric
    type(mofka_py_connect_options_t), intent(in), optional :: options
    integer(c_int) :: st
    type(mofka_py_connect_options_t) :: defaults
    if (present(options)) then
      st = mofka_py_connect_ex_c(url // c_null_char, options, fabric)
    else
      call mofka_py_connect_options_default(defaults)
      st = mofka_py_connect_ex_c(url // c_null_char, defaults, fabric)
    end if
  end function mofka_py_connect_ex_str

  !> mofka_py_fabric_delete_topic() with a Fortran string; @p force absent: .false.
  function mofka_py_fabric_delete_topic_str(fabric, name, force) result(st)
    type(c_ptr), intent(in) :: fabric
    character(len=*), intent(in) :: name
    logical, intent(in), optional :: force
    integer(c_int) :: st
    integer(c_int) :: f
    f = 0
    if (present(force)) then
      if (force) f = 1
    end if
    st = mofka_py_fabric_delete_topic_c(fabric, name // c_null_char, f)
  end function mofka_py_fabric_delete_topic_str

  !> The fabric's topic names, each followed by new_line('a') (mofka_py_fabric_topics() sized for you).
  function mofka_py_fabric_topic_names(fabric, names) result(st)
    type(c_ptr), intent(in) :: fabric
    character(len=:), allocatable, intent(out) :: names
    integer(c_int) :: st
    character(kind=c_char), allocatable :: buf(:)
    integer(c_size_t) :: needed, capacity
    integer :: i, n
    names = ""
    allocate(buf(1))
    st = mofka_py_fabric_topics(fabric, buf, 0_c_size_t, needed)
    do while (st == MOFKA_PY_ERR_INVALID_ARGUMENT .and. needed > size(buf, kind=c_size_t))
      ! Too small (topics may be created between the two calls: retry with the new size).
      capacity = needed
      deallocate(buf)
      allocate(buf(capacity))
      st = mofka_py_fabric_topics(fabric, buf, capacity, needed)
    end do
    if (st /= MOFKA_PY_OK) return
    deallocate(names)
    n = 0
    do while (n < size(buf))
      if (buf(n + 1) == c_null_char) exit
      n = n + 1
    end do
    allocate(character(len=n) :: names)
    do i = 1, n
      names(i:i) = buf(i)
    end do
  end function mofka_py_fabric_topic_names

  !> mofka_py_topic_create() with a Fortran string; @p config absent: the fabric's defaults.
  function mofka_py_topic_create_str(fabric, name, config) result(st)
    type(c_ptr), intent(in) :: fabric
    character(len=*), intent(in) :: name
    type(mofka_py_topic_config_t), intent(in), optional :: config
    integer(c_int) :: st
    type(mofka_py_topic_config_t) :: defaults
    if (present(config)) then
      st = mofka_py_topic_create_c(fabric, name // c_null_char, config)
    else
      call mofka_py_topic_config_default(defaults)
      st = mofka_py_topic_create_c(fabric, name // c_null_char, defaults)
    end if
  end function mofka_py_topic_create_str

  !> mofka_py_topic_open() with a Fortran string.
  function mofka_py_topic_open_str(fabric, name, topic) result(st)
    type(c_ptr), intent(in) :: fabric
    character(len=*), intent(in) :: name
    type(c_ptr), intent(out) :: topic
    integer(c_int) :: st
    st = mofka_py_topic_open_c(fabric, name // c_null_char, topic)
  end function mofka_py_topic_open_str

  !> mofka_py_topic_exists() with a Fortran string and a logical answer.
  function mofka_py_topic_exists_str(fabric, name, exists) result(st)
    type(c_ptr), intent(in) :: fabric
    character(len=*), intent(in) :: name
    logical, intent(out) :: exists
    integer(c_int) :: st
    integer(c_int) :: e
    e = 0
    st = mofka_py_topic_exists_c(fabric, name // c_null_char, e)
    exists = (st == MOFKA_PY_OK .and. e /= 0)
  end function mofka_py_topic_exists_str

  ! ------------------------------------------------------------------ producers and consumers

  !> A producer of @p topic with the default options.
  function mofka_py_producer_create_default(topic, producer) result(st)
    type(c_ptr), intent(in) :: topic
    type(c_ptr), intent(out) :: producer
    integer(c_int) :: st
    type(mofka_py_producer_options_t) :: options
    call mofka_py_producer_options_default(options)
    st = mofka_py_producer_create(topic, options, producer)
  end function mofka_py_producer_create_default

  !> A consumer of @p topic with the default options (all partitions, no group, from the earliest).
  function mofka_py_consumer_create_default(topic, consumer) result(st)
    type(c_ptr), intent(in) :: topic
    type(c_ptr), intent(out) :: consumer
    integer(c_int) :: st
    type(mofka_py_consumer_options_t) :: options
    call mofka_py_consumer_options_default(options)
    st = mofka_py_consumer_create(topic, options, consumer)
  end function mofka_py_consumer_create_default

  ! The pushes of the generic mofka_py_push.
  function push_bytes(producer, metadata, data, nbytes, partition, future) result(st)
    type(c_ptr), intent(in) :: producer
    character(len=*), intent(in) :: metadata
    type(c_ptr), intent(in) :: data
    integer(c_size_t), intent(in) :: nbytes
    integer(c_int64_t), intent(in), optional :: partition
    type(c_ptr), intent(out), optional :: future
    integer(c_int) :: st
    integer(c_int64_t) :: part
    type(c_ptr), target :: fut
    character(kind=c_char, len=:), allocatable :: meta
    part = -1
    if (present(partition)) part = partition
    meta = metadata // c_null_char  ! the metadata is copied at push: a temporary is fine
    fut = c_null_ptr
    if (present(future)) then
      st = mofka_py_producer_push(producer, meta, len(metadata, kind=c_size_t), data, nbytes, part, c_loc(fut))
      future = fut
    else
      st = mofka_py_producer_push(producer, meta, len(metadata, kind=c_size_t), data, nbytes, part, c_null_ptr)
    end if
  end function push_bytes

  !> mofka_py_push without data (metadata only).
  function mofka_py_push_meta(producer, metadata, partition, future) result(st)
    type(c_ptr), intent(in) :: producer
    character(len=*), intent(in) :: metadata
    integer(c_int64_t), intent(in), optional :: partition
    type(c_ptr), intent(out), optional :: future
    integer(c_int) :: st
    st = push_bytes(producer, metadata, c_null_ptr, 0_c_size_t, partition, future)
  end function mofka_py_push_meta

  !> mofka_py_push of a rank-1 array (zero copy: keep it unchanged until the flush).
  function mofka_py_push_r1(producer, metadata, data, partition, future) result(st)
    type(c_ptr), intent(in) :: producer
    character(len=*), intent(in) :: metadata
    real(c_double), intent(in), target, contiguous :: data(:)
    integer(c_int64_t), intent(in), optional :: partition
    type(c_ptr), intent(out), optional :: future
    integer(c_int) :: st
    type(c_ptr) :: p
    p = c_null_ptr
    if (size(data) > 0) p = c_loc(data)
    st = push_bytes(producer, metadata, p, size(data, kind=c_size_t) * c_sizeof(1.0_c_double), partition, future)
  end function mofka_py_push_r1

  !> mofka_py_push of a rank-2 array (zero copy: keep it unchanged until the flush).
  function mofka_py_push_r2(producer, metadata, data, partition, future) result(st)
    type(c_ptr), intent(in) :: producer
    character(len=*), intent(in) :: metadata
    real(c_double), intent(in), target, contiguous :: data(:, :)
    integer(c_int64_t), intent(in), optional :: partition
    type(c_ptr), intent(out), optional :: future
    integer(c_int) :: st
    type(c_ptr) :: p
    p = c_null_ptr
    if (size(data) > 0) p = c_loc(data)
    st = push_bytes(producer, metadata, p, size(data, kind=c_size_t) * c_sizeof(1.0_c_double), partition, future)
  end function mofka_py_push_r2

  !> mofka_py_push of a rank-3 array (zero copy: keep it unchanged until the flush).
  function mofka_py_push_r3(producer, metadata, data, partition, future) result(st)
    type(c_ptr), intent(in) :: producer
    character(len=*), intent(in) :: metadata
    real(c_double), intent(in), target, contiguous :: data(:, :, :)
    integer(c_int64_t), intent(in), optional :: partition
    type(c_ptr), intent(out), optional :: future
    integer(c_int) :: st
    type(c_ptr) :: p
    p = c_null_ptr
    if (size(data) > 0) p = c_loc(data)
    st = push_bytes(producer, metadata, p, size(data, kind=c_size_t) * c_sizeof(1.0_c_double), partition, future)
  end function mofka_py_push_r3

  !> Pull the next event: mofka_py_consumer_pull() into @p event (mofka_py_event_init() done
  !> here), its metadata copied into a Fortran string, its data as a pointer and a byte count.
  !> Returns MOFKA_PY_OK, MOFKA_PY_END (topic complete, all read) or an error such as
  !> MOFKA_PY_ERR_TIMEOUT (@p timeout_ms < 0: no limit). After MOFKA_PY_OK, view the data with
  !> c_f_pointer (e.g. `call c_f_pointer(data, field, [nx, ny])` for real(c_double), pointer ::
  !> field(:,:)); it stays valid until mofka_py_event_release(event), which you must call.
  function mofka_py_pull(consumer, timeout_ms, event, metadata, data, data_size) result(st)
    type(c_ptr), intent(in) :: consumer
    integer(c_int64_t), intent(in) :: timeout_ms
    type(mofka_py_event_t), intent(out) :: event
    character(len=:), allocatable, intent(out) :: metadata
    type(c_ptr), intent(out) :: data
    integer(c_size_t), intent(out) :: data_size
    integer(c_int) :: st
    call mofka_py_event_init(event)
    st = mofka_py_consumer_pull(consumer, timeout_ms, event)
    if (st == MOFKA_PY_OK) then
      metadata = mofka_py_fstring_n(event%metadata, event%metadata_size)
      data = event%data
      data_size = event%data_size
    else
      metadata = ""
      data = c_null_ptr
      data_size = 0
    end if
  end function mofka_py_pull

  ! ------------------------------------------------------------------ MPI

  !> mofka_py_mpi_fabric_create_f() with the options as Fortran values (collective over @p comm;
  !> every rank passes the same). @p servers: the ranks hosting partitions (absent: rank 0);
  !> @p storage: "memory://" (absent) or "file:///dir"; @p colocated: server ranks are clients
  !> too (absent: .false.); @p request_timeout_ms (absent: 60000).
  function mofka_py_mpi_fabric_create(comm, mpi_fabric, servers, storage, colocated, request_timeout_ms) result(st)
    integer(c_int32_t), intent(in) :: comm
    type(c_ptr), intent(out) :: mpi_fabric
    integer(c_int32_t), intent(in), optional :: servers(:)
    character(len=*), intent(in), optional :: storage
    logical, intent(in), optional :: colocated
    integer(c_int64_t), intent(in), optional :: request_timeout_ms
    integer(c_int) :: st
    type(mofka_py_mpi_options_t) :: options
    integer(c_int32_t), allocatable, target :: server_ranks(:)
    character(kind=c_char, len=:), allocatable, target :: storage_c
    call mofka_py_mpi_options_default(options)
    if (present(servers)) then
      if (size(servers) > 0) then
        server_ranks = servers  ! the library copies both during the call
        options%servers = c_loc(server_ranks)
        options%num_servers = size(servers, kind=c_size_t)
      end if
    end if
    if (present(storage)) then
      storage_c = storage // c_null_char
      options%storage = c_loc(storage_c)
    end if
    if (present(colocated)) then
      if (colocated) options%colocated = 1
    end if
    if (present(request_timeout_ms)) options%request_timeout_ms = request_timeout_ms
    st = mofka_py_mpi_fabric_create_f(comm, options, mpi_fabric)
  end function mofka_py_mpi_fabric_create

end module mofka_py
