#!/usr/bin/env python3
"""check-images.py BUILD_DIR: checks that each guest image carries the boot header gdbvmm
(and QEMU) will look for, and nothing that would make it boot another way.

- every PT_LOAD segment is at or above 1 MiB physical;
- ELF64 direct guests: no multiboot header, no PVH note, entry inside a loaded segment;
- multiboot guests: the header is in the first 8 KiB, 4-aligned, with a valid checksum;
  with the a.out kludge its addresses match the file layout;
- the PVH guest: a "Xen" note of type 18 in a PT_NOTE segment, pointing into loaded code;
- watch: watched_a..e are adjacent, in order, and share one 4 KiB page with touch_all.
"""
import struct
import sys

MB_MAGIC = 0x1BADB002
MB_AOUT_KLUDGE = 1 << 16
XEN_ELFNOTE_PHYS32_ENTRY = 18
PT_LOAD, PT_NOTE = 1, 4

DIRECT = ["demo-elf64", "smp", "watch", "fault", "halt"]
MULTIBOOT = ["demo-multiboot", "demo-multiboot32", "smp-multiboot"]
PVH = ["pvh"]


class Elf:
    def __init__(self, path):
        self.data = open(path, "rb").read()
        d = self.data
        if d[:4] != b"\x7fELF":
            raise ValueError("not an ELF file")
        self.is64 = d[4] == 2
        if self.is64:
            (self.entry, phoff, shoff) = struct.unpack_from("<QQQ", d, 24)
            (phentsize, phnum, shentsize, shnum, shstrndx) = struct.unpack_from("<HHHHH", d, 54)
        else:
            (self.entry, phoff, shoff) = struct.unpack_from("<III", d, 24)
            (phentsize, phnum, shentsize, shnum, shstrndx) = struct.unpack_from("<HHHHH", d, 42)
        self.segments = []
        for i in range(phnum):
            o = phoff + i * phentsize
            if self.is64:
                (ptype, flags, off, vaddr, paddr, filesz, memsz, align) = struct.unpack_from("<IIQQQQQQ", d, o)
            else:
                (ptype, off, vaddr, paddr, filesz, memsz, flags, align) = struct.unpack_from("<IIIIIIII", d, o)
            self.segments.append(dict(type=ptype, offset=off, paddr=paddr, filesz=filesz, memsz=memsz))
        self.sections = {}
        for i in range(shnum):
            o = shoff + i * shentsize
            if self.is64:
                (name, stype, flags, addr, off, size, link) = struct.unpack_from("<IIQQQQI", d, o)
            else:
                (name, stype, flags, addr, off, size, link) = struct.unpack_from("<IIIIIII", d, o)
            self.sections[i] = dict(name=name, type=stype, addr=addr, offset=off, size=size, link=link)
        strtab = self.sections[shstrndx]
        for s in self.sections.values():
            s["name"] = self._str(strtab["offset"], s["name"])

    def _str(self, base, off):
        end = self.data.index(b"\0", base + off)
        return self.data[base + off:end].decode()

    def symbols(self):
        out = {}
        for s in self.sections.values():
            if s["type"] != 2:  # SHT_SYMTAB
                continue
            strtab = self.sections[s["link"]]
            size = 24 if self.is64 else 16
            for o in range(s["offset"], s["offset"] + s["size"], size):
                if self.is64:
                    (name, _info, _other, _shndx, value, _sz) = struct.unpack_from("<IBBHQQ", self.data, o)
                else:
                    (name, value, _sz, _info, _other, _shndx) = struct.unpack_from("<IIIBBH", self.data, o)
                if name:
                    out[self._str(strtab["offset"], name)] = value
        return out

    def loads(self):
        return [s for s in self.segments if s["type"] == PT_LOAD]

    def loaded(self, addr):
        return any(s["paddr"] <= addr < s["paddr"] + s["memsz"] for s in self.loads())

    def multiboot_header(self):
        for off in range(0, min(8192, len(self.data)) - 11, 4):
            magic, flags, checksum = struct.unpack_from("<III", self.data, off)
            if magic == MB_MAGIC and (magic + flags + checksum) & 0xFFFFFFFF == 0:
                return off, flags
        return None

    def pvh_entry(self):
        for seg in self.segments:
            if seg["type"] != PT_NOTE:
                continue
            o, end = seg["offset"], seg["offset"] + seg["filesz"]
            while o + 12 <= end:
                namesz, descsz, ntype = struct.unpack_from("<III", self.data, o)
                name = self.data[o + 12:o + 12 + namesz].rstrip(b"\0")
                desc = o + 12 + ((namesz + 3) & ~3)
                if name == b"Xen" and ntype == XEN_ELFNOTE_PHYS32_ENTRY:
                    return struct.unpack_from("<I", self.data, desc)[0]
                o = desc + ((descsz + 3) & ~3)
        return None


def check(build, name):
    elf = Elf(f"{build}/{name}")
    problems = []
    for seg in elf.loads():
        if seg["memsz"] and seg["paddr"] < 0x100000:
            problems.append(f"PT_LOAD at {seg['paddr']:#x}, below 1 MiB")
    mb = elf.multiboot_header()
    pvh = elf.pvh_entry()
    if name in DIRECT:
        if not elf.is64:
            problems.append("ELF64 direct guest is not ELF64")
        if mb or pvh is not None:
            problems.append("has a multiboot header or PVH note: would not boot as ELF64 direct")
        if not elf.loaded(elf.entry):
            problems.append(f"entry {elf.entry:#x} is not in a loaded segment")
        how = f"ELF64 direct, entry {elf.entry:#x}"
    elif name in MULTIBOOT:
        if mb is None:
            problems.append("no valid multiboot header in the first 8 KiB")
            how = "?"
        else:
            off, flags = mb
            how = f"multiboot header at file offset {off:#x}, flags {flags:#x}"
            if flags & MB_AOUT_KLUDGE:
                header_addr, load_addr, load_end, bss_end, entry = struct.unpack_from("<5I", elf.data, off + 12)
                file_start = off - (header_addr - load_addr)
                seg = elf.loads()[0]
                if file_start != seg["offset"] or load_addr != seg["paddr"]:
                    problems.append("kludge load_addr does not match the file layout")
                if file_start + (load_end - load_addr) > len(elf.data):
                    problems.append("kludge load_end_addr is past the end of the file")
                if not load_addr <= entry < load_end or bss_end < load_end:
                    problems.append("kludge entry_addr or bss_end_addr out of range")
                how += f" (a.out kludge: load {load_addr:#x}-{load_end:#x}, bss to {bss_end:#x}, entry {entry:#x})"
            elif elf.is64:
                problems.append("ELF64 multiboot image without the a.out kludge")
            elif not elf.loaded(elf.entry):
                problems.append(f"entry {elf.entry:#x} is not in a loaded segment")
    elif name in PVH:
        if pvh is None:
            problems.append("no Xen PHYS32_ENTRY note in a PT_NOTE segment")
            how = "?"
        else:
            how = f"PVH note, 32-bit entry {pvh:#x}"
            if not elf.loaded(pvh):
                problems.append("PVH entry is not in a loaded segment")
        if mb:
            problems.append("also has a multiboot header")
    if name == "watch":
        syms = elf.symbols()
        names = ["touch_all"] + [f"watched_{c}" for c in "abcde"]
        pages = {syms[n] >> 12 for n in names}
        if len(pages) != 1:
            problems.append("touch_all and the watched variables are not in one page")
        addrs = [syms[f"watched_{c}"] for c in "abcde"]
        if addrs != list(range(addrs[0], addrs[0] + 20, 4)):
            problems.append("watched_a..watched_e are not adjacent ints in order")
    return how, problems


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    failed = False
    for name in DIRECT + MULTIBOOT + PVH:
        how, problems = check(build, name)
        print(f"{name:18} {'FAIL' if problems else 'ok  '} {how}")
        for p in problems:
            print(f"{'':18}      {p}")
        failed = failed or bool(problems)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
