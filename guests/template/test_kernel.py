# test_kernel.py: an example CI test, run by gdb:
#     gdb -nx -batch -x test_kernel.py build/kernel.elf64
# It boots the kernel under gdbvmm (started by gdb itself, talking over a pipe: no port to
# pick), stops at a breakpoint, checks a value, lets the kernel finish, and checks the exit
# status. gdb exits 0 when every check passed and 1 otherwise, so a CI job needs nothing else.
# GDBVMM names the gdbvmm binary (default: gdbvmm on PATH); --timeout bounds a hung kernel.
import os
import gdb

GDBVMM = os.environ.get("GDBVMM", "gdbvmm")
IMAGE = gdb.current_progspace().filename
failures = []


def check(name, ok, detail=""):
    print(("PASS " if ok else "FAIL ") + name + (": " + detail if detail else ""))
    if not ok:
        failures.append(name)


exit_codes = []
gdb.events.exited.connect(lambda event: exit_codes.append(getattr(event, "exit_code", None)))

try:
    gdb.execute("set pagination off")
    gdb.execute("set confirm off")
    gdb.execute(f"target remote | {GDBVMM} --gdb stdio --timeout 60 {IMAGE}")
    gdb.execute("break report")
    gdb.execute("continue")
    frame = gdb.selected_frame()
    check("stopped in report()", frame.name() == "report", str(frame.name()))
    result = int(gdb.parse_and_eval("result"))
    check("result is fibonacci(20)", result == 6765, str(result))
    check("report was called with that value", int(gdb.parse_and_eval("value")) == result)
    gdb.execute("delete")
    gdb.execute("continue")
    # The kernel writes 0x10 to the debug-exit port when its checks passed: status 33.
    check("exit status 33", exit_codes == [33], str(exit_codes))
except gdb.error as e:
    check("the session ran to its end", False, str(e))

gdb.execute("quit 1" if failures else "quit 0")
