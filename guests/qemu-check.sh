#!/bin/bash
# qemu-check.sh [BUILD_DIR]: boots the guests QEMU can boot (multiboot and PVH; QEMU has no
# ELF64 direct boot) under TCG and checks their serial output and exit status. smp-multiboot
# spins until stop_all is set, so that case drives QEMU's gdb stub with gdb (skipped without
# gdb). Needs qemu-system-x86_64 and qemu-system-i386 (Debian: qemu-system-x86).
set -u
BUILD=${1:-build}
QEMU=${QEMU:-qemu-system-x86_64}
QEMU32=${QEMU32:-qemu-system-i386}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
failures=0

# qemu QEMU_BINARY IMAGE CMDLINE [extra qemu args...]: the QEMU command line for IMAGE.
qemu() {
    local qemu=$1 image=$2 cmdline=$3
    shift 3
    rm -f "$TMP/serial"
    timeout 60 "$qemu" -accel tcg -display none -monitor none -no-reboot -net none \
        -device isa-debug-exit,iobase=0xf4,iosize=4 -serial "file:$TMP/serial" \
        -kernel "$image" -append "$cmdline" "$@" </dev/null
}

# boot QEMU_BINARY IMAGE CMDLINE [extra qemu args...]: runs to the end; sets $status, $out.
boot() {
    qemu "$@"
    status=$?
    out=$(cat "$TMP/serial" 2>/dev/null | tr -d '\r')
}

# expect NAME WANTED_STATUS LINE...: every LINE must be a line of $out.
expect() {
    local name=$1 want=$2 line ok=1
    shift 2
    [ "$status" = "$want" ] || ok=0
    for line in "$@"; do
        grep -qxF -- "$line" <<<"$out" || ok=0
    done
    if [ $ok = 1 ]; then
        echo "ok   $name (exit status $status)"
    else
        echo "FAIL $name: exit status $status (wanted $want), serial output:"
        sed 's/^/     | /' <<<"$out"
        failures=$((failures + 1))
    fi
}

for image in demo-multiboot demo-multiboot32; do
    boot "$QEMU" "$BUILD/$image" "hello world"
    # QEMU puts the kernel's file name before the -append text.
    expect "$image" 33 "gdbvmm demo guest" "cmdline: $BUILD/$image hello world" "demo guest done"
done

boot "$QEMU" "$BUILD/pvh" "hello pvh"
expect pvh 33 "pvh guest: start_info magic ok, cmdline: hello pvh"

if command -v gdb >/dev/null; then
    # qemu-system-i386, so that gdb's i386 view of the ELF32 image matches the stub's registers.
    qemu "$QEMU32" "$BUILD/smp-multiboot" "" -smp 4 -S -gdb "unix:$TMP/gdb.sock,server=on,wait=off" &
    pid=$!
    for _ in $(seq 50); do [ -S "$TMP/gdb.sock" ] && break; sleep 0.1; done
    timeout 60 gdb -q -batch -nx -ex "target remote $TMP/gdb.sock" \
        -ex 'break cpu_main if cpu == 0' -ex continue -ex 'set var stop_all = 1' \
        -ex delete -ex continue "$BUILD/smp-multiboot" >"$TMP/gdb.log" 2>&1
    wait $pid
    status=$?
    out=$(cat "$TMP/serial" 2>/dev/null | tr -d '\r')
    expect "smp-multiboot -smp 4 (via gdb)" 9 "smp-multiboot: 4 cpus online" "smp guest done"
else
    echo "skip smp-multiboot: no gdb"
fi

[ $failures = 0 ]
