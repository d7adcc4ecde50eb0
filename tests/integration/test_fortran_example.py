"""The Fortran module over the C API as a simulation uses it: examples/fortran (field_stream.f90 and its
Python consumer read_field.py) built with gfortran against the installed package and run under mpiexec
as its README says; and a small Fortran program going through the module's calls and error paths."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "fortran"


def _fortran_toolchain():
    """(gfortran, mofka_py.capi), or skip with the reason."""
    gfortran = shutil.which("gfortran")
    if gfortran is None:
        pytest.skip("no gfortran on PATH (apt-get install gfortran, then reinstall mofka-py to build its Fortran module)")
    import mofka_py.capi as capi

    if capi.fortran_library_path() is None:
        pytest.skip(f"this mofka-py has no Fortran module ({capi.library_dir()}/libmofka_py_fortran.so): it was built "
                    "without a Fortran compiler; reinstall it with gfortran on PATH")
    return gfortran, capi


def _mpiexec() -> str:
    mpiexec = shutil.which("mpiexec")
    if mpiexec is None:
        pytest.skip("no mpiexec on PATH (pip install mpich, or load an MPI)")
    from mofka_py import _core

    if not _core.build_info.get("mpi"):
        pytest.skip("this mofka-py was built without MPI, so its C API has no MPI fabric")
    return mpiexec


def _compile(gfortran: str, capi, source: Path, exe: Path) -> None:
    """gfortran source $(mofka-py capi --cflags --fortran-libs), into exe."""
    flags = capi.compile_flags().split() + capi.fortran_link_flags().split()
    r = subprocess.run([gfortran, "-std=f2008", "-Wall", "-O2", str(source), "-o", str(exe), *flags],
                       cwd=exe.parent, capture_output=True, text=True)
    assert r.returncode == 0, f"gfortran failed on {source.name}:\n{r.stdout}{r.stderr}"


def _run(cmd: list, cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    """Run cmd in its own process group; on timeout kill that group (mpiexec and its ranks) and fail."""
    proc = subprocess.Popen([str(c) for c in cmd], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{' '.join(map(str, cmd))} did not finish in {timeout:.0f} s\nstdout:\n{out}\nstderr:\n{err}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _summary(out: str) -> str:
    lines = [ln for ln in out.splitlines() if ln.startswith("read_field:")]
    assert len(lines) == 1, f"expected one summary line from read_field.py:\n{out}"
    return lines[0]


@pytest.fixture
def field_stream(tmp_path):
    gfortran, capi = _fortran_toolchain()
    mpiexec = _mpiexec()
    exe = tmp_path / "field_stream"
    _compile(gfortran, capi, EXAMPLE / "field_stream.f90", exe)
    return mpiexec, exe


@pytest.mark.timeout(300)
def test_fortran_ranks_stream_fields_to_a_python_rank_of_the_same_job(field_stream, tmp_path):
    """README layout: one job, the Python consumer as rank 0 (the server), two Fortran ranks streaming."""
    mpiexec, exe = field_stream
    steps, n = 6, 64  # 32 KiB fields: pushed without a copy
    r = _run([mpiexec, "-n", "1", sys.executable, EXAMPLE / "read_field.py", "--steps", steps, "--n", n,
              "--timeout", "60", ":", "-n", "2", exe, steps, n], cwd=tmp_path, timeout=120)
    out = r.stdout + r.stderr
    summary = _summary(r.stdout)
    assert r.returncode == 0, out
    assert summary.startswith("read_field: OK:"), out
    assert f"received={2 * steps} expected={2 * steps} ranks=2 steps={steps}" in summary, out
    assert "checksums=ok" in summary, out
    for rank in (1, 2):
        assert f"field_stream: rank {rank} pushed {steps} fields of {n * n} values" in r.stdout, out


@pytest.mark.timeout(300)
def test_fortran_ranks_stream_to_files_read_after_the_job(field_stream, tmp_path):
    """The file:// layout: only Fortran ranks in the job (rank 0 hosts the fabric and streams too), the
    consumer reads the directory afterwards; and it notices a step that is not there."""
    mpiexec, exe = field_stream
    steps, n = 4, 48
    run = tmp_path / "run"
    r = _run([mpiexec, "-n", "2", exe, steps, n, f"file://{run}"], cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (run / "rank0").is_dir()
    read = [sys.executable, EXAMPLE / "read_field.py", "--dir", run, "--ranks", "2", "--n", n, "--timeout", "5"]
    r = _run(read + ["--steps", steps], cwd=tmp_path, timeout=120)
    summary = _summary(r.stdout)
    assert r.returncode == 0 and summary.startswith("read_field: OK:"), r.stdout + r.stderr
    assert f"received={2 * steps} expected={2 * steps}" in summary and "checksums=ok" in summary
    # One step more than was streamed: missing fields make it fail.
    r = _run(read + ["--steps", steps + 1], cwd=tmp_path, timeout=120)
    summary = _summary(r.stdout)
    assert r.returncode == 1 and summary.startswith("read_field: FAILED:"), r.stdout + r.stderr
    assert "missing=[(0, 4), (1, 4)]" in summary


ERRORS_PROGRAM = r"""
program errors
  use mofka_py
  implicit none
  type(c_ptr) :: fab, topic, prod, cons, fut, data
  integer(c_int) :: st
  integer(c_int32_t) :: part
  integer(c_int64_t) :: off
  logical :: exists
  integer :: i
  character(len=:), allocatable :: meta, names
  integer(c_size_t) :: nbytes
  type(mofka_py_event_t) :: ev
  type(mofka_py_connect_options_t) :: copt
  type(mofka_py_topic_config_t) :: tcfg
  type(mofka_py_producer_options_t) :: popt
  type(mofka_py_consumer_options_t) :: kopt
  type(mofka_py_mpi_options_t) :: mopt
  real(c_double), allocatable, target :: field(:, :)
  real(c_double), pointer :: got(:, :)

  call show("abi", mofka_py_abi_version() - MOFKA_PY_C_ABI_VERSION)
  print "(a, a)", "version ", mofka_py_version_string()
  ! Every structure as the library sees it (its *_init sets struct_size to the C sizeof).
  call mofka_py_connect_options_default(copt)
  call show("size_connect", int(copt%struct_size - c_sizeof(copt)))
  call mofka_py_topic_config_default(tcfg)
  call show("size_topic", int(tcfg%struct_size - c_sizeof(tcfg)))
  call mofka_py_producer_options_default(popt)
  call show("size_producer", int(popt%struct_size - c_sizeof(popt)))
  call mofka_py_consumer_options_default(kopt)
  call show("size_consumer", int(kopt%struct_size - c_sizeof(kopt)))
  call mofka_py_mpi_options_default(mopt)
  call show("size_mpi", int(mopt%struct_size - c_sizeof(mopt)))

  st = mofka_py_connect("bogus://", fab)
  call show("bogus", st)
  print "(a, a)", "bogus_name ", mofka_py_status_name(st)
  call show("bogus_message_len", len(mofka_py_error_message()))
  call show("last_status", mofka_py_last_status())

  call show("connect", mofka_py_connect_ex("memory://", fab))
  call show("last_status_after_ok", mofka_py_last_status())
  call show("open_missing", mofka_py_topic_open(fab, "missing", topic))
  print "(a, a)", "open_missing_name ", mofka_py_status_name(MOFKA_PY_ERR_TOPIC_NOT_FOUND)
  call show("exists_missing", mofka_py_topic_exists(fab, "missing", exists))
  call show_l("exists_missing_value", exists)
  call show("create", mofka_py_topic_create(fab, "t"))
  call show("create_again", mofka_py_topic_create(fab, "t"))
  call show("exists", mofka_py_topic_exists(fab, "t", exists))
  call show_l("exists_value", exists)
  call show("topic_names", mofka_py_fabric_topic_names(fab, names))
  call show_l("topic_names_has_t", index(names, "t" // new_line("a")) > 0)
  call show("open", mofka_py_topic_open(fab, "t", topic))
  call show("partitions", mofka_py_topic_partitions(topic, part))
  call show("partitions_value", int(part))

  ! A push of a 3000-value field (over 16 KiB: zero copy) and a metadata-only one, then read back.
  allocate(field(100, 30))
  field = reshape([(real(i, c_double) * 0.5_c_double, i = 1, 3000)], [100, 30])
  call show("producer", mofka_py_producer_create_default(topic, prod))
  call show("push", mofka_py_push(prod, '{"step": 7}', field, future=fut))
  call show("future_wait", mofka_py_future_wait(fut, -1_c_int64_t, part, off))
  call show("future_offset", int(off))
  call show("future_release", mofka_py_future_release(fut))
  call show("push_meta", mofka_py_push(prod, '{"step": 8}'))
  call show("flush", mofka_py_producer_flush(prod, -1_c_int64_t))
  call show("end_offset", mofka_py_topic_end_offset(topic, 0_c_int32_t, off))
  call show("end_offset_value", int(off))
  call show("mark_complete", mofka_py_topic_mark_complete(topic))
  call show("consumer", mofka_py_consumer_create_default(topic, cons))
  call show("pull", mofka_py_pull(cons, 10000_c_int64_t, ev, meta, data, nbytes))
  print "(a, a)", "pull_meta ", meta
  call show("pull_bytes", int(nbytes))
  call c_f_pointer(data, got, [100, 30])
  call show_l("pull_data_equal", all(got == field))
  call show("event_release", mofka_py_event_release(ev))
  call show("event_release_again", mofka_py_event_release(ev))
  call show("pull2", mofka_py_pull(cons, 10000_c_int64_t, ev, meta, data, nbytes))
  print "(a, a)", "pull2_meta ", meta
  call show("pull2_bytes", int(nbytes))
  call show("event_release2", mofka_py_event_release(ev))
  call show("pull_end", mofka_py_pull(cons, 10000_c_int64_t, ev, meta, data, nbytes))
  call show("consumer_release", mofka_py_consumer_release(cons))
  call show("producer_close", mofka_py_producer_close(prod, -1_c_int64_t))
  call show("push_closed", mofka_py_push(prod, '{"step": 9}'))
  call show("producer_release", mofka_py_producer_release(prod))
  call show("producer_released", mofka_py_producer_flush(prod, -1_c_int64_t))

  call show("topic_release", mofka_py_topic_release(topic))
  call show("topic_released", mofka_py_topic_partitions(topic, part))
  call show("released_message_len", len(mofka_py_error_message()))
  call show("delete", mofka_py_fabric_delete_topic(fab, "t"))
  call show("open_deleted", mofka_py_topic_open(fab, "t", topic))
  call show("fabric_release", mofka_py_fabric_release(fab))
  call show("fabric_released", mofka_py_fabric_release(fab))
  call show("null_handle", mofka_py_topic_release(c_null_ptr))
  print "(a)", "done"

contains

  subroutine show(name, value)
    character(len=*), intent(in) :: name
    integer, intent(in) :: value
    print "(a, 1x, i0)", name, value
  end subroutine show

  subroutine show_l(name, value)
    character(len=*), intent(in) :: name
    logical, intent(in) :: value
    print "(a, 1x, l1)", name, value
  end subroutine show_l
end program errors
"""


@pytest.mark.timeout(300)
def test_fortran_module_calls_and_error_paths(tmp_path):
    gfortran, capi = _fortran_toolchain()
    source = tmp_path / "errors.f90"
    source.write_text(ERRORS_PROGRAM)
    exe = tmp_path / "errors"
    _compile(gfortran, capi, source, exe)
    r = _run([exe], cwd=tmp_path, timeout=120)
    assert r.returncode == 0 and r.stdout.rstrip().endswith("done"), r.stdout + r.stderr
    got = dict(re.match(r"(\S+) ?(.*)", ln).groups() for ln in r.stdout.splitlines() if ln.strip())
    ok, invalid = "0", "2"
    expected = {
        "abi": "0", "size_connect": "0", "size_topic": "0", "size_producer": "0", "size_consumer": "0",
        "size_mpi": "0",
        "bogus": invalid, "bogus_name": "InvalidArgument", "last_status": invalid,
        "connect": ok, "last_status_after_ok": ok,
        "open_missing": "3", "open_missing_name": "TopicNotFound",
        "exists_missing": ok, "exists_missing_value": "F",
        "create": ok, "create_again": "4", "exists": ok, "exists_value": "T",
        "topic_names": ok, "topic_names_has_t": "T", "open": ok, "partitions": ok, "partitions_value": "1",
        "producer": ok, "push": ok, "future_wait": ok, "future_offset": "0", "future_release": ok,
        "push_meta": ok, "flush": ok, "end_offset": ok, "end_offset_value": "2", "mark_complete": ok,
        "consumer": ok, "pull": ok, "pull_meta": '{"step": 7}', "pull_bytes": str(3000 * 8),
        "pull_data_equal": "T", "event_release": ok, "event_release_again": ok,
        "pull2": ok, "pull2_meta": '{"step": 8}', "pull2_bytes": "0", "event_release2": ok,
        "pull_end": "100", "consumer_release": ok, "producer_close": ok, "push_closed": "9",
        "producer_release": ok, "producer_released": invalid,
        "topic_release": ok, "topic_released": invalid, "delete": ok, "open_deleted": "3",
        "fabric_release": ok, "fabric_released": invalid, "null_handle": invalid,
    }
    wrong = {k: (got.get(k), v) for k, v in expected.items() if got.get(k) != v}
    assert not wrong, f"(got, expected) per line: {wrong}\n{r.stdout}{r.stderr}"
    assert int(got["bogus_message_len"]) > 0, "no message after a failed connect"
    assert int(got["released_message_len"]) > 0, "no message after using a released handle"
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", got["version"]), got["version"]
